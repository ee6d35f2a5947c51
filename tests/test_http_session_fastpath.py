"""The Streamable HTTP session `tools/call` fast path (`_http_session_fastpath`) answers exactly as the SDK would.

As in tests/test_http_fastpath.py the app runs in-process under uvicorn on a real loopback socket. A test
opens a 2025-11-25 session with plain HTTP, then sends each request with the fast path on and off
(`SessionToolCalls.enabled`) in that same session and compares status, headers (all but `date`) and body
bytes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from starlette.routing import Route

from mcp_server._clients import ClientsFile
from mcp_server._http_session_fastpath import SessionToolCalls
from mcp_server._pipeline import Pipeline
from tests._fastpath import ANSWERED, MODERN_ENVELOPE, call, cancellation, fast_path, served_app
from tests._fastpath import both_ways as compare_both_ways
from tests._scenario import assert_no_secret, run_scenario
from tests._upstream import FakeUpstream

VERSION = "2025-11-25"
HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": VERSION,
    "X-Request-ID": "session-fastpath-test",  # the upstream echoes our headers: the same id both ways
}
SLOW_MANIFEST = """
name: lag
base_url: {base_url}
timeout: 10
operations:
  - {{name: wait, method: GET, path: /slow}}
"""


@dataclass
class InProcessServer:
    url: str
    endpoint: SessionToolCalls
    pipeline: Pipeline

    def open_session(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """`initialize` and `notifications/initialized`; the headers that name the session."""
        opening = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        }
        response = httpx2.post(f"{self.url}/mcp", json=opening, headers={**HEADERS, **(extra or {})}, timeout=30)
        assert response.status_code == 200, response.text
        headers = {**HEADERS, **(extra or {}), "Mcp-Session-Id": response.headers["mcp-session-id"]}
        done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert httpx2.post(f"{self.url}/mcp", json=done, headers=headers, timeout=30).status_code == 202
        return headers


@pytest.fixture
def served(
    tools_dir: Path, vault_path: Path, upstream_server: FakeUpstream, tmp_path: Path
) -> Iterator[InProcessServer]:
    (tools_dir / "lag.yaml").write_text(SLOW_MANIFEST.format(base_url=upstream_server.url))
    with served_app(tools_dir, vault_path, tmp_path) as (app, pipeline, url):
        endpoint = next(r.endpoint for r in app.routes if isinstance(r, Route) and r.path == "/mcp")
        assert isinstance(endpoint, SessionToolCalls)
        yield InProcessServer(url, endpoint, pipeline)


@pytest.fixture
def session(served: InProcessServer) -> dict[str, str]:
    return served.open_session()


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def message(self) -> Any:
        return sse_message(self.body)


def sse_message(body: bytes) -> Any:
    """The JSON-RPC message of a one-event SSE answer."""
    event = body.decode()
    assert event.startswith("event: message\r\ndata: ") and event.endswith("\r\n\r\n"), event
    return json.loads(event.removeprefix("event: message\r\ndata: "))


def post(url: str, body: bytes | dict[str, Any], headers: dict[str, str]) -> Answer:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx2.post(f"{url}/mcp", content=content, headers=headers, timeout=30)
    kept = tuple((k, v) for k, v in response.headers.multi_items() if k != "date")
    return Answer(response.status_code, kept, response.content)


def both_ways(served: InProcessServer, body: bytes | dict[str, Any], headers: dict[str, str]) -> tuple[Answer, int]:
    """The answer with the fast path on, checked equal to the SDK's (fast path off); and calls it answered."""
    return compare_both_ways(served.endpoint, lambda: post(served.url, body, headers))


# -- the calls it answers: the SDK's bytes ------------------------------------------------------------


@pytest.mark.parametrize("message", ANSWERED)
def test_answered_calls_are_byte_identical_to_the_sdk(
    served: InProcessServer, session: dict[str, str], message: dict[str, Any]
) -> None:
    answer, taken = both_ways(served, message, session)
    assert taken == 1
    assert answer.status == 200
    assert dict(answer.headers)["content-type"] == "text/event-stream"
    assert dict(answer.headers)["mcp-session-id"] == session["Mcp-Session-Id"]
    assert_no_secret(answer.body.decode())
    reply = answer.message()
    assert reply["id"] == message["id"]
    assert "result" in reply or reply["error"]["code"] == -32602


def test_non_ascii_is_written_as_the_sdk_writes_it(served: InProcessServer, session: dict[str, str]) -> None:
    answer, _ = both_ways(served, call("echo_get_item", {"item_id": "1", "limit": "ünï ✓"}), session)
    assert "ünï" in answer.body.decode()  # raw UTF-8, as the SDK's transport dumps it


