"""Spawn → first complete `tools/list` over stdio, interleaved, several times each:
the SDK server and FastMCP with 10 tools, ours with the same 10 tools and with GitHub's full description.

Ours twice each: as a desktop client sees it on every launch after the first (answered from the start-up
snapshot the previous start wrote, `mcp_server/_warm_start.py`; one unmeasured start writes it first), and
with no snapshot (`MCP_CONNECTORS_STARTUP_CACHE=off`, as the very first launch).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.clients import list_all_tools
from bench.imports import DOCUMENTS, manifest_dir
from bench.measure import summary
from bench.servers import Workspace, start

NO_SNAPSHOT = {"MCP_CONNECTORS_STARTUP_CACHE": "off"}
Variant = tuple[str, Path | None, Path | None, dict[str, str] | None]


async def _once(workspace: Workspace, variant: Variant) -> dict[str, Any]:
    server, tools_dir, tools_file, environ = variant
    run = await start(
        workspace, server, "stdio", tools_dir=tools_dir, tools_file=tools_file, environ=environ, timeout=600
    )
    try:
        tools, _, _ = await list_all_tools(run.client)
        return {
            "spawn_to_list_s": time.perf_counter() - run.spawned_at,
            "tools": tools,
            "rss_mb": run.memory()["rss_mb"],
        }
    finally:
        await run.stop()


async def bench_startup(workspace: Workspace, rounds: int, log: Any = print) -> dict[str, Any]:
    ten_dir = workspace.root / "catalog-10"
    ten_file = workspace.root / "catalog-10.tools.json"  # written by the catalog phase
    github, base_url = DOCUMENTS["GitHub"]
    variants: dict[str, Variant] = {
        "SDK low-level, 10 tools": ("sdk", None, ten_file, None),
        "FastMCP, 10 tools": ("fastmcp", None, ten_file, None),
        "mcp-connectors, 10 tools": ("ours", ten_dir, None, None),
        "mcp-connectors, 10 tools, no snapshot": ("ours", ten_dir, None, NO_SNAPSHOT),
    }
    if github.exists():
        github_dir = manifest_dir(workspace.root, "GitHub", github, base_url)
        variants["mcp-connectors, GitHub (1,223 tools)"] = ("ours", github_dir, None, None)
        variants["mcp-connectors, GitHub (1,223 tools), no snapshot"] = ("ours", github_dir, None, NO_SNAPSHOT)
    for name, variant in variants.items():
        if variant[0] == "ours" and variant[3] is None:
            await _once(workspace, variant)  # unmeasured: writes the snapshot the measured starts answer from
            log(f"  startup: {name}: snapshot written by a first start")
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for r in range(rounds):
        names = list(variants)
        names = names[r % len(names) :] + names[: r % len(names)]
        for name in names:
            samples[name].append(await _once(workspace, variants[name]))
        log(
            f"  startup round {r + 1}/{rounds}: "
            + ", ".join(f"{n} {samples[n][-1]['spawn_to_list_s']:.2f} s" for n in variants)
        )
    return {
        name: {
            "tools": runs[0]["tools"],
            "spawn_to_list_s": summary([x["spawn_to_list_s"] for x in runs]),
            "rss_mb": summary([x["rss_mb"] for x in runs]),
        }
        for name, runs in samples.items()
    }
