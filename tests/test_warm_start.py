"""Start-up snapshots over stdio: the real `mcp-connectors serve` as a subprocess, started twice or more.

The first start answers through the SDK and writes the snapshot; a later one with the same configuration
answers `initialize` and `tools/list` from it while it loads. Every answer must be the bytes the SDK gives.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import shlex
import socket
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from mcp_server._startup_snapshot import ENV_STARTUP_CACHE, read_snapshot
from mcp_server._warm_start import Handover, WarmStart, _Front
from tests._upstream import FakeUpstream
from tests.conftest import SECRET, server_command

INIT = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
INIT_LINE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT}).encode() + b"\n"
FROM_SNAPSHOT = "from the start-up snapshot"
TIMEOUT = 60.0


class RawStdio:
    """One server process and the raw lines it writes; nothing in between that could normalize them."""

    def __init__(self, env: dict[str, str], log: Path, *extra: str) -> None:
        command, args = server_command()
        self.log = log
        self.process = subprocess.Popen(
            [command, *args, "--page-size", "4", *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            env=env,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._out = self.process.stdout.fileno()
        self._buffer = b""

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def line(self) -> bytes:
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([self._out], [], [], TIMEOUT)
            assert ready, f"no answer in {TIMEOUT} s"
            chunk = os.read(self._out, 1 << 20)
            assert chunk, "the server closed stdout"
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line + b"\n"

    def request(self, request_id: int, method: str, params: dict[str, Any] | None = None) -> bytes:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.line()

    def handshake_and_listing(self, init: dict[str, Any] = INIT) -> list[bytes]:
        lines = [self.request(1, "initialize", init)]
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        cursor, request_id = None, 2
        while True:
            lines.append(self.request(request_id, "tools/list", {"cursor": cursor} if cursor else {}))
            cursor = json.loads(lines[-1])["result"].get("nextCursor")
            request_id += 1
            if not cursor:
                return lines

    def call(self, request_id: int = 100) -> dict[str, Any]:
        """A tool call through the SDK (after the hand-over): it only works in a negotiated session."""
        answer = json.loads(
            self.request(request_id, "tools/call", {"name": "echo_get_item", "arguments": {"item_id": "7"}})
        )
        assert answer["id"] == request_id, answer
        return answer

    def close(self) -> str:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(TIMEOUT)
        return self.log.read_text()


def tool_names(lines: list[bytes]) -> list[str]:
    return [tool["name"] for line in lines[1:] for tool in json.loads(line)["result"]["tools"]]


@pytest.fixture
def start(server_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    started: list[RawStdio] = []

    def launch(*extra: str) -> RawStdio:
        server = RawStdio(server_env, tmp_path / f"stderr-{len(started)}.log", *extra)
        started.append(server)
        return server

    yield launch
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def write_snapshot_with(start: Any) -> None:
    """A first start, walked to the end of the listing: it writes the snapshot the next start answers from."""
    first = start()
    first.handshake_and_listing()
    first.close()


def initialize_then_listings(count: int) -> bytes:
    """`initialize` (id 1) and `count` page requests (ids 2 onwards), sent before any answer is read."""
    lines = [json.dumps({"jsonrpc": "2.0", "id": n, "method": "tools/list"}) for n in range(2, count + 2)]
    return INIT_LINE + ("\n".join(lines) + "\n").encode()


def snapshots(startup_cache: Path) -> list[Path]:
    return sorted(startup_cache.glob("*.snapshot"))


def test_a_second_start_answers_from_the_snapshot_byte_for_byte(
    start: Any, upstream: FakeUpstream, startup_cache: Path
) -> None:
    before = set(snapshots(startup_cache))
    cold = start()
    cold_lines = cold.handshake_and_listing()
    assert not cold.call()["result"].get("isError")
    assert FROM_SNAPSHOT not in cold.close()
    written = set(snapshots(startup_cache)) - before
    assert len(written) == 1
    assert oct(written.pop().stat().st_mode & 0o777) == "0o600"

    warm = start()
    warm_lines = warm.handshake_and_listing()
    assert warm_lines == cold_lines
    assert len(warm_lines) >= 4  # initialize and three pages of four
    answer = warm.call()
    assert not answer["result"].get("isError"), answer
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    log = warm.close()
    assert f"answered initialize and {len(warm_lines) - 1} tools/list page(s) {FROM_SNAPSHOT}" in log


def test_pages_larger_than_a_pipe_are_all_answered_from_the_snapshot(start: Any, tools_dir: Path) -> None:
    operations = "".join(
        f"  - {{name: op_{n}, method: GET, path: /items/{n}, description: '{'An operation to fill a page. ' * 30}'}}\n"
        for n in range(300)
    )
    (tools_dir / "big.yaml").write_text(f"name: big\nbase_url: http://127.0.0.1:9\noperations:\n{operations}")
    first = start("--page-size", "150")
    cold = first.handshake_and_listing()
    first.close()
    assert len(cold) == 4 and all(len(line) > 128 * 1024 for line in cold[1:3])  # pages far larger than a pipe
    second = start("--page-size", "150")
    assert second.handshake_and_listing() == cold
    second.call()
    assert "answered initialize and 3 tools/list page(s)" in second.close()


def test_a_changed_manifest_is_not_answered_from_the_snapshot(start: Any, tools_dir: Path) -> None:
    first = start()
    first.handshake_and_listing()
    first.call()
    first.close()
    (tools_dir / "extra.yaml").write_text((tools_dir / "noauth.yaml").read_text().replace("noauth", "extra"))
    second = start()
    names = tool_names(second.handshake_and_listing())
    second.call()
    assert FROM_SNAPSHOT not in second.close()
    assert "extra_whoami" in names


def test_a_change_its_file_stats_hide_is_corrected_with_list_changed(
    start: Any, tools_dir: Path, startup_cache: Path
) -> None:
    first = start()
    first.handshake_and_listing()
    first.call()
    first.close()
    # Same size, same mtime: the snapshot's stats cannot see this edit; the check after the hand-over does.
    manifest = tools_dir / "echo.yaml"
    stat = manifest.stat()
    manifest.write_text(manifest.read_text().replace("Fetch one item by id.", "Fetch one item by ID!"))
    os.utime(manifest, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert manifest.stat().st_size == stat.st_size

    second = start()
    stale = second.handshake_and_listing()
    assert b"Fetch one item by id." in b"".join(stale)  # answered from the snapshot, before the SDK could check
    second.send({"jsonrpc": "2.0", "id": 100, "method": "tools/call", "params": {"name": "noauth_whoami"}})
    seen = [json.loads(second.line()), json.loads(second.line())]
    assert {"method": "notifications/tools/list_changed", "jsonrpc": "2.0"} in seen
    assert any(message.get("id") == 100 for message in seen)
    fresh = second.request(101, "tools/list", {})
    assert b"Fetch one item by ID!" in fresh
    assert FROM_SNAPSHOT in second.close()

    third = start()  # the snapshot was rewritten from what the server answered
    lines = third.handshake_and_listing()
    third.call()
    assert FROM_SNAPSHOT in third.close()
    assert b"Fetch one item by ID!" in b"".join(lines)


def test_other_initialize_params_are_left_to_the_sdk_and_then_recorded(start: Any) -> None:
    write_snapshot_with(start)
    other = {**INIT, "clientInfo": {"name": "raw", "version": "2"}}
    second = start()
    answered = second.handshake_and_listing(other)
    second.call()
    assert FROM_SNAPSHOT not in second.close()
    third = start()
    assert third.handshake_and_listing(other) == answered
    third.call()
    assert FROM_SNAPSHOT in third.close()


def test_a_request_it_cannot_answer_goes_to_the_sdk_in_order(start: Any, upstream: FakeUpstream) -> None:
    write_snapshot_with(start)
    second = start()
    initialize = json.loads(second.request(1, "initialize", INIT))
    assert initialize["result"]["serverInfo"]["name"] == "mcp-connectors"
    # No notifications/initialized: only the replayed initialize opens the SDK's gate for this call.
    answer = second.call(2)  # the first message it does not answer: everything from here is the SDK's
    assert not answer["result"].get("isError")
    assert json.loads(second.request(3, "ping"))["result"] == {}
    assert "answered initialize and 0 tools/list page(s)" in second.close()


def test_a_malformed_snapshot_is_ignored_and_replaced(start: Any, startup_cache: Path) -> None:
    before = set(snapshots(startup_cache))
    first = start()
    cold = first.handshake_and_listing()
    first.close()
    (path,) = set(snapshots(startup_cache)) - before
    path.write_bytes(b'{"format": 1, "inputs": {}}\nnot what it says')
    second = start()
    assert second.handshake_and_listing() == cold
    second.call()
    assert FROM_SNAPSHOT not in second.close()
    assert read_snapshot(path) is not None


def test_switched_off_nothing_is_written(start: Any, server_env: dict[str, str], tmp_path: Path) -> None:
    server_env[ENV_STARTUP_CACHE] = "off"
    server_env["HOME"] = str(tmp_path / "home")
    server_env.pop("XDG_CACHE_HOME", None)
    for _ in range(2):
        server = start()
        server.handshake_and_listing()
        server.call()
        assert FROM_SNAPSHOT not in server.close()
    assert not (tmp_path / "home").exists()


async def test_sdk_clients_of_either_era_are_served_after_a_snapshot(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    command, args = server_command()
    params = StdioServerParameters(command=command, args=args, env=server_env)
    listings = []
    for n in range(2):
        log = tmp_path / f"legacy-{n}.log"
        with log.open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
                listings.append(await client.list_tools())
                result = await client.call_tool("noauth_whoami", {})
                assert not result.is_error
        assert (FROM_SNAPSHOT in log.read_text()) == (n == 1)
    assert listings[0] == listings[1]
    async with Client(params) as client:  # 2026-07-28: no initialize, so nothing for the snapshot to answer
        assert client.protocol_version == "2026-07-28"
        assert not (await client.call_tool("noauth_whoami", {})).is_error


# ---- the answering thread on its own, over real pipes --------------------------------------------------------------


class Pipes:
    def __init__(self) -> None:
        self.client_out, self.server_in = os.pipe()[::-1]  # (write end for the client, read end for the server)
        self.server_out_read, self.server_out = os.pipe()

    def close(self) -> None:
        for fd in (self.client_out, self.server_in, self.server_out_read, self.server_out):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def recorded(start: Any, startup_cache: Path) -> Iterator[tuple[Path, list[bytes]]]:
    """A snapshot written by a real start, and the lines that start answered."""
    before = set(snapshots(startup_cache))
    server = start()
    lines = server.handshake_and_listing()
    server.close()
    (path,) = set(snapshots(startup_cache)) - before
    yield path, lines


def front_for(path: Path) -> tuple[_Front, Pipes]:
    snapshot = read_snapshot(path)
    assert snapshot is not None
    pipes = Pipes()
    front = _Front(snapshot, pipes.server_in, pipes.server_out)
    front.start()
    return front, pipes


def read_available(fd: int) -> bytes:
    data = b""
    while select.select([fd], [], [], 0.5)[0]:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        data += chunk
    return data


def test_the_thread_answers_with_the_recorded_bytes_and_string_ids(recorded: tuple[Path, list[bytes]]) -> None:
    path, lines = recorded
    front, pipes = front_for(path)
    try:
        os.write(
            pipes.client_out,
            json.dumps({"jsonrpc": "2.0", "id": "a-1", "method": "initialize", "params": INIT}).encode() + b"\n",
        )
        os.write(pipes.client_out, b'{"jsonrpc":"2.0","method":"tools/list","id":7}\n')
        answered = read_available(pipes.server_out_read).splitlines(keepends=True)
        assert answered[0] == lines[0].replace(b'"id":1', b'"id":"a-1"', 1)
        assert answered[1] == lines[1].replace(b'"id":2', b'"id":7', 1)
        front.stop()
        handover = front.handover()
    finally:
        pipes.close()
    replayed = [json.loads(line) for line in handover.prefix.splitlines()]
    assert [m["method"] for m in replayed] == ["initialize", "tools/list"]
    assert replayed[0]["params"] == INIT and replayed[0]["id"] != "a-1"
    assert set(handover.expected) == {replayed[0]["id"], replayed[1]["id"]}


@pytest.mark.parametrize(
    "first",
    [
        b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}\n',
        b'{"jsonrpc":"2.0","id":1.5,"method":"initialize","params":' + json.dumps(INIT).encode() + b"}\n",
        b'{"jsonrpc":"2.0","id":"q\\"uote","method":"initialize","params":' + json.dumps(INIT).encode() + b"}\n",
        b'{"jsonrpc":"2.0","id":1,"method":"initialize","extra":1,"params":' + json.dumps(INIT).encode() + b"}\n",
        b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n',
        b"[]\n",
        b"not json\n",
        b"\xef\xbb\xbf"
        + json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT}).encode()
        + b"\n",
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT}).encode("utf-16") + b"\n",
    ],
)
def test_anything_but_the_recorded_handshake_is_handed_over_untouched(
    recorded: tuple[Path, list[bytes]], first: bytes
) -> None:
    front, pipes = front_for(recorded[0])
    try:
        os.write(pipes.client_out, first + b'{"jsonrpc":"2.0","id":9,"method":"tools/list"}\n{"partial')
        assert read_available(pipes.server_out_read) == b""
        front.stop()
        handover = front.handover()
    finally:
        pipes.close()
    assert handover.prefix == first + b'{"jsonrpc":"2.0","id":9,"method":"tools/list"}\n{"partial'
    assert handover.expected == {}


@pytest.mark.parametrize(
    "params",
    [
        {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}},
        {"_meta": 5},
        {"_meta": {"progressToken": [1]}},
        {"_meta": {"progressToken": True}},
        {"cursor": 3},
        {"cursor": None, "extra": 1},
    ],
)
def test_a_listing_request_the_sdk_might_read_otherwise_is_handed_over(
    recorded: tuple[Path, list[bytes]], params: dict[str, Any]
) -> None:
    front, pipes = front_for(recorded[0])
    request = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": params}).encode() + b"\n"
    try:
        os.write(
            pipes.client_out,
            INIT_LINE,
        )
        os.write(pipes.client_out, request)
        assert read_available(pipes.server_out_read).count(b"\n") == 1  # the initialize answer only
        front.stop()
        handover = front.handover()
    finally:
        pipes.close()
    assert handover.prefix.endswith(request) and len(handover.expected) == 1


def test_the_end_of_stdin_is_handed_over(recorded: tuple[Path, list[bytes]]) -> None:
    front, pipes = front_for(recorded[0])
    try:
        os.write(
            pipes.client_out,
            INIT_LINE,
        )
        os.close(pipes.client_out)
        assert read_available(pipes.server_out_read).count(b"\n") == 1
        front.stop()
        handover = front.handover()
    finally:
        pipes.close()
    assert handover.eof  # a terminal's end of input is seen once: the SDK must be told, not left to read again


def test_the_end_of_input_on_a_terminal_ends_a_warm_session(
    start: Any, server_env: dict[str, str], tmp_path: Path
) -> None:
    write_snapshot_with(start)
    controller, terminal = pty.openpty()
    attributes = termios.tcgetattr(terminal)
    attributes[3] &= ~termios.ECHO  # the typed line is not echoed back into the terminal
    termios.tcsetattr(terminal, termios.TCSANOW, attributes)
    command, args = server_command()
    with (tmp_path / "tty.log").open("w") as log:
        process = subprocess.Popen(
            [command, *args, "--page-size", "4"], stdin=terminal, stdout=subprocess.PIPE, stderr=log, env=server_env
        )
    os.close(terminal)
    try:
        line = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT}).encode()
        os.write(controller, line + b"\n")
        assert process.stdout is not None
        assert json.loads(process.stdout.readline())["id"] == 1
        os.write(controller, b"\x04")  # ^D at the start of a line: one read of nothing, once
        assert process.wait(TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    assert FROM_SNAPSHOT in (tmp_path / "tty.log").read_text()


def test_stdout_is_left_blocking_when_the_server_fails_after_answering(
    start: Any, server_env: dict[str, str], tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    server_env["MCP_CONNECTORS_AUDIT_LOG"] = str(audit)
    write_snapshot_with(start)
    audit.unlink()
    audit.mkdir()  # the same configuration, and the audit log cannot be opened now: the start fails
    command, args = server_command()
    serve = " ".join(shlex.quote(part) for part in [command, *args, "--page-size", "4"])  # as `start` runs it
    probe = f"{shlex.quote(sys.executable)} -c 'import os, sys; sys.stderr.write(f\"blocking={{os.get_blocking(1)}}\")'"
    done = subprocess.run(
        ["sh", "-c", f"{serve} 2>/dev/null; {probe}"],
        input=INIT_LINE,
        capture_output=True,
        env=server_env,
        timeout=TIMEOUT,
    )
    assert json.loads(done.stdout.splitlines()[0])["id"] == 1  # answered from the snapshot, then it failed
    assert done.stderr.decode().endswith("blocking=True")  # the shell's next command gets stdout as it was


def test_stdin_and_stdout_one_socket_every_request_is_answered(
    start: Any, server_env: dict[str, str], tmp_path: Path
) -> None:
    write_snapshot_with(start)
    ours, theirs = socket.socketpair()
    command, args = server_command()
    with (tmp_path / "socket.log").open("w") as log:
        process = subprocess.Popen(
            [command, *args, "--page-size", "4"],
            stdin=theirs.fileno(),
            stdout=theirs.fileno(),
            stderr=log,
            env=server_env,
        )
    theirs.close()
    count = 3000
    writer = threading.Thread(target=ours.sendall, args=(initialize_then_listings(count),))
    writer.start()
    received = b""
    ours.settimeout(TIMEOUT)
    try:
        while received.count(b"\n") < count + 1:
            chunk = ours.recv(1 << 20)
            assert chunk, "the server stopped answering"
            received += chunk
    finally:
        writer.join(TIMEOUT)
        ours.close()
        process.wait(TIMEOUT)
    assert sorted(json.loads(line)["id"] for line in received.splitlines()) == list(range(1, count + 2))
    log = (tmp_path / "socket.log").read_text()
    assert "cannot be written" not in log
    assert FROM_SNAPSHOT not in log  # a socket shared with stdin is left to the server's own writer


def test_a_client_that_writes_everything_before_reading_is_not_wedged(start: Any) -> None:
    write_snapshot_with(start)
    second = start()
    count = 4000
    payload = initialize_then_listings(count)
    assert len(payload) > 200_000  # far more than a pipe holds, and the answers are larger still
    writer = threading.Thread(target=second.process.stdin.write, args=(payload,))  # type: ignore[union-attr]
    writer.start()
    writer.join(TIMEOUT)
    assert not writer.is_alive(), "the server stopped reading while the client could not read yet"
    second.process.stdin.flush()  # type: ignore[union-attr]
    ids = [json.loads(second.line())["id"] for _ in range(count + 1)]
    assert sorted(ids) == list(range(1, count + 2))
    second.close()


def test_a_page_it_does_not_hold_stops_it_after_the_pages_it_answered(recorded: tuple[Path, list[bytes]]) -> None:
    front, pipes = front_for(recorded[0])
    try:
        os.write(
            pipes.client_out,
            INIT_LINE,
        )
        os.write(pipes.client_out, b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        os.write(pipes.client_out, b'{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}\n')
        tail = b'{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"cursor":"nope"}}\n'
        os.write(pipes.client_out, tail)
        answered = read_available(pipes.server_out_read)
        front.stop()
        handover = front.handover()
    finally:
        pipes.close()
    assert answered.count(b"\n") == 2
    methods = [json.loads(line).get("method") for line in handover.prefix.splitlines()]
    assert methods == ["initialize", "notifications/initialized", "tools/list", "tools/list"]
    assert handover.prefix.endswith(tail)
    assert len(handover.expected) == 2


def test_begin_is_only_for_serve(tmp_path: Path) -> None:
    environ = {ENV_STARTUP_CACHE: str(tmp_path)}
    assert WarmStart.begin(["tools"], environ) is None
    assert WarmStart.begin([], environ) is None
    for http in (["--transport", "http"], ["--transport=http"], ["--transport"], ["--help"]):
        assert WarmStart.begin(["serve", *http], environ) is None
    assert not list(tmp_path.iterdir())  # nothing is written for a server that does not speak stdio
    assert WarmStart.begin(["serve", "--transport", "stdio"], environ) is not None
    assert WarmStart.begin(["serve"], {ENV_STARTUP_CACHE: "off"}) is None
    warm = WarmStart.begin(["serve"], environ)
    assert warm is not None and warm.snapshot is None and not warm.answered
    assert warm.handover() == Handover(b"")
