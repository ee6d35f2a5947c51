"""Webhook events over MCP: the `<connector>_list_events` tool and the `events://<connector>` resources.

Resources: `resources/list` names one resource per webhook connector the client may read (the same
scopes as its `_list_events` tool), `resources/read` returns its most recent events as JSON. A new
event is announced in both protocol eras:

- handshake era (2024-11-05 … 2025-11-25): `resources/subscribe` remembers the connection, and
  `notifications/resources/updated` goes out on its standalone channel (the GET stream of a Streamable
  HTTP session, the SSE stream, stdout);
- 2026-07-28: clients open `subscriptions/listen` with `resourceSubscriptions: ["events://stripe"]`;
  a `ResourceUpdated` event on the process's subscription bus (the one `_changes` serves) reaches them.

Notifications are level triggers ("read it again"), sent by `EventHub`'s worker after the event is
stored — never before, so a client that reads on the notification finds the event.
"""

from __future__ import annotations

import json
import logging
import math
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
import mcp_types as types
from jsonschema import Draft202012Validator
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.subscriptions import ResourceUpdated, SubscriptionBus
from mcp.shared.exceptions import MCPError

from mcp_server._access import Principal
from mcp_server._errors import InternalToolError, InvalidArguments
from mcp_server._events import EventHub, EventQuery, EventStoreError, StoredEvent
from mcp_server._pipeline import Outcome, ToolSuccess
from mcp_server._violations import violations
from mcp_server._webhook_model import EVENTS_TOOL_OPERATION

logger = logging.getLogger("mcp_server.events")

URI_SCHEME = "events://"
RESOURCE_EVENTS = 50
"""Events in one `resources/read` of `events://<connector>` (newest first); `_list_events` pages further."""
MAX_LIMIT = 100
NOTIFY_TIMEOUT = 5.0
"""A connection whose channel does not take a notification within this long is skipped (it stays subscribed)."""

_TIME_TEXT = "ISO 8601 (2026-01-31T12:00:00Z; no zone means UTC) or unix seconds."
_TIME: dict[str, Any] = {"type": ["string", "number"]}
LIST_EVENTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "description": "Only events whose type matches this glob: * any text, ? one character, [abc] one of "
            "(case-sensitive), e.g. invoice.* or push.",
        },
        "since": {**_TIME, "description": "Only events at or after this time: " + _TIME_TEXT},
        "until": {**_TIME, "description": "Only events at or before this time: " + _TIME_TEXT},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 20},
        "before": {
            "type": "integer",
            "minimum": 1,
            "maximum": 2**63 - 1,  # SQLite's integer range: beyond it the bind itself fails
            "description": "Only events older than this seq: pass next_before of the previous answer to page back.",
        },
    },
    "additionalProperties": False,
}
_VALIDATOR = Draft202012Validator(LIST_EVENTS_SCHEMA)


def events_tool_name(connector: str) -> str:
    return f"{connector}_{EVENTS_TOOL_OPERATION}"


def events_uri(connector: str) -> str:
    return f"{URI_SCHEME}{connector}"


