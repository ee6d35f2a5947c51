"""DNS rebinding: a matrix of Host and Origin values against every route of two real servers.

One server binds 127.0.0.1; the other binds 0.0.0.0 with `--allow-host mcp.example.com` and
`--allow-origin https://app.example.com`. Each Host value (foreign names, IPv6 literals, other
spellings of loopback, mixed case, a trailing dot, with and without a port, malformed) and each
Origin value (foreign, `null`, other schemes, userinfo or a path, loopback spellings) is sent to
every route: refused with 421 (Host) or 403 (Origin) and the REST error body before any route runs,
or let through to the route, which then answers as it would (never 421/403, never a 5xx).

Only names are compared — case-insensitively — so other spellings of a loopback address
(`[::ffff:127.0.0.1]`, `[0:0:0:0:0:0:0:1]`, `localhost.`) are refused like any unknown name: no
browser produces them for a loopback URL, so only a crafted request carries them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._upstream import FakeUpstream
from tests._wire_client import WireResponse, exchange, is_rest_error, port_of, wire_server_env
from tests.conftest import ServerProcess, start_http_server, stop_process

PING = b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}'
JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
# Every route, with a request it would serve (or refuse for its own reasons) if Host and Origin passed.
ROUTES: list[tuple[str, str, dict[str, str], bytes]] = [
    ("POST", "/mcp", JSON, PING),
    ("GET", "/mcp", {"Accept": "text/event-stream"}, b""),
    ("DELETE", "/mcp", {"Mcp-Session-Id": "0" * 32}, b""),
    ("GET", "/sse", {"Accept": "text/event-stream"}, b""),
    ("POST", "/messages/?session_id=" + "0" * 32, JSON, PING),
    ("GET", "/v1/meta", {}, b""),
    ("POST", "/v1/handshake", JSON, b'{"client": {"name": "x", "version": "1"}}'),
    ("GET", "/v1/tools", {}, b""),
    ("POST", "/v1/invoke", JSON, b'{"tool": "echo_empty"}'),
    ("GET", "/v1/openapi.json", {}, b""),
    ("GET", "/v1/status", {}, b""),
    ("GET", "/health", {}, b""),
    ("GET", "/ready", {}, b""),
    ("GET", "/metrics", {}, b""),
    ("GET", "/no/such/route", {}, b""),
]

ALLOWED, HOST_REFUSED, ORIGIN_REFUSED = "allowed", "421", "403"


def host_cases(public: bool) -> list[tuple[str, str]]:
    """(Host header with {port} for the server's port, expected outcome)."""
    loopback_ok = [
        "127.0.0.1:{port}",
        "127.0.0.1",
        "localhost:{port}",
        "localhost",
        "LOCALHOST:{port}",
        "LocalHost",
        "[::1]:{port}",
        "[::1]",
        "127.0.0.1:80",  # another port on an allowed name: the name is what is checked
    ]
    refused = [
        "evil.example",
        "evil.example:{port}",
        "EVIL.Example:{port}",
        "evil.example.:{port}",
        "localhost.:{port}",  # trailing dot
        "localhost.",
        "127.0.0.1.:{port}",
        "localhost.evil.example:{port}",
        "127.0.0.1.nip.io:{port}",
        "[::ffff:127.0.0.1]:{port}",  # IPv4-mapped loopback
        "[::ffff:7f00:1]",
        "[0:0:0:0:0:0:0:1]:{port}",
        "[::2]:{port}",
        "0.0.0.0:{port}",
        "[::]:{port}",
        "127.0.0.2:{port}",
        "192.0.2.10:{port}",  # an address of this machine on a LAN, say
        "app.example.com:{port}",
        "localhost:{port}@evil.example",
        "user@localhost:{port}",
        "evil.example#@localhost",
        "localhost/evil",
        "localhost:",
        "localhost:99999",
        "[::1",
        "",
    ]
    public_names = ["mcp.example.com:{port}", "mcp.example.com", "MCP.Example.COM:{port}"]
    cases = [(host, ALLOWED) for host in loopback_ok] + [(host, HOST_REFUSED) for host in refused]
    cases += [(host, ALLOWED if public else HOST_REFUSED) for host in public_names]
    cases += [("mcp.example.com.:{port}", HOST_REFUSED), ("mcp.example.com.evil.example", HOST_REFUSED)]
    return cases


def origin_cases(public: bool) -> list[tuple[str | None, str]]:
    allowed: list[str | None] = [
        None,
        "http://localhost:5173",
        "http://localhost:5173/",
        "HTTP://LOCALHOST:5173",
        "http://127.0.0.1:{port}",
        "https://127.0.0.1",
        "http://[::1]:3000",
    ]
    refused = [
        "null",
        "NULL",
        "",
        "https://evil.example",
        "http://evil.example:{port}",
        "http://localhost.evil.example",
        "http://localhost.:5173",
        "http://127.0.0.1.:{port}",
        "http://[::ffff:127.0.0.1]:3000",
        "http://0.0.0.0:{port}",
        "file://localhost",
        "file://",
        "chrome-extension://abcdefghijklmnop",
        "ws://localhost:5173",
        "http://user@localhost:5173",
        "http://evil.example@localhost:5173",
        "http://localhost:5173/path",
        "http://localhost:5173?q=1",
        "http://[::1",
        "http://app.example.com",
        "https://app.example.com.evil.example",
        "https://app.example.com:8443",
    ]
    cases = [(origin, ALLOWED) for origin in allowed] + [(origin, ORIGIN_REFUSED) for origin in refused]
    cases += [("https://app.example.com", ALLOWED if public else ORIGIN_REFUSED)]
    cases += [("https://APP.example.com/", ALLOWED if public else ORIGIN_REFUSED)]
    cases += [("https://mcp.example.com", ALLOWED if public else ORIGIN_REFUSED)]  # an allowed host's own origin
    return cases


def start_public(env: dict[str, str], log: Path, *extra: str) -> ServerProcess:
    """A 0.0.0.0 server; with --allow-unauthenticated when the build insists on it for a public bind."""
    args = ("--host", "0.0.0.0", "--allow-host", "mcp.example.com", "--allow-origin", "https://app.example.com")
    try:
        return start_http_server(env, log, *args, *extra)
    except RuntimeError as exc:
        if "--allow-unauthenticated" not in str(exc):
            raise
        return start_http_server(env, log, *args, "--allow-unauthenticated", *extra)


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, upstream_server: FakeUpstream
) -> Iterator[dict[str, ServerProcess]]:
    base = tmp_path_factory.mktemp("rebinding")
    env = wire_server_env(base, upstream_server.url)
    loopback = start_http_server(env, base / "loopback.log")
    try:
        public = start_public(env, base / "public.log")
    except BaseException:
        stop_process(loopback.process)
        raise
    yield {"loopback": loopback, "public": public}
    stop_process(public.process)
    stop_process(loopback.process)


