"""Bad input on the wire: bounded, timed request bodies and JSON error bodies on every HTTP route.

`WireGuard` sits behind `HostOriginGuard` and in front of every route. It

- reads a request body itself, up to a size limit (4 MiB on the MCP endpoints, the SDK's own
  default; `MAX_REQUEST_BYTES` elsewhere) and within a deadline, then replays it to the route, so a
  route never sees a half-sent body: an oversized body is 413, one that does not arrive in time 408,
  a client that goes away mid-body gets nothing (and logs nothing);
- checks `Content-Type: application/json` on MCP POSTs (415) and, on `/messages/`, that the body is
  one JSON-RPC message (400 with a JSON-RPC parse or invalid-request error) before the SDK sees it;
- refuses (400) a request whose id is not a string or an integer, or that also carries a result or
  error, which the SDK would take for a notification or a response and never answer;
- turns any non-JSON error answer (the SDK's plain-text 400/404/413, its empty 405/406) into a JSON
  one: a JSON-RPC error object on the MCP endpoints, the REST error shape elsewhere. The status and
  other headers (`Allow`, `Mcp-Session-Id`) are kept; successful answers pass untouched.
"""

from __future__ import annotations

import json
import math
from collections import deque
from http import HTTPStatus
from typing import Any, Final, cast

import anyio
from mcp_types import INVALID_REQUEST, PARSE_ERROR, jsonrpc_message_adapter
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_server._rest import MAX_REQUEST_BYTES

MCP_MAX_BODY_BYTES: Final = 4 * 1024 * 1024
"""Largest MCP message accepted on /mcp and /messages/ (the SDK's default limit, now answered as JSON)."""

BODY_TIMEOUT_SECONDS: Final = 30.0
"""A request body must arrive whole within this long after the headers (slow-body / slowloris bound)."""

DRAIN_BYTES: Final = 8 * 1024 * 1024
"""How much of an oversized body is read and discarded so the client sees the 413 instead of a reset."""

_ERROR_NAMES: Final = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    429: "rate_limit_exceeded",
}
_KEEP_FROM_ERROR: Final = frozenset({b"content-type", b"content-length"})
_MAX_ERROR_TEXT: Final = 300


def is_mcp_path(path: str) -> bool:
    """The MCP transports' message endpoints, whose errors are JSON-RPC error objects."""
    return path == "/mcp" or path.startswith("/messages/")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _is_json(content_type: str | None) -> bool:
    media = _media_type(content_type)
    return media == "application/json" or media.endswith("+json")


def _error_body(mcp: bool, status: int, message: str, code: int = INVALID_REQUEST) -> bytes:
    if mcp:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    else:
        body = {
            "error": _ERROR_NAMES.get(status, "internal_error" if status >= 500 else "bad_request"),
            "message": message,
            "details": {},
        }
    return json.dumps(body, ensure_ascii=False).encode()


