"""Which event loop `serve` runs on: uvloop by default where installed, asyncio on request."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mcp_server._event_loop import ENV_EVENT_LOOP, use_uvloop
from tests.conftest import server_command


def test_auto_and_empty_mean_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")
    assert use_uvloop({}) and use_uvloop({ENV_EVENT_LOOP: ""}) and use_uvloop({ENV_EVENT_LOOP: "Auto"})
    assert use_uvloop({ENV_EVENT_LOOP: "uvloop"})


def test_asyncio_opts_out() -> None:
    assert not use_uvloop({ENV_EVENT_LOOP: "asyncio"})


def test_anything_else_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="auto, asyncio, uvloop"):
        use_uvloop({ENV_EVENT_LOOP: "trio"})


def _loaded_uvloop(env: dict[str, str], tmp_path: Path) -> bool:
    """Start `serve` over stdio, wait for it to answer, and look for uvloop's extension in its memory map."""
    command, args = server_command()
    with (tmp_path / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            [command, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env
        )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
        process.stdin.flush()
        assert process.stdout.readline()  # serving: the loop is running
        maps = "".join(Path(f"/proc/{pid}/maps").read_text() for pid in _process_tree(process.pid))
        return "uvloop" in maps
    finally:
        process.kill()
        process.wait()


def _process_tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [pid, *(int(c) for c in children.read_text().split())] if children.exists() else [pid]


def test_stdio_serves_on_uvloop_by_default_and_on_asyncio_when_asked(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    pytest.importorskip("uvloop")
    assert _loaded_uvloop(server_env, tmp_path)
    assert not _loaded_uvloop({**server_env, ENV_EVENT_LOOP: "asyncio"}, tmp_path)


def test_a_bad_choice_stops_serve_with_a_usage_error(server_env: dict[str, str]) -> None:
    command, args = server_command()
    done = subprocess.run(
        [command, *args], env={**server_env, ENV_EVENT_LOOP: "fast"}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert f"{ENV_EVENT_LOOP}='fast'" in done.stderr and "Traceback" not in done.stderr
