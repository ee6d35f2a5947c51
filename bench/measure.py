"""Measurement routines: sequential latency, throughput at N in flight, server CPU per call.

Server CPU comes from the server process's own /proc counters (utime + stime, before/after a phase);
client CPU is this process's `time.process_time()` over the same phase, recorded so the client's share
of the two cores is visible (it is never counted as the server's).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2

from bench.servers import TOOL, Running

Call = Callable[[int], Awaitable[Any]]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    """Median and spread (min, max) of per-round values."""
    clean = [v for v in values if v == v]
    if not clean:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"median": statistics.median(clean), "min": min(clean), "max": max(clean), "n": len(clean)}


def tool_call(running: Running) -> Call:
    async def call(i: int) -> Any:
        result = await running.client.request("tools/call", {"name": TOOL, "arguments": {"item_id": str(i)}})
        if result.get("isError") or not isinstance(result.get("structuredContent"), dict):
            raise RuntimeError(f"tool call failed: {str(result)[:300]}")
        return result

    return call


async def sequential(call: Call, n: int, cpu: Callable[[], float] | None = None) -> dict[str, Any]:
    latencies = []
    cpu_before = cpu() if cpu else 0.0
    client_before = time.process_time()
    started = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        await call(i)
        latencies.append(time.perf_counter() - t0)
    wall = time.perf_counter() - started
    out = {
        "calls": n,
        "wall_s": wall,
        "latencies_ms": [x * 1000 for x in latencies],
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "client_cpu_ms_per_call": (time.process_time() - client_before) / n * 1000,
    }
    if cpu:
        out["server_cpu_ms_per_call"] = (cpu() - cpu_before) / n * 1000
    return out


async def throughput(
    call: Call, in_flight: int, duration: float, cpu: Callable[[], float] | None = None
) -> dict[str, Any]:
    """`in_flight` workers call back to back until `duration` has passed; calls/s over the whole phase."""
    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(10**9))
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                await call(next(counter))
            except Exception as exc:  # counted, reported; a failing server must not look fast
                errors.append(repr(exc)[:200])
                continue
            latencies.append(time.perf_counter() - t0)

    cpu_before = cpu() if cpu else 0.0
    client_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    wall = time.perf_counter() - started
    calls = len(latencies)
    out = {
        "in_flight": in_flight,
        "calls": calls,
        "errors": len(errors),
        "error_sample": errors[:3],
        "wall_s": wall,
        "calls_per_s": calls / wall,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "client_cpu_ms_per_call": (time.process_time() - client_before) / max(1, calls) * 1000,
    }
    if cpu:
        out["server_cpu_ms_per_call"] = (cpu() - cpu_before) / max(1, calls) * 1000
        out["server_cpu_share"] = (cpu() - cpu_before) / wall
    return out


async def floor(upstream_url: str, token: str, n_seq: int, duration: float) -> dict[str, Any]:
    """Raw httpx2 async requests straight to the upstream: what no server can beat."""
    limits = httpx2.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx2.AsyncClient(
        base_url=upstream_url, limits=limits, headers={"Authorization": f"Bearer {token}"}
    ) as http:

        async def call(i: int) -> Any:
            response = await http.get(f"/items/{i}")
            response.raise_for_status()
            return response.json()

        await sequential(call, 50)
        return {
            "sequential": await sequential(call, n_seq),
            "at_8": await throughput(call, 8, duration),
            "at_64": await throughput(call, 64, duration),
        }
