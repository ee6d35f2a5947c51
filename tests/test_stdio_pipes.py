"""stdio served through asyncio pipes: raw JSON-RPC over the real subprocess's stdin/stdout."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests._upstream import FakeUpstream
from tests.conftest import server_command

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def _call(request_id: int, name: str, arguments: dict[str, Any]) -> bytes:
    return _line(
        {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    )


class RawServer:
    """`mcp-connectors serve` with stdin and stdout as plain pipes, and the replies read one line at a time."""

    def __init__(
        self, env: dict[str, str], stderr_path: Path, *, stdin: int | None = None, extra: tuple[str, ...] = ()
    ) -> None:
        command, args = server_command()
        self.stderr_file = stderr_path.open("wb")
        self.process = subprocess.Popen(
            [command, *args, *extra],
            stdin=stdin if stdin is not None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr_file,
            env=env,
        )

    def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.endswith(b"\n"), f"server closed stdout early: {line!r}"
        return json.loads(line)

    def handshake(self) -> None:
        self.send(_line(INITIALIZE))
        assert self.reply()["id"] == 1
        self.send(_line(INITIALIZED))

    def close(self) -> int:
        if self.process.stdin is not None:
            self.process.stdin.close()
        code = self.process.wait(timeout=30)
        self.stderr_file.close()
        return code


@pytest.fixture
def raw(server_env: dict[str, str], tmp_path: Path):
    server = RawServer(server_env, tmp_path / "stderr.log")
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


def test_requests_in_one_write_are_all_answered(raw: RawServer, upstream: FakeUpstream) -> None:
    raw.handshake()
    raw.send(b"".join(_call(10 + i, "echo_get_item", {"item_id": f"i{i}"}) for i in range(20)))
    replies = {r["id"]: r for r in (raw.reply() for _ in range(20))}
    assert sorted(replies) == list(range(10, 30))
    assert all(not r["result"]["isError"] for r in replies.values())
    assert raw.close() == 0


def test_a_garbage_line_does_not_stop_the_next_request(raw: RawServer, upstream: FakeUpstream) -> None:
    raw.handshake()
    raw.send(b"this is not json\n\xff\xfe{broken\n")
    raw.send(_line({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
    assert raw.reply()["id"] == 2
    assert raw.close() == 0


def test_a_message_of_several_mebibytes_arrives_whole(raw: RawServer, upstream: FakeUpstream) -> None:
    raw.handshake()
    title = "x" * (3 * 1024 * 1024)  # far above asyncio's default 64 KiB line limit
    raw.send(_call(3, "echo_create_item", {"title": title}))
    reply = raw.reply()
    assert reply["id"] == 3 and not reply["result"]["isError"]
    assert upstream.requests[-1].json["title"] == title


def test_a_line_over_the_limit_is_dropped_and_the_next_one_served(raw: RawServer, upstream: FakeUpstream) -> None:
    from mcp_server._stdio_pipes import MAX_LINE_BYTES

    raw.handshake()
    raw.send(b'{"jsonrpc": "2.0", "id": 4, "method": "tools/list", "x": "' + b"y" * (MAX_LINE_BYTES + 10) + b'"}\n')
    raw.send(_line({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}))
    assert raw.reply()["id"] == 5  # 4 was never parsed, so never answered
    assert raw.close() == 0


def test_fd_0_and_1_are_diverted_while_serving(raw: RawServer, upstream: FakeUpstream) -> None:
    raw.handshake()
    pid = _server_pid(raw.process.pid)
    fds = {fd: os.readlink(f"/proc/{pid}/fd/{fd}") for fd in (0, 1, 2)}
    assert fds[0] == "/dev/null"  # a child or a stray read gets EOF, not the client's requests
    assert fds[1] == fds[2]  # a stray print() lands in the log, not in the protocol stream
    raw.send(_call(6, "echo_get_item", {"item_id": "after"}))
    assert raw.reply()["id"] == 6


def test_the_shared_pipe_is_left_blocking_after_exit(server_env: dict[str, str], tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        server = RawServer(server_env, tmp_path / "stderr.log", stdin=read_end)
        os.write(write_end, _line(INITIALIZE))
        assert server.reply()["id"] == 1
        assert not os.get_blocking(read_end)  # the server watches it without threads...
        os.close(write_end)
        write_end = -1
        assert server.close() == 0
        assert os.get_blocking(read_end)  # ...and hands it back as it found it
    finally:
        os.close(read_end)
        if write_end != -1:
            os.close(write_end)


def test_a_client_that_stops_reading_does_not_get_a_traceback(server_env: dict[str, str], tmp_path: Path) -> None:
    server = RawServer(server_env, tmp_path / "stderr.log")
    server.handshake()
    assert server.process.stdout is not None
    server.process.stdout.close()  # the client went away mid-session
    server.send(_line({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}))
    time.sleep(0.5)
    server.close()
    assert "Traceback" not in (tmp_path / "stderr.log").read_text()


def test_a_regular_file_on_stdin_is_answered_whole(server_env: dict[str, str], tmp_path: Path) -> None:
    # The SDK's own stdio dropped the replies still being written when a file's EOF ended the session.
    pings = [_line({"jsonrpc": "2.0", "id": 100 + i, "method": "ping"}) for i in range(10)]
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(_line(INITIALIZE) + _line(INITIALIZED) + b"".join(pings))
    command, args = server_command()
    for stdout_is_a_file in (False, True):
        out = tmp_path / f"out-{stdout_is_a_file}.jsonl"
        with requests.open("rb") as stdin, out.open("wb") as file:
            done = subprocess.run(
                [command, *args],
                stdin=stdin,
                stdout=file if stdout_is_a_file else subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=server_env,
                timeout=60,
                check=False,
            )
        assert done.returncode == 0, done.stderr.decode()
        written = out.read_bytes() if stdout_is_a_file else done.stdout
        ids = sorted(json.loads(line)["id"] for line in written.splitlines())
        assert ids == [1, *range(100, 110)]


def _server_pid(pid: int) -> int:
    """The Python process serving: the console script may exec it directly or run it as a child."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = children.read_text().split() if children.exists() else []
    return int(found[0]) if found else pid


