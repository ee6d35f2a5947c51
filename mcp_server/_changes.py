"""Telling connected MCP clients that the tool list changed (after a catalog reload).

Two mechanisms, because the protocol has two eras:

- 2026-07-28 clients open a `subscriptions/listen` stream; the SDK's `ListenHandler` serves it
  from an `InMemorySubscriptionBus`, and a reload publishes `ToolsListChanged` on the bus.
- Handshake-era clients (2024-11-05 … 2025-11-25) get `notifications/tools/list_changed` on their
  connection's standalone channel: the GET stream of a Streamable HTTP session, the SSE stream,
  or stdout. Connections are remembered (weakly) as they send requests; the SDK itself drops the
  notification on channels that cannot carry it (stateless HTTP, 2026-era connections, which
  hear about changes through their listen stream instead).

A listen request's `resourceSubscriptions` are cut to the resources its client may read before the SDK
acknowledges them (the acknowledgment names what is honored), so nobody hears of another client's events.

`tools.listChanged` is advertised in both eras: `ConnectorServer` turns it on for the handshake,
and the SDK derives it from the `subscriptions/listen` handler for 2026-07-28.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged

from mcp_server._listing_cache import ListingCache
from mcp_server._metrics import CallMetrics

if TYPE_CHECKING:
    from mcp_server._server import DirectCall

logger = logging.getLogger(__name__)

_TOOLS_LIST_CHANGED = "notifications/tools/list_changed"

ReadableResources = Callable[[ServerRequestContext[Any], Sequence[str]], list[str]]
"""The resource URIs among the given ones that the request's client may read."""


class ConnectorServer(Server[Any]):
    """The SDK's low-level server, advertising `tools.listChanged` in the handshake by default."""

    listing_cache: ListingCache | None = None
    """The `tools/list` cache in its middleware, for a transport that can write cached pages itself."""

    direct_call: DirectCall | None = None
    """The `tools/call` handler without the SDK's request context, for a transport that answers calls itself."""

    def add_bookkeeping(self, middleware: ServerMiddleware[Any]) -> None:
        """Add a middleware that passes `tools/call` through unchanged, so a transport that answers calls
        itself (`_http_fastpath`) may leave it out; any other middleware keeps every call on the SDK's path."""
        self.middleware.append(middleware)
        self._bookkeeping = (*self._bookkeeping, middleware)

    def is_bookkeeping(self, middleware: object) -> bool:
        return any(middleware == known for known in self._bookkeeping)  # == : bound methods are new objects

    def may_answer_calls_directly(self) -> bool:
        """A direct `tools/call` handler and no middleware but bookkeeping and the SDK's OpenTelemetry one
        (whose span the fast paths leave to the SDK per request, when a tracer is installed)."""
        return self.direct_call is not None and all(
            isinstance(m, OpenTelemetryMiddleware) or self.is_bookkeeping(m) for m in self.middleware
        )

    def live_direct_call(self) -> DirectCall | None:
        """`direct_call` while it is still the registered `tools/call` handler and no cache hint applies to it."""
        entry = self.get_request_handler("tools/call")
        direct = self.direct_call
        if entry is None or direct is None or entry.handler is not direct.handler:
            return None
        return None if self.cache_hints.get("tools/call") is not None else direct

    _bookkeeping: tuple[object, ...] = ()

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True), experimental_capabilities, extensions
        )


class ToolListChanges:
    """One per process: every MCP server instance (HTTP, SSE, stdio) is attached to it."""

    def __init__(self, metrics: CallMetrics | None = None) -> None:
        self.bus = InMemorySubscriptionBus()
        self._listen = ListenHandler(self.bus)
        self._metrics = metrics
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()

    def attach(self, server: ConnectorServer, readable: ReadableResources | None = None) -> None:
        """Serve `subscriptions/listen` on `server` and remember the connections that talk to it.

        A listen stream is subscribed only to the resources `readable` keeps (to none without it)."""

        async def serve_listen(
            ctx: ServerRequestContext[Any], params: types.SubscriptionsListenRequestParams
        ) -> types.SubscriptionsListenResult:
            return await self._serve_listen(ctx, _only_readable(ctx, params, readable))

        server.add_request_handler("subscriptions/listen", types.SubscriptionsListenRequestParams, serve_listen)
        # Only handshake-era connections are remembered (2026-era ones hear of changes on their listen stream).
        server.add_bookkeeping(self._remember_connection)

    async def _serve_listen(
        self, ctx: ServerRequestContext[Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        if self._metrics is not None:
            self._metrics.session_opened("subscriptions")
        try:
            return await self._listen(ctx, params)
        finally:
            if self._metrics is not None:
                self._metrics.session_closed("subscriptions")

    async def _remember_connection(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        # The SDK (2.3) offers no public handle on a request's connection; its session proxy keeps it here.
        connection = getattr(ctx.session, "_connection", None)
        if connection is not None and connection not in self._connections:
            self._connections.add(connection)
            exit_stack = getattr(connection, "exit_stack", None)
            if exit_stack is not None:
                exit_stack.callback(self._connections.discard, connection)
        return await call_next(ctx)

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def publish(self) -> None:
        """Tell every connected client; never raises (notifications are advisory)."""
        try:
            await self.bus.publish(ToolsListChanged())
        except Exception:
            logger.exception("publishing tools/list_changed on the subscription bus failed")
        for connection in list(self._connections):
            try:
                # Best effort by the SDK's contract: dropped where the channel cannot carry it.
                await connection.outbound.notify(_TOOLS_LIST_CHANGED, None)
            except Exception:
                logger.debug("tools/list_changed not delivered to a closing connection", exc_info=True)

    def close(self) -> None:
        """End every listen stream gracefully (shutdown: they would otherwise hold the drain open)."""
        self._listen.close()


def _only_readable(
    ctx: ServerRequestContext[Any], params: types.SubscriptionsListenRequestParams, readable: ReadableResources | None
) -> types.SubscriptionsListenRequestParams:
    wanted = params.notifications.resource_subscriptions
    if not wanted:
        return params
    kept = readable(ctx, wanted) if readable is not None else []
    notifications = params.notifications.model_copy(update={"resource_subscriptions": kept})
    return params.model_copy(update={"notifications": notifications})
