"""`HostOriginGuard` (DNS-rebinding protection): as an ASGI unit, and in front of real server processes."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from mcp_server._security import HostOriginGuard
from mcp_server._vault import Vault
from tests.conftest import PASSPHRASE, SECRET, ServerProcess, start_http_server, stop_process

# Host values no parser should choke on; each is refused with 421, never a 500.
UNPARSEABLE_HOSTS = ["[::1", "a:b:c", "host:port", "localhost:99999", "localhost:-1", "[not-an-ip]:80", ":80"]
# Origin values that cannot be parsed as URLs; each is refused with 403, never a 500.
UNPARSEABLE_ORIGINS = ["http://[::1", "http://[localhost]:5173", "https://[::1]:99999x"]


# ------------------------------------------------------------------ unit: the guard as an ASGI app


class Inner:
    """The app behind the guard: answers 200 and remembers that it was reached."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"inner"})


async def call_guard(guard: HostOriginGuard, headers: dict[str, str], scope_type: str = "http") -> tuple[int, Any]:
    scope: Scope = {
        "type": scope_type,
        "method": "GET",
        "path": "/health",
        "raw_path": b"/health",
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await guard(scope, receive, send)
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return status, (json.loads(body) if body.startswith(b"{") else body.decode())


def make_guard(
    bind_host: str = "127.0.0.1", hosts: tuple[str, ...] = (), origins: tuple[str, ...] = ()
) -> tuple[HostOriginGuard, Inner]:
    inner = Inner()
    return HostOriginGuard(inner, bind_host=bind_host, extra_hosts=hosts, extra_origins=origins), inner


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "127.0.0.1", "LOCALHOST:1", "[::1]"]
)
async def test_unit_loopback_hosts_pass(host: str) -> None:
    guard, inner = make_guard()
    assert await call_guard(guard, {"host": host}) == (200, "inner")
    assert inner.calls == 1


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example", "127.0.0.2:8765"])
async def test_unit_foreign_host_is_421(host: str) -> None:
    guard, inner = make_guard()
    status, body = await call_guard(guard, {"host": host})
    assert status == 421
    assert body["error"] == "bad_request" and "Host" in body["message"]
    assert inner.calls == 0


async def test_unit_missing_host_is_421() -> None:
    guard, inner = make_guard()
    assert (await call_guard(guard, {}))[0] == 421
    assert (await call_guard(guard, {"host": ""}))[0] == 421
    assert inner.calls == 0


@pytest.mark.parametrize("host", UNPARSEABLE_HOSTS)
async def test_unit_unparseable_host_is_421(host: str) -> None:
    guard, inner = make_guard()
    assert (await call_guard(guard, {"host": host}))[0] == 421
    assert inner.calls == 0


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("http://localhost:5173", 200),
        ("https://127.0.0.1", 200),
        ("http://[::1]:3000", 200),
        ("HTTP://LOCALHOST:5173/", 200),
        ("https://evil.example", 403),
        ("http://localhost.evil.example", 403),
        ("null", 403),
        ("file://localhost", 403),
        ("", 403),
        *((origin, 403) for origin in UNPARSEABLE_ORIGINS),
    ],
)
async def test_unit_origin(origin: str, status: int) -> None:
    guard, inner = make_guard()
    result, body = await call_guard(guard, {"host": "localhost:8765", "origin": origin})
    assert result == status
    if status == 403:
        assert body["error"] == "forbidden"
        assert inner.calls == 0


async def test_unit_absent_origin_passes() -> None:
    guard, _ = make_guard()
    assert (await call_guard(guard, {"host": "localhost:8765"}))[0] == 200


async def test_unit_extra_hosts_and_origins() -> None:
    guard, _ = make_guard("0.0.0.0", hosts=("MCP.example.com",), origins=("https://App.example.com/",))
    assert (await call_guard(guard, {"host": "mcp.example.com:443"}))[0] == 200
    assert (await call_guard(guard, {"host": "mcp.example.com", "origin": "https://app.example.com"}))[0] == 200
    # An allowed host name makes its own http(s) origins acceptable too.
    assert (await call_guard(guard, {"host": "mcp.example.com", "origin": "https://mcp.example.com"}))[0] == 200
    assert (await call_guard(guard, {"host": "mcp.example.com", "origin": "https://other.example.com"}))[0] == 403
    # A wildcard bind does not make every Host acceptable, nor the wildcard address itself.
    assert (await call_guard(guard, {"host": "0.0.0.0:8765"}))[0] == 421
    assert (await call_guard(guard, {"host": "evil.example"}))[0] == 421


async def test_unit_specific_bind_host_is_allowed() -> None:
    guard, _ = make_guard("192.0.2.10")
    assert (await call_guard(guard, {"host": "192.0.2.10:8765"}))[0] == 200
    assert (await call_guard(guard, {"host": "192.0.2.11:8765"}))[0] == 421


async def test_unit_lifespan_passes_through() -> None:
    guard, inner = make_guard()
    await call_guard(guard, {}, scope_type="lifespan")
    assert inner.calls == 1


# ------------------------------------------------------------------ real server processes


