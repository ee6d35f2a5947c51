"""Peer (b): the same proxy tool on FastMCP, run with FastMCP's own Python (.cache/fastmcp-venv).

    python bench/peers/fastmcp_server.py UPSTREAM_URL [--transport stdio|http|sse] [--port N] [--tools FILE]

`bench_get_item(item_id)` forwards to GET {UPSTREAM}/items/{item_id} with `Authorization: Bearer
$BENCH_TOKEN` and returns the JSON (FastMCP makes it `structuredContent` plus text). `--tools FILE`
serves that JSON list of tool definitions instead (catalog scale), each with its own input schema.
"""

import argparse
import json
import os
from typing import Any
from urllib.parse import quote

import httpx2
from fastmcp import FastMCP
from fastmcp.tools.base import Tool, ToolResult

args = argparse.ArgumentParser()
args.add_argument("upstream")
args.add_argument("--transport", default="stdio", choices=["stdio", "http", "sse"])
args.add_argument("--port", type=int, default=0)
args.add_argument("--tools")
opts = args.parse_args()

mcp = FastMCP("fastmcp-peer")
http = httpx2.AsyncClient(
    base_url=opts.upstream, headers={"Authorization": f"Bearer {os.environ['BENCH_TOKEN']}"}, timeout=30
)


class CatalogTool(Tool):
    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        return ToolResult(structured_content={"ok": True})


if opts.tools:
    with open(opts.tools) as file:
        definitions = json.load(file)
    for definition in definitions:
        mcp.add_tool(
            CatalogTool(
                name=definition["name"],
                title=definition.get("title"),
                description=definition.get("description"),
                parameters=definition["inputSchema"],
            )
        )
else:

    @mcp.tool
    async def bench_get_item(item_id: str) -> dict[str, Any]:
        """Fetch one item by id."""
        response = await http.get(f"/items/{quote(item_id, safe='')}")
        response.raise_for_status()
        return response.json()


if opts.transport == "stdio":
    mcp.run(transport="stdio", show_banner=False)
else:
    mcp.run(transport=opts.transport, show_banner=False, host="127.0.0.1", port=opts.port, log_level="warning")
