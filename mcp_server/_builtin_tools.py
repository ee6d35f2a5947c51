"""Built-in ("local") tools: served beside the connectors' tools, run in this process, never sent upstream.

    batch_invoke              several calls of the other tools at once (`_batch`)
    <connector>_list_events   webhook events a connector received (`_event_tools`), one per `webhooks:` block

This is the one seam every transport consults: the MCP handlers (`_server`: tools/list appends
`listed()` to the last page — or to the meta-tools in discovery mode — and tools/call tries
`serves()` first) and the REST façade (`_rest`: /v1/tools and /v1/invoke). Registry tools keep their
own path (`Access.invoke` → `Pipeline.invoke`); built-ins are answered here with the same outcome types,
so results, errors and REST statuses look exactly like any other tool's.

Who sees what follows the registry's scopes (`_scopes`): `<c>_list_events` is a read-only tool of
connector `c` (granted by `tools:*`, `tools:*:read`, `tools:c:*`, `tools:c:read` or its own name), and
`batch_invoke` is granted by `tools:*` or `tools:batch_invoke` (to a client that may call at least one
registry tool), each call inside it still checked like a single call. `--include-tools` and
`--exclude-tools` globs apply to built-ins too. A built-in call counts against the client's own rate
and concurrency limits like any call; a batch counts once per call in it, not for itself.
"""

from __future__ import annotations

import fnmatch
import logging
import weakref
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server

from mcp_server._access import Access, OverClientLimit, Principal, forbidden
from mcp_server._batch import BATCH_TOOL, UnknownToolCall, batch_tool, run_batch
from mcp_server._changes import ToolListChanges
from mcp_server._config import Settings
from mcp_server._errors import UnknownTool
from mcp_server._event_tools import EventResources, events_tool_name, list_events, list_events_tool
from mcp_server._events import EventHub, EventStore
from mcp_server._local_settings import LocalToolSettings
from mcp_server._model import Catalog
from mcp_server._pipeline import Outcome, Pipeline, ProgressFn
from mcp_server._registry import Registry
from mcp_server._scopes import Scopes, ToolView, read_only

logger = logging.getLogger("mcp_server.builtin")


