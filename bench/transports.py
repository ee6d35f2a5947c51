"""Per transport: the three servers proxying one tool call, interleaved round by round.

Each round starts all three servers (rotating the order), times spawn → first complete `tools/list`,
warms each up, reads idle RSS, then runs each phase on each server in turn — sequential, 8 in flight,
64 in flight, each in-flight phase after 0.3 s of unmeasured calls at that level — so a burst of noise
on the shared cores lands on all three, not on one. The servers are stopped at the end of the round
(peak RSS read first) and started afresh in the next.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.clients import list_all_tools
from bench.measure import percentile, sequential, summary, throughput, tool_call
from bench.servers import SERVERS, Running, Workspace, start

STEADY_WARMUP_S = 0.3
"""Calls at a concurrency level before its measured phase, on every server alike."""


async def _round(
    workspace: Workspace, transport: str, order: list[str], n_seq: int, duration: float, warmup: int
) -> dict[str, dict[str, Any]]:
    running: dict[str, Running] = {}
    out: dict[str, dict[str, Any]] = {s: {} for s in order}
    try:
        for server in order:
            run = await start(workspace, server, transport)
            await list_all_tools(run.client)
            out[server]["spawn_to_list_s"] = time.perf_counter() - run.spawned_at
            running[server] = run
        for server in order:
            await sequential(tool_call(running[server]), warmup)
        await asyncio.sleep(0.5)
        for server in order:
            out[server]["idle_rss_mb"] = running[server].memory()["rss_mb"]
        for server in order:
            run = running[server]
            out[server]["sequential"] = await sequential(tool_call(run), n_seq, run.cpu)
        for in_flight in (8, 64):
            for server in order:
                run = running[server]
                # Unmeasured first: the client's new connections and the server's upstream pool growing to
                # this many in flight are set-up, not the steady state the phase measures.
                await throughput(tool_call(run), in_flight, STEADY_WARMUP_S)
                out[server][f"at_{in_flight}"] = await throughput(tool_call(run), in_flight, duration, run.cpu)
        for server in order:
            out[server]["peak_rss_mb"] = running[server].memory()["hwm_mb"]
    finally:
        for run in running.values():
            await run.stop()
    return out


def _aggregate(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    pooled = [x for r in rounds for x in r["sequential"]["latencies_ms"]]
    agg: dict[str, Any] = {
        "p50_ms": percentile(pooled, 50),
        "p99_ms": percentile(pooled, 99),
        "p50_ms_rounds": summary([r["sequential"]["p50_ms"] for r in rounds]),
        "seq_server_cpu_ms": summary([r["sequential"]["server_cpu_ms_per_call"] for r in rounds]),
        "seq_client_cpu_ms": summary([r["sequential"]["client_cpu_ms_per_call"] for r in rounds]),
        "spawn_to_list_s": summary([r["spawn_to_list_s"] for r in rounds]),
        "idle_rss_mb": summary([r["idle_rss_mb"] for r in rounds]),
        "peak_rss_mb": summary([r["peak_rss_mb"] for r in rounds]),
    }
    for key in ("at_8", "at_64"):
        agg[key] = {
            "calls_per_s": summary([r[key]["calls_per_s"] for r in rounds]),
            "server_cpu_ms": summary([r[key]["server_cpu_ms_per_call"] for r in rounds]),
            "client_cpu_ms": summary([r[key]["client_cpu_ms_per_call"] for r in rounds]),
            "p50_ms": summary([r[key]["p50_ms"] for r in rounds]),
            "p99_ms": summary([r[key]["p99_ms"] for r in rounds]),
            "errors": sum(r[key]["errors"] for r in rounds),
            "error_sample": [e for r in rounds for e in r[key]["error_sample"]][:3],
        }
    return agg


async def bench_transport(
    workspace: Workspace, transport: str, *, rounds: int, n_seq: int, duration: float, warmup: int, log: Any = print
) -> dict[str, Any]:
    per_round: dict[str, list[dict[str, Any]]] = {s: [] for s in SERVERS}
    for r in range(rounds):
        order = list(SERVERS[r % len(SERVERS) :] + SERVERS[: r % len(SERVERS)])
        result = await _round(workspace, transport, order, n_seq, duration, warmup)
        for server, values in result.items():
            per_round[server].append(values)
        log(
            f"  {transport} round {r + 1}/{rounds}: "
            + ", ".join(
                f"{s} {result[s]['at_8']['calls_per_s']:.0f}/s@8 {result[s]['at_8']['server_cpu_ms_per_call']:.2f}ms"
                for s in order
            )
        )
    out = {}
    for server, rounds_data in per_round.items():
        aggregated = _aggregate(rounds_data)
        for values in rounds_data:  # keep the per-round numbers, not the long latency lists
            values["sequential"] = {k: v for k, v in values["sequential"].items() if k != "latencies_ms"}
        out[server] = {"summary": aggregated, "rounds": rounds_data}
    return out