def test_client_tokens_and_the_session_owner_hold(served: InProcessServer, vault_path: Path) -> None:
    clients = ClientsFile(vault_path.with_name("clients.json"))
    mine = {"Authorization": f"Bearer {clients.add('mine', scopes=['tools:noauth:*'])}"}
    other = {"Authorization": f"Bearer {clients.add('other', scopes=['tools:*'])}"}
    headers = served.open_session(mine)
    allowed, taken = both_ways(served, call("noauth_whoami"), headers)
    assert taken == 1 and allowed.message()["result"].get("isError") is not True
    refused, taken = both_ways(served, call("echo_get_item", {"item_id": "1"}), headers)
    assert taken == 1 and refused.message()["result"]["structuredContent"]["error_code"] == "FORBIDDEN"
    # Another client presenting this session id: the SDK's "no such session", never the fast path.
    stolen, taken = both_ways(served, call("noauth_whoami"), {**headers, **other})
    assert taken == 0 and stolen.status == 404
    anonymous = {k: v for k, v in headers.items() if k != "Authorization"}
    refused_anonymous, taken = both_ways(served, call("noauth_whoami"), anonymous)
    assert taken == 0 and refused_anonymous.status == 401


# -- what it leaves to the SDK: the SDK's own answers -------------------------------------------------

DELEGATED = [
    pytest.param({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, {}, id="tools-list"),
    pytest.param({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}}, {}, id="note"),
    pytest.param(
        {**call("echo_get_item"), "params": {"name": "echo_get_item", "arguments": {}, "_meta": {"progressToken": 7}}},
        {},
        id="progress-token",
    ),
    pytest.param(
        {**call("echo_get_item"), "params": {"name": "echo_get_item", "arguments": {}, "_meta": MODERN_ENVELOPE}},
        {},
        id="modern-envelope",
    ),
    pytest.param(call("echo_get_item", {"item_id": "1"}), {"Accept": "application/json"}, id="accept-json-only"),
    pytest.param(call("echo_get_item", {"item_id": "1"}), {"Content-Type": "APPLICATION/JSON"}, id="content-type"),
    pytest.param(call("echo_get_item", "not-an-object"), {}, id="arguments-not-object"),
    pytest.param({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {}}, {}, id="no-tool-name"),
    pytest.param({"jsonrpc": "2.0", "id": 4, "method": "tools/call"}, {}, id="no-params"),
    pytest.param(b"{not json", {}, id="parse-error"),
    pytest.param(json.dumps([call("echo_get_item", {"item_id": "1"})]).encode(), {}, id="batch"),
    pytest.param({**call("echo_get_item", {"item_id": "1"}), "jsonrpc": "1.0"}, {}, id="jsonrpc-1.0"),
    pytest.param(call("echo_get_item", {"item_id": "1"}), {"Mcp-Session-Id": "f" * 32}, id="unknown-session"),
    pytest.param(call("echo_get_item", {"item_id": "1"}), {"MCP-Protocol-Version": "1999-01-01"}, id="bad-version"),
    pytest.param(call("echo_get_item", {"item_id": "1"}), {"Host": "evil.example"}, id="foreign-host"),
]


@pytest.mark.parametrize(("message", "headers"), DELEGATED)
def test_everything_else_is_the_sdks_answer(
    served: InProcessServer, session: dict[str, str], message: bytes | dict[str, Any], headers: dict[str, str]
) -> None:
    answer, taken = both_ways(served, message, {**session, **headers})
    assert taken == 0
    assert answer.status != 500


def test_a_call_without_a_session_is_the_sdks(served: InProcessServer, session: dict[str, str]) -> None:
    without = {k: v for k, v in session.items() if k != "Mcp-Session-Id"}
    before = served.endpoint.answered
    fast = post(served.url, call("echo_get_item", {"item_id": "1"}), without)
    with fast_path(served.endpoint, False):
        sdk = post(served.url, call("echo_get_item", {"item_id": "1"}), without)
    assert served.endpoint.answered == before
    # The SDK opens (and at once discards) a session for it, a new id each time: all else is equal.
    assert (fast.status, fast.body) == (sdk.status, sdk.body) and fast.status == 400


def test_a_session_the_client_deleted_is_gone(served: InProcessServer, session: dict[str, str]) -> None:
    assert httpx2.delete(f"{served.url}/mcp", headers=session, timeout=30).status_code == 200
    answer, taken = both_ways(served, call("echo_get_item", {"item_id": "1"}), session)
    assert taken == 0 and answer.status == 404


