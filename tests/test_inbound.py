"""Inbound authentication, scopes and per-client limits against real server processes and real clients.

Static client tokens here; OAuth JWTs are in test_inbound_oauth.py, the pieces in-process in test_access.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from mcp_server._clients import ClientsFile
from mcp_server._vault import Vault
from tests._scenario import text_of
from tests._upstream import FakeUpstream, free_port
from tests.conftest import (
    PASSPHRASE,
    SECRET,
    ServerProcess,
    auth_manifests,
    echo_manifest,
    run_cli,
    server_command,
    start_http_server,
    stop_process,
)

WORK_SECRET = "work-tenant-token-7a6b5c"
ECHO_READ = {"echo_get_item", "echo_fail", "echo_text", "echo_empty", "echo_slow", "echo_big", "echo_throttled"}
MCP_KINDS = ["modern", "legacy", "sse"]


def make_env(base: Path, upstream: FakeUpstream) -> dict[str, str]:
    tools = base / "tools"
    tools.mkdir(parents=True, exist_ok=True)
    (tools / "echo.yaml").write_text(echo_manifest(upstream.url))
    for name, text in auth_manifests(upstream.url).items():
        (tools / f"{name}.yaml").write_text(text)
    vault = Vault(base / "vault" / "vault.json", passphrase=PASSPHRASE, use_keyring=False)
    vault.set("echo_token", SECRET)
    vault.set("echo_token@work", WORK_SECRET)
    env = dict(os.environ)
    env.update(
        {
            "MCP_CONNECTORS_VAULT": str(vault.path),
            "MCP_CONNECTORS_VAULT_KEY": PASSPHRASE,
            "MCP_CONNECTORS_TOOLS": str(tools),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("MCP_CONNECTORS_CLIENTS", None)
    return env


class Team:
    """A server with a clients file, and each client's token."""

    def __init__(self, server: ServerProcess, env: dict[str, str], clients: ClientsFile, tokens: dict[str, str]):
        self.server = server
        self.env = env
        self.clients = clients
        self.tokens = tokens

    @property
    def url(self) -> str:
        return self.server.url

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def rest(self, name: str | None, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        headers = self.headers(name) if name else {}
        return httpx2.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def invoke(self, name: str, tool: str, parameters: dict[str, Any] | None = None) -> httpx2.Response:
        return self.rest(name, "POST", "/v1/invoke", json={"tool": tool, "parameters": parameters or {}})


CLIENTS: dict[str, dict[str, Any]] = {
    "admin": {"scopes": ["tools:*", "operator"]},
    "reader": {"scopes": ["tools:*:read"]},
    "echoer": {"scopes": ["tools:echo:*"]},
    "single": {"scopes": ["tools:noauth_whoami"]},
    "tenant": {"scopes": ["tools:echo:read"], "accounts": {"*": "work"}},
    "ratelimited": {"scopes": ["tools:*"], "rate_limit": "2/60"},
    "serial": {"scopes": ["tools:*"], "rate_limit": "off", "max_concurrent": 1},
    "nothing": {"scopes": ["operator"]},
}


def add_clients(clients: ClientsFile) -> dict[str, str]:
    return {name: clients.add(name, **spec) for name, spec in CLIENTS.items()}


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, upstream_server: FakeUpstream) -> Iterator[Team]:
    base = tmp_path_factory.mktemp("team")
    env = make_env(base, upstream_server)
    clients = ClientsFile(base / "vault" / "clients.json")  # the default place: beside the vault
    tokens = add_clients(clients)
    server = start_http_server(env, base / "server.log")
    yield Team(server, env, clients, tokens)
    stop_process(server.process)