def judge(response: WireResponse, expected: str) -> str | None:
    """None when the answer is what `expected` says; otherwise what went wrong."""
    if expected == ALLOWED:
        if response.status in (421, 403) or response.status >= 500:
            return f"{response.status} {response.body[:120]!r}"
        return None
    if str(response.status) != expected:
        return f"{response.status} (expected {expected}) {response.body[:120]!r}"
    body = json.loads(response.body)
    if not is_rest_error(body) or body["error"] != ("bad_request" if expected == HOST_REFUSED else "forbidden"):
        return f"body {body}"
    return None


def run_matrix(server: ServerProcess, host: str | None, origin: str | None, expected: str) -> list[str]:
    port = port_of(server.url)
    problems: list[str] = []
    for method, path, headers, body in ROUTES:
        sent = dict(headers)
        if origin is not None:
            sent["Origin"] = origin.format(port=port)
        response = exchange(port, method, path, sent, body, host=None if host is None else host.format(port=port))
        problem = judge(response, expected)
        if problem:
            problems.append(f"{method} {path}: {problem}")
    return problems


@pytest.mark.parametrize("kind", ["loopback", "public"])
def test_host_matrix_on_every_route(servers: dict[str, ServerProcess], kind: str) -> None:
    server = servers[kind]
    failures: dict[str, list[str]] = {}
    for host, expected in host_cases(kind == "public"):
        problems = run_matrix(server, host, None, expected)
        if problems:
            failures[f"Host {host!r} ({expected})"] = problems
    assert not failures, json.dumps(failures, indent=1)


@pytest.mark.parametrize("kind", ["loopback", "public"])
def test_origin_matrix_on_every_route(servers: dict[str, ServerProcess], kind: str) -> None:
    server = servers[kind]
    host = "mcp.example.com:{port}" if kind == "public" else "localhost:{port}"
    failures: dict[str, list[str]] = {}
    for origin, expected in origin_cases(kind == "public"):
        problems = run_matrix(server, host, origin, expected)
        if problems:
            failures[f"Origin {origin!r} ({expected})"] = problems
    assert not failures, json.dumps(failures, indent=1)


@pytest.mark.parametrize("kind", ["loopback", "public"])
def test_host_is_checked_before_origin(servers: dict[str, ServerProcess], kind: str) -> None:
    """A foreign Host is 421 whatever the Origin; a good Host with a foreign Origin is 403."""
    server = servers[kind]
    assert not run_matrix(server, "evil.example", "http://localhost:5173", HOST_REFUSED)
    assert not run_matrix(server, "evil.example", "https://evil.example", HOST_REFUSED)
    assert not run_matrix(server, "localhost:{port}", "https://evil.example", ORIGIN_REFUSED)


def test_missing_host_is_refused(servers: dict[str, ServerProcess]) -> None:
    """HTTP/1.1 without Host is refused by the HTTP parser (400); the guard never sees a Host-less request then."""
    for server in servers.values():
        response = exchange(port_of(server.url), "GET", "/health", host=None)
        assert response.status in (400, 421), response.status


def test_refusals_never_reach_a_route(servers: dict[str, ServerProcess]) -> None:
    """A refused invoke is not a tool call: /metrics counts no call for it."""
    server = servers["loopback"]
    port = port_of(server.url)
    body = b'{"tool": "echo_empty"}'

    def calls() -> str:
        metrics = exchange(port, "GET", "/metrics").body.decode()
        return "".join(line for line in metrics.splitlines() if line.startswith("mcp_connectors_tool_calls_total"))

    before = calls()
    for _ in range(3):
        assert exchange(port, "POST", "/v1/invoke", JSON, body, host="evil.example").status == 421
        assert exchange(port, "POST", "/v1/invoke", {**JSON, "Origin": "null"}, body).status == 403
    assert calls() == before
