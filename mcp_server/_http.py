"""The HTTP app: Streamable HTTP at /mcp, legacy SSE at /sse + /messages/, the REST façade, /health, /metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.server.lowlevel.server import Server
from mcp.server.sse import SseServerTransport
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from mcp_server._access import build_access
from mcp_server._builtin_tools import LocalTools
from mcp_server._config import Settings
from mcp_server._http_fastpath import ModernToolCalls
from mcp_server._http_session_fastpath import SessionConnections, SessionToolCalls
from mcp_server._inbound import Authenticator, InboundAuth
from mcp_server._metrics import CONTENT_TYPE_LATEST
from mcp_server._model import Catalog
from mcp_server._observe import RequestContextMiddleware
from mcp_server._ops import Drain, Operations
from mcp_server._pipeline import Pipeline
from mcp_server._rest import RestApi, rest_error
from mcp_server._security import HostOriginGuard
from mcp_server._server import build_server
from mcp_server._sse_fastpath import SseSession, SseSessions, SseToolCalls, owner_of
from mcp_server._streams import StreamLimit
from mcp_server._vault_store import open_vault
from mcp_server._webhooks import WebhookEndpoints
from mcp_server._wire import WireGuard

logger = logging.getLogger(__name__)

_ERROR_NAMES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "rate_limit_exceeded"}


class _SseEndpoint:
    """GET /sse: one legacy HTTP+SSE session per connection, served by the same MCP handlers."""

    def __init__(
        self,
        server: Server[Any],
        transport: SseServerTransport,
        drain: Drain,
        *,
        enabled: bool,
        sessions: SseSessions | None = None,
    ) -> None:
        self._server = server
        self._transport = transport
        self._drain = drain
        self._enabled = enabled
        self._sessions = sessions
        """Where the SSE fast path (`_sse_fastpath`) learns of each session; None when it is off."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._enabled:
            message = "The legacy SSE transport is off in --stateless mode (it needs session affinity); use /mcp"
            await rest_error(404, "not_found", message)(scope, receive, send)
            return
        if scope["method"] != "GET":
            await rest_error(405, "bad_request", "Use GET to open the SSE stream")(scope, receive, send)
            return

        sessions = self._sessions
        session = SseSession(owner_of(scope))

        async def serve() -> None:
            if sessions is None:
                watched_receive, watched_send = receive, send
            else:
                watched_receive, watched_send = sessions.watch_receive(session, receive), sessions.watch(session, send)
            async with self._transport.connect_sse(scope, watched_receive, watched_send) as (read_stream, write_stream):
                try:
                    await self._server.run(read_stream, write_stream, self._server.create_initialization_options())
                finally:
                    if sessions is not None:
                        sessions.forget(session)
                    with anyio.CancelScope(shield=True):  # a drain cancels this task; its calls end first
                        await session.end()

        await self._drain.sse_session(serve)  # counted in /metrics, and ended by a graceful shutdown


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    return JSONResponse(
        {"error": _ERROR_NAMES.get(exc.status_code, "bad_request"), "message": exc.detail, "details": {}},
        status_code=exc.status_code,
        headers=headers,
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return rest_error(500, "internal_error", "Internal server error; the server log has the details.")


def build_http_app(
    pipeline: Pipeline, catalog: Catalog, settings: Settings, *, drain: Drain | None = None
) -> Starlette:
    """`drain` is the `Drain` the server process starts on SIGTERM (`_ops.DrainingServer`)."""
    ops = Operations(pipeline, catalog, settings, drain=drain)  # reload, list_changed, /ready, /v1/status, drain
    authenticator = Authenticator(settings)  # client tokens / OAuth JWTs; scopes and per-client limits (_access)
    access = build_access(pipeline, settings, required=authenticator.required)
    # batch_invoke, <connector>_list_events, events:// resources; webhooks follow the served catalog (reloads).
    local = LocalTools.for_settings(pipeline, access, settings, catalog=lambda: ops.state.catalog)
    ops.drain.closers.append(local.close_streams)  # /v1/events SSE streams end with the drain
    server = build_server(
        pipeline,
        page_size=settings.page_size,
        discovery=settings.discovery,
        client="mcp-http",
        changes=ops.changes,
        access=access,
        local=local,
    )
    # Host/Origin are checked by HostOriginGuard for every route, so the SDK's own check stays off (no security
    # settings) here and in the SSE transport, whose fast path makes the same checks with the same values.
    session_manager = ops.session_manager(server)
    sse_transport = SseServerTransport("/messages/", None, DEFAULT_MAX_REQUEST_BODY_SIZE)
    mcp_endpoint: Any = session_manager.asgi_app
    messages_endpoint: Any = sse_transport.handle_post_message
    sse_sessions: SseSessions | None = None
    if settings.http_fast_path:  # tools/call without the SDK's per-request machinery: 2026-07-28, sessions, SSE
        connections = SessionConnections()
        sse_sessions = SseSessions()
        server.add_bookkeeping(connections)
        server.add_bookkeeping(sse_sessions)
        mcp_endpoint = ModernToolCalls(server, session_manager, session_manager.asgi_app)
        mcp_endpoint = SessionToolCalls(server, session_manager, connections, mcp_endpoint)
        messages_endpoint = SseToolCalls(
            server,
            sse_sessions,
            messages_endpoint,
            security_settings=None,
            max_request_body_size=DEFAULT_MAX_REQUEST_BODY_SIZE,
        )
    sse_endpoint = _SseEndpoint(server, sse_transport, ops.drain, enabled=not settings.stateless, sessions=sse_sessions)
    rest = RestApi(pipeline, access, local)
    webhooks = WebhookEndpoints(local, access, pipeline, open_vault(settings), environ=settings.environ)

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "connectors": len(ops.state.catalog.connectors),
                "tools": len(pipeline.registry),
                "manifest_faults": len(ops.state.catalog.faults),
            }
        )

    async def metrics(request: Request) -> Response:
        return Response(pipeline.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[None]:
        async with pipeline, session_manager.run(), ops.running(http=True), local.running():
            yield

    routes: list[Route | Mount] = [
        Route("/mcp", endpoint=mcp_endpoint),
        Route("/sse", endpoint=sse_endpoint),
        Mount("/messages/", app=messages_endpoint),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/ready", ops.readiness.ready, methods=["GET"]),
        Route("/v1/status", ops.readiness.status, methods=["GET"]),
        *rest.routes(),
        *webhooks.routes(),  # POST /webhooks/{connector}, GET /v1/events/{connector}
        *authenticator.metadata_routes(pipeline),  # /.well-known/oauth-protected-resource[/mcp] (OAuth mode)
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestContextMiddleware),  # outermost: X-Request-ID and the access log cover every answer
            Middleware(
                HostOriginGuard,
                bind_host=settings.host,
                extra_hosts=settings.allowed_hosts,
                extra_origins=settings.allowed_origins,
            ),
            Middleware(InboundAuth, authenticator=authenticator),  # before any body is read (_inbound.py)
            Middleware(WireGuard),  # bounded, timed bodies; JSON error bodies on every route (_wire.py)
            Middleware(StreamLimit, max_streams=settings.access.client_streams),  # open streams per client
        ],
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        lifespan=lifespan,
    )
