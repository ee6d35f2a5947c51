"""Bad input on the wire: `WireGuard` as an ASGI unit, then every endpoint of a real server process.

Malformed JSON, wrong content types, oversized and slow bodies, unknown sessions, wrong methods:
each gets the right 4xx with a JSON body (a JSON-RPC error object on /mcp and /messages/, the REST
error shape elsewhere), never a 500, never a hang, and valid traffic afterwards still works.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from starlette.types import Message, Receive, Scope, Send

from mcp_server._wire import MCP_MAX_BODY_BYTES, WireGuard
from tests._upstream import FakeUpstream
from tests._wire_client import (
    SseSession,
    WireResponse,
    exchange,
    is_jsonrpc_error,
    is_rest_error,
    port_of,
    wire_server_env,
)
from tests.conftest import ServerProcess, start_http_server, stop_process

# ------------------------------------------------------------------ unit: the guard as an ASGI app


class Inner:
    """The app behind the guard: records the body it read, answers with what it was told to."""

    def __init__(
        self, status: int = 200, content_type: bytes | None = b"application/json", body: bytes = b"{}"
    ) -> None:
        self.status, self.content_type, self.body = status, content_type, body
        self.calls = 0
        self.received = b""
        self.after_body: Message | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        while True:
            message = await receive()
            self.received += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = [(b"allow", b"POST")]
        if self.content_type is not None:
            headers.append((b"content-type", self.content_type))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def http_scope(path: str = "/mcp", method: str = "POST", headers: dict[str, str] | None = None) -> Scope:
    sent = {"content-type": "application/json", **(headers or {})}
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in sent.items()],
    }


async def run_guard(
    guard: WireGuard, scope: Scope, chunks: list[bytes], *, stall: bool = False, disconnect: bool = False
) -> tuple[int | None, dict[bytes, bytes], bytes, int]:
    """Feed `chunks` as the body; then stall forever, disconnect, or end. (status, headers, body, receive calls)."""
    queue = list(chunks) or ([] if stall or disconnect else [b""])
    calls = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal calls
        calls += 1
        if queue:
            chunk = queue.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(queue) or stall or disconnect}
        if disconnect:
            return {"type": "http.disconnect"}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    with anyio.fail_after(10):
        await guard(scope, receive, send)
    if not sent:
        return None, {}, b"", calls
    start = sent[0]
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:]), calls


async def test_unit_body_is_replayed_whole() -> None:
    inner = Inner()
    guard = WireGuard(inner)
    status, _, body, _ = await run_guard(guard, http_scope(headers={"content-length": "6"}), [b"{", b'"a"', b"}  "])
    assert status == 200 and body == b"{}"
    assert inner.received == b'{"a"}  '


async def test_unit_slow_body_is_408_json() -> None:
    inner = Inner()
    guard = WireGuard(inner, body_timeout=0.2)
    started = time.monotonic()
    status, headers, body, _ = await run_guard(
        guard, http_scope("/v1/invoke", headers={"content-length": "100"}), [b"{"], stall=True
    )
    assert time.monotonic() - started < 5
    assert status == 408 and headers[b"connection"] == b"close"
    assert is_rest_error(json.loads(body)) and inner.calls == 0
    status, _, body, _ = await run_guard(guard, http_scope("/mcp", headers={"content-length": "100"}), [], stall=True)
    assert status == 408 and is_jsonrpc_error(json.loads(body))


async def test_unit_disconnect_mid_body_answers_nothing() -> None:
    inner = Inner()
    guard = WireGuard(inner)
    status, _, _, _ = await run_guard(guard, http_scope(headers={"content-length": "100"}), [b"{"], disconnect=True)
    assert status is None and inner.calls == 0


async def test_unit_oversized_streamed_body_is_drained_then_413() -> None:
    inner = Inner()
    guard = WireGuard(inner, mcp_max_bytes=10, drain_bytes=100)
    chunks = [b"x" * 8, b"x" * 8, b"x" * 8]
    status, headers, body, calls = await run_guard(guard, http_scope(headers={"transfer-encoding": "chunked"}), chunks)
    assert status == 413 and headers[b"connection"] == b"close"
    assert json.loads(body)["error"]["message"].startswith("Request body too large")
    assert calls == 3 and inner.calls == 0  # the whole (small) excess was read, so the client sees the answer


async def test_unit_oversized_body_past_the_drain_stops_reading() -> None:
    guard = WireGuard(Inner(), mcp_max_bytes=10, drain_bytes=16)
    status, _, _, calls = await run_guard(guard, http_scope(headers={"transfer-encoding": "chunked"}), [b"x" * 8] * 50)
    assert status == 413 and calls < 10


@pytest.mark.parametrize("expect", [True, False])
async def test_unit_declared_oversize_is_refused_without_reading(expect: bool) -> None:
    inner = Inner()
    guard = WireGuard(inner, rest_max_bytes=10, drain_bytes=100)
    headers = {"content-length": "1000000"}
    if expect:
        headers["expect"] = "100-continue"
    status, _, body, calls = await run_guard(guard, http_scope("/v1/invoke", headers=headers), [b"x"])
    assert status == 413 and calls == 0 and inner.calls == 0
    assert is_rest_error(json.loads(body))
    if expect:  # even a small excess: a client waiting for 100-continue has sent nothing yet
        small = {"content-length": "20", "expect": "100-continue"}
        assert (await run_guard(guard, http_scope("/v1/invoke", headers=small), [b"x" * 20]))[3] == 0


async def test_unit_mcp_content_type_is_415() -> None:
    inner = Inner()
    guard = WireGuard(inner)
    for content_type in ("text/plain", "", "application/jsonx", "multipart/form-data"):
        status, _, body, _ = await run_guard(guard, http_scope(headers={"content-type": content_type}), [b"{}"])
        assert status == 415 and is_jsonrpc_error(json.loads(body)), content_type
    assert inner.calls == 0
    scope = http_scope(headers={"content-type": "Application/JSON; charset=utf-8", "content-length": "2"})
    status, _, _, _ = await run_guard(guard, scope, [b"{}"])
    assert status == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{bad", -32700),
        (b"\xff\xfe\x00", -32700),
        (b"[" * 500 + b"]" * 500, -32700),
        (b"{}", -32600),
        (b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', -32600),
        (b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}', -32600),
    ],
)
async def test_unit_messages_body_is_one_jsonrpc_message(body: bytes, code: int) -> None:
    inner = Inner(202, b"text/plain", b"Accepted")
    guard = WireGuard(inner)
    scope = http_scope("/messages/", headers={"content-length": str(len(body))})
    status, _, answer, _ = await run_guard(guard, scope, [body])
    assert status == 400 and json.loads(answer)["error"]["code"] == code and inner.calls == 0
    valid = b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}'
    scope = http_scope("/messages/", headers={"content-length": str(len(valid))})
    assert await run_guard(guard, scope, [valid]) == (
        202,
        {b"allow": b"POST", b"content-type": b"text/plain"},
        b"Accepted",
        1,
    )


@pytest.mark.parametrize("path", ["/mcp", "/messages/"])
@pytest.mark.parametrize(
    ("request_id", "method", "refused"),
    [
        (True, "ping", True),
        (2.0, "ping", True),
        ({"a": 1}, "ping", True),
        ([1], "tools/list", True),
        (None, "ping", True),
        (None, "notifications/initialized", False),
        (7, "ping", False),
        ("seven", "ping", False),
        (10**30, "ping", False),
    ],
)
async def test_unit_request_ids_must_be_strings_or_integers(
    path: str, request_id: object, method: str, refused: bool
) -> None:
    """A request with any other id would be taken for a notification by the SDK and never answered."""
    inner = Inner(202, b"text/plain", b"Accepted")
    body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method}).encode()
    scope = http_scope(path, headers={"content-length": str(len(body))})
    status, _, answer, _ = await run_guard(WireGuard(inner), scope, [body])
    if refused:
        assert status == 400 and inner.calls == 0
        decoded = json.loads(answer)
        assert decoded["error"]["code"] == -32600 and decoded["id"] is None
    else:
        assert status == 202 and inner.received == body


@pytest.mark.parametrize("path", ["/mcp", "/messages/"])
@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": [], "result": {}},  # found by the fuzz
        {"jsonrpc": "2.0", "id": 1, "method": "ping", "error": {"code": 1, "message": "x"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized", "result": {}},
    ],
)
async def test_unit_method_with_result_is_refused(path: str, message: dict[str, object]) -> None:
    """The SDK would take it for a response (or a notification) and never answer the request."""
    inner = Inner(202, b"text/plain", b"Accepted")
    body = json.dumps(message).encode()
    status, _, answer, _ = await run_guard(
        WireGuard(inner), http_scope(path, headers={"content-length": str(len(body))}), [body]
    )
    assert status == 400 and json.loads(answer)["error"]["code"] == -32600 and inner.calls == 0


@pytest.mark.parametrize(
    ("path", "status", "content_type", "body", "message"),
    [
        ("/messages/", 404, b"text/plain", b"Could not find session", "Could not find session"),
        ("/messages/", 405, None, b"", "Method Not Allowed"),
        ("/mcp", 406, None, b"", "Not Acceptable"),
        ("/mcp", 400, b"text/plain", b"\x00\x01binary", "Bad Request"),
        ("/v1/tools", 404, b"text/html", b"<h1>nope</h1>", "<h1>nope</h1>"),
        ("/v1/tools", 499, None, b"", "Error"),
    ],
)
async def test_unit_non_json_errors_become_json(
    path: str, status: int, content_type: bytes | None, body: bytes, message: str
) -> None:
    guard = WireGuard(Inner(status, content_type, body))
    got, headers, answer, _ = await run_guard(guard, http_scope(path, method="GET"), [])
    assert got == status and headers[b"content-type"] == b"application/json"
    assert headers[b"allow"] == b"POST"  # other headers survive
    assert int(headers[b"content-length"]) == len(answer)
    decoded = json.loads(answer)
    if path == "/v1/tools":
        assert is_rest_error(decoded) and decoded["message"] == message
    else:
        assert is_jsonrpc_error(decoded) and decoded["error"]["message"] == message


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [(200, b"text/event-stream", b"event: x\r\n\r\n"), (202, b"text/plain", b"Accepted"), (200, b"text/plain", b"ok")],
)
async def test_unit_success_passes_untouched(status: int, content_type: bytes, body: bytes) -> None:
    guard = WireGuard(Inner(status, content_type, body))
    got, headers, answer, _ = await run_guard(guard, http_scope("/mcp", method="GET"), [])
    assert (got, headers[b"content-type"], answer) == (status, content_type, body)


async def test_unit_other_scopes_pass_through() -> None:
    calls: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope["type"])

    async def receive() -> Message:
        raise AssertionError("not read")

    async def send(message: Message) -> None:
        raise AssertionError("nothing sent")

    await WireGuard(app)({"type": "lifespan"}, receive, send)
    assert calls == ["lifespan"]


def test_unit_settings_are_checked() -> None:
    for kwargs in ({"mcp_max_bytes": 0}, {"body_timeout": 0.0}, {"body_timeout": float("inf")}, {"drain_bytes": -1}):
        with pytest.raises(ValueError):
            WireGuard(Inner(), **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ a real server process


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream_server: FakeUpstream) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("wire")
    process = start_http_server(wire_server_env(base, upstream_server.url), base / "server.log")
    yield process
    stop_process(process.process)


ACCEPT_BOTH = "application/json, text/event-stream"
JSON = {"Content-Type": "application/json", "Accept": ACCEPT_BOTH}
MODERN = {**JSON, "MCP-Protocol-Version": "2026-07-28"}
PING = b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}'
UNKNOWN_SESSION = "0123456789abcdef0123456789abcdef"


def assert_json_error(response: WireResponse, status: int, *, mcp: bool) -> Any:
    assert response.status == status, (response.status, response.body[:300])
    assert response.content_type == "application/json", response.headers
    body = response.json()
    assert is_jsonrpc_error(body) if mcp else is_rest_error(body), body
    return body


def assert_alive(server: ServerProcess) -> None:
    """The server still answers a valid MCP call and a valid REST call."""
    port = port_of(server.url)
    listing = exchange(port, "POST", "/mcp", {**MODERN, "Mcp-Method": "tools/list"}, tools_list_modern())
    assert listing.status == 200 and listing.json()["result"]["tools"], listing.body[:300]
    assert httpx2.get(f"{server.url}/v1/meta", timeout=10).status_code == 200


def tools_list_modern(request_id: int = 7) -> bytes:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/list", "params": {"_meta": meta}}).encode()


NESTED = b"[" * 100_000 + b"]" * 100_000
HUGE_INT = b"9" * 5000

# (method, path, headers, body, status): every MCP endpoint, both eras where they differ.
MCP_CASES: list[tuple[str, str, dict[str, str], bytes, int]] = [
    ("POST", "/mcp", {**JSON, "Content-Type": "text/plain"}, PING, 415),
    ("POST", "/mcp", {**MODERN, "Content-Type": "application/x-www-form-urlencoded"}, PING, 415),
    ("POST", "/mcp", {"Accept": ACCEPT_BOTH}, PING, 415),
    ("POST", "/mcp", JSON, b"{not json", 400),
    ("POST", "/mcp", MODERN, b"{not json", 400),
    ("POST", "/mcp", JSON, b"\xff\xfe\xfd\x00garbage", 400),
    ("POST", "/mcp", MODERN, b"\xff\xfe\xfd\x00garbage", 400),
    ("POST", "/mcp", JSON, b"", 400),
    ("POST", "/mcp", MODERN, b"", 400),
    ("POST", "/mcp", JSON, NESTED, 400),
    ("POST", "/mcp", MODERN, NESTED, 400),
    ("POST", "/mcp", JSON, b'{"jsonrpc": "2.0", "id": ' + HUGE_INT + b', "method": "ping"}', 400),
    ("POST", "/mcp", MODERN, b'{"jsonrpc": "2.0", "id": ' + HUGE_INT + b', "method": "ping"}', 400),
    ("POST", "/mcp", JSON, b"[" + PING + b"]", 400),
    ("POST", "/mcp", MODERN, b"[" + PING + b"]", 400),
    ("POST", "/mcp", MODERN, b'{"jsonrpc": "2.0", "id": 1, "method": "no/such/method"}', 400),
    ("POST", "/mcp", {**JSON, "MCP-Protocol-Version": "1999-01-01"}, PING, 400),
    ("POST", "/mcp", {**JSON, "Accept": "text/html"}, PING, 406),
    ("POST", "/mcp", {**MODERN, "Accept": "text/html"}, PING, 406),
    ("POST", "/mcp", {**JSON, "Mcp-Session-Id": UNKNOWN_SESSION}, PING, 404),
    ("GET", "/mcp", {"Accept": "text/event-stream", "Mcp-Session-Id": UNKNOWN_SESSION}, b"", 404),
    ("GET", "/mcp", {"Accept": "text/event-stream"}, b"", 400),
    ("GET", "/mcp", {"Accept": "text/event-stream", "MCP-Protocol-Version": "2026-07-28"}, b"", 405),
    ("DELETE", "/mcp", {"Mcp-Session-Id": UNKNOWN_SESSION}, b"", 404),
    ("DELETE", "/mcp", {}, b"", 400),
    ("DELETE", "/mcp", {"MCP-Protocol-Version": "2026-07-28"}, b"", 405),
    ("PUT", "/mcp", JSON, PING, 405),
    ("PATCH", "/mcp", JSON, PING, 405),
    ("POST", "/messages/", JSON, PING, 400),
    ("POST", "/messages/?session_id=not-a-uuid", JSON, PING, 400),
    ("POST", f"/messages/?session_id={UNKNOWN_SESSION}", JSON, PING, 404),
    ("POST", f"/messages/?session_id={UNKNOWN_SESSION}", {"Content-Type": "text/plain"}, PING, 415),
    ("POST", f"/messages/?session_id={UNKNOWN_SESSION}", JSON, b"{not json", 400),
    ("POST", f"/messages/?session_id={UNKNOWN_SESSION}", JSON, NESTED, 400),
    ("POST", f"/messages/?session_id={UNKNOWN_SESSION}", JSON, b"", 400),
    ("GET", f"/messages/?session_id={UNKNOWN_SESSION}", {}, b"", 405),
    ("DELETE", "/messages/", {}, b"", 405),
]


@pytest.mark.parametrize(("method", "path", "headers", "body", "status"), MCP_CASES)
def test_mcp_endpoints_answer_bad_input_with_json(
    server: ServerProcess, method: str, path: str, headers: dict[str, str], body: bytes, status: int
) -> None:
    response = exchange(port_of(server.url), method, path, headers, body)
    assert_json_error(response, status, mcp=True)


REST_CASES: list[tuple[str, str, dict[str, str], bytes, int]] = [
    ("POST", "/v1/invoke", {"Content-Type": "application/json"}, b"{not json", 400),
    ("POST", "/v1/invoke", {"Content-Type": "application/json"}, b"\xff\xfe\xfd", 400),
    ("POST", "/v1/invoke", {"Content-Type": "application/json"}, NESTED, 400),
    (
        "POST",
        "/v1/invoke",
        {"Content-Type": "application/json"},
        b'{"tool": "echo_empty", "n": ' + HUGE_INT + b"}",
        400,
    ),
    ("POST", "/v1/invoke", {"Content-Type": "application/json"}, b'{"tool": "echo_empty", "parameters": 0}', 400),
    ("POST", "/v1/invoke", {"Content-Type": "application/json"}, b'{"tool": "echo_empty", "parameters": false}', 400),
    ("POST", "/v1/invoke", {"Content-Type": "application/json"}, b'{"tool": "echo_empty", "parameters": []}', 400),
    ("POST", "/v1/invoke", {"Content-Type": "text/plain"}, b'{"tool": "echo_empty"}', 415),
    ("POST", "/v1/invoke", {"Content-Type": "application/json"}, b'{"tool": "no_such_tool"}', 404),
    ("POST", "/v1/handshake", {"Content-Type": "application/json"}, b'{"client": {"name": ' + HUGE_INT + b"}}", 400),
    ("POST", "/v1/handshake", {"Content-Type": "application/json"}, NESTED, 400),
    ("POST", "/v1/handshake", {"Content-Type": "application/json"}, b"[]", 400),
    ("GET", "/v1/tools?format=%ff%fe", {}, b"", 400),
    ("GET", "/v1/invoke", {}, b"", 405),
    ("DELETE", "/v1/tools", {}, b"", 405),
    ("POST", "/v1/meta", {"Content-Type": "application/json"}, b"{}", 405),
    ("PUT", "/v1/meta", {}, b"", 405),
    ("POST", "/health", {"Content-Type": "application/json"}, b"{}", 405),
    ("POST", "/metrics", {}, b"", 405),
    ("POST", "/sse", {"Content-Type": "application/json"}, PING, 405),
    ("GET", "/no/such/route", {}, b"", 404),
    ("POST", "/v2/invoke", {"Content-Type": "application/json"}, b"{}", 404),
]


@pytest.mark.parametrize(("method", "path", "headers", "body", "status"), REST_CASES)
def test_other_routes_answer_bad_input_with_json(
    server: ServerProcess, method: str, path: str, headers: dict[str, str], body: bytes, status: int
) -> None:
    response = exchange(port_of(server.url), method, path, headers, body)
    assert_json_error(response, status, mcp=False)


@pytest.mark.parametrize(
    ("path", "headers", "mcp"),
    [
        ("/mcp", JSON, True),
        ("/mcp", MODERN, True),
        (f"/messages/?session_id={UNKNOWN_SESSION}", JSON, True),
        ("/v1/invoke", {"Content-Type": "application/json"}, False),
        ("/v1/handshake", {"Content-Type": "application/json"}, False),
    ],
)
def test_oversized_bodies_are_413_json(server: ServerProcess, path: str, headers: dict[str, str], mcp: bool) -> None:
    port = port_of(server.url)
    limit = MCP_MAX_BODY_BYTES if mcp else 1024 * 1024
    streamed = b'{"x": "' + b"a" * (limit + 1024) + b'"}'
    assert_json_error(exchange(port, "POST", path, headers, streamed), 413, mcp=mcp)
    chunked = (
        b"".join(f"{65536:x}\r\n".encode() + b"a" * 65536 + b"\r\n" for _ in range(limit // 65536 + 2)) + b"0\r\n\r\n"
    )
    assert_json_error(exchange(port, "POST", path, {**headers, "Transfer-Encoding": "chunked"}, chunked), 413, mcp=mcp)
    declared = {**headers, "Content-Length": str(100 * 1024 * 1024)}
    assert_json_error(exchange(port, "POST", path, declared, b"{}"), 413, mcp=mcp)
    assert_alive(server)


def test_body_just_under_the_limit_is_served(server: ServerProcess) -> None:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "pad": "a" * (MCP_MAX_BODY_BYTES - 1000),
    }
    body = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": meta}}).encode()
    response = exchange(port_of(server.url), "POST", "/mcp", {**MODERN, "Mcp-Method": "tools/list"}, body)
    assert response.status == 200, response.body[:300]


def test_client_gone_mid_body_leaves_no_traceback(server: ServerProcess) -> None:
    port = port_of(server.url)
    for path in ("/v1/invoke", "/mcp", f"/messages/?session_id={UNKNOWN_SESSION}"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            sock.sendall(f"{head}Accept: {ACCEPT_BOTH}\r\nContent-Length: 1000\r\n\r\n{{".encode())
            time.sleep(0.2)
    time.sleep(0.5)
    assert_alive(server)
    log = server.log()
    assert "Traceback" not in log and "ClientDisconnect" not in log, log[-3000:]


def test_chunked_valid_bodies_are_served(server: ServerProcess) -> None:
    body = b'{"tool": "echo_empty"}'
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    response = exchange(
        port_of(server.url),
        "POST",
        "/v1/invoke",
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        chunked,
    )
    assert response.status == 200 and response.json()["success"] is True


def test_sse_session_survives_bad_messages(server: ServerProcess) -> None:
    session = SseSession(port_of(server.url))
    try:
        session.initialize()
        for body, code in [
            (b"{nope", -32700),
            (b"\xff\xfe", -32700),
            (b"[1, 2]", -32600),
            (b"{}", -32600),
            (b"", -32700),
        ]:
            answer = assert_json_error(session.post(body), 400, mcp=True)
            assert answer["error"]["code"] == code
        assert_json_error(session.post(PING, {"Content-Type": "text/plain"}), 415, mcp=True)
        assert session.call("ping", request_id=9) == {"jsonrpc": "2.0", "id": 9, "result": {}}
        listing = session.call("tools/list", request_id=10)
        assert listing["result"]["tools"]
    finally:
        session.close()
    assert "Failed to parse message" not in server.log()  # refused before the SDK, which logs a traceback


@pytest.mark.parametrize("request_id", [True, 2.0, None, {"id": 1}])
def test_requests_with_odd_ids_are_answered_not_dropped(server: ServerProcess, request_id: object) -> None:
    """The SDK took these for notifications: 202, and the client waited for ever. Now 400."""
    body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "ping"}).encode()
    session = SseSession(port_of(server.url))
    try:
        session.initialize()
        assert_json_error(session.post(body), 400, mcp=True)
        both = b'{"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": [], "result": {}}'
        assert_json_error(session.post(both), 400, mcp=True)
        assert session.call("ping", request_id=3) == {"jsonrpc": "2.0", "id": 3, "result": {}}
    finally:
        session.close()
    port = port_of(server.url)
    assert_json_error(exchange(port, "POST", "/mcp", {**JSON, "Mcp-Session-Id": UNKNOWN_SESSION}, body), 400, mcp=True)
    assert_json_error(exchange(port, "POST", "/mcp", {**MODERN, "Mcp-Method": "ping"}, body), 400, mcp=True)


def test_unknown_and_deleted_streamable_sessions(server: ServerProcess) -> None:
    """A session that ended answers 404 JSON on POST, GET and DELETE."""
    port = port_of(server.url)
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    opened = exchange(port, "POST", "/mcp", JSON, json.dumps(init).encode())
    assert opened.status == 200
    session_id = opened.headers["mcp-session-id"]
    headers = {"Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-06-18"}
    assert exchange(port, "DELETE", "/mcp", headers).status == 200
    assert_json_error(exchange(port, "POST", "/mcp", {**JSON, **headers}, PING), 404, mcp=True)
    assert_json_error(exchange(port, "GET", "/mcp", {"Accept": "text/event-stream", **headers}), 404, mcp=True)
    assert_json_error(exchange(port, "DELETE", "/mcp", headers), 404, mcp=True)


async def test_valid_clients_still_work(server: ServerProcess) -> None:
    async with Client(f"{server.url}/mcp") as client:
        assert (await client.list_tools()).tools
    async with Client(f"{server.url}/mcp", mode="legacy") as client:
        assert (await client.list_tools()).tools
    assert_alive(server)
