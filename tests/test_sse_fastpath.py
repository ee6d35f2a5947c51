"""The legacy HTTP+SSE `tools/call` fast path (`_sse_fastpath`) answers exactly as the SDK would.

As in tests/test_http_session_fastpath.py the app runs in-process under uvicorn on a real loopback socket. A test
opens a `GET /sse` stream (read in a thread, raw bytes), completes the handshake with plain HTTP POSTs, then sends
each message with the fast path on and off (`SseToolCalls.enabled`) in that same session and compares the POST's
answer (status, headers but `date`, body) and the bytes of the events it caused on the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import itertools
import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from starlette.routing import Mount
from starlette.types import Message

from mcp_server._clients import ClientsFile
from mcp_server._pipeline import Pipeline
from mcp_server._sse_fastpath import SseSession, SseSessions, SseToolCalls, _send  # pyright: ignore[reportPrivateUsage]
from tests._fastpath import ANSWERED, MODERN_ENVELOPE, call, cancellation, fast_path, served_app
from tests._scenario import assert_no_secret, run_scenario
from tests._upstream import FakeUpstream

SLOW_MANIFEST = """
name: lag
base_url: {base_url}
timeout: 10
operations:
  - {{name: wait, method: GET, path: /slow}}
  - {{name: lone_surrogate, method: GET, path: /lone-surrogate}}
  - name: tagged
    method: GET
    path: /slow-echo
    parameters: [{{name: tag, in: query, required: true, schema: {{type: string}}}}]
"""
EVENT_WAIT = 15.0
CLIENT_INFO = {"name": "t", "version": "1"}
OPENING = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": CLIENT_INFO},
}
_markers = itertools.count()


@dataclass(frozen=True)
class Answer:
    """What a POST to `/messages/` got back, and the events it caused on the stream."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    events: tuple[bytes, ...]

    def message(self) -> Any:
        (event,) = self.events
        return json.loads(event.removeprefix(b"event: message\r\ndata: "))


class SseStream:
    """One `GET /sse` session: the stream read in a thread (raw events, pings dropped), posts to its endpoint."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        # The same X-Request-ID on every request, so the fast path and the SDK answer with the same headers.
        self.headers = {"Content-Type": "application/json", "X-Request-ID": "sse-fastpath-test", **(headers or {})}
        self._events: queue.Queue[bytes | None] = queue.Queue()
        # http.client rather than httpx2: `close()` must be able to end a read blocked in another thread.
        self._connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
        self._connection.request("GET", "/sse", headers=self.headers)
        response = self._connection.getresponse()
        assert response.status == 200, response.status
        self._thread = threading.Thread(target=self._read, args=(response,), daemon=True)
        self._thread.start()
        endpoint = self.next_event()
        assert endpoint.startswith(b"event: endpoint\r\ndata: "), endpoint
        self.endpoint = endpoint.removeprefix(b"event: endpoint\r\ndata: ").decode()
        self.session_id = self.endpoint.split("session_id=", 1)[1]

    def _read(self, response: http.client.HTTPResponse) -> None:
        pending = b""
        try:
            while chunk := response.read1():
                pending += chunk
                *events, pending = pending.split(b"\r\n\r\n")
                for event in events:
                    if not event.startswith(b":"):
                        self._events.put(event)
        except (OSError, ValueError, http.client.HTTPException):
            pass  # closed by `close()`
        finally:
            self._events.put(None)

    def next_event(self, timeout: float = EVENT_WAIT) -> bytes:
        event = self._events.get(timeout=timeout)
        assert event is not None, "the stream ended"
        return event

    def post_raw(self, body: bytes, query: str | None = None, headers: dict[str, str] | None = None) -> httpx2.Response:
        path = self.endpoint if query is None else self.endpoint.split("?", 1)[0] + query
        return httpx2.post(f"{self.url}{path}", content=body, headers={**self.headers, **(headers or {})}, timeout=30)

    def request(self, message: dict[str, Any]) -> Any:
        """A request through the POST and its answer from the stream."""
        assert self.post_raw(json.dumps(message).encode()).status_code == 202
        return json.loads(self.next_event().removeprefix(b"event: message\r\ndata: "))

    def exchange(
        self, message: bytes | dict[str, Any], query: str | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        """POST `message`; then the events up to the answer of a `ping` sent after it (and after its own answer,
        when it is a request the session may answer)."""
        body = message if isinstance(message, bytes) else json.dumps(message).encode()
        response = self.post_raw(body, query, headers)
        events: list[bytes] = []
        waiting = {json.dumps(message["id"])} if isinstance(message, dict) and "id" in message else set()
        if response.status_code != 202:
            waiting.clear()
        marker = f"marker-{next(_markers)}"
        sent_marker = False
        while waiting or not sent_marker:
            if not waiting and not sent_marker:
                ping = {"jsonrpc": "2.0", "id": marker, "method": "ping"}
                assert self.post_raw(json.dumps(ping).encode()).status_code == 202
                waiting.add(json.dumps(marker))
                sent_marker = True
            event = self.next_event()
            answered = json.loads(event.removeprefix(b"event: message\r\ndata: ")).get("id", None)
            waiting.discard(json.dumps(answered))
            if answered != marker:
                events.append(event)
        kept = tuple((k, v) for k, v in response.headers.multi_items() if k != "date")
        return Answer(response.status_code, kept, response.content, tuple(events))

    def handshake(self) -> None:
        """`initialize`, `notifications/initialized` and a `tools/list`: the session's connection is known then."""
        assert "result" in self.request(OPENING)
        done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert self.post_raw(json.dumps(done).encode()).status_code == 202
        assert "tools" in self.request({"jsonrpc": "2.0", "id": "list", "method": "tools/list"})["result"]

    def close(self) -> None:
        """End the stream as a client that goes away does: the socket shut down under the reading thread."""
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
        self._connection.close()