def test_listing_pages_are_the_same_bytes_into_a_pipe_and_a_file(server_env: dict[str, str], tmp_path: Path) -> None:
    """The same requests answered on a pipe (the event loop's writer) and into a file (blocking writes)."""
    requests = [
        _line(INITIALIZE),
        _line(INITIALIZED),
        *(_line({"jsonrpc": "2.0", "id": f"list-{i}", "method": "tools/list"}) for i in range(3)),
        _line({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"cursor": "bogus"}}),
        _line({"jsonrpc": "2.0", "id": 8, "method": "ping"}),
    ]
    answered = [r for r in requests if b'"id"' in r]
    piped = RawServer(server_env, tmp_path / "piped.log", extra=("--page-size", "4"))
    ours: list[bytes] = []
    try:
        for request in requests:
            piped.send(request)
            if request in answered:
                ours.append(piped.process.stdout.readline())  # type: ignore[union-attr]
    finally:
        piped.close()
    theirs = _answers_into_a_file(server_env, tmp_path, requests, answered)
    assert len(ours) == len(theirs) == 6
    assert ours == theirs
    assert json.loads(ours[1])["result"]["tools"] and json.loads(ours[4])["error"]  # pages, then a bad cursor


def _answers_into_a_file(
    env: dict[str, str], tmp_path: Path, requests: list[bytes], answered: list[bytes]
) -> list[bytes]:
    out = tmp_path / "sdk-stdout.jsonl"
    command, args = server_command()
    with out.open("wb") as stdout, (tmp_path / "sdk.log").open("wb") as stderr:
        process = subprocess.Popen(
            [command, *args, "--page-size", "4"], stdin=subprocess.PIPE, stdout=stdout, stderr=stderr, env=env
        )
    assert process.stdin is not None
    try:
        expected = 0
        for request in requests:
            process.stdin.write(request)
            process.stdin.flush()
            if request in answered:
                expected += 1
                deadline = time.monotonic() + 30
                while out.read_bytes().count(b"\n") < expected and time.monotonic() < deadline:
                    time.sleep(0.01)
    finally:
        process.stdin.close()
        process.wait(timeout=30)
    return out.read_bytes().splitlines(keepends=True)


