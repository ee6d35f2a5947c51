"""Operating real server processes: graceful shutdown, hot reload with tools/list_changed, --stateless replicas."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.session import IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import Subscription
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ToolsListChanged
from mcp_types import ToolListChangedNotification

from tests._scenario import assert_no_secret
from tests._upstream import FakeUpstream
from tests.conftest import ServerProcess, server_command, start_http_server, stop_process


def slow_manifest(base_url: str) -> str:
    # The fake upstream answers /slow after 3 s; this connector waits for it (the echo one gives up at 0.5 s).
    return (
        f"name: slowpoke\nbase_url: {base_url}\ntimeout: 20\nretry: {{attempts: 1}}\n"
        "operations: [{name: wait, method: GET, path: /slow}]\n"
    )


def extra_manifest(base_url: str, operation: str = "ping") -> str:
    return f"name: extra\nbase_url: {base_url}\noperations: [{{name: {operation}, method: GET, path: /echo/extra}}]\n"


class Notifications:
    """Collects what an MCP client's message handler receives."""

    def __init__(self) -> None:
        self.list_changed = 0
        self._event = anyio.Event()

    async def handler(self, message: IncomingMessage) -> None:
        if isinstance(message, ToolListChangedNotification):
            self.list_changed += 1
            self._event.set()

    async def wait(self, seconds: float = 10) -> None:
        with anyio.fail_after(seconds):
            await self._event.wait()
        self._event = anyio.Event()


async def _next_event(subscription: Subscription, seconds: float = 10) -> object:
    with anyio.fail_after(seconds):
        async for event in subscription:
            return event
    raise AssertionError("the listen stream ended")