def list_events_tool(connector: str, title: str) -> types.Tool:
    name = events_tool_name(connector)
    tool_title = f"List received {title} webhook events"
    return types.Tool(
        name=name,
        title=tool_title,
        description=(
            f"Webhook events {title} sent to this server, newest first: each with seq, id, type, time "
            "(the event's own), received_at and the payload. Filter by type glob and time range; page back with "
            f"before. Also readable as the resource {events_uri(connector)}."
        ),
        input_schema=LIST_EVENTS_SCHEMA,
        annotations=types.ToolAnnotations(
            title=tool_title, read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )


def parse_time(value: Any) -> float | None:
    """Unix seconds from a number or an ISO 8601 string (numeric strings too); None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    return seconds if math.isfinite(seconds) else None


def _json(value: dict[str, Any]) -> ToolSuccess:
    return ToolSuccess(200, value, json.dumps(value, ensure_ascii=False), True)


async def list_events(hub: EventHub, connector: str, arguments: Mapping[str, Any]) -> Outcome:
    """The `<connector>_list_events` tool: validated filters → one store query (in a worker thread)."""
    errors = violations(_VALIDATOR, dict(arguments))
    if errors:
        return InvalidArguments(
            f"Invalid arguments for {events_tool_name(connector)} at {errors[0].json_path}: {errors[0].message}",
            path=errors[0].json_path,
        )
    bounds: dict[str, float | None] = {}
    for key in ("since", "until"):
        raw = arguments.get(key)
        bounds[key] = parse_time(raw) if raw is not None else None
        if raw is not None and bounds[key] is None:
            return InvalidArguments(
                f"{key} must be an ISO 8601 time (2026-01-31T12:00:00Z) or unix seconds", path=f"$.{key}"
            )
    limit = int(arguments.get("limit", 20))  # int(): JSON Schema's "integer" admits 20.0
    before = arguments.get("before")
    query = EventQuery(
        type_glob=arguments.get("type"),
        since=bounds["since"],
        until=bounds["until"],
        before_seq=int(before) if before is not None else None,
        limit=limit,
    )
    try:
        found = await anyio.to_thread.run_sync(hub.store.query, connector, query)
    except EventStoreError as exc:
        logger.error("%s", exc)
        return InternalToolError("The event store cannot be read; the server log has the details.")
    value: dict[str, Any] = {
        "connector": connector,
        "events": [event.to_json() for event in found],
        "count": len(found),
        "next_before": found[-1].seq if len(found) == limit else None,
    }
    return _json(value)


class EventResources:
    """`events://<connector>` on one MCP server: list, read, subscribe, and the updated notifications."""

    def __init__(
        self,
        hub: EventHub,
        *,
        principal: Callable[[object], Principal],
        may_read: Callable[[Principal, str], bool],
    ) -> None:
        self._hub = hub
        self._principal = principal
        self._may_read = may_read
        self._bus: SubscriptionBus | None = None
        self._subscribers: dict[str, weakref.WeakSet[Any]] = {}
        self._sessions: dict[str, list[Any]] = {}
        """Sessions (no connection handle to hold weakly) by URI; only where the SDK hides the connection."""

    def attach(self, server: Server[Any], bus: SubscriptionBus | None) -> None:
        """Serve the resource methods on `server`; `bus` is the process's `subscriptions/listen` bus (2026-07-28)."""
        self._bus = bus
        server.add_request_handler("resources/list", types.PaginatedRequestParams, self._list)
        server.add_request_handler("resources/templates/list", types.PaginatedRequestParams, self._templates)
        server.add_request_handler("resources/read", types.ReadResourceRequestParams, self._read)
        server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, self._subscribe)
        server.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, self._unsubscribe)
        self._hub.listeners.append(self.notify)

    def _readable(self, principal: Principal, uri: str) -> str | None:
        """The connector `uri` names, if it has events and `principal` may read them."""
        connector = uri.removeprefix(URI_SCHEME) if uri.startswith(URI_SCHEME) else None
        if connector is None or connector not in self._hub.connectors() or not self._may_read(principal, connector):
            return None
        return connector

    def _connector(self, ctx: ServerRequestContext[Any], uri: str) -> str:
        """The connector `uri` names, if this client may read it; else the error of an unknown resource."""
        connector = self._readable(self._principal(ctx.request), uri)
        if connector is None:
            # The same answer for "no such connector" and "not yours": a client learns nothing it could not list.
            raise MCPError(types.INVALID_PARAMS, f"Unknown resource: {uri[:200]}", data={"uri": uri[:2000]})
        return connector

    def readable(self, ctx: ServerRequestContext[Any], uris: Sequence[str]) -> list[str]:
        """The URIs among `uris` this request's client may read (a `subscriptions/listen` filter)."""
        principal = self._principal(ctx.request)
        return [uri for uri in uris if self._readable(principal, uri) is not None]

    async def _list(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams
    ) -> types.ListResourcesResult:
        principal = self._principal(ctx.request)
        resources = [
            types.Resource(
                uri=events_uri(name),
                name=f"{name} events",
                title=f"{connector.title or name} webhook events",
                description=f"The most recent webhook events {connector.title or name} sent (newest first, "
                f"up to {RESOURCE_EVENTS}); subscribe to hear about new ones.",
                mime_type="application/json",
            )
            for name, connector in sorted(self._hub.connectors().items())
            if self._may_read(principal, name)
        ]
        return types.ListResourcesResult(resources=resources)

    async def _templates(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams
    ) -> types.ListResourceTemplatesResult:
        """`events://{connector}`, for a client that may read some connector's events; else none."""
        principal = self._principal(ctx.request)
        if not any(self._may_read(principal, name) for name in self._hub.connectors()):
            return types.ListResourceTemplatesResult(resource_templates=[])
        template = types.ResourceTemplate(
            uri_template=f"{URI_SCHEME}{{connector}}",
            name="connector events",
            title="A connector's webhook events",
            description=f"The most recent webhook events a connector received (newest first, up to "
            f"{RESOURCE_EVENTS}); resources/list names the connectors this client may read.",
            mime_type="application/json",
        )
        return types.ListResourceTemplatesResult(resource_templates=[template])

    async def _read(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        connector = self._connector(ctx, params.uri)
        try:
            found: list[StoredEvent] = await anyio.to_thread.run_sync(
                self._hub.store.query, connector, EventQuery(limit=RESOURCE_EVENTS)
            )
        except EventStoreError as exc:
            logger.error("%s", exc)
            raise MCPError(
                types.INTERNAL_ERROR, "The event store cannot be read; the server log has the details."
            ) from None
        body = {"connector": connector, "events": [event.to_json() for event in found], "count": len(found)}
        return types.ReadResourceResult(
            contents=[
                types.TextResourceContents(
                    uri=params.uri, mime_type="application/json", text=json.dumps(body, ensure_ascii=False)
                )
            ]
        )

    async def _subscribe(
        self, ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        self._connector(ctx, params.uri)
        # The SDK (2.3) offers no public handle on a request's connection; its session proxy keeps it here
        # (as `_changes` does for tools/list_changed). Held weakly: a closed connection leaves by itself.
        connection = getattr(ctx.session, "_connection", None)
        if connection is None:
            self._sessions.setdefault(params.uri, []).append(ctx.session)
            return types.EmptyResult()
        subscribers = self._subscribers.setdefault(params.uri, weakref.WeakSet())
        if connection not in subscribers:
            subscribers.add(connection)
            exit_stack = getattr(connection, "exit_stack", None)
            if exit_stack is not None:
                exit_stack.callback(subscribers.discard, connection)
        return types.EmptyResult()

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        connection = getattr(ctx.session, "_connection", None)
        if connection is not None and params.uri in self._subscribers:
            self._subscribers[params.uri].discard(connection)
        return types.EmptyResult()

    @property
    def subscriptions(self) -> int:
        return sum(len(connections) for connections in self._subscribers.values())

    async def notify(self, connector: str) -> None:
        """`notifications/resources/updated` for `events://<connector>`, in both eras (an `EventHub` listener)."""
        uri = events_uri(connector)
        if self._bus is not None:
            await self._bus.publish(ResourceUpdated(uri=uri))
        for connection in list(self._subscribers.get(uri, ())):
            with anyio.move_on_after(NOTIFY_TIMEOUT):
                try:
                    await connection.send_resource_updated(uri)
                except Exception:
                    logger.debug("resources/updated not delivered to a closing connection", exc_info=True)
        for session in list(self._sessions.get(uri, ())):
            with anyio.move_on_after(NOTIFY_TIMEOUT):
                try:
                    await session.send_resource_updated(uri)
                except Exception:
                    self._sessions[uri].remove(session)
