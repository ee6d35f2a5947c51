"""The Streamable HTTP 2026-07-28 `tools/call` fast path (`_http_fastpath`) answers exactly as the SDK would.

The app runs in-process under uvicorn on a real loopback socket, so a test can switch the fast path off
(`ModernToolCalls.enabled`) and back, read how many calls it answered, and shorten the SSE window; every
comparison sends the same bytes both ways and compares status, headers and body bytes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.server import _streamable_http_modern as sdk_modern  # pyright: ignore[reportPrivateUsage]
from starlette.routing import Route

from mcp_server._app import build_application
from mcp_server._clients import ClientsFile
from mcp_server._config import ENV_HTTP_FAST_PATH, Settings
from mcp_server._http import build_http_app
from mcp_server._http_fastpath import SSE_WINDOW_SECONDS, ModernToolCalls
from mcp_server._http_session_fastpath import SessionToolCalls
from mcp_server._pipeline import Pipeline
from tests._fastpath import answered_calls, fast_path, served_app
from tests._fastpath import both_ways as compare_both_ways
from tests._scenario import assert_no_secret, run_scenario
from tests._upstream import FakeUpstream

VERSION = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": VERSION,
    "io.modelcontextprotocol/clientInfo": {"name": "fastpath-test", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": VERSION,
    "X-Request-ID": "fastpath-test-request",  # the upstream echoes our headers: the same id both ways
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
    endpoint: ModernToolCalls
    pipeline: Pipeline


@pytest.fixture
def served(
    tools_dir: Path, vault_path: Path, upstream_server: FakeUpstream, tmp_path: Path
) -> Iterator[InProcessServer]:
    (tools_dir / "lag.yaml").write_text(SLOW_MANIFEST.format(base_url=upstream_server.url))
    with served_app(tools_dir, vault_path, tmp_path) as (app, pipeline, url):
        sessions = next(r.endpoint for r in app.routes if isinstance(r, Route) and r.path == "/mcp")
        assert isinstance(sessions, SessionToolCalls)
        endpoint = sessions.app
        assert isinstance(endpoint, ModernToolCalls)
        yield InProcessServer(url, endpoint, pipeline)


def call(name: str, arguments: Any = None, request_id: Any = 1, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "_meta": META}
    if arguments is not None:
        params["arguments"] = arguments
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params, **extra}


def tool_headers(name: str) -> dict[str, str]:
    return {**HEADERS, "Mcp-Method": "tools/call", "Mcp-Name": name}


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str | None
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def post(url: str, body: bytes | dict[str, Any], headers: dict[str, str]) -> Answer:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx2.post(f"{url}/mcp", content=content, headers=headers, timeout=30)
    return Answer(response.status_code, response.headers.get("content-type"), response.content)


def both_ways(served: InProcessServer, body: bytes | dict[str, Any], headers: dict[str, str]) -> tuple[Answer, int]:
    """The answer with the fast path on, checked equal to the SDK's (fast path off); and calls it answered."""
    return compare_both_ways(served.endpoint, lambda: post(served.url, body, headers))


# -- the calls it answers: the SDK's bytes ------------------------------------------------------------

ANSWERED = answered_calls(call)


def test_a_result_with_non_ascii_text_is_escaped_as_the_sdk_escapes_it(served: InProcessServer) -> None:
    answer, _ = both_ways(
        served, call("echo_get_item", {"item_id": "1", "limit": "ünï ✓"}), tool_headers("echo_get_item")
    )
    assert "ünï" in json.dumps(answer.json(), ensure_ascii=False)
    assert answer.body.isascii()