async def _terminate(process: subprocess.Popen[bytes], seconds: float) -> tuple[int, float]:
    """SIGTERM `process`, wait for it to exit; its exit status and how long that took."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = await anyio.to_thread.run_sync(lambda: process.wait(timeout=seconds))
    return code, time.monotonic() - started


# -- graceful shutdown -----------------------------------------------------------------------------------------


@pytest.fixture
def slow_tools(tools_dir: Path, upstream_server: FakeUpstream) -> Path:
    (tools_dir / "slowpoke.yaml").write_text(slow_manifest(upstream_server.url))
    return tools_dir


@asynccontextmanager
async def _held_open(server: ServerProcess) -> AsyncIterator[None]:
    """An SSE session and a Streamable HTTP session (with its GET stream) that sit idle through the shutdown."""

    async def hold(client: Client) -> None:
        with suppress(Exception):
            async with client:
                await client.list_tools()
                await anyio.sleep_forever()

    async with anyio.create_task_group() as group:
        group.start_soon(hold, Client(sse_client(f"{server.url}/sse"), mode="legacy"))
        group.start_soon(hold, Client(f"{server.url}/mcp", mode="legacy"))
        await anyio.sleep(1.0)
        yield
        group.cancel_scope.cancel()


async def _slow_requests_arrived(upstream: FakeUpstream, count: int) -> None:
    """Wait (not a fixed sleep: a loaded machine is slow to start a call) until `count` calls reached /slow."""
    with anyio.fail_after(20):
        # The fake upstream records requests on another thread's loop: polling it is the point.
        while sum(r.raw_path == "/slow" for r in upstream.requests) < count:  # noqa: ASYNC110
            await anyio.sleep(0.02)


async def test_sigterm_lets_a_slow_call_finish_then_exits(
    server_env: dict[str, str], slow_tools: Path, tmp_path: Path, upstream: FakeUpstream
) -> None:
    server = start_http_server(server_env, tmp_path / "server.log", "--drain-timeout", "8")
    results: dict[str, Any] = {}
    code, elapsed = -1, float("inf")
    try:

        async def rest_call() -> None:
            async with httpx2.AsyncClient(timeout=30) as http:
                response = await http.post(f"{server.url}/v1/invoke", json={"tool": "slowpoke_wait"})
                results["rest"] = (response.status_code, response.json())

        async def mcp_call() -> None:
            with suppress(Exception):  # leaving the session finds the server gone; only the result matters
                transport = streamable_http_client(f"{server.url}/mcp", terminate_on_close=False)
                async with Client(transport, mode="legacy") as client:
                    await client.list_tools()  # else call_tool lists the tools after the call, once the server is gone
                    results["mcp"] = await client.call_tool("slowpoke_wait", {})

        async def sse_call() -> None:  # legacy HTTP+SSE: its calls take _sse_fastpath
            with suppress(Exception):
                async with Client(sse_client(f"{server.url}/sse"), mode="legacy") as client:
                    await client.list_tools()
                    results["sse"] = await client.call_tool("slowpoke_wait", {})

        async with _held_open(server), anyio.create_task_group() as group:
            group.start_soon(rest_call)
            group.start_soon(mcp_call)
            group.start_soon(sse_call)
            await _slow_requests_arrived(upstream, 3)  # the three calls are waiting on the upstream now
            code, elapsed = await _terminate(server.process, 15)
    finally:
        stop_process(server.process)
    assert code == 0
    assert elapsed < 6.5, f"took {elapsed:.1f} s: idle sessions held the drain open"  # the calls needed ~2 s more
    assert results["rest"] == (200, {"success": True, "result": {"slow": True}})
    assert not results["mcp"].is_error and results["mcp"].structured_content == {"slow": True}
    assert not results["sse"].is_error and results["sse"].structured_content == {"slow": True}
    log = server.log()
    assert "draining: 3 tool calls in flight" in log
    assert_no_secret(log)


async def test_sigterm_cancels_calls_that_outlast_the_drain_timeout(
    server_env: dict[str, str], slow_tools: Path, tmp_path: Path, upstream: FakeUpstream
) -> None:
    server = start_http_server(server_env, tmp_path / "server.log", "--drain-timeout", "1")
    outcome: dict[str, Any] = {}
    code, elapsed = -1, float("inf")
    try:

        async def rest_call() -> None:
            async with httpx2.AsyncClient(timeout=30) as http:
                try:
                    outcome["status"] = (
                        await http.post(f"{server.url}/v1/invoke", json={"tool": "slowpoke_wait"})
                    ).status_code
                except httpx2.HTTPError as exc:
                    outcome["error"] = type(exc).__name__

        async with anyio.create_task_group() as group:
            group.start_soon(rest_call)
            await _slow_requests_arrived(upstream, 1)
            code, elapsed = await _terminate(server.process, 15)
    finally:
        stop_process(server.process)
    assert code == 0
    assert elapsed < 3, f"took {elapsed:.1f} s with a 1 s drain timeout"  # 1 s, then cancellation and exit
    assert "status" not in outcome or outcome["status"] >= 500, outcome  # the call did not complete


# -- hot reload ------------------------------------------------------------------------------------------------


@pytest.fixture
def reload_server(server_env: dict[str, str], tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_http_server(server_env, tmp_path / "server.log", "--watch-interval", "0.2")
    yield server
    stop_process(server.process)


async def _tool_names(client: Client) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


async def test_a_new_manifest_is_announced_listed_and_callable(
    reload_server: ServerProcess, tools_dir: Path, upstream: FakeUpstream
) -> None:
    legacy_seen = Notifications()
    sse_seen = Notifications()
    async with (
        Client(f"{reload_server.url}/mcp", mode="legacy", message_handler=legacy_seen.handler) as legacy,
        Client(sse_client(f"{reload_server.url}/sse"), mode="legacy", message_handler=sse_seen.handler) as sse,
        Client(f"{reload_server.url}/mcp") as modern,
        modern.listen(tools_list_changed=True) as subscription,
    ):
        assert legacy.server_capabilities is not None
        tools_capability = legacy.server_capabilities.tools
        assert tools_capability is not None and tools_capability.list_changed is True
        assert "extra_ping" not in await _tool_names(legacy)

        (tools_dir / "extra.yaml").write_text(extra_manifest(upstream.url))

        await legacy_seen.wait()
        await sse_seen.wait()
        assert isinstance(await _next_event(subscription), ToolsListChanged)
        for client in (legacy, sse, modern):
            assert "extra_ping" in await _tool_names(client)
        result = await modern.call_tool("extra_ping", {})
        assert not result.is_error and result.structured_content is not None
        assert result.structured_content["path"] == "/echo/extra"
    rest = httpx2.get(f"{reload_server.url}/v1/tools").json()
    assert "extra_ping" in {tool["name"] for tool in rest["tools"]}
    invoked = httpx2.post(f"{reload_server.url}/v1/invoke", json={"tool": "extra_ping"})
    assert invoked.status_code == 200
    status = httpx2.get(f"{reload_server.url}/v1/status").json()
    assert status["reloads"] >= 1
    assert {"name": "extra", "state": "loaded", "tools": 1}.items() <= {
        k: v for e in status["connectors"] if e["name"] == "extra" for k, v in e.items()
    }.items()


async def test_an_invalid_edit_keeps_the_previous_version(
    reload_server: ServerProcess, tools_dir: Path, upstream: FakeUpstream
) -> None:
    manifest = tools_dir / "extra.yaml"
    seen = Notifications()
    async with Client(f"{reload_server.url}/mcp", mode="legacy", message_handler=seen.handler) as client:
        manifest.write_text(extra_manifest(upstream.url))
        await seen.wait()
        assert "extra_ping" in await _tool_names(client)

        manifest.write_text("name: extra\nbase_url: [this is not a URL\n")  # broken YAML
        deadline = time.monotonic() + 10
        while True:
            status = httpx2.get(f"{reload_server.url}/v1/status").json()
            extra = next(e for e in status["connectors"] if e["name"] == "extra")
            if extra["state"] == "stale":
                break
            assert time.monotonic() < deadline, status
            await anyio.sleep(0.1)
        assert extra["fault"]["file"] == str(manifest) and extra["tools"] == 1
        [fault] = status["manifest_faults"]
        assert fault["file"] == str(manifest) and fault["serving_previous_version"] is True
        assert "extra_ping" in await _tool_names(client)  # the last good version is still served
        assert not (await client.call_tool("extra_ping", {})).is_error
        assert seen.list_changed == 1  # the tool list did not change, so nobody was told it did

        manifest.write_text(extra_manifest(upstream.url, operation="pong"))  # fixed, with another operation
        await seen.wait()
        names = await _tool_names(client)
        assert "extra_pong" in names and "extra_ping" not in names
        assert httpx2.get(f"{reload_server.url}/v1/status").json()["manifest_faults"] == []

        manifest.unlink()  # deleting a manifest removes its connector
        await seen.wait()
        assert not {"extra_ping", "extra_pong"} & await _tool_names(client)
        with pytest.raises(MCPError):
            await client.call_tool("extra_pong", {})
    assert "still serving its previous version" in reload_server.log()


async def test_sighup_reloads(
    server_env: dict[str, str], tools_dir: Path, tmp_path: Path, upstream: FakeUpstream
) -> None:
    server = start_http_server(server_env, tmp_path / "server.log", "--no-watch")
    try:
        seen = Notifications()
        async with Client(f"{server.url}/mcp", mode="legacy", message_handler=seen.handler) as client:
            (tools_dir / "extra.yaml").write_text(extra_manifest(upstream.url))
            await anyio.sleep(1.5)
            assert "extra_ping" not in await _tool_names(client)  # not watching: nothing happens by itself
            server.process.send_signal(signal.SIGHUP)
            await seen.wait()
            assert "extra_ping" in await _tool_names(client)
            assert not (await client.call_tool("extra_ping", {})).is_error
    finally:
        stop_process(server.process)
    assert "SIGHUP: reloading" in server.log()


async def test_stdio_clients_hear_about_changes(
    server_env: dict[str, str], tools_dir: Path, tmp_path: Path, upstream: FakeUpstream
) -> None:
    command, args = server_command()
    params = StdioServerParameters(command=command, args=[*args, "--watch-interval", "0.2"], env=server_env)
    seen = Notifications()
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode="legacy", message_handler=seen.handler) as legacy:
            (tools_dir / "extra.yaml").write_text(extra_manifest(upstream.url))
            await seen.wait()
            assert "extra_ping" in await _tool_names(legacy)
        async with Client(stdio_client(params, errlog=errlog)) as modern, modern.listen(tools_list_changed=True) as sub:
            (tools_dir / "extra.yaml").write_text(extra_manifest(upstream.url, operation="pong"))
            assert isinstance(await _next_event(sub), ToolsListChanged)
            assert "extra_pong" in await _tool_names(modern)


# -- stateless replicas ----------------------------------------------------------------------------------------


class RoundRobin(httpx2.AsyncBaseTransport):
    """A load balancer in a transport: request N goes to replica N mod len(ports), no affinity at all."""

    def __init__(self, ports: list[int]) -> None:
        self._ports = ports
        self._inner = httpx2.AsyncHTTPTransport()
        self.sent: list[int] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = self._ports[len(self.sent) % len(self._ports)]
        self.sent.append(port)
        request.url = request.url.copy_with(port=port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _port(server: ServerProcess) -> int:
    return int(server.url.rsplit(":", 1)[1])


@pytest.fixture
def replicas(server_env: dict[str, str], tmp_path: Path) -> Iterator[list[ServerProcess]]:
    servers = [start_http_server(server_env, tmp_path / f"replica{i}.log", "--stateless") for i in range(2)]
    yield servers
    for server in servers:
        stop_process(server.process)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_stateless_replicas_serve_requests_alternating_between_them(
    replicas: list[ServerProcess], upstream: FakeUpstream, mode: str
) -> None:
    balancer = RoundRobin([_port(server) for server in replicas])
    async with (
        httpx2.AsyncClient(transport=balancer, timeout=30) as http,
        Client(streamable_http_client(f"{replicas[0].url}/mcp", http_client=http), mode=mode) as client,  # type: ignore[arg-type]
    ):
        assert "echo_get_item" in await _tool_names(client)
        for index in range(4):  # consecutive calls, so each replica gets some
            result = await client.call_tool("echo_get_item", {"item_id": str(index)})
            assert not result.is_error and result.structured_content is not None
            assert result.structured_content["path"] == f"/echo/items/{index}"
    assert set(balancer.sent) == {_port(server) for server in replicas}  # both replicas answered
    for server in replicas:
        assert "call echo_get_item ok" in server.log()


async def test_without_stateless_a_session_does_not_survive_another_replica(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    servers = [start_http_server(server_env, tmp_path / f"stateful{i}.log") for i in range(2)]
    try:
        balancer = RoundRobin([_port(server) for server in servers])
        with pytest.raises(Exception):  # noqa: B017 - whatever the SDK raises for a 404 "Session not found"
            async with (
                httpx2.AsyncClient(transport=balancer, timeout=10) as http,
                Client(streamable_http_client(f"{servers[0].url}/mcp", http_client=http), mode="legacy") as client,
            ):
                for _ in range(3):
                    await client.list_tools()
    finally:
        for server in servers:
            stop_process(server.process)


def test_sse_is_off_in_stateless_mode(replicas: list[ServerProcess]) -> None:
    response = httpx2.get(f"{replicas[0].url}/sse")
    assert response.status_code == 404
    assert "--stateless" in response.json()["message"]