@dataclass
class InProcessServer:
    url: str
    endpoint: SseToolCalls
    pipeline: Pipeline

    def stream(self, headers: dict[str, str] | None = None) -> SseStream:
        stream = SseStream(self.url, headers)
        stream.handshake()
        return stream


@pytest.fixture
def served(
    tools_dir: Path, vault_path: Path, upstream_server: FakeUpstream, tmp_path: Path
) -> Iterator[InProcessServer]:
    (tools_dir / "lag.yaml").write_text(SLOW_MANIFEST.format(base_url=upstream_server.url))
    with served_app(tools_dir, vault_path, tmp_path) as (app, pipeline, url):
        endpoint = next(r.app for r in app.routes if isinstance(r, Mount) and r.path == "/messages")
        assert isinstance(endpoint, SseToolCalls)
        yield InProcessServer(url, endpoint, pipeline)


@pytest.fixture
def stream(served: InProcessServer) -> Iterator[SseStream]:
    opened = served.stream()
    yield opened
    opened.close()


def both_ways(
    served: InProcessServer,
    stream: SseStream,
    message: bytes | dict[str, Any],
    query: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[Answer, int]:
    """The answer with the fast path on, checked equal to the SDK's (fast path off); and the calls it answered."""
    before = served.endpoint.answered
    fast = stream.exchange(message, query, headers)
    taken = served.endpoint.answered - before
    with fast_path(served.endpoint, False):
        sdk = stream.exchange(message, query, headers)
    assert served.endpoint.answered - before == taken, "the SDK run went through the fast path"
    assert fast == sdk, f"fast path {fast!r}\n      SDK {sdk!r}"
    return fast, taken


# -- the calls it answers: the SDK's bytes ------------------------------------------------------------


@pytest.mark.parametrize("message", ANSWERED)
def test_answered_calls_are_byte_identical_to_the_sdk(
    served: InProcessServer, stream: SseStream, message: dict[str, Any]
) -> None:
    answer, taken = both_ways(served, stream, message)
    assert taken == 1
    assert (answer.status, answer.body) == (202, b"Accepted")
    assert_no_secret(b"".join(answer.events).decode())
    reply = answer.message()
    assert reply["id"] == message["id"]
    assert "result" in reply or reply["error"]["code"] == -32602


def test_an_upstream_lone_surrogate_is_answered_as_its_escape(served: InProcessServer, stream: SseStream) -> None:
    answer, taken = both_ways(served, stream, call("lag_lone_surrogate", {}))
    assert taken == 1
    assert answer.message()["result"]["structuredContent"] == {"lone": "\\ud800 alone", "pair": "\U0001f600"}


def test_a_session_id_spelled_otherwise_names_the_same_session(served: InProcessServer, stream: SseStream) -> None:
    spelled = str(UUID(hex=stream.session_id)).upper()  # the SDK's UUID(hex=...) reads dashes and capitals too
    answer, taken = both_ways(served, stream, call("echo_get_item", {"item_id": "1"}), query=f"?session_id={spelled}")
    assert taken == 1 and answer.message()["result"]["structuredContent"]


def test_client_tokens_and_the_session_owner_hold(served: InProcessServer, vault_path: Path) -> None:
    clients = ClientsFile(vault_path.with_name("clients.json"))
    mine = {"Authorization": f"Bearer {clients.add('mine', scopes=['tools:noauth:*'])}"}
    other = {"Authorization": f"Bearer {clients.add('other', scopes=['tools:*'])}"}
    stream = served.stream(mine)
    try:
        allowed, taken = both_ways(served, stream, call("noauth_whoami"))
        assert taken == 1 and allowed.message()["result"].get("isError") is not True
        refused, taken = both_ways(served, stream, call("echo_get_item", {"item_id": "1"}))
        assert taken == 1 and refused.message()["result"]["structuredContent"]["error_code"] == "FORBIDDEN"
        # Another client presenting this session id: the SDK's "no such session", never the fast path.
        stolen, taken = both_ways(served, stream, call("noauth_whoami"), headers=other)
        assert taken == 0 and stolen.status == 404 and stolen.events == ()
    finally:
        stream.close()


# -- what it leaves to the SDK: the SDK's own answers -------------------------------------------------

DELEGATED = [
    pytest.param({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, None, {}, id="tools-list"),
    pytest.param(cancellation(99), None, {}, id="note"),
    pytest.param(
        {**call("echo_get_item"), "params": {"name": "echo_get_item", "arguments": {}, "_meta": {"progressToken": 7}}},
        None,
        {},
        id="progress-token",
    ),
    pytest.param(
        {**call("echo_get_item"), "params": {"name": "echo_get_item", "arguments": {}, "_meta": MODERN_ENVELOPE}},
        None,
        {},
        id="modern-envelope",
    ),
    pytest.param(call("echo_get_item", "not-an-object"), None, {}, id="arguments-not-object"),
    pytest.param({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {}}, None, {}, id="no-tool-name"),
    pytest.param({"jsonrpc": "2.0", "id": 4, "method": "tools/call"}, None, {}, id="no-params"),
    pytest.param(b"{not json", None, {}, id="parse-error"),
    pytest.param(json.dumps([call("echo_get_item", {"item_id": "1"})]).encode(), None, {}, id="batch"),
    pytest.param({**call("echo_get_item", {"item_id": "1"}), "jsonrpc": "1.0"}, None, {}, id="jsonrpc-1.0"),
    pytest.param(call("echo_get_item", {"item_id": "1"}), "?session_id=" + "f" * 32, {}, id="unknown-session"),
    pytest.param(call("echo_get_item", {"item_id": "1"}), "?session_id=xyz", {}, id="malformed-session"),
    pytest.param(call("echo_get_item", {"item_id": "1"}), "", {}, id="no-session"),
    pytest.param(call("echo_get_item", {"item_id": "1"}), None, {"Content-Type": "text/plain"}, id="content-type"),
    pytest.param(call("echo_get_item", {"item_id": "1"}), None, {"Host": "evil.example"}, id="foreign-host"),
]


@pytest.mark.parametrize(("message", "query", "headers"), DELEGATED)
def test_everything_else_is_the_sdks_answer(
    served: InProcessServer,
    stream: SseStream,
    message: bytes | dict[str, Any],
    query: str | None,
    headers: dict[str, str],
) -> None:
    answer, taken = both_ways(served, stream, message, query, headers)
    assert taken == 0
    assert answer.status != 500


def test_a_call_before_initialize_is_the_sdks_and_one_after_it_is_taken(served: InProcessServer) -> None:
    stream = SseStream(served.url)
    try:
        early, taken = both_ways(served, stream, call("echo_get_item", {"item_id": "1"}, request_id="early"))
        assert taken == 0 and "error" in early.message()
        assert "result" in stream.request(OPENING)
        # Before `notifications/initialized`: the SDK runs a call once `initialize` is answered, and so does this.
        answered, taken = both_ways(served, stream, call("echo_get_item", {"item_id": "1"}, request_id="next"))
        assert taken == 1 and "result" in answered.message()
    finally:
        stream.close()


def test_the_sdk_client_runs_the_whole_scenario_on_the_fast_path(
    served: InProcessServer, upstream: FakeUpstream
) -> None:
    async def scenario() -> None:
        async with Client(sse_client(f"{served.url}/sse"), mode="legacy") as client:
            await run_scenario(client, upstream)

    before = served.endpoint.answered
    asyncio.run(scenario())
    assert served.endpoint.answered - before >= 5


def test_concurrent_calls_and_the_sdks_own_events_share_the_stream_intact(served: InProcessServer) -> None:
    """Answers written here and events the SDK's transport writes (listings) go out on one response at once."""

    async def scenario() -> None:
        async with Client(sse_client(f"{served.url}/sse"), mode="legacy") as client:
            await client.list_tools()
            calls = asyncio.gather(*(client.call_tool("echo_get_item", {"item_id": f"item-{i}"}) for i in range(40)))
            listings = asyncio.gather(*(client.list_tools() for _ in range(10)))
            results, pages = await asyncio.gather(calls, listings)
        for i, result in enumerate(results):
            assert not result.is_error and (result.structured_content or {})["path"] == f"/echo/items/item-{i}"
        assert all(page.tools == pages[0].tools for page in pages)

    before = served.endpoint.answered
    asyncio.run(scenario())
    assert served.endpoint.answered - before == 40


def test_the_session_learns_its_id_from_the_endpoint_event_and_writes_nothing_after_the_end() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def scenario() -> None:
        sessions = SseSessions()
        session = SseSession(owner=None)
        watched = sessions.watch(session, send)
        await watched({"type": "http.response.start", "status": 200, "headers": []})
        session_id = uuid4()
        endpoint = f"event: endpoint\r\ndata: /messages/?session_id={session_id.hex}\r\n\r\n".encode()
        await watched({"type": "http.response.body", "body": endpoint, "more_body": True})
        assert sessions.get(session_id) is session and session.id == session_id
        answer = types.JSONRPCResponse(jsonrpc="2.0", id=1, result={})
        await _send(session, answer)
        assert sent[-1]["body"] == b'event: message\r\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\r\n\r\n'
        await watched({"type": "http.response.body", "body": b"", "more_body": False})  # the transport ends it
        before = len(sent)
        await _send(session, answer)  # an answer that comes too late is dropped, not sent after the end
        assert len(sent) == before and session.closed
        sessions.forget(session)
        assert sessions.get(session_id) is None

    asyncio.run(scenario())


# -- slow calls: cancellation, the end of the session --------------------------------------------------


def _wait_in_flight(pipeline: Pipeline, count: int, within: float) -> None:
    deadline = time.monotonic() + within
    while pipeline.metrics.in_flight != count:
        assert time.monotonic() < deadline, f"in flight {pipeline.metrics.in_flight}, expected {count}"
        time.sleep(0.01)


@pytest.mark.parametrize("enabled", [True, False], ids=["fast-path", "sdk"])
def test_a_cancelled_call_stops_and_is_never_answered(
    served: InProcessServer, stream: SseStream, enabled: bool
) -> None:
    before = served.endpoint.answered
    with fast_path(served.endpoint, enabled):
        assert stream.post_raw(json.dumps(call("lag_wait", {}, request_id=7)).encode()).status_code == 202
        _wait_in_flight(served.pipeline, 1, 5)
        cancelled = stream.exchange(cancellation("07"))  # ids correlate as the SDK's dispatcher correlates them
        _wait_in_flight(served.pipeline, 0, 1.5)  # the upstream takes 3 s
    assert served.endpoint.answered - before == (1 if enabled else 0)
    assert cancelled.events == ()
    assert stream.exchange(call("echo_get_item", {"item_id": "1"}, request_id=8)).message()["id"] == 8


@pytest.mark.parametrize("enabled", [True, False], ids=["fast-path", "sdk"])
@pytest.mark.parametrize("order", ["sdk-first", "fast-path-first"])
def test_a_cancel_names_the_newest_request_with_its_id(
    served: InProcessServer, stream: SseStream, order: str, enabled: bool
) -> None:
    """Two calls in flight with one id (a client error): as with the SDK's dispatcher alone, a cancel stops the
    newer one and the older one is still answered."""
    taken_here = call("lag_tagged", {"tag": "fast-path"}, request_id=7)
    sdk_arguments = {"tag": "sdk"}
    handed_on = call("lag_tagged", request_id=7)
    handed_on["params"] |= {"arguments": sdk_arguments, "_meta": {"progressToken": "p"}}
    first, second = (handed_on, taken_here) if order == "sdk-first" else (taken_here, handed_on)
    before = served.endpoint.answered
    with fast_path(served.endpoint, enabled):
        assert stream.post_raw(json.dumps(first).encode()).status_code == 202
        _wait_in_flight(served.pipeline, 1, 5)
        assert stream.post_raw(json.dumps(second).encode()).status_code == 202
        _wait_in_flight(served.pipeline, 2, 5)
        assert stream.post_raw(json.dumps(cancellation(7)).encode()).status_code == 202
        _wait_in_flight(served.pipeline, 1, 1.5)  # the newer call stopped; the upstream takes 3 s
    assert served.endpoint.answered - before == (1 if enabled else 0)
    answered = json.loads(stream.next_event().removeprefix(b"event: message\r\ndata: "))
    older = "sdk" if order == "sdk-first" else "fast-path"
    assert answered["id"] == 7 and answered["result"]["structuredContent"] == {"slow": True, "query": f"tag={older}"}


@pytest.mark.parametrize("enabled", [True, False], ids=["fast-path", "sdk"])
def test_a_session_that_ends_cancels_its_calls(served: InProcessServer, enabled: bool) -> None:
    stream = served.stream()
    with fast_path(served.endpoint, enabled):
        assert stream.post_raw(json.dumps(call("lag_wait", {})).encode()).status_code == 202
        _wait_in_flight(served.pipeline, 1, 5)
        stream.close()
        _wait_in_flight(served.pipeline, 0, 1.5)  # the upstream takes 3 s
    gone = httpx2.post(f"{served.url}{stream.endpoint}", json=call("echo_get_item", {"item_id": "1"}), timeout=30)
    assert gone.status_code == 404


def test_a_session_whose_client_went_away_takes_no_more_calls(served: InProcessServer, upstream: FakeUpstream) -> None:
    stream = served.stream()
    stream.close()
    deadline = time.monotonic() + 5
    while served.endpoint.sessions.get(UUID(hex=stream.session_id)) is not None:
        assert time.monotonic() < deadline, "the session is still taking calls"
        time.sleep(0.01)
    before = len(upstream.requests)
    late = httpx2.post(f"{served.url}{stream.endpoint}", json=call("echo_get_item", {"item_id": "1"}), timeout=30)
    assert late.status_code in (202, 404)  # the SDK's transport may not have noticed yet; it never calls upstream
    time.sleep(0.3)
    assert len(upstream.requests) == before