async def _send_error(
    send: Send,
    status: int,
    message: str,
    *,
    mcp: bool,
    code: int = INVALID_REQUEST,
    close: bool = False,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = _error_body(mcp, status, message, code)
    raw_headers = [h for h in headers or [] if h[0].lower() not in _KEEP_FROM_ERROR]
    raw_headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        raw_headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class _Disconnected(Exception):
    """The client went away before its body was complete."""


class WireGuard:
    """Bound and time request bodies; answer every client error with a JSON body. See the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        mcp_max_bytes: int = MCP_MAX_BODY_BYTES,
        rest_max_bytes: int = MAX_REQUEST_BYTES,
        body_timeout: float = BODY_TIMEOUT_SECONDS,
        drain_bytes: int = DRAIN_BYTES,
    ) -> None:
        if min(mcp_max_bytes, rest_max_bytes) <= 0 or drain_bytes < 0:
            raise ValueError("body limits must be positive")
        if not (math.isfinite(body_timeout) and body_timeout > 0):
            raise ValueError("body_timeout must be a positive number of seconds")
        self.app = app
        self.mcp_max_bytes = mcp_max_bytes
        self.rest_max_bytes = rest_max_bytes
        self.body_timeout = body_timeout
        self.drain_bytes = drain_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        mcp = is_mcp_path(path)
        method: str = scope["method"]
        headers = Headers(scope=scope)
        limit = self.mcp_max_bytes if mcp else self.rest_max_bytes

        if mcp and method == "POST" and _media_type(headers.get("content-type")) != "application/json":
            await _send_error(send, 415, "Unsupported Media Type: Content-Type must be application/json", mcp=mcp)
            return

        declared = _declared_length(headers)
        if declared is not None and declared > limit:
            expects_continue = "100-continue" in headers.get("expect", "").lower()
            if expects_continue or declared - limit > self.drain_bytes:
                # Nothing worth reading: answer at once and let the connection close.
                await _send_error(send, 413, _too_large(limit), mcp=mcp, close=True)
                return
        if declared or "transfer-encoding" in headers or (mcp and method == "POST"):
            try:
                with anyio.fail_after(self.body_timeout):
                    body, complete = await self._read_body(receive, limit)
            except _Disconnected:
                return  # nobody is listening for an answer
            except TimeoutError:
                await _send_error(
                    send, 408, f"Request body not received within {self.body_timeout:g} s", mcp=mcp, close=True
                )
                return
            if not complete:
                await _send_error(send, 413, _too_large(limit), mcp=mcp, close=True)
                return
            if mcp and method == "POST":
                problem = _jsonrpc_problem(body) if path.startswith("/messages/") else None
                problem = problem or _envelope_problem(body)
                if problem is not None:
                    await _send_error(send, 400, problem[1], mcp=True, code=problem[0])
                    return
            receive = replay_body(body, receive)
        await self.app(scope, receive, _JsonErrors(send, mcp))

    async def _read_body(self, receive: Receive, limit: int) -> tuple[bytes, bool]:
        """The whole body (and True), or — past `limit` — what was read (and False) after draining a bounded tail."""
        body = bytearray()
        discarded = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk: bytes = message.get("body", b"")
            if discarded or len(body) + len(chunk) > limit:
                discarded += len(chunk)
                if discarded > self.drain_bytes:
                    return bytes(body), False
            else:
                body += chunk
            if not message.get("more_body", False):
                return bytes(body), not discarded


def _declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None or not value.strip().isdigit():
        return None  # h11 refuses a malformed Content-Length before the app sees the request
    return int(value)


def _too_large(limit: int) -> str:
    return f"Request body too large: the limit is {limit} bytes"


def _jsonrpc_problem(body: bytes) -> tuple[int, str] | None:
    """(JSON-RPC error code, message) when `body` is not one JSON-RPC message, as the SDK would judge it."""
    try:
        jsonrpc_message_adapter.validate_json(body, by_name=False)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        if any(error["type"] == "json_invalid" for error in errors):
            return PARSE_ERROR, "Parse error: the body is not valid UTF-8 JSON"
        return INVALID_REQUEST, "Invalid Request: the body must be one JSON-RPC 2.0 request, notification or response"
    return None


def _envelope_problem(body: bytes) -> tuple[int, str] | None:
    """A message the SDK would accept and then never answer, though its sender waits for an answer.

    The SDK's message union takes the first model that fits and ignores extra keys, so a request
    whose `id` is neither a string nor an integer (`2.0`, `true`, an object, or `null` on anything
    but a `notifications/...` method: MCP ids MUST NOT be null) passes as a notification, and a
    request that also carries `result` or `error` as a response: 202, and nothing ever comes back.
    """
    try:
        decoded: Any = json.loads(body)
    except (ValueError, RecursionError):
        return None  # the SDK answers a parse error
    if not isinstance(decoded, dict) or "method" not in decoded:
        return None
    message = cast(dict[str, Any], decoded)
    if "result" in message or "error" in message:
        return INVALID_REQUEST, "Invalid Request: a message has a method or a result/error, not both"
    if "id" not in message:
        return None
    request_id, method = message["id"], message["method"]
    if isinstance(request_id, str) or (isinstance(request_id, int) and not isinstance(request_id, bool)):
        return None
    if request_id is None and isinstance(method, str) and method.startswith("notifications/"):
        return None  # a notification with a stray `"id": null`: let it through as one
    return INVALID_REQUEST, "Invalid Request: a request id must be a string or an integer"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the buffered body once, then whatever the client sends next (its disconnect)."""
    pending: deque[Message] = deque([{"type": "http.request", "body": body, "more_body": False}])

    async def replay() -> Message:
        if pending:
            return pending.popleft()
        return await receive()

    return replay


class _JsonErrors:
    """A `send` that rewrites an error answer without a JSON body into one with it."""

    def __init__(self, send: Send, mcp: bool) -> None:
        self._send = send
        self._mcp = mcp
        self._held: Message | None = None
        self._text = bytearray()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            status: int = message["status"]
            headers = Headers(raw=list(message.get("headers", [])))
            if status >= 400 and not _is_json(headers.get("content-type")):
                self._held = message
                return
        elif message["type"] == "http.response.body" and self._held is not None:
            if len(self._text) < _MAX_ERROR_TEXT:
                self._text += message.get("body", b"")
            if message.get("more_body", False):
                return
            held, self._held = self._held, None
            status = held["status"]
            text = self._text.decode("utf-8", errors="replace").strip()[:_MAX_ERROR_TEXT]
            if not text.isprintable() or not text:
                text = _phrase(status)
            await _send_error(self._send, status, text, mcp=self._mcp, headers=list(held.get("headers", [])))
            return
        await self._send(message)
