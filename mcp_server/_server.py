"""MCP handlers on the SDK's low-level `Server`: `tools/list` pages the registry, `tools/call` runs the pipeline."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

from mcp_server._access import Access, Principal
from mcp_server._builtin_tools import LocalTools
from mcp_server._changes import ConnectorServer, ToolListChanges
from mcp_server._config import DEFAULT_PAGE_SIZE
from mcp_server._errors import ToolError, UnknownTool, printable
from mcp_server._listing_cache import ListingCache
from mcp_server._meta_tools import META_TOOLS, MetaTools
from mcp_server._pipeline import Outcome, Pipeline, ProgressFn
from mcp_server._registry import InvalidCursor
from mcp_server._version import server_version

SERVER_NAME = "mcp-connectors"


def to_call_tool_result(outcome: Outcome) -> types.CallToolResult:
    """DESIGN.md's result shape: JSON as `structuredContent` plus the same JSON as text; errors likewise."""
    if isinstance(outcome, ToolError):
        body = outcome.to_body()
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(body, ensure_ascii=False))],
            structured_content=body,
            is_error=True,
        )
    if not outcome.is_json:
        return types.CallToolResult(content=[types.TextContent(type="text", text=outcome.text)])
    value: Any = outcome.value
    structured = cast(dict[str, Any], value) if isinstance(value, dict) else {"result": value}
    content: list[types.ContentBlock] = [types.TextContent(type="text", text=outcome.text)]
    if outcome.note:
        # A separate block, so the JSON block stays exactly the structured content.
        content.append(types.TextContent(type="text", text=f"Note: {outcome.note}"))
    return types.CallToolResult(content=content, structured_content=structured)


@dataclass(frozen=True, slots=True)
class DirectCall:
    """What `build_server` registered for `tools/call`, callable without an SDK request context.

    `_http_fastpath` answers Streamable HTTP 2026-07-28 calls with `call`; it checks that `handler` is
    still the server's `tools/call` handler, and reads the caller from a request with `access`.
    """

    call: Callable[[Principal, types.CallToolRequestParams, ProgressFn | None], Awaitable[types.CallToolResult]]
    handler: object
    access: Access


def build_server(
    pipeline: Pipeline,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    discovery: bool = False,
    client: str = "mcp",
    changes: ToolListChanges | None = None,
    access: Access | None = None,
    local: LocalTools | None = None,
) -> ConnectorServer:
    """`client` names the transport in the audit log (`stdio`, `mcp-http`).

    `access` filters listings and calls by the HTTP client's scopes and limits (`_access`); without it
    every tool is served to everyone, as over stdio.

    Handlers read `pipeline.registry` on every request, so a catalog reload that swaps it is served at
    once; `changes` (when given) tells connected clients about it.

    `local` adds the built-in tools (`batch_invoke`, `<connector>_list_events`) and the `events://` resources.
    """
    access = access or Access(pipeline)
    meta = MetaTools(pipeline, access) if discovery else None

    def builtins(ctx: ServerRequestContext[Any]) -> list[types.Tool]:
        return [tool.mcp_tool for tool in local.listed(access.principal(ctx.request))] if local is not None else []

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        cursor = params.cursor if params is not None else None
        if meta is not None:  # the three meta-tools are the whole listing; built-ins stay callable by name
            return types.ListToolsResult(tools=META_TOOLS)
        view = access.view(access.principal(ctx.request))  # only what this client may call
        try:
            tools, next_cursor = view.registry.page(cursor, page_size)
        except InvalidCursor as exc:
            raise MCPError(types.INVALID_PARAMS, str(exc)) from None
        listed = [tool.mcp_tool for tool in tools]
        if next_cursor is None:  # built-ins close the listing, after the last registry page
            listed += builtins(ctx)
        return types.ListToolsResult(tools=listed, next_cursor=next_cursor)

    async def call(
        principal: Principal, params: types.CallToolRequestParams, progress: ProgressFn | None
    ) -> types.CallToolResult:
        try:
            if local is not None and local.serves(params.name):  # built-ins never reach the HTTP pipeline
                outcome = await local.call(
                    principal, params.name, params.arguments, transport=client, progress=progress
                )
            elif meta is not None:
                outcome = await meta.call(
                    params.name, params.arguments or {}, progress=progress, principal=principal, transport=client
                )
            else:  # FORBIDDEN outside the client's scopes, RATE_LIMITED over its limits (`_access`)
                outcome = await access.invoke(
                    principal, params.name, params.arguments, transport=client, progress=progress
                )
        except UnknownTool as exc:
            pipeline.metrics.observe_unknown_tool()  # one `unknown` series, whatever name was sent
            raise MCPError(types.INVALID_PARAMS, printable(exc.message)) from None  # it quotes the name sent
        return to_call_tool_result(outcome)

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        return await call(access.principal(ctx.request), params, ctx.session.report_progress)

    def tool_input_schema(name: str) -> dict[str, Any] | None:
        try:  # no request here: the inbound middleware's CURRENT_PRINCIPAL says whose view to use
            return dict(access.view(access.current()).registry.get(name).input_schema)
        except UnknownTool:
            return None

    server = ConnectorServer(
        SERVER_NAME,
        version=server_version(),
        title="mcp-connectors",
        instructions="Each tool calls one operation of an external API; credentials are injected by the server.",
        get_tool_input_schema=tool_input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
    server.direct_call = DirectCall(call, call_tool, access)
    if meta is None:

        def listing(ctx: ServerRequestContext[Any]) -> tuple[object, ...]:
            principal = access.principal(ctx.request)
            names = tuple(tool.name for tool in local.listed(principal)) if local is not None else ()
            return (access.view(principal).registry, page_size, names)

        server.listing_cache = ListingCache(listing)
        server.add_bookkeeping(server.listing_cache)  # it answers tools/list only
    if local is not None:
        local.attach(server, changes)  # events://<connector> resources and their notifications
    if changes is not None:
        changes.attach(server, local.readable_resources if local is not None else None)
    return server