def raw_request(
    url: str, host: str | None, origin: str | None = None, method: str = "GET", path: str = "/health", body: bytes = b""
) -> tuple[int, bytes]:
    """One HTTP/1.1 request with exactly these Host/Origin headers (or none), over a plain socket to the server."""
    port = int(url.rsplit(":", 1)[1])
    lines = [f"{method} {path} HTTP/1.1" if host is not None else f"{method} {path} HTTP/1.0"]
    if host is not None:
        lines.append(f"Host: {host}")
    if origin is not None:
        lines.append(f"Origin: {origin}")
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += ["Connection: close", "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall("\r\n".join(lines).encode("latin-1") + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """A loopback server and a 0.0.0.0 server with an extra host and origin, shared by the module."""
    base = tmp_path_factory.mktemp("security")
    tools = base / "tools"
    tools.mkdir()
    env = dict(os.environ)
    env.update(
        {
            "MCP_CONNECTORS_VAULT": str(base / "vault.json"),
            "MCP_CONNECTORS_VAULT_KEY": PASSPHRASE,
            "MCP_CONNECTORS_TOOLS": str(tools),
            "PYTHONUNBUFFERED": "1",
        }
    )
    Vault(base / "vault.json", passphrase=PASSPHRASE, use_keyring=False).set("echo_token", SECRET)
    loopback = start_http_server(env, base / "loopback.log")
    try:
        public = start_http_server(
            env,
            base / "public.log",
            "--host",
            "0.0.0.0",
            "--allow-unauthenticated",  # a non-loopback bind with no clients file refuses to start otherwise
            "--allow-host",
            "mcp.example.com",
            "--allow-origin",
            "https://app.example.com",
        )
    except BaseException:
        stop_process(loopback.process)
        raise
    yield loopback, public
    stop_process(public.process)
    stop_process(loopback.process)


def port_of(server: ServerProcess) -> int:
    return int(server.url.rsplit(":", 1)[1])


def test_loopback_server_hosts(servers: tuple[ServerProcess, ServerProcess]) -> None:
    server, _ = servers
    port = port_of(server)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        assert raw_request(server.url, host)[0] == 200, host
    for host in ("evil.example", f"evil.example:{port}", f"mcp.example.com:{port}"):
        status, body = raw_request(server.url, host)
        assert status == 421, host
        assert json.loads(body)["error"] == "bad_request"


def test_loopback_server_missing_host(servers: tuple[ServerProcess, ServerProcess]) -> None:
    server, _ = servers
    # HTTP/1.0 may omit Host; the guard refuses it (HTTP/1.1 without Host is refused by the HTTP parser itself).
    assert raw_request(server.url, None)[0] == 421


def test_loopback_server_unparseable_hosts(servers: tuple[ServerProcess, ServerProcess]) -> None:
    server, _ = servers
    for host in UNPARSEABLE_HOSTS:
        assert raw_request(server.url, host)[0] == 421, host
    for origin in UNPARSEABLE_ORIGINS:
        assert raw_request(server.url, "localhost", origin)[0] == 403, origin


def test_loopback_server_origins(servers: tuple[ServerProcess, ServerProcess]) -> None:
    server, _ = servers
    host = f"127.0.0.1:{port_of(server)}"
    assert raw_request(server.url, host)[0] == 200
    assert raw_request(server.url, host, "http://localhost:5173")[0] == 200
    for origin in ("https://evil.example", "null", "https://app.example.com"):
        status, body = raw_request(server.url, host, origin)
        assert status == 403, origin
        assert json.loads(body)["error"] == "forbidden"


def test_every_route_is_guarded(servers: tuple[ServerProcess, ServerProcess]) -> None:
    server, _ = servers
    invoke = json.dumps({"tool": "nothing_here", "parameters": {}}).encode()
    for method, path, body in [
        ("GET", "/health", b""),
        ("GET", "/metrics", b""),
        ("GET", "/v1/meta", b""),
        ("GET", "/v1/tools", b""),
        ("POST", "/v1/invoke", invoke),
        ("POST", "/v1/handshake", b"{}"),
        ("POST", "/mcp", b"{}"),
        ("GET", "/sse", b""),
        ("POST", "/messages/?session_id=x", b"{}"),
        ("GET", "/no/such/route", b""),
    ]:
        assert raw_request(server.url, "evil.example", None, method, path, body)[0] == 421, path
        assert raw_request(server.url, "localhost", "https://evil.example", method, path, body)[0] == 403, path


def test_public_server_extra_host_and_origin(servers: tuple[ServerProcess, ServerProcess]) -> None:
    _, server = servers
    port = port_of(server)
    for host in (f"mcp.example.com:{port}", "mcp.example.com", f"127.0.0.1:{port}", f"localhost:{port}"):
        assert raw_request(server.url, host)[0] == 200, host
    assert raw_request(server.url, f"mcp.example.com:{port}", "https://app.example.com")[0] == 200
    for host in ("evil.example", f"0.0.0.0:{port}", f"app.example.com:{port}", "[::1"):
        assert raw_request(server.url, host)[0] == 421, host
    for origin in ("https://evil.example", "null", "http://app.example.com", "https://app.example.com.evil.example"):
        assert raw_request(server.url, f"mcp.example.com:{port}", origin)[0] == 403, origin
