"""Streamable HTTP `tools/call` in a handshake-era session (2025-11-25 and before), without the SDK's
per-request machinery.

Why (profile in docs/benchmarks/changes.md): a session's POST goes through the SDK's transport and
dispatcher: an `EventSourceResponse` with its task group, two memory streams and a message router per
request, the session's read loop, a dispatcher task, the runner and its middleware chain, and the
response routed back by id. The bare SDK server spends more than the 1 ms target on that alone.

`SessionToolCalls` sits in front of the `/mcp` app. For a POST that names a session, it reads the body
and takes the call only when everything the SDK's path would check holds, judged with the SDK's own
functions and state: the transport-security check (Content-Type, Host/Origin when enabled), the body
size, Accept (JSON and SSE), the transport's exact Content-Type test, one JSON-RPC request parsed by the
SDK's message adapter, a session the manager still serves to this same credential
(`SessionManager.session_for`), not terminated or idled out, whose connection has completed `initialize`
(its `Connection`, remembered by the bookkeeping middleware `SessionConnections` when the session's
first request passed the SDK's path), the per-version surface of the negotiated version and
`CallToolRequestParams`. The handler is the one `build_server` registered, called directly; the result
is shaped by the SDK's result surface for that version and the answer is written as the SDK's transport
writes it: `text/event-stream` with the session header, one `message` event, end of stream. Tests
compare status, headers and body bytes with the SDK's path; `make interop` runs the TypeScript SDK
client and the conformance suite through it.

What the SDK's transport does around a request and this keeps: the headers go out at once and a long
call gets a comment ping every 15 s (the SDK's interval; the comment's text differs, `: ping` here, clients
ignore comments); while a call runs the session's idle countdown is held and restarts when its last
request ends (the transport's own request count, `SessionManager.serving`); a client that
disconnects does not cancel the call (spec: a disconnect is not a cancellation); a
`notifications/cancelled` from the session's own client naming a call in flight here (ids correlated as
the SDK's dispatcher does, "7" and 7 alike) cancels it, and the stream ends with the SDK's
`REQUEST_CANCELLED` error; a session that ends meanwhile (DELETE, idle timeout, shutdown) cancels its
calls and their streams end with no event. One difference is kept on purpose: two calls in flight with
the same id in one session both get their answer here, where the SDK's transport answers only the later.

Everything else goes to the next app with the body replayed: other methods, notifications, a first
request before the connection is known here, any failed check (so every error answer is the SDK's),
a request asking for progress, an SDK event store (its responses carry event ids), stateless and JSON
response managers, a server whose `tools/call` handler or middleware is not the one built here, and a
process with an OpenTelemetry tracer provider installed. The body is read whole before any check, as
the SDK's transport reads it; `WireGuard`, in front of every route, bounds it (4 MiB, the SDK's limit).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import anyio
import mcp_types as types
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.streamable_http import (
    MCP_SESSION_ID_HEADER,
    REQUEST_CANCELLED,
    StreamableHTTPServerTransport,
    check_accept_headers,
)
from mcp.server.transport_security import TransportSecurityMiddleware
from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.jsonrpc_dispatcher import cancelled_request_id_from_params
from mcp_types import jsonrpc_message_adapter
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server._changes import ConnectorServer
from mcp_server._http_fastpath import PING, SSE_WINDOW_SECONDS, buffered_request, untraced
from mcp_server._ops import SessionManager
from mcp_server._session_calls import Answer, answer_call, call_params

__all__ = ["SessionConnections", "SessionToolCalls"]

logger = logging.getLogger(__name__)

_VERSION_HEADER: Final = b"mcp-protocol-version"
_SESSION_HEADER: Final = MCP_SESSION_ID_HEADER.lower().encode("latin-1")
_HANDSHAKE: Final = frozenset(v.encode("latin-1") for v in HANDSHAKE_PROTOCOL_VERSIONS)


class SessionConnections:
    """Bookkeeping middleware: each handshake-era session's `Connection`, by session id, while it lives."""

    def __init__(self) -> None:
        self._by_session: dict[str, Connection] = {}

    def get(self, session_id: str) -> Connection | None:
        return self._by_session.get(session_id)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        # The SDK (2.3) offers no public handle on a request's connection; its session proxy keeps it here.
        connection = getattr(ctx.session, "_connection", None)
        if isinstance(connection, Connection) and connection.session_id is not None:
            session_id = connection.session_id
            if self._by_session.get(session_id) is not connection:
                self._by_session[session_id] = connection
                connection.exit_stack.callback(self._forget, session_id, connection)
        return await call_next(ctx)

    def _forget(self, session_id: str, connection: Connection) -> None:
        if self._by_session.get(session_id) is connection:
            del self._by_session[session_id]


