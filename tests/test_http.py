"""Streamable HTTP (2026-07-28 and handshake-era) and legacy SSE against a real server process."""

from __future__ import annotations

import httpx2
from mcp import Client
from mcp.client.sse import sse_client

from tests._scenario import assert_no_secret, run_scenario
from tests._upstream import FakeUpstream
from tests.conftest import ServerProcess


async def test_streamable_http_modern(http_server: ServerProcess, upstream: FakeUpstream) -> None:
    async with Client(f"{http_server.url}/mcp") as client:
        assert client.protocol_version == "2026-07-28"
        await run_scenario(client, upstream)
    assert_no_secret(http_server.log())


async def test_streamable_http_handshake_era(http_server: ServerProcess, upstream: FakeUpstream) -> None:
    async with Client(f"{http_server.url}/mcp", mode="legacy") as client:
        assert client.protocol_version == "2025-11-25"
        assert client.server_info is not None and client.server_info.name == "mcp-connectors"
        await run_scenario(client, upstream)
    assert_no_secret(http_server.log())


async def test_sse(http_server: ServerProcess, upstream: FakeUpstream) -> None:
    async with Client(sse_client(f"{http_server.url}/sse"), mode="legacy") as client:
        await run_scenario(client, upstream)
    assert_no_secret(http_server.log())


def test_health(http_server: ServerProcess) -> None:
    response = httpx2.get(f"{http_server.url}/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["tools"] >= 10
    assert body["manifest_faults"] == 0


def test_metrics_count_calls_by_tool_and_outcome(http_server: ServerProcess, upstream: FakeUpstream) -> None:
    httpx2.post(f"{http_server.url}/v1/invoke", json={"tool": "noauth_whoami"})
    httpx2.post(f"{http_server.url}/v1/invoke", json={"tool": "echo_fail", "parameters": {"code": 500}})
    httpx2.post(f"{http_server.url}/v1/invoke", json={"tool": "never_registered_tool"})
    response = httpx2.get(f"{http_server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'mcp_connectors_tool_calls_total{outcome="ok",tool="noauth_whoami"} 1.0' in text
    assert 'mcp_connectors_tool_calls_total{outcome="UPSTREAM_ERROR",tool="echo_fail"} 1.0' in text
    assert "never_registered_tool" not in text
    assert_no_secret(text)


def test_foreign_host_is_refused_on_every_route(http_server: ServerProcess) -> None:
    for path in ("/mcp", "/sse", "/v1/tools", "/health", "/metrics"):
        response = httpx2.get(f"{http_server.url}{path}", headers={"Host": "evil.example:80"})
        assert response.status_code == 421, path
        assert response.json()["error"] == "bad_request"


def test_foreign_origin_is_refused(http_server: ServerProcess) -> None:
    response = httpx2.post(
        f"{http_server.url}/mcp",
        headers={"Origin": "https://evil.example", "Content-Type": "application/json"},
        content=b"{}",
    )
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    allowed = httpx2.get(f"{http_server.url}/health", headers={"Origin": "http://localhost:3000"})
    assert allowed.status_code == 200


def test_unknown_route_is_json_404(http_server: ServerProcess) -> None:
    response = httpx2.get(f"{http_server.url}/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
