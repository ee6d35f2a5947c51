"""The recorder on its own: what it writes, drops, and refuses to write, from real SDK message objects."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp.shared.message import SessionMessage
from mcp_types import ErrorData, JSONRPCError, JSONRPCResponse

from mcp_server._startup_recorder import StartupRecorder
from mcp_server._startup_snapshot import Inputs, read_snapshot
from mcp_server._stdio_pipes import wire_line
from mcp_server._warm_start import Handover

INIT = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
INIT_RESULT = {"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "s", "version": "1"}}


def line_of(message: JSONRPCResponse | JSONRPCError) -> bytes:
    return wire_line(SessionMessage(message), lambda _: None)


async def feed(recorder: StartupRecorder, *messages: dict[str, Any]) -> None:
    async def source() -> AsyncIterator[str]:
        for message in messages:
            yield json.dumps(message) + "\n"

    async for _ in recorder.lines(source()):
        pass


def recorder_for(
    tmp_path: Path, *, still_current: bool = True, expected: dict[str, bytes] | None = None
) -> StartupRecorder:
    inputs = Inputs((str(tmp_path),), (), {})
    return StartupRecorder(
        tmp_path / "s.snapshot",
        inputs,
        Handover(b"", expected=expected or {}),
        still_current=lambda: still_current,
    )


def session(recorder: StartupRecorder, first_id: int | str = 1) -> None:
    asyncio.run(
        feed(
            recorder,
            {"jsonrpc": "2.0", "id": first_id, "method": "initialize", "params": INIT},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"cursor": "p2"}},
        )
    )


def test_a_complete_walk_is_written_from_the_lines_sent(tmp_path: Path) -> None:
    recorder = recorder_for(tmp_path)
    session(recorder)
    for message in (
        JSONRPCResponse(jsonrpc="2.0", id=1, result=INIT_RESULT),
        JSONRPCResponse(jsonrpc="2.0", id=2, result={"tools": [{"name": "a"}], "nextCursor": "p2"}),
    ):
        assert recorder.outgoing(message, line_of(message)) == line_of(message)
    assert not (tmp_path / "s.snapshot").exists()  # the walk is not complete yet
    last = JSONRPCResponse(jsonrpc="2.0", id=3, result={"tools": [{"name": "b"}]})
    recorder.outgoing(last, line_of(last))
    snapshot = read_snapshot(tmp_path / "s.snapshot")
    assert snapshot is not None
    assert json.loads(snapshot.handshake.result) == INIT_RESULT
    assert snapshot.pages == {None: b'{"tools":[{"name":"a"}],"nextCursor":"p2"}', "p2": b'{"tools":[{"name":"b"}]}'}
    assert not recorder.active


def test_nothing_is_written_after_a_reload(tmp_path: Path) -> None:
    recorder = recorder_for(tmp_path, still_current=False)
    session(recorder)
    for message in (
        JSONRPCResponse(jsonrpc="2.0", id=1, result=INIT_RESULT),
        JSONRPCResponse(jsonrpc="2.0", id=2, result={"tools": []}),
    ):
        recorder.outgoing(message, line_of(message))
    assert not (tmp_path / "s.snapshot").exists()


@pytest.mark.parametrize("answer", ["refused", "differs", "same"])
def test_answers_to_private_requests_are_never_sent(tmp_path: Path, answer: str) -> None:
    sent = json.dumps(INIT_RESULT, separators=(",", ":")).encode()
    recorder = recorder_for(tmp_path, expected={"private-1": sent})
    session(recorder, first_id="private-1")
    if answer == "refused":
        message: JSONRPCResponse | JSONRPCError = JSONRPCError(
            jsonrpc="2.0", id="private-1", error=ErrorData(code=-32602, message="Invalid request parameters")
        )
    else:
        result = INIT_RESULT if answer == "same" else {**INIT_RESULT, "instructions": "new"}
        message = JSONRPCResponse(jsonrpc="2.0", id="private-1", result=result)
    assert recorder.outgoing(message, line_of(message)) == b""
    # A client's own id is never swallowed, even one that looks the same.
    own = JSONRPCResponse(jsonrpc="2.0", id=2, result={"tools": []})
    assert recorder.outgoing(own, line_of(own)) == line_of(own)


def test_a_refused_or_different_page_tells_the_client_to_list_again_once(tmp_path: Path) -> None:
    recorder = recorder_for(tmp_path, expected={"p-1": b'{"tools":[]}', "p-2": b'{"tools":[]}'})
    asyncio.run(
        feed(
            recorder,
            {"jsonrpc": "2.0", "id": "p-1", "method": "tools/list"},
            {"jsonrpc": "2.0", "id": "p-2", "method": "tools/list", "params": {"cursor": "c"}},
        )
    )
    refused = JSONRPCError(jsonrpc="2.0", id="p-1", error=ErrorData(code=-32602, message="Invalid cursor"))
    notice = recorder.outgoing(refused, line_of(refused))
    assert json.loads(notice) == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
    differs = JSONRPCResponse(jsonrpc="2.0", id="p-2", result={"tools": [{"name": "new"}]})
    assert recorder.outgoing(differs, line_of(differs)) == b""  # once is enough