class ListedTool(Protocol):
    """What a tool listing needs of a tool: a registry `ToolSpec` and a `LocalTool` both have it."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def input_schema(self) -> Mapping[str, Any]: ...
    @property
    def mcp_tool(self) -> types.Tool: ...


@dataclass(frozen=True, slots=True)
class LocalTool:
    name: str
    description: str
    input_schema: Mapping[str, Any]
    mcp_tool: types.Tool
    connector: str | None
    """The connector whose scopes grant it (`_list_events`); None for `batch_invoke`."""


def _local(tool: types.Tool, connector: str | None) -> LocalTool:
    return LocalTool(tool.name, tool.description or "", tool.input_schema, tool, connector)


def _grants_events(scopes: Scopes, name: str, connector: str) -> bool:
    """`Scopes.allows` for a read-only tool of `connector` that is not in the registry."""
    return (
        scopes.every_tool
        or scopes.every_read
        or name in scopes.tools
        or connector in scopes.connectors
        or connector in scopes.connectors_read
    )


class LocalTools:
    """The built-in tools of one served process (see the module docstring)."""

    def __init__(
        self,
        access: Access,
        *,
        settings: LocalToolSettings | None = None,
        hub: EventHub | None = None,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> None:
        self._access = access
        self.settings = settings or LocalToolSettings()
        self.hub = hub
        self._include = tuple(include)
        self._exclude = tuple(exclude)
        self._events_tools: dict[str, LocalTool] = {}
        self._events_source: object = None
        self._batch_tools = {
            flag: _local(
                batch_tool(self.settings.batch_max_calls, self.settings.batch_concurrency, read_only=flag), None
            )
            for flag in (False, True)
        }
        self._batch_read_only: weakref.WeakKeyDictionary[ToolView, bool] = weakref.WeakKeyDictionary()
        self.resources: EventResources | None = None

    @classmethod
    def for_settings(
        cls, pipeline: Pipeline, access: Access, settings: Settings, *, catalog: Callable[[], Catalog]
    ) -> LocalTools:
        """The built-ins of a served process; `catalog` returns the catalog served now (it follows reloads)."""
        store = EventStore(settings.local_tools.events_path(settings.vault_path))
        hub = EventHub(store, catalog)
        return cls(
            access,
            settings=settings.local_tools,
            hub=hub,
            include=settings.include_tools,
            exclude=settings.exclude_tools,
        )

    # -- what exists --------------------------------------------------------------------------------------

    def _wanted(self, name: str) -> bool:
        matches = fnmatch.fnmatchcase
        return (not self._include or any(matches(name, p) for p in self._include)) and not any(
            matches(name, p) for p in self._exclude
        )

    def _events(self) -> dict[str, LocalTool]:
        """`<connector>_list_events` by tool name, rebuilt when a reload changes the webhook connectors."""
        if self.hub is None:
            return {}
        connectors = self.hub.connectors()
        if connectors is not self._events_source:
            tools = (_local(list_events_tool(name, c.title or name), name) for name, c in sorted(connectors.items()))
            self._events_tools = {tool.name: tool for tool in tools if self._wanted(tool.name)}
            self._events_source = connectors
        return self._events_tools

    def _batch_offered(self, registry: Registry) -> bool:
        # A connector's own tool of that name (connector `batch`, operation `invoke`) is what its author wrote: it wins.
        return self._wanted(BATCH_TOOL) and not _in_registry(registry, BATCH_TOOL)

    def serves(self, name: str) -> bool:
        """Whether `name` is a built-in (for someone); the transports then call `call` instead of the pipeline."""
        if name == BATCH_TOOL:
            return self._batch_offered(self._access.pipeline.registry)
        return name in self._events()

    # -- what one client sees -----------------------------------------------------------------------------

    def _batch_for(self, principal: Principal) -> LocalTool | None:
        scopes = principal.scopes
        # Granted like a tool of its own (`tools:*` or `tools:batch_invoke`), not by a connector's scope: fanning out
        # is a capability of its own, though every call in a batch is still checked on its own.
        if not (scopes.every_tool or BATCH_TOOL in scopes.tools):
            return None
        view = self._access.view(principal)
        if not len(view.registry) or not self._batch_offered(self._access.pipeline.registry):
            return None
        flag = self._batch_read_only.get(view)
        if flag is None:
            flag = self._batch_read_only[view] = all(read_only(tool) for tool in view.registry)
        return self._batch_tools[flag]

    def may_read_events(self, principal: Principal, connector: str) -> bool:
        tool = self._events().get(events_tool_name(connector))
        return tool is not None and _grants_events(principal.scopes, tool.name, connector)

    def listed(self, principal: Principal) -> list[LocalTool]:
        """The built-ins `principal` may call, in listing order: the events tools, then `batch_invoke`."""
        found = [
            tool
            for tool in self._events().values()
            if tool.connector is not None and _grants_events(principal.scopes, tool.name, tool.connector)
        ]
        batch = self._batch_for(principal)
        return [*found, batch] if batch is not None else found

    # -- calling ------------------------------------------------------------------------------------------

    async def call(
        self,
        principal: Principal,
        name: str,
        arguments: Mapping[str, Any] | None,
        *,
        transport: str,
        progress: ProgressFn | None = None,
    ) -> Outcome:
        """Run built-in `name` for `principal`: FORBIDDEN outside its scopes; raises `UnknownTool` if not a built-in."""
        arguments = arguments or {}
        if name == BATCH_TOOL and self.serves(name):
            if self._batch_for(principal) is None:
                return forbidden(name)
            concurrency = self.settings.batch_concurrency
            if principal.authenticated:
                # Never more at once than the client may run at all, or the batch would refuse its own calls.
                _, bound = self._access.limiter.limits(principal)
                concurrency = min(concurrency, bound) if bound else concurrency
            return await run_batch(
                arguments,
                lambda tool, args: self.dispatch(principal, tool, args, transport=transport),
                max_calls=self.settings.batch_max_calls,
                concurrency=concurrency,
                progress=progress,
            )
        tool = self._events().get(name)
        if tool is None or tool.connector is None or self.hub is None:
            raise UnknownTool(name)
        if not _grants_events(principal.scopes, name, tool.connector):
            return forbidden(name)
        try:
            with self._access.limiter.admit(principal):
                return await list_events(self.hub, tool.connector, arguments)
        except OverClientLimit as over:
            return over

    async def dispatch(
        self, principal: Principal, name: str, arguments: Mapping[str, Any], *, transport: str
    ) -> Outcome:
        """One call of a batch, exactly as the client's own single call would run; an unknown tool is its error."""
        try:
            if name != BATCH_TOOL and self.serves(name):
                return await self.call(principal, name, arguments, transport=transport)
            return await self._access.invoke(principal, name, arguments, transport=transport)
        except UnknownTool as exc:
            return UnknownToolCall(exc.message, tool=name)

    # -- wiring -------------------------------------------------------------------------------------------

    def attach(self, server: Server[Any], changes: ToolListChanges | None) -> None:
        """Serve `events://<connector>` resources on `server` (and their notifications on `changes`' bus)."""
        if self.hub is None:
            return
        self.resources = EventResources(self.hub, principal=self._access.principal, may_read=self.may_read_events)
        self.resources.attach(server, changes.bus if changes is not None else None)

    def readable_resources(self, ctx: ServerRequestContext[Any], uris: Sequence[str]) -> list[str]:
        """The `events://` URIs among `uris` the request's client may read; none before `attach`."""
        return self.resources.readable(ctx, uris) if self.resources is not None else []

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[None]:
        """Notifications about new events while the HTTP app runs; the store is closed afterwards."""
        if self.hub is None:
            yield
            return
        async with self.hub.running():
            yield

    async def close_streams(self) -> None:
        """End every `/v1/events` SSE stream (the drain calls this; they would otherwise hold shutdown open)."""
        if self.hub is not None:
            self.hub.close()


def _in_registry(registry: Registry, name: str) -> bool:
    try:
        registry.get(name)
    except UnknownTool:
        return False
    return True
