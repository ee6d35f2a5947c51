"""Spawn → first complete `tools/list` over stdio, interleaved, several times each:
the SDK server and FastMCP with 10 tools, ours with the same 10 tools and with GitHub's full description.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.clients import list_all_tools
from bench.imports import DOCUMENTS, manifest_dir
from bench.measure import summary
from bench.servers import Workspace, start


async def _once(workspace: Workspace, server: str, tools_dir: Path | None, tools_file: Path | None) -> dict[str, Any]:
    run = await start(workspace, server, "stdio", tools_dir=tools_dir, tools_file=tools_file, timeout=600)
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
    variants: dict[str, tuple[str, Path | None, Path | None]] = {
        "SDK low-level, 10 tools": ("sdk", None, ten_file),
        "FastMCP, 10 tools": ("fastmcp", None, ten_file),
        "mcp-connectors, 10 tools": ("ours", ten_dir, None),
    }
    if github.exists():
        variants["mcp-connectors, GitHub (1,223 tools)"] = (
            "ours",
            manifest_dir(workspace.root, "GitHub", github, base_url),
            None,
        )
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for r in range(rounds):
        names = list(variants)
        names = names[r % len(names) :] + names[: r % len(names)]
        for name in names:
            server, tools_dir, tools_file = variants[name]
            samples[name].append(await _once(workspace, server, tools_dir, tools_file))
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