@asynccontextmanager
async def connect(url: str, token: str | None, kind: str) -> AsyncIterator[Client]:
    """The SDK's `mcp.Client` over Streamable HTTP (2026-07-28 or handshake era) or SSE, with a bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if kind == "sse":
        async with Client(sse_client(f"{url}/sse", headers=headers), mode="legacy") as client:
            yield client
        return
    async with create_mcp_http_client(headers=headers) as http:
        transport = streamable_http_client(f"{url}/mcp", http_client=http)
        async with Client(transport, mode="legacy" if kind == "legacy" else "auto") as client:
            yield client


async def listed(url: str, token: str, kind: str = "modern") -> set[str]:
    async with connect(url, token, kind) as client:
        return {tool.name for tool in (await client.list_tools()).tools}


def error_body(result: CallToolResult) -> dict[str, Any]:
    assert result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


# ---------------------------------------------------------------------------------------------- authentication


def test_requests_without_a_token_are_refused(team: Team) -> None:
    for method, path in [
        ("POST", "/mcp"),
        ("GET", "/sse"),
        ("POST", "/messages/?session_id=0123"),
        ("GET", "/v1/meta"),
        ("GET", "/v1/tools"),
        ("POST", "/v1/invoke"),
        ("GET", "/metrics"),
        ("GET", "/nope"),
    ]:
        response = team.rest(None, method, path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == 'Bearer realm="mcp-connectors"', path
        assert response.json()["error"] == "unauthorized"
    for path in ("/health", "/ready", "/.well-known/oauth-protected-resource"):
        assert team.rest(None, "GET", path).status_code != 401, path


def test_bad_tokens_are_invalid_token(team: Team) -> None:
    for header in ("Bearer mcpc_notarealtoken", "Bearer " + team.tokens["admin"] + "x", "Basic YWxpY2U6eA=="):
        response = httpx2.get(f"{team.url}/v1/tools", headers={"Authorization": header})
        assert response.status_code == 401
    response = httpx2.get(f"{team.url}/v1/tools", headers={"Authorization": "Bearer mcpc_notarealtoken"})
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="mcp-connectors", error="invalid_token", error_description=')


def test_operator_scope_guards_metrics(team: Team) -> None:
    assert team.rest("admin", "GET", "/metrics").status_code == 200
    refused = team.rest("reader", "GET", "/metrics")
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    assert 'scope="operator"' in refused.headers["www-authenticate"]
    # A token with no tools scope at all is refused on the tool endpoints, with the scope to ask for.
    refused = team.rest("nothing", "GET", "/v1/tools")
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]


@pytest.mark.parametrize("kind", MCP_KINDS)
async def test_mcp_clients_with_a_token(team: Team, kind: str, upstream: FakeUpstream) -> None:
    async with connect(team.url, team.tokens["echoer"], kind) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert tools == {name for name in tools if name.startswith("echo_")} and "echo_create_item" in tools
        result = await client.call_tool("echo_get_item", {"item_id": "1"})
        assert not result.is_error, text_of(result)
        assert upstream.requests[-1].headers["authorization"] == f"Bearer {SECRET}"


async def test_mcp_client_without_a_token_cannot_connect(team: Team) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the SDK surfaces the 401 as a transport error
        async with connect(team.url, None, "modern") as client:
            await client.list_tools()


def test_a_session_is_bound_to_the_client_that_opened_it(team: Team) -> None:
    accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    opened = httpx2.post(f"{team.url}/mcp", json=init, headers={**accept, **team.headers("admin")})
    assert opened.status_code == 200
    session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    stolen = httpx2.post(f"{team.url}/mcp", json=listing, headers={**accept, **session, **team.headers("reader")})
    assert stolen.status_code == 404  # another client's token cannot use the session
    own = httpx2.post(f"{team.url}/mcp", json=listing, headers={**accept, **session, **team.headers("admin")})
    assert own.status_code == 200


# ---------------------------------------------------------------------------------------------- authorization


async def test_tools_list_shows_each_client_only_what_it_may_call(team: Team) -> None:
    every = await listed(team.url, team.tokens["admin"])
    assert {"echo_get_item", "echo_create_item", "noauth_whoami"} <= every
    assert await listed(team.url, team.tokens["reader"], "legacy") == {
        name for name in every if name in ECHO_READ or name.endswith("_whoami")
    }
    assert await listed(team.url, team.tokens["single"], "sse") == {"noauth_whoami"}
    assert await listed(team.url, team.tokens["tenant"]) == ECHO_READ


def test_rest_tools_show_each_client_only_what_it_may_call(team: Team) -> None:
    def rest_names(client: str, fmt: str = "default") -> set[str]:
        response = team.rest(client, "GET", "/v1/tools", params={"format": fmt})
        assert response.status_code == 200
        tools = response.json()["tools"]
        return {t["function"]["name"] if fmt == "openai" else t["name"] for t in tools}

    assert rest_names("echoer") == {n for n in rest_names("admin") if n.startswith("echo_")}
    assert rest_names("single", "openai") == {"noauth_whoami"}
    assert rest_names("single", "mcp") == {"noauth_whoami"}
    assert "echo_create_item" not in rest_names("reader", "anthropic")
    assert rest_names("tenant") == ECHO_READ


async def test_calls_outside_the_scopes_are_forbidden(team: Team, upstream: FakeUpstream) -> None:
    before = len(upstream.requests)
    async with connect(team.url, team.tokens["reader"], "modern") as client:
        write = error_body(await client.call_tool("echo_create_item", {"title": "x"}))
        assert write["error_code"] == "FORBIDDEN"
        assert write["details"] == {"tool": "echo_create_item", "required_scope": "tools:echo_create_item"}
        # A name that exists nowhere is answered the same way: no telling what exists beyond the listing.
        missing = error_body(await client.call_tool("echo_no_such_tool", {}))
        assert missing["error_code"] == "FORBIDDEN"
        assert missing["error"].replace("echo_no_such_tool", "X") == write["error"].replace("echo_create_item", "X")
    async with connect(team.url, team.tokens["admin"], "modern") as client:
        with pytest.raises(MCPError) as unknown:  # a client that may list everything learns nothing from "unknown"
            await client.call_tool("echo_no_such_tool", {})
        assert unknown.value.error.code == -32602
    refused = team.invoke("reader", "echo_create_item", {"title": "x"})
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "forbidden",
        "message": "Tool 'echo_create_item' is not available to this client (its scopes do not grant it).",
        "details": {"tool": "echo_create_item", "required_scope": "tools:echo_create_item"},
    }
    assert refused.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="tools:echo_create_item"'
    assert team.invoke("reader", "echo_no_such_tool").status_code == 403
    assert team.invoke("admin", "echo_no_such_tool").status_code == 404
    assert team.invoke("single", "echo_get_item", {"item_id": "1"}).status_code == 403
    assert len(upstream.requests) == before  # nothing refused reached the upstream


# ---------------------------------------------------------------------------------------------- tenants


def test_a_tenant_client_uses_its_own_credentials(team: Team, upstream: FakeUpstream) -> None:
    response = team.invoke("tenant", "echo_get_item", {"item_id": "1"})
    assert response.status_code == 200, response.text
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {WORK_SECRET}"
    assert team.invoke("admin", "echo_get_item", {"item_id": "1"}).status_code == 200
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    audit = Path(team.env["MCP_CONNECTORS_VAULT"]).with_name("audit.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in audit]
    assert any(e["client"] == "tenant" and e["account"] == "work" for e in entries)
    assert any(e["client"] == "admin" and e["account"] is None for e in entries)


async def test_the_clients_token_never_reaches_the_upstream(team: Team, upstream: FakeUpstream) -> None:
    token = team.tokens["admin"]
    assert team.invoke("admin", "echo_get_item", {"item_id": "1", "X-Trace": "t"}).status_code == 200
    async with connect(team.url, token, "modern") as client:
        assert not (await client.call_tool("echo_create_item", {"title": "x"})).is_error
    async with connect(team.url, token, "sse") as client:
        assert not (await client.call_tool("noauth_whoami", {})).is_error
    assert len(upstream.requests) >= 3
    for request in upstream.requests:
        seen = json.dumps(request.headers) + request.raw_path + request.query + request.body.decode(errors="replace")
        assert token not in seen
        assert token[5:] not in seen  # not even without its prefix
    assert token not in team.server.log()


# ---------------------------------------------------------------------------------------------- limits


async def test_rate_limit_headers_and_429(team: Team) -> None:
    first = team.invoke("ratelimited", "noauth_whoami")
    assert first.status_code == 200
    assert (first.headers["x-ratelimit-limit"], first.headers["x-ratelimit-remaining"]) == ("2", "1")
    assert int(first.headers["x-ratelimit-reset"]) > 0
    second = team.invoke("ratelimited", "noauth_whoami")
    assert second.headers["x-ratelimit-remaining"] == "0"
    over = team.invoke("ratelimited", "noauth_whoami")
    assert over.status_code == 429
    assert over.json()["error"] == "rate_limit_exceeded"
    details = over.json()["details"]
    assert details == {"retry_after": details["retry_after"], "limit": "client", "reason": "rate"}
    assert 1 <= details["retry_after"] <= 30  # one call per 30 s
    assert over.headers["retry-after"] == str(details["retry_after"])
    assert over.headers["x-ratelimit-remaining"] == "0"
    # Listings are not tool calls: they still work, over both transports.
    assert team.rest("ratelimited", "GET", "/v1/tools").status_code == 200
    async with connect(team.url, team.tokens["ratelimited"], "modern") as client:
        assert (await client.list_tools()).tools
        body = error_body(await client.call_tool("noauth_whoami", {}))  # one bucket per client, every transport
    assert body["error_code"] == "RATE_LIMITED"
    assert body["details"]["limit"] == "client" and body["details"]["retry_after"] >= 1
    # Another client is not affected.
    assert team.invoke("admin", "noauth_whoami").status_code == 200


async def test_concurrent_calls_are_bounded_per_client(team: Team) -> None:
    async with httpx2.AsyncClient(headers=team.headers("serial"), timeout=30) as http:
        invoke = f"{team.url}/v1/invoke"
        results: dict[str, httpx2.Response] = {}
        refused: httpx2.Response | None = None
        other: httpx2.Response | None = None

        async def slow() -> None:
            results["slow"] = await http.post(invoke, json={"tool": "echo_slow"})

        async with anyio.create_task_group() as group:
            group.start_soon(slow)
            await anyio.sleep(0.25)
            refused = await http.post(invoke, json={"tool": "noauth_whoami"})
            async with httpx2.AsyncClient(headers=team.headers("admin")) as admin:
                other = await admin.post(invoke, json={"tool": "noauth_whoami"})
        assert refused is not None and other is not None
        assert refused.status_code == 429
        assert refused.json()["details"]["reason"] == "concurrency"
        assert refused.headers["retry-after"] == "1"
        assert other.status_code == 200  # another client's calls are not bounded by this one's
        assert results["slow"].json()["error_code"] == "TIMEOUT"  # it ran, holding the only slot
        assert (await http.post(invoke, json={"tool": "noauth_whoami"})).status_code == 200  # the slot is free again


# ---------------------------------------------------------------------------------------------- the CLI


def test_clients_cli_add_list_revoke_without_restart(team: Team) -> None:
    added = run_cli(team.env, "clients", "add", "temp", "--scope", "tools:noauth:*", "--tenant", "work")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert token.startswith("mcpc_") and "\n" not in token
    assert "shown only now" in added.stderr
    assert httpx2.get(f"{team.url}/v1/tools", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert (
        httpx2.post(
            f"{team.url}/v1/invoke", json={"tool": "noauth_whoami"}, headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 200
    )

    listing = run_cli(team.env, "clients", "list")
    assert listing.returncode == 0
    assert "temp  scopes=tools:noauth:*  tenant=work  expires never" in listing.stdout
    assert "ratelimited" in listing.stdout and "rate=2/60" in listing.stdout
    as_json = json.loads(run_cli(team.env, "clients", "list", "--json").stdout)
    assert {c["name"] for c in as_json} >= {"temp", "admin"}
    stored = Path(team.clients.path).read_text()
    for output in (listing.stdout, json.dumps(as_json)):
        assert token not in output
        for record in json.loads(stored)["clients"].values():
            assert record["token_sha256"] not in output  # never a hash either

    revoked = run_cli(team.env, "clients", "revoke", "temp")
    assert revoked.returncode == 0, revoked.stderr
    refused = httpx2.get(f"{team.url}/v1/tools", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401  # the running server re-read the file
    assert "invalid_token" in refused.headers["www-authenticate"]
    assert run_cli(team.env, "clients", "revoke", "temp").returncode == 1
    bad = run_cli(team.env, "clients", "add", "x", "--scope", "tools:github")
    assert bad.returncode == 0  # `tools:github` is a (single) tool scope
    worse = run_cli(team.env, "clients", "add", "y", "--scope", "tool:*")
    assert worse.returncode == 2 and "not a scope" in worse.stderr


def test_an_expired_token_stops_working_without_restart(team: Team) -> None:
    added = run_cli(team.env, "clients", "add", "brief", "--scope", "tools:*", "--expires", "0.00003")  # ~2.6 s
    assert added.returncode == 0, added.stderr
    headers = {"Authorization": f"Bearer {added.stdout.strip()}"}
    assert httpx2.get(f"{team.url}/v1/tools", headers=headers).status_code == 200
    time.sleep(3)
    expired = httpx2.get(f"{team.url}/v1/tools", headers=headers)
    assert expired.status_code == 401
    assert "expired" in expired.json()["message"]
    assert "EXPIRED" in run_cli(team.env, "clients", "list").stdout


# ---------------------------------------------------------------------------------------------- modes


def test_a_public_bind_needs_authentication(tmp_path: Path, upstream_server: FakeUpstream) -> None:
    env = make_env(tmp_path, upstream_server)
    port = str(free_port())
    refused = subprocess.run(
        [sys.executable, "-m", "mcp_server", "serve", "--transport", "http", "--host", "0.0.0.0", "--port", port],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "refusing to serve 0.0.0.0" in refused.stderr and "--allow-unauthenticated" in refused.stderr
    # With a client configured it starts (and requires a token).
    token = ClientsFile(tmp_path / "vault" / "clients.json").add("ops", scopes=["tools:*"])
    server = start_http_server(env, tmp_path / "public.log", "--host", "0.0.0.0")
    try:
        assert httpx2.get(f"{server.url}/v1/tools").status_code == 401
        assert httpx2.get(f"{server.url}/v1/tools", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        stop_process(server.process)


def test_authentication_switches_on_when_the_first_client_is_added(
    tmp_path: Path, upstream_server: FakeUpstream
) -> None:
    env = make_env(tmp_path, upstream_server)
    clients_path = tmp_path / "elsewhere" / "team-clients.json"
    env["MCP_CONNECTORS_CLIENTS"] = str(clients_path)
    server = start_http_server(env, tmp_path / "server.log")
    try:
        assert httpx2.get(f"{server.url}/v1/tools").status_code == 200  # loopback, nothing configured: open
        assert httpx2.post(f"{server.url}/v1/invoke", json={"tool": "noauth_whoami"}).status_code == 200
        added = run_cli(env, "clients", "add", "first", "--scope", "tools:*")
        assert added.returncode == 0 and clients_path.exists()
        assert httpx2.get(f"{server.url}/v1/tools").status_code == 401
        token = added.stdout.strip()
        assert httpx2.get(f"{server.url}/v1/tools", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert run_cli(env, "clients", "revoke", "first").returncode == 0
        assert httpx2.get(f"{server.url}/v1/tools").status_code == 401  # no client left: closed, not open
    finally:
        stop_process(server.process)


async def test_read_only_mode(tmp_path: Path, upstream_server: FakeUpstream) -> None:
    env = make_env(tmp_path, upstream_server)
    server = start_http_server(env, tmp_path / "server.log", "--read-only")
    try:
        rest = {t["name"] for t in httpx2.get(f"{server.url}/v1/tools").json()["tools"]}
        assert "echo_get_item" in rest and "echo_create_item" not in rest and "echo_delete_item" not in rest
        assert await listed(server.url, "", "modern") == rest
        assert httpx2.post(f"{server.url}/v1/invoke", json={"tool": "echo_delete_item"}).status_code == 404
        async with connect(server.url, None, "legacy") as client:
            with pytest.raises(MCPError):
                await client.call_tool("echo_delete_item", {"item_id": "1"})
    finally:
        stop_process(server.process)
    command, args = server_command()
    params = StdioServerParameters(command=command, args=[*args, "--read-only"], env=env)
    async with Client(stdio_client(params)) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == rest


async def test_discovery_mode_applies_the_same_scopes(tmp_path: Path, upstream_server: FakeUpstream) -> None:
    env = make_env(tmp_path, upstream_server)
    tokens = add_clients(ClientsFile(tmp_path / "vault" / "clients.json"))
    server = start_http_server(env, tmp_path / "server.log", "--discovery")
    try:
        async with connect(server.url, tokens["tenant"], "modern") as client:
            found = await client.call_tool("search_tools", {"query": "create item", "limit": 50})
            assert found.structured_content is not None
            names = {t["name"] for t in found.structured_content["tools"]}
            assert names and names <= ECHO_READ
            assert found.structured_content["total_tools"] == len(ECHO_READ)
            described = error_body(await client.call_tool("describe_tool", {"name": "echo_create_item"}))
            assert described["error_code"] == "FORBIDDEN"
            called = error_body(await client.call_tool("call_tool", {"name": "echo_create_item", "arguments": {}}))
            assert called["error_code"] == "FORBIDDEN"
            assert error_body(await client.call_tool("call_tool", {"name": "nope_nope"}))["error_code"] == "FORBIDDEN"
            ok = await client.call_tool("call_tool", {"name": "echo_get_item", "arguments": {"item_id": "1"}})
            assert not ok.is_error, text_of(ok)
        async with connect(server.url, tokens["admin"], "modern") as client:
            unknown = error_body(await client.call_tool("describe_tool", {"name": "nope_nope"}))
            assert unknown["error_code"] == "INVALID_ARGUMENTS"  # tools:* may know what does not exist
    finally:
        stop_process(server.process)
