"""Legacy HTTP+SSE `tools/call` without the SDK's dispatcher.

Why (profile in docs/benchmarks/changes.md, step 22): on the legacy transport the SDK's transport parses a POST to
`/messages/`, answers `202` and hands the message to the session's read stream; the session's dispatcher spawns a
task for it, the runner and its middleware chain run the handler, and the answer travels through the session's
write stream, the transport's writer task, a second memory stream and sse-starlette's sender task before it is
written on the `GET /sse` response. With our pipeline behind it that came to 1.15-1.3 ms of CPU per call.

`SseSessions` knows each session `_http._SseEndpoint` serves: the id the SDK's transport gave it (read from the
`endpoint` event that tells the client where to post), the credential that opened it, the `GET` response's `send`
and whether that response has ended, the calls running here, and, once a request of the session has passed the
SDK's path (its `initialize`), its `Connection` (`SseSessions` is also the bookkeeping middleware that learns it).

`SseToolCalls` is the `/messages/` app in front of the SDK's `SseServerTransport.handle_post_message`. It takes a
POST only when every check the SDK's path makes holds, judged with the SDK's functions and in its order: the body
size, the transport-security check, a `session_id` the SDK parses (`UUID(hex=...)`) naming a session served here,
the same credential as the one that opened it (the SDK's `authorization_context`), one JSON-RPC message parsed by
the SDK's adapter; then `_session_calls.call_params` (a `tools/call` the SDK would run on that connection). It
answers `202 Accepted` as the SDK's transport does, runs the call in a task of the session's, and writes the
answer on the `GET` response as the SDK's transport writes a message: one `message` event holding the message as
the SDK dumps it. An ASGI body message is one write on the connection, so an answer written here cannot split an
event the transport writes meanwhile; once the transport has ended the response, nothing more is written.

What the SDK's dispatcher does around a request and this keeps: a `notifications/cancelled` from the session's
own client naming a call in flight here (ids correlated as the dispatcher does, "7" and 7 alike) cancels it and
nothing is written for it; as there, the newest request with an id is the one a cancel names (a request of the
same id handed to the SDK takes it over, and a cancel that stops a call here is answered here, not passed on to
cancel an older one of the SDK's); a session that ends (its `GET` closed, or the drain) cancels its calls and its
stream just ends, as the SDK's does (its dispatcher's `Connection closed` answer has no writer left by then). A
session whose client has disconnected takes no new calls.

Everything else goes to the SDK's transport with the body replayed: other methods, notifications, a call before
the session's `initialize` was answered, any failed check (so every error answer is the SDK's), a request asking
for progress, `--stateless` (no SSE at all) and a process with an OpenTelemetry tracer provider installed.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Coroutine
from typing import Any, Final
from uuid import UUID

import mcp_types as types
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext, authorization_context
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.jsonrpc_dispatcher import cancelled_request_id_from_params
from mcp_types import jsonrpc_message_adapter
from pydantic import ValidationError
from sse_starlette import ServerSentEvent
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_server._changes import ConnectorServer
from mcp_server._http_fastpath import buffered_request, untraced
from mcp_server._session_calls import Answer, answer_call, call_params

__all__ = ["SseSession", "SseSessions", "SseToolCalls"]

logger = logging.getLogger(__name__)

_SCOPE_KEY: Final = "mcp_connectors.sse_session"
"""Where `SseToolCalls` leaves a POST's session for `SseSessions` to find in the SDK's `ctx.request`."""

_ENDPOINT: Final = re.compile(rb"event: endpoint\r\ndata: [^\r\n]*[?&]session_id=([0-9a-f]{32})\r\n")
# What the SDK's transport answers a message it took, `Response("Accepted", status_code=202)`, prebuilt.
_ACCEPTED_START: Final[Message] = {"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"8")]}
_ACCEPTED_BODY: Final[Message] = {"type": "http.response.body", "body": b"Accepted"}


def owner_of(scope: Scope) -> AuthorizationContext | None:
    """The credential behind a request, as the SDK's SSE transport compares it."""
    user = scope.get("user")
    return authorization_context(user) if isinstance(user, AuthenticatedUser) else None