async def test_wire_line_equals_the_sdk_serialization_for_a_cached_page() -> None:
    from mcp.shared.message import SessionMessage
    from mcp_types import JSONRPCNotification, JSONRPCResponse

    from mcp_server._listing_cache import ListingCache
    from mcp_server._stdio_pipes import wire_line

    cache = ListingCache(lambda ctx: "listing")
    page = {
        "tools": [{"name": "t", "description": 'é \u2028 "q" </b>', "inputSchema": {"type": "object", "x": 1e300}}],
        "nextCursor": "c2",
    }
    cache._entries["k"] = page  # what __call__ stores after the SDK answered
    cache._wire[id(page["tools"])] = (page, None)
    for request_id in (1, "a-b", 2**40):
        response = JSONRPCResponse(jsonrpc="2.0", id=request_id, result=dict(page))  # the SDK's shallow copy
        expected = response.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"
        assert cache.wire_json(response.result) is not None
        assert wire_line(SessionMessage(response), cache.wire_json) == expected
    changed = JSONRPCResponse(jsonrpc="2.0", id=1, result={**page, "nextCursor": "other"})
    assert cache.wire_json(changed.result) is None  # not the cached page: the SDK's serialization
    assert b'"nextCursor":"other"' in wire_line(SessionMessage(changed), cache.wire_json)
    note = JSONRPCNotification(jsonrpc="2.0", method="notifications/tools/list_changed")
    assert wire_line(SessionMessage(note), cache.wire_json) == note.model_dump_json(exclude_unset=True).encode() + b"\n"


def test_one_socket_as_both_stdin_and_stdout(server_env: dict[str, str], tmp_path: Path) -> None:
    """How inetd, socat EXEC: or a systemd socket unit start a server: the same socket on fd 0 and fd 1."""
    import socket

    ours, theirs = socket.socketpair()
    command, args = server_command()
    with (tmp_path / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            [command, *args], stdin=theirs.fileno(), stdout=theirs.fileno(), stderr=stderr, env=server_env
        )
    theirs.close()
    try:
        ours.settimeout(30)
        stream = ours.makefile("rwb", buffering=0)
        stream.write(_line(INITIALIZE))
        assert json.loads(stream.readline())["id"] == 1
        stream.write(_line(INITIALIZED) + _line({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        assert json.loads(stream.readline())["result"]["tools"]
        stream.write(_call(3, "echo_get_item", {"item_id": "s"}))
        assert json.loads(stream.readline())["id"] == 3
        ours.shutdown(socket.SHUT_WR)  # EOF on the server's stdin ends the session
        assert process.wait(timeout=30) == 0
    finally:
        ours.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "replies are dropped" not in (tmp_path / "stderr.log").read_text()


def test_separate_sockets_as_node_gives_them_answer_a_burst_ended_by_eof(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    """Node (Claude Desktop, the TypeScript SDK) spawns servers with one socketpair per descriptor."""
    import socket

    in_ours, in_theirs = socket.socketpair()
    out_ours, out_theirs = socket.socketpair()
    command, args = server_command()
    with (tmp_path / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            [command, *args, "--page-size", "3"],
            stdin=in_theirs.fileno(),
            stdout=out_theirs.fileno(),
            stderr=stderr,
            env=server_env,
        )
    in_theirs.close()
    out_theirs.close()
    try:
        burst = [_line(INITIALIZE), _line(INITIALIZED)]
        burst += [
            _line({"jsonrpc": "2.0", "id": 10 + i, "method": "tools/list" if i % 2 else "ping"}) for i in range(20)
        ]
        in_ours.sendall(b"".join(burst))
        in_ours.shutdown(socket.SHUT_WR)  # stdin ends right after the burst
        out_ours.settimeout(30)
        received = b""
        while chunk := out_ours.recv(1 << 16):
            received += chunk
        assert process.wait(timeout=30) == 0
    finally:
        in_ours.close()
        out_ours.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    ids = sorted(json.loads(line)["id"] for line in received.splitlines())
    assert ids == [1, *range(10, 30)]
