"""Peer (a): the smallest honest proxy on the official SDK's low-level `Server`.

    python bench/peers/sdk_server.py UPSTREAM_URL [--transport stdio|http|sse] [--port N] [--tools FILE]

One tool, `bench_get_item(item_id)`, forwards to GET {UPSTREAM}/items/{item_id} with
`Authorization: Bearer $BENCH_TOKEN`; the JSON answer is `structuredContent` plus the same text.
`--tools FILE` serves that JSON list of tool definitions instead (catalog scale), in one page.
"""

import argparse
import json
import os
import sys
from urllib.parse import quote

import httpx2
import mcp_types as types
from mcp.server.lowlevel.server import Server

args = argparse.ArgumentParser()
args.add_argument("upstream")
args.add_argument("--transport", default="stdio", choices=["stdio", "http", "sse"])
args.add_argument("--port", type=int, default=0)
args.add_argument("--tools")
opts = args.parse_args()

TOOL = types.Tool(
    name="bench_get_item",
    description="Fetch one item by id.",
    input_schema={"type": "object", "properties": {"item_id": {"type": "string"}}, "required": ["item_id"]},
)
if opts.tools:
    with open(opts.tools) as file:
        TOOLS = [types.Tool.model_validate(t) for t in json.load(file)]
else:
    TOOLS = [TOOL]
HEADERS = {"Authorization": f"Bearer {os.environ['BENCH_TOKEN']}"}
http = httpx2.AsyncClient(base_url=opts.upstream, headers=HEADERS, timeout=30)


async def list_tools(ctx, params):
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx, params):
    item_id = quote(str((params.arguments or {}).get("item_id", "")), safe="")
    response = await http.get(f"/items/{item_id}")
    body = response.text
    if response.status_code >= 400:
        return types.CallToolResult(content=[types.TextContent(type="text", text=body)], is_error=True)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=body)], structured_content=json.loads(body)
    )


server = Server("sdk-minimal", version="1", on_list_tools=list_tools, on_call_tool=call_tool)

if opts.transport == "stdio":
    import anyio
    from mcp.server.stdio import stdio_server

    async def main():
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)
else:
    import uvicorn

    if opts.transport == "http":
        app = server.streamable_http_app()
    else:
        from mcp.server.sse import SseServerTransport
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Mount, Route

        sse = SseServerTransport("/messages/")

        async def handle_sse(request):
            async with sse.connect_sse(request.scope, request.receive, request._send) as (read, write):
                await server.run(read, write, server.create_initialization_options())
            return Response()

        app = Starlette(routes=[Route("/sse", handle_sse), Mount("/messages/", app=sse.handle_post_message)])
    print(f"listening on {opts.port}", file=sys.stderr, flush=True)
    uvicorn.run(app, host="127.0.0.1", port=opts.port, log_level="warning")