def test_the_sdk_client_runs_the_whole_scenario_on_the_fast_path(
    served: InProcessServer, upstream: FakeUpstream
) -> None:
    async def scenario() -> None:
        async with Client(f"{served.url}/mcp", mode="legacy") as client:
            assert client.protocol_version == VERSION
            await run_scenario(client, upstream)

    before = served.endpoint.answered
    asyncio.run(scenario())
    assert served.endpoint.answered - before >= 5


# -- slow calls: pings, cancellation, disconnects, the idle timer ---------------------------------------


def test_a_long_call_gets_pings_then_the_sdks_answer(served: InProcessServer, session: dict[str, str]) -> None:
    served.endpoint.sse_window = 0.4
    message = call("lag_wait", {}, request_id=5)
    fast = httpx2.post(f"{served.url}/mcp", json=message, headers=session, timeout=30)
    with fast_path(served.endpoint, False):
        sdk = httpx2.post(f"{served.url}/mcp", json=message, headers=session, timeout=30)
    fast_events = [event for event in fast.text.split("\r\n\r\n") if event]
    sdk_events = [event for event in sdk.text.split("\r\n\r\n") if event]
    # The upstream answers after 3 s: pings every 0.4 s here (the SDK's every 15 s, so none), then one event.
    assert len(fast_events) > 2 and all(event == ": ping" for event in fast_events[:-1])
    assert fast_events[-1] == sdk_events[-1] and len(sdk_events) == 1
    assert json.loads(fast_events[-1].split("data: ", 1)[1])["result"]["structuredContent"] == {"slow": True}


async def _wait_in_flight(pipeline: Pipeline, count: int, within: float) -> None:
    deadline = time.monotonic() + within
    while pipeline.metrics.in_flight != count:
        assert time.monotonic() < deadline, f"in flight {pipeline.metrics.in_flight}, expected {count}"
        await asyncio.sleep(0.01)


def during_slow_call(
    served: InProcessServer,
    headers: dict[str, str],
    request_id: Any,
    meanwhile: Callable[[httpx2.AsyncClient], Awaitable[None]],
) -> httpx2.Response:
    """`lag_wait` (the upstream answers after 3 s) called in the session; `meanwhile` runs once it is in flight."""

    async def go() -> httpx2.Response:
        async with httpx2.AsyncClient(timeout=30) as client:
            message = call("lag_wait", {}, request_id=request_id)
            running = asyncio.create_task(client.post(f"{served.url}/mcp", json=message, headers=headers))
            await _wait_in_flight(served.pipeline, 1, 5)
            await meanwhile(client)
            return await running

    return asyncio.run(go())


@pytest.mark.parametrize("enabled", [True, False], ids=["fast-path", "sdk"])
def test_a_cancelled_call_stops_and_ends_with_the_sdks_error(
    served: InProcessServer, session: dict[str, str], enabled: bool
) -> None:
    async def cancel(client: httpx2.AsyncClient) -> None:
        assert (await client.post(f"{served.url}/mcp", json=cancellation("slow-1"), headers=session)).status_code == 202
        await _wait_in_flight(served.pipeline, 0, 1.5)  # the upstream takes 3 s

    before = served.endpoint.answered
    with fast_path(served.endpoint, enabled):
        body = during_slow_call(served, session, "slow-1", cancel).content
    assert served.endpoint.answered - before == (1 if enabled else 0)
    expected = {"jsonrpc": "2.0", "id": "slow-1", "error": {"code": -32800, "message": "Request cancelled"}}
    assert body == f"event: message\r\ndata: {json.dumps(expected, separators=(',', ':'))}\r\n\r\n".encode()


@pytest.mark.parametrize("enabled", [True, False], ids=["fast-path", "sdk"])
def test_a_client_that_disconnects_does_not_cancel_its_call(
    served: InProcessServer, session: dict[str, str], enabled: bool
) -> None:
    async def go() -> None:
        async with httpx2.AsyncClient(timeout=30) as client:
            task = asyncio.create_task(client.post(f"{served.url}/mcp", json=call("lag_wait", {}), headers=session))
            await _wait_in_flight(served.pipeline, 1, 5)
            task.cancel()  # closes the connection mid-request
            with pytest.raises(asyncio.CancelledError):
                await task
        await asyncio.sleep(1.0)
        assert served.pipeline.metrics.in_flight == 1, "a disconnect is not a cancellation (spec 2025-11-25)"
        await _wait_in_flight(served.pipeline, 0, 5)

    with fast_path(served.endpoint, enabled):
        asyncio.run(go())