class _InFlight:
    """A call running here: its task, and whether its client cancelled it (else its session ended)."""

    __slots__ = ("by_client", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.by_client = False


class SseSession:
    """One legacy SSE session, as far as the fast path needs it."""

    __slots__ = ("closed", "connection", "id", "in_flight", "owner", "send", "tasks")

    def __init__(self, owner: AuthorizationContext | None) -> None:
        self.owner = owner
        self.id: UUID | None = None
        """The id the SDK's transport gave the session, once its `endpoint` event has gone out."""
        self.send: Send | None = None
        """The `GET /sse` response's `send`, which the SDK's transport writes the session's events with."""
        self.closed = False
        """That response has ended (its last body message has gone out): nothing more may be written."""
        self.connection: Connection | None = None
        self.in_flight: dict[types.RequestId, _InFlight] = {}
        """The calls taken here and still running, by id as the SDK's dispatcher correlates them (a later call
        with the same id takes the entry over, as there)."""
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, call: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(call)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def end(self) -> None:
        """Cancel the calls still running here and wait for them (each bounded by its shutdown answer's write)."""
        running = list(self.tasks)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)


class SseSessions:
    """The SSE sessions being served, by the id the SDK's transport gave them; also the bookkeeping middleware
    that learns each one's `Connection`."""

    def __init__(self) -> None:
        self._by_id: dict[UUID, SseSession] = {}

    def get(self, session_id: UUID) -> SseSession | None:
        return self._by_id.get(session_id)

    def watch(self, session: SseSession, send: Send) -> Send:
        """`send` for the `GET /sse` response, which learns the session's id from its first (`endpoint`) event
        and when the response ends."""
        session.send = send

        async def watching(message: Message) -> None:
            if message["type"] == "http.response.body":
                if session.id is None:
                    found = _ENDPOINT.search(message.get("body", b""))
                    if found is not None:
                        session.id = UUID(hex=found.group(1).decode("ascii"))
                        self._by_id[session.id] = session
                if not message.get("more_body", False):
                    session.closed = True
            await send(message)

        return watching

    def watch_receive(self, session: SseSession, receive: Receive) -> Receive:
        """`receive` for the `GET /sse` request: once the client has gone, its session takes no more calls (the
        SDK's transport notices the disconnect a little later)."""

        async def watching() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.forget(session)
            return message

        return watching

    def forget(self, session: SseSession) -> None:
        if session.id is not None and self._by_id.get(session.id) is session:
            del self._by_id[session.id]

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        request = ctx.request
        session = request.scope.get(_SCOPE_KEY) if isinstance(request, Request) else None
        if isinstance(session, SseSession) and session.connection is None:
            # The SDK (2.3) offers no public handle on a request's connection; its session proxy keeps it here.
            connection = getattr(ctx.session, "_connection", None)
            if isinstance(connection, Connection):
                session.connection = connection
        return await call_next(ctx)


