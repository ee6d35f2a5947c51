"""Serve MCP over stdin/stdout, the way desktop clients launch the server."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

from mcp.server.stdio import stdio_server

from mcp_server._access import Access
from mcp_server._app import Application
from mcp_server._builtin_tools import LocalTools
from mcp_server._ops import Operations
from mcp_server._server import build_server
from mcp_server._startup_recorder import StartupRecorder
from mcp_server._stdio_pipes import MessageWriter, stdio_streams
from mcp_server._warm_start import Handover, WarmStart

logger = logging.getLogger("mcp_server.startup")


async def serve_stdio(app: Application, warm_start: WarmStart | None = None) -> None:
    """`warm_start` (from `_entry`) may have answered the handshake already; see `_warm_start`."""
    ops = Operations(app.pipeline, app.catalog, app.settings)  # hot reload and tools/list_changed, as over HTTP
    access = Access(app.pipeline, read_only=app.settings.access.read_only)  # local: no scopes, only --read-only
    # batch_invoke and <connector>_list_events (reading the event store the HTTP server's webhooks fill).
    local = LocalTools.for_settings(app.pipeline, access, app.settings, catalog=lambda: ops.state.catalog)
    server = build_server(
        app.pipeline,
        page_size=app.settings.page_size,
        discovery=app.settings.discovery,
        client="stdio",
        changes=ops.changes,
        access=access,
        local=local,
    )
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.pipeline)
        await stack.enter_async_context(ops.running(http=False))
        await stack.enter_async_context(local.running())
        if sys.platform == "win32":  # pragma: no cover - the SDK's own thread-backed files, as they are
            read_stream, write_stream = await stack.enter_async_context(stdio_server())
            await server.run(read_stream, write_stream, server.create_initialization_options())
            return
        handover = warm_start.handover() if warm_start is not None else Handover(b"")
        if handover.expected:
            logger.info(
                "answered initialize and %d tools/list page(s) from the start-up snapshot while loading",
                len(handover.expected) - 1,
            )
        # fd 1 is moved aside while serving, so a stray print from any library lands on stderr, not in the protocol.
        streams = stdio_streams(handover.prefix, ended=handover.eof, unsent=handover.unsent)
        lines, sink = await stack.enter_async_context(streams)
        recorder = _recorder(app, warm_start, handover)
        # The SDK parses what arrives; our writer sends the replies (cached listing pages pre-serialized).
        stdin = recorder.lines(lines) if recorder is not None else lines
        sdk_streams = stdio_server(stdin=stdin, stdout=sink)  # pyright: ignore[reportArgumentType]
        read_stream, unused = await stack.enter_async_context(sdk_streams)
        await unused.aclose()  # its writer task ends at once
        cache = server.listing_cache
        write_stream = MessageWriter(sink, cache.wire_json if cache is not None else _no_prebuilt, recorder)
        await server.run(read_stream, write_stream, server.create_initialization_options())


def _recorder(app: Application, warm_start: WarmStart | None, handover: Handover) -> StartupRecorder | None:
    if warm_start is None:
        return None
    registry = app.pipeline.registry  # a reload swaps it: pages listed after one are not this start's
    return StartupRecorder(
        warm_start.path,
        warm_start.inputs,
        handover,
        still_current=lambda: app.pipeline.registry is registry,
    )


def _no_prebuilt(result: Mapping[str, Any]) -> bytes | None:
    return None