@pytest.mark.parametrize("message", ANSWERED)
def test_answered_calls_are_byte_identical_to_the_sdk(served: InProcessServer, message: dict[str, Any]) -> None:
    answer, taken = both_ways(served, message, tool_headers(message["params"]["name"]))
    assert taken == 1
    assert_no_secret(answer.body.decode())
    reply = answer.json()
    assert reply["id"] == message["id"]
    if "result" in reply:
        assert reply["result"]["resultType"] == "complete"
        assert reply["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcp-connectors"


def test_an_unknown_tool_is_the_sdks_invalid_params_error(served: InProcessServer) -> None:
    answer, _ = both_ways(served, call("no_such_tool"), tool_headers("no_such_tool"))
    assert answer.status == 400
    assert answer.json()["error"]["code"] == -32602


def test_param_headers_the_schema_does_not_declare_are_ignored_as_the_sdk_ignores_them(
    served: InProcessServer,
) -> None:
    headers = {**tool_headers("echo_get_item"), "Mcp-Param-Item": "1", "Mcp-Param-Other": "x"}
    _, taken = both_ways(served, call("echo_get_item", {"item_id": "1"}), headers)
    assert taken == 1


def test_client_tokens_and_scopes_hold_on_the_fast_path(served: InProcessServer, vault_path: Path) -> None:
    token = ClientsFile(vault_path.with_name("clients.json")).add("narrow", scopes=["tools:noauth:*"])
    authorized = {"Authorization": f"Bearer {token}"}
    allowed, taken = both_ways(served, call("noauth_whoami"), {**tool_headers("noauth_whoami"), **authorized})
    assert taken == 1 and allowed.json()["result"].get("isError") is not True
    refused, taken = both_ways(
        served, call("echo_get_item", {"item_id": "1"}), {**tool_headers("echo_get_item"), **authorized}
    )
    assert taken == 1
    assert refused.json()["result"]["structuredContent"]["error_code"] == "FORBIDDEN"
    anonymous, taken = both_ways(served, call("noauth_whoami"), tool_headers("noauth_whoami"))
    assert taken == 0 and anonymous.status == 401


# -- what it leaves to the SDK: the SDK's own answers -------------------------------------------------

DELEGATED = [
    pytest.param(call("echo_get_item", {"item_id": "1"}), {**HEADERS, "Mcp-Method": "tools/call"}, id="no-mcp-name"),
    pytest.param(call("echo_get_item", {"item_id": "1"}), tool_headers("echo_text"), id="mcp-name-mismatch"),
    pytest.param(call("echo_get_item", {"item_id": "1"}), {**HEADERS, "Mcp-Name": "echo_get_item"}, id="no-mcp-method"),
    pytest.param(
        {**call("echo_get_item", {"item_id": "1"}), "params": {"name": "echo_get_item", "arguments": {"item_id": "1"}}},
        tool_headers("echo_get_item"),
        id="no-meta-envelope",
    ),
    pytest.param(
        call("echo_get_item", {"item_id": "1"}),
        {**tool_headers("echo_get_item"), "Accept": "application/json"},
        id="accept-json-only",
    ),
    pytest.param(call("echo_get_item", "not-an-object"), tool_headers("echo_get_item"), id="arguments-not-object"),
    pytest.param(
        {
            **call("echo_get_item", {"item_id": "1"}),
            "params": {"name": "echo_get_item", "arguments": {"item_id": "1"}, "_meta": {**META, "progressToken": 7}},
        },
        tool_headers("echo_get_item"),
        id="progress-token",
    ),
    pytest.param(
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": META}},
        {**HEADERS, "Mcp-Method": "tools/list"},
        id="tools-list",
    ),
    pytest.param(
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}},
        {**HEADERS, "Mcp-Method": "notifications/cancelled"},
        id="notification",
    ),
    pytest.param(b"{not json", tool_headers("echo_get_item"), id="parse-error"),
    pytest.param(
        json.dumps([call("echo_get_item", {"item_id": "1"})]).encode(), tool_headers("echo_get_item"), id="batch"
    ),
    pytest.param(
        {**call("echo_get_item", {"item_id": "1"}), "jsonrpc": "1.0"}, tool_headers("echo_get_item"), id="jsonrpc-1.0"
    ),
    pytest.param(
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"_meta": META}},
        {**HEADERS, "Mcp-Method": "tools/call"},
        id="no-tool-name",
    ),
]


@pytest.mark.parametrize(("message", "headers"), DELEGATED)
def test_everything_else_is_the_sdks_answer(
    served: InProcessServer, message: bytes | dict[str, Any], headers: dict[str, str]
) -> None:
    answer, taken = both_ways(served, message, headers)
    assert taken == 0
    assert answer.status != 500


def test_duplicated_routing_headers_are_left_to_the_sdk(served: InProcessServer) -> None:
    body = json.dumps(call("echo_get_item", {"item_id": "1"})).encode()
    raw_headers = [*tool_headers("echo_get_item").items(), ("Mcp-Name", "echo_get_item")]
    answers = []
    for enabled in (True, False):
        with fast_path(served.endpoint, enabled):
            before = served.endpoint.answered
            response = httpx2.post(f"{served.url}/mcp", content=body, headers=raw_headers, timeout=30)
        assert served.endpoint.answered == before
        answers.append((response.status_code, response.content))
    assert answers[0] == answers[1]
    assert answers[0][0] == 400