class SseToolCalls:
    """The `/messages/` ASGI app: `tools/call` of known sessions answered here, everything else by `app`."""

    def __init__(
        self,
        server: ConnectorServer,
        sessions: SseSessions,
        app: ASGIApp,
        *,
        security_settings: TransportSecuritySettings | None,
        max_request_body_size: int,
    ) -> None:
        self._server = server
        self.sessions = sessions
        """The sessions this app may answer for (tests read it)."""
        self.app = app
        """The SDK's `handle_post_message`: everything not answered here goes to it."""
        self._security = TransportSecurityMiddleware(security_settings)
        self._max_body = max_request_body_size
        self.answered = 0
        """Calls answered here rather than by the SDK (tests read it; it is not a metric)."""
        self.enabled = server.may_answer_calls_directly()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http" or scope["method"] != "POST" or not untraced():
            await self.app(scope, receive, send)
            return
        buffered = await buffered_request(scope, receive)
        if buffered is None:
            return  # the client went away mid-body; WireGuard normally sees to this first
        body, request = buffered
        session = await self._session(request, body)
        if session is None:
            await self.app(scope, request.receive, send)
            return
        scope[_SCOPE_KEY] = session  # for `SseSessions` to learn the connection, should the SDK take it
        message = _parsed(body)
        params = call_params(self._server, message, session.connection) if message is not None else None
        if params is None or session.connection is None:
            if isinstance(message, types.JSONRPCRequest):
                # The SDK's dispatcher keeps the newest request per id: a cancel naming this id is its now.
                session.in_flight.pop(coerce_request_id(message.id), None)
            elif message is not None and _cancel_if_ours(session, message):
                # Passed on, it would also cancel an older request of the SDK's with the same id.
                await _accepted(send)
                return
            await self.app(scope, request.receive, send)
            return
        assert isinstance(message, types.JSONRPCRequest)  # call_params took only a request
        self.answered += 1
        # A task of its own, as the SDK's dispatcher runs a request: the POST is answered at once.
        this = _InFlight()
        this.task = session.start(self._run(session, this, request, message.id, session.connection, params))
        session.in_flight[coerce_request_id(message.id)] = this
        await _accepted(send)

    async def _session(self, request: Request, body: bytes) -> SseSession | None:
        """The session a POST names, once the checks the SDK's transport makes before parsing pass; else None."""
        if len(body) > self._max_body:
            return None
        if await self._security.validate_request(request, is_post=True) is not None:
            return None
        named = request.query_params.get("session_id")
        if named is None:
            return None
        try:
            session_id = UUID(hex=named)
        except ValueError:
            return None
        session = self.sessions.get(session_id)
        if session is None or owner_of(request.scope) != session.owner:
            return None
        return session

    async def _run(
        self,
        session: SseSession,
        this: _InFlight,
        request: Request,
        request_id: types.RequestId,
        connection: Connection,
        params: types.CallToolRequestParams,
    ) -> None:
        direct = self._server.direct_call
        assert direct is not None  # call_params took the call only with the direct handler in place
        try:
            result = await answer_call(direct, request, request_id, connection.protocol_version, params)
        except asyncio.CancelledError:
            if this.by_client:
                return  # the SDK's dispatcher writes nothing for a call its client cancelled
            # The session ended. The SDK's dispatcher tries a `Connection closed` answer then, but the
            # transport's writer has gone with the session, so its stream just ends: so does this one.
            raise
        finally:
            key = coerce_request_id(request_id)
            if session.in_flight.get(key) is this:
                del session.in_flight[key]
        if not this.by_client:
            await _send(session, result)


def _parsed(body: bytes) -> types.JSONRPCMessage | None:
    try:
        return jsonrpc_message_adapter.validate_json(body, by_name=False)
    except ValidationError:
        return None


def _cancel_if_ours(session: SseSession, message: types.JSONRPCMessage) -> bool:
    """A `notifications/cancelled` naming a call in flight here cancels it, as the SDK's dispatcher would;
    whether it did."""
    if not isinstance(message, types.JSONRPCNotification) or message.method != "notifications/cancelled":
        return False
    request_id = cancelled_request_id_from_params(message.params)
    running = session.in_flight.get(coerce_request_id(request_id)) if request_id is not None else None
    if running is None or running.task is None or running.by_client:
        return False
    running.by_client = True
    running.task.cancel()
    return True


async def _accepted(send: Send) -> None:
    await send(_ACCEPTED_START)
    await send(_ACCEPTED_BODY)


async def _send(session: SseSession, answer: Answer) -> None:
    """Write the answer on the session's stream as the SDK's transport writes a message (its `sse_writer` and
    sse-starlette's encoding): one `message` event, the message as the SDK dumps it. Each ASGI body message is one
    write on the connection, so it cannot split another event the transport sends meanwhile."""
    if session.closed or session.send is None:
        return
    try:
        data = answer.model_dump_json(by_alias=True, exclude_unset=True)
    except Exception:  # nothing the pipeline returns should fail here; the client still gets an answer
        logger.exception("the answer to %r could not be serialized", answer.id)
        error = types.ErrorData(code=types.INTERNAL_ERROR, message="Internal error; the server log has the details.")
        data = types.JSONRPCError(jsonrpc="2.0", id=answer.id, error=error).model_dump_json(by_alias=True)
    if "\r" in data or "\n" in data:  # never from pydantic's JSON; sse-starlette would split it into lines
        event = ServerSentEvent(data=data, event="message").encode()
    else:
        event = f"event: message\r\ndata: {data}\r\n\r\n".encode()
    try:
        await session.send({"type": "http.response.body", "body": event, "more_body": True})
    except (OSError, RuntimeError):  # the response ended meanwhile (uvicorn refuses a body after the last)
        logger.debug("dropped the answer to %r: the session's stream has ended", answer.id, exc_info=True)