def test_calls_here_keep_the_session_from_idling_out(served: InProcessServer) -> None:
    manager = served.endpoint._manager  # pyright: ignore[reportPrivateUsage]
    manager.session_idle_timeout = 0.8  # transports take it when their session opens
    headers = served.open_session()
    before_loop = served.endpoint.answered
    started = time.monotonic()
    calls = 0
    while time.monotonic() - started < 2.0:  # well past the idle timeout, with calls only on the fast path
        assert post(served.url, call("echo_get_item", {"item_id": "1"}), headers).status == 200
        calls += 1
        time.sleep(0.2)
    assert served.endpoint.answered - before_loop == calls
    time.sleep(1.6)  # and with no calls at all, the SDK still ends it
    answer, taken = both_ways(served, call("echo_get_item", {"item_id": "1"}), headers)
    assert taken == 0 and answer.status == 404


def test_the_first_session_header_counts_as_for_the_sdk(served: InProcessServer) -> None:
    first, second = served.open_session(), served.open_session()
    body = json.dumps(call("echo_get_item", {"item_id": "1"})).encode()
    raw = [*first.items(), ("Mcp-Session-Id", second["Mcp-Session-Id"])]
    answers = []
    for deleted in (False, True):
        if deleted:
            assert httpx2.delete(f"{served.url}/mcp", headers=first, timeout=30).status_code == 200
        for enabled in (True, False):
            with fast_path(served.endpoint, enabled):
                response = httpx2.post(f"{served.url}/mcp", content=body, headers=raw, timeout=30)
            answers.append((deleted, response.status_code, response.headers.get_list("mcp-session-id")))
    assert answers == [
        (False, 200, [first["Mcp-Session-Id"]]),
        (False, 200, [first["Mcp-Session-Id"]]),
        (True, 404, []),
        (True, 404, []),
    ]


@pytest.mark.parametrize("enabled", [True, False], ids=["fast-path", "sdk"])
def test_a_call_longer_than_the_idle_timeout_keeps_its_session(served: InProcessServer, enabled: bool) -> None:
    served.endpoint._manager.session_idle_timeout = 1.0  # pyright: ignore[reportPrivateUsage]
    headers = served.open_session()
    with fast_path(served.endpoint, enabled):
        slow = post(served.url, call("lag_wait", {}), headers)  # 3 s: the idle countdown waits for it
    assert slow.status == 200 and slow.message()["result"]["structuredContent"] == {"slow": True}
    assert post(served.url, call("echo_get_item", {"item_id": "1"}), headers).status == 200


@pytest.mark.parametrize("enabled", [True, False], ids=["fast-path", "sdk"])
def test_a_session_deleted_mid_call_ends_its_stream_and_the_call(
    served: InProcessServer, session: dict[str, str], enabled: bool
) -> None:
    async def delete(client: httpx2.AsyncClient) -> None:
        assert (await client.delete(f"{served.url}/mcp", headers=session)).status_code == 200
        await _wait_in_flight(served.pipeline, 0, 1.0)  # the upstream takes 3 s

    with fast_path(served.endpoint, enabled):
        response = during_slow_call(served, session, 1, delete)
    assert response.status_code == 200
    assert response.content == b""  # no event: the stream just ends, as the SDK's transport ends it


@pytest.mark.parametrize("enabled", [True, False], ids=["fast-path", "sdk"])
def test_only_the_sessions_own_client_can_cancel_its_calls(
    served: InProcessServer, vault_path: Path, enabled: bool
) -> None:
    clients = ClientsFile(vault_path.with_name("clients.json"))
    mine = {"Authorization": f"Bearer {clients.add('mine', scopes=['tools:*'])}"}
    other = {"Authorization": f"Bearer {clients.add('other', scopes=['tools:*'])}"}
    headers = served.open_session(mine)

    async def stranger_cancels(client: httpx2.AsyncClient) -> None:
        refused = await client.post(f"{served.url}/mcp", json=cancellation(7), headers={**headers, **other})
        assert refused.status_code == 404

    with fast_path(served.endpoint, enabled):
        response = during_slow_call(served, headers, 7, stranger_cancels)
    assert sse_message(response.content)["result"]["structuredContent"] == {"slow": True}


@pytest.mark.parametrize("enabled", [True, False], ids=["fast-path", "sdk"])
def test_a_cancellation_names_the_call_as_the_sdk_correlates_ids(
    served: InProcessServer, session: dict[str, str], enabled: bool
) -> None:
    async def cancel(client: httpx2.AsyncClient) -> None:
        assert (await client.post(f"{served.url}/mcp", json=cancellation("07"), headers=session)).status_code == 202

    with fast_path(served.endpoint, enabled):
        response = during_slow_call(served, session, 7, cancel)
    assert sse_message(response.content) == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {"code": -32800, "message": "Request cancelled"},
    }
