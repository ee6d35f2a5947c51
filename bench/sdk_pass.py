"""Sanity pass with the SDK's own `mcp.Client` on every server and transport.

Fewer calls than the light client: the point is that the ratios hold with a real client, and how much
CPU the SDK client itself spends per call on the same two cores (`client_cpu_ms`).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from typing import Any

import psutil
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client

from bench.measure import sequential, throughput
from bench.servers import ROOT, SERVERS, TOOL, Workspace, cpu_seconds, start

MODES = {"stdio": "legacy", "http-2026": "2026-07-28", "http-2025": "legacy", "sse": "legacy"}


async def _one(
    workspace: Workspace, server: str, transport: str, n_seq: int, duration: float, warmup: int
) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        if transport == "stdio":
            argv, env = workspace.argv(server, "stdio", 0)
            errlog = stack.enter_context((workspace.root / f"sdk-client-{server}.stderr").open("w"))
            before = {p.pid for p in psutil.Process().children()}
            params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=str(ROOT))
            spawned_at = time.perf_counter()
            client = await stack.enter_async_context(Client(stdio_client(params, errlog=errlog), mode="legacy"))
            pid = next(p.pid for p in psutil.Process().children() if p.pid not in before)
        else:
            running = await start(workspace, server, transport)  # our light client only waits for the port
            stack.push_async_callback(running.stop)
            pid, spawned_at = running.pid, running.spawned_at
            url = running.client.url
            transport_cm = sse_client(url) if transport == "sse" else url
            client = await stack.enter_async_context(Client(transport_cm, mode=MODES[transport]))
        await client.list_tools()
        spawn_to_list = time.perf_counter() - spawned_at

        async def call(i: int) -> Any:
            result = await client.call_tool(TOOL, {"item_id": str(i)})
            if result.is_error or not isinstance(result.structured_content, dict):
                raise RuntimeError(f"tool call failed: {str(result)[:300]}")
            return result

        def cpu() -> float:
            return cpu_seconds(pid)

        await sequential(call, warmup)
        seq = await sequential(call, n_seq, cpu)
        seq.pop("latencies_ms")
        at_8 = await throughput(call, 8, duration, cpu)
        return {"spawn_to_list_s": spawn_to_list, "sequential": seq, "at_8": at_8}


async def sdk_pass(
    workspace: Workspace, transports: tuple[str, ...], *, n_seq: int, duration: float, warmup: int, log: Any = print
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for transport in transports:
        out[transport] = {}
        for server in SERVERS:
            try:
                out[transport][server] = await asyncio.wait_for(
                    _one(workspace, server, transport, n_seq, duration, warmup), 180
                )
            except Exception as exc:  # reported in the table, never hidden
                out[transport][server] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        log(
            f"  mcp.Client {transport}: "
            + ", ".join(
                f"{s} {v['at_8']['calls_per_s']:.0f}/s" if "at_8" in v else f"{s} failed"
                for s, v in out[transport].items()
            )
        )
    return out