def test_a_handshake_era_session_never_takes_the_fast_path(served: InProcessServer, upstream: FakeUpstream) -> None:
    async def scenario() -> None:
        async with Client(f"{served.url}/mcp", mode="legacy") as client:
            assert client.protocol_version == "2025-11-25"
            await run_scenario(client, upstream)

    before = served.endpoint.answered
    asyncio.run(scenario())
    assert served.endpoint.answered == before


def test_the_sdk_client_runs_the_whole_scenario_on_the_fast_path(
    served: InProcessServer, upstream: FakeUpstream
) -> None:
    async def scenario() -> None:
        async with Client(f"{served.url}/mcp") as client:
            assert client.protocol_version == VERSION
            await run_scenario(client, upstream)

    before = served.endpoint.answered
    asyncio.run(scenario())
    assert served.endpoint.answered - before >= 5


# -- slow calls: the SSE window, pings, disconnects ---------------------------------------------------


def test_the_window_is_the_sdks() -> None:
    assert SSE_WINDOW_SECONDS == sdk_modern._SSE_PING_INTERVAL  # pyright: ignore[reportPrivateUsage]


def sse_answer(served: InProcessServer, message: dict[str, Any], *, enabled: bool) -> tuple[int, str, list[str]]:
    with fast_path(served.endpoint, enabled):
        response = httpx2.post(f"{served.url}/mcp", json=message, headers=tool_headers("lag_wait"), timeout=30)
    events = [chunk for chunk in response.text.split("\r\n\r\n") if chunk]
    return response.status_code, response.headers.get("content-type", ""), events


def test_a_call_past_the_window_becomes_the_sdks_sse_stream(
    served: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sdk_modern, "_SSE_PING_INTERVAL", 0.4)
    served.endpoint.sse_window = 0.4
    message = call("lag_wait", {})
    before = served.endpoint.answered
    fast = sse_answer(served, message, enabled=True)
    assert served.endpoint.answered == before + 1
    sdk = sse_answer(served, message, enabled=False)
    assert fast[:2] == sdk[:2] == (200, "text/event-stream")
    # The upstream answers after 3 s: several pings (how many depends on timing), then the result event.
    for _, _, events in (fast, sdk):
        assert events[0] == ": ping"
        assert all(event == ": ping" for event in events[:-1])
        assert events[-1].startswith("event: message\r\ndata: ")
    assert fast[2][-1] == sdk[2][-1]
    result = json.loads(fast[2][-1].split("data: ", 1)[1])
    assert result["result"]["structuredContent"] == {"slow": True}


def test_a_call_within_the_window_is_plain_json(served: InProcessServer) -> None:
    served.endpoint.sse_window = 30.0
    status, content_type, _ = sse_answer(served, call("lag_wait", {}), enabled=True)
    assert (status, content_type) == (200, "application/json")


def test_a_client_that_disconnects_cancels_its_call(served: InProcessServer) -> None:
    async def go() -> None:
        async with httpx2.AsyncClient(timeout=30) as client:
            task = asyncio.create_task(
                client.post(f"{served.url}/mcp", json=call("lag_wait", {}), headers=tool_headers("lag_wait"))
            )
            deadline = time.monotonic() + 5
            while served.pipeline.metrics.in_flight == 0:
                assert time.monotonic() < deadline, "the call never started"
                await asyncio.sleep(0.01)
            task.cancel()  # closes the connection mid-request
            with pytest.raises(asyncio.CancelledError):
                await task
            started = time.monotonic()
            while served.pipeline.metrics.in_flight:
                assert time.monotonic() - started < 1.5, "the call ran on after its client left (upstream takes 3 s)"
                await asyncio.sleep(0.01)

    before = served.endpoint.answered
    asyncio.run(go())
    assert served.endpoint.answered == before + 1


# -- switching it off -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["off", "OFF", "no", "false", "0", "none", "disabled", " off "])
def test_the_setting_turns_it_off(tmp_path: Path, value: str) -> None:
    on = Settings.resolve(environ={}, tools_dirs=[tmp_path], vault_path=tmp_path / "v.json")
    off = Settings.resolve(environ={ENV_HTTP_FAST_PATH: value}, tools_dirs=[tmp_path], vault_path=tmp_path / "v.json")
    assert on.http_fast_path and not off.http_fast_path
    app = build_http_app(build_application(off).pipeline, build_application(off).catalog, off)
    endpoint = next(r.endpoint for r in app.routes if isinstance(r, Route) and r.path == "/mcp")
    assert not isinstance(endpoint, ModernToolCalls | SessionToolCalls)