class _Call:
    __slots__ = ("params", "request", "request_id", "session_id", "transport", "version")

    def __init__(
        self,
        request: Request,
        request_id: types.RequestId,
        session_id: str,
        transport: StreamableHTTPServerTransport,
        version: str,
        params: types.CallToolRequestParams,
    ) -> None:
        self.request = request  # what `Access.principal` reads the caller from, as from an SDK `ctx.request`
        self.request_id = request_id
        self.session_id = session_id
        self.transport = transport
        self.version = version
        self.params = params


class _Running:
    """A call in flight here: its cancel scope, and whether the client cancelled it (else its session ended)."""

    __slots__ = ("by_client", "cancel")

    def __init__(self) -> None:
        self.cancel = anyio.CancelScope()
        self.by_client = False


class SessionToolCalls:
    """The `/mcp` ASGI app: session `tools/call` answered here, everything else by `app`. See the module docstring."""

    def __init__(
        self, server: ConnectorServer, manager: SessionManager, connections: SessionConnections, app: ASGIApp
    ) -> None:
        self._server = server
        self._manager = manager
        self._connections = connections
        self.app = app
        """The next app (the 2026-07-28 fast path, then the SDK): everything not answered here goes to it."""
        self._direct = server.direct_call
        self._security = TransportSecurityMiddleware(manager.security_settings)
        self.sse_window = SSE_WINDOW_SECONDS
        self.answered = 0
        """Calls answered here rather than by the SDK (tests read it; it is not a metric)."""
        self._in_flight: dict[tuple[str, types.RequestId], _Running] = {}
        self.enabled = server.may_answer_calls_directly()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = self._session_of(scope)
        if session_id is None:
            await self.app(scope, receive, send)
            return
        buffered = await buffered_request(scope, receive)
        if buffered is None:
            return  # the client went away mid-body; WireGuard normally sees to this first
        body, request = buffered
        message = await self._message(request, body)
        call = self._checked(request, message, session_id) if message is not None else None
        if call is None:
            if message is not None:
                self._cancel_if_ours(request, session_id, message)
            await self.app(scope, request.receive, send)
            return
        self.answered += 1
        await self._serve(call, send)

    def _session_of(self, scope: Scope) -> str | None:
        """The session a POST names, when this app may take it; None sends the request to the SDK as is."""
        if not self.enabled or scope["type"] != "http" or scope["method"] != "POST":
            return None
        manager = self._manager
        if manager.stateless or manager.json_response or manager.event_store is not None or not manager.running:
            return None
        session: bytes | None = None
        for key, value in scope["headers"]:
            if key == _VERSION_HEADER and value not in _HANDSHAKE:
                return None  # a 2026-era request, or a version the SDK refuses: not a session's
            if key == _SESSION_HEADER and session is None:  # the first, as the SDK reads it
                session = value
        if session is None or not untraced():
            return None
        return session.decode("latin-1")

    async def _message(self, request: Request, body: bytes) -> types.JSONRPCMessage | None:
        """The message as the SDK's transport parses it, once the checks before parsing pass; else None."""
        if len(body) > self._manager.max_request_body_size:
            return None
        if await self._security.validate_request(request, is_post=True) is not None:
            return None
        has_json, has_sse = check_accept_headers(request)
        if not (has_json and has_sse) or not _is_json(request.headers.get("content-type", "")):
            return None
        try:
            return jsonrpc_message_adapter.validate_json(body, by_name=False)
        except ValidationError:
            return None

    def _checked(self, request: Request, message: types.JSONRPCMessage, session_id: str) -> _Call | None:
        if not isinstance(message, types.JSONRPCRequest) or message.method != "tools/call":
            return None
        transport = self._manager.session_for(session_id, request.scope)
        if transport is None or transport.is_terminated:
            return None
        if transport.idle_scope is not None and transport.idle_scope.cancel_called:
            return None
        connection = self._connections.get(session_id)
        params = call_params(self._server, message, connection)
        if params is None or connection is None:
            return None
        return _Call(request, message.id, session_id, transport, connection.protocol_version, params)

    def _cancel_if_ours(self, request: Request, session_id: str, message: types.JSONRPCMessage) -> None:
        """A `notifications/cancelled` from the session's own client naming a call in flight here cancels it,
        as the SDK's dispatcher would (the notification still goes on to the SDK, which answers the POST)."""
        if not isinstance(message, types.JSONRPCNotification) or message.method != "notifications/cancelled":
            return
        request_id = cancelled_request_id_from_params(message.params)
        if request_id is None:
            return
        running = self._in_flight.get((session_id, coerce_request_id(request_id)))
        transport = self._manager.session_for(session_id, request.scope) if running is not None else None
        if running is not None and transport is not None and not transport.is_terminated:
            running.by_client = True
            running.cancel.cancel()

    async def _serve(self, call: _Call, send: Send) -> None:
        """Headers at once, pings past each window, then the answer as one `message` event."""
        headers = [
            (b"cache-control", b"no-cache, no-transform"),
            (b"connection", b"keep-alive"),
            (b"content-type", b"text/event-stream"),
            (_SESSION_HEADER, call.session_id.encode("latin-1")),
            (b"x-accel-buffering", b"no"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        key = (call.session_id, coerce_request_id(call.request_id))
        running = self._in_flight[key] = _Running()
        pinger = asyncio.get_running_loop().create_task(_ping(send, self.sse_window))
        answer: Answer | None = None
        try:
            with self._manager.serving(call.session_id, call.transport, running.cancel), running.cancel:
                answer = await self._answer(call)
        finally:
            if self._in_flight.get(key) is running:
                del self._in_flight[key]
            pinger.cancel()
            await asyncio.wait({pinger})
        if answer is not None:
            body = _event(answer)
        elif running.by_client:  # what the SDK's transport writes for a request its client cancelled
            error = types.ErrorData(code=REQUEST_CANCELLED, message="Request cancelled")
            body = _event(types.JSONRPCError(jsonrpc="2.0", id=call.request_id, error=error))
        else:
            body = b""  # the session ended (DELETE, idle timeout, shutdown): its streams end with no event
        try:
            await send({"type": "http.response.body", "body": body})
        except OSError:
            logger.debug("the client went away before the answer", exc_info=True)

    async def _answer(self, call: _Call) -> Answer:
        assert self._direct is not None  # _checked returned a call only with a direct handler
        return await answer_call(self._direct, call.request, call.request_id, call.version, call.params)


def _is_json(content_type: str) -> bool:
    """The transport's own Content-Type test (`_check_content_type`): exact, before any parameters."""
    return any(part.strip() == "application/json" for part in content_type.split(";")[0].split(","))


def _event(answer: Answer) -> bytes:
    """One SSE `message` event, as the SDK's transport dumps a response into it."""
    return f"event: message\r\ndata: {answer.model_dump_json(by_alias=True, exclude_unset=True)}\r\n\r\n".encode()


async def _ping(send: Send, window: float) -> None:
    try:
        while True:
            await asyncio.sleep(window)
            await send({"type": "http.response.body", "body": PING, "more_body": True})
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.debug("an SSE ping failed", exc_info=True)
