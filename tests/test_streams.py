"""Open streams per client: SSE sessions, listen and event streams are bounded; tool calls and local use are not."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from mcp_server._clients import ClientsFile
from mcp_server._streams import opens_stream
from tests._scenario import text_of
from tests._upstream import FakeUpstream
from tests.conftest import ServerProcess, start_http_server, stop_process
from tests.test_inbound import connect, make_env


def scope(method: str, path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {"type": "http", "method": method, "path": path, "headers": raw}


@pytest.mark.parametrize(
    ("method", "path", "headers", "stream"),
    [
        ("GET", "/sse", {}, True),
        ("GET", "/mcp", {}, True),
        ("GET", "/v1/events/stripe", {}, True),
        ("POST", "/mcp", {"Mcp-Method": "subscriptions/listen"}, True),
        ("POST", "/mcp", {"Mcp-Method": "tools/call"}, False),
        ("POST", "/mcp", {}, False),
        ("POST", "/messages/", {"Mcp-Method": "subscriptions/listen"}, False),
        ("GET", "/v1/tools", {}, False),
        ("DELETE", "/mcp", {}, False),
    ],
)
def test_what_counts_as_a_stream(method: str, path: str, headers: dict[str, str], stream: bool) -> None:
    assert opens_stream(scope(method, path, headers)) is stream


@pytest.fixture(scope="module")
def limited(
    tmp_path_factory: pytest.TempPathFactory, upstream_server: FakeUpstream
) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    base = tmp_path_factory.mktemp("streams")
    env = {**make_env(base, upstream_server), "MCP_CONNECTORS_CLIENT_STREAMS": "2"}
    clients = ClientsFile(base / "vault" / "clients.json")
    tokens = {name: clients.add(name, scopes=["tools:*"]) for name in ("one", "two")}
    server = start_http_server(env, base / "server.log")
    yield server, tokens
    stop_process(server.process)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_client_holds_at_most_its_bound_of_streams(limited: tuple[ServerProcess, dict[str, str]]) -> None:
    server, tokens = limited
    one = bearer(tokens["one"])
    async with httpx2.AsyncClient(base_url=server.url, timeout=10) as http, contextlib.AsyncExitStack() as held:
        sse = await held.enter_async_context(http.stream("GET", "/sse", headers=one))
        assert sse.status_code == 200
        modern = await held.enter_async_context(connect(server.url, tokens["one"], "modern"))
        await held.enter_async_context(modern.listen(tools_list_changed=True))  # the second stream

        for method, path in (("GET", "/sse"), ("GET", "/v1/events/echo"), ("GET", "/mcp")):
            refused = await http.request(method, path, headers={**one, "Accept": "text/event-stream"})
            assert refused.status_code == 429, (path, refused.text)
            assert refused.headers["retry-after"] == "5"
            body = refused.json()
            assert body["error"] == "rate_limit_exceeded"
            assert body["details"] == {"limit": "client", "reason": "streams", "max_streams": 2, "retry_after": 5}
        with pytest.raises(MCPError):
            async with modern.listen(tools_list_changed=True):
                pass

        # Tool calls are not streams, and another client has its own bound.
        result = await modern.call_tool("echo_get_item", {"item_id": "7"})
        assert not result.is_error, text_of(result)
        other = await held.enter_async_context(http.stream("GET", "/sse", headers=bearer(tokens["two"])))
        assert other.status_code == 200

        # A stream that ends gives its slot back.
        await sse.aclose()
        with anyio.fail_after(10):
            while True:
                async with http.stream("GET", "/sse", headers=one) as again:
                    if again.status_code == 200:
                        break
                    assert again.status_code == 429
                await anyio.sleep(0.1)


async def test_local_use_is_not_bounded(
    tmp_path_factory: pytest.TempPathFactory, upstream_server: FakeUpstream
) -> None:
    base = tmp_path_factory.mktemp("local-streams")
    env = {**make_env(base, upstream_server), "MCP_CONNECTORS_CLIENT_STREAMS": "1"}
    server = start_http_server(env, base / "server.log")
    try:
        async with httpx2.AsyncClient(base_url=server.url, timeout=10) as http, contextlib.AsyncExitStack() as held:
            for _ in range(3):
                opened = await held.enter_async_context(http.stream("GET", "/sse"))
                assert opened.status_code == 200
    finally:
        stop_process(server.process)
