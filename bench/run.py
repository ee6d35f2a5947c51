"""Benchmark mcp-connectors against the SDK's low-level Server and FastMCP doing the same work.

    python -m bench.run [--quick] [--out DIR] [--phases floor,transports,sdk,catalog,startup,imports,profiles]

Writes DIR/results.json, DIR/README.md, DIR/calls.png and DIR/profiles/ (default docs/benchmarks;
`--quick` defaults to .cache/bench-quick so a smoke run never overwrites the committed results).
`make bench` installs the bench-only tools (matplotlib, psutil, py-spy) and runs the full benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.report import render
from bench.servers import FASTMCP_PYTHON, ROOT, TRANSPORTS, Workspace

TOKEN = "bench-upstream-token-4f9c2a"  # noqa: S105 - the fake upstream's, nothing real
PHASES = ("floor", "transports", "sdk", "catalog", "startup", "imports", "profiles")

FULL = {
    "rounds": 5,
    "n_seq": 150,
    "duration": 1.2,
    "warmup": 40,
    "sdk_n_seq": 100,
    "sdk_duration": 1.2,
    "catalog_sizes": [10, 100, 1000, 5000],
    "fastmcp_max": 5000,
    "catalog_min_reps": 2,
    "catalog_max_reps": 300,
    "catalog_min_seconds": 1.0,
    "catalog_variants": ("ours", "sdk", "fastmcp", "ours-page100"),
    "page100_sizes": (5000,),
    "startup_rounds": 3,
    "import_runs": 3,
    "import_fastmcp": True,
    "profile_seconds": 8.0,
    "profile_list_tools": 5000,
    "profile_list_walks": 4,
}
QUICK = {
    "rounds": 2,
    "n_seq": 40,
    "duration": 0.4,
    "warmup": 20,
    "sdk_n_seq": 20,
    "sdk_duration": 0.4,
    "catalog_sizes": [10, 100],
    "fastmcp_max": 100,
    "catalog_min_reps": 1,
    "catalog_max_reps": 100,
    "catalog_min_seconds": 0.3,
    "catalog_variants": ("ours", "sdk", "fastmcp", "ours-page100"),
    "page100_sizes": (100,),
    "startup_rounds": 1,
    "import_runs": 1,
    "import_fastmcp": False,
    "profile_seconds": 2.0,
    "profile_list_tools": 100,
    "profile_list_walks": 10,
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _meta(mode: str, params: dict[str, Any]) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = int(
        next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    )
    fastmcp_versions: dict[str, str] = {}
    if FASTMCP_PYTHON.exists():
        code = (
            "import json; from importlib import metadata as m; "
            "print(json.dumps({p: m.version(p) for p in ('fastmcp', 'mcp', 'httpx2', 'pydantic')}))"
        )
        done = subprocess.run([str(FASTMCP_PYTHON), "-c", code], capture_output=True, text=True)
        fastmcp_versions = json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-200:]}
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True, cwd=ROOT).stdout.strip()  # noqa: E731
    dirty = git("status", "--porcelain", "--", "mcp_server")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "mode": mode,
        "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()},
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_kb / 1024 / 1024,
        "kernel": f"Linux {platform.release()}",
        "python": platform.python_version(),
        "versions": {
            p: _version(p)
            for p in ("mcp", "mcp-types", "httpx2", "pydantic", "jsonschema", "uvicorn", "starlette", "anyio")
        },
        "fastmcp_versions": fastmcp_versions,
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": (
            f" with {len(dirty.splitlines())} uncommitted file(s) under mcp_server/ (others were editing)"
            if dirty
            else ""
        ),
        "loadavg_before": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


async def main_async(args: argparse.Namespace) -> int:
    from bench.catalog import bench_catalog
    from bench.imports import bench_imports
    from bench.measure import floor
    from bench.profiling import profile_calls, profile_list
    from bench.sdk_pass import sdk_pass
    from bench.startup import bench_startup
    from bench.transports import bench_transport
    from bench.upstream import Upstream

    params = QUICK if args.quick else FULL
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    phases = args.phases.split(",") if args.phases else list(PHASES)
    started = time.perf_counter()
    results: dict[str, Any] = {"meta": _meta("quick" if args.quick else "full", params), "not_measured": []}
    if args.keep and (out_dir / "results.json").exists():  # re-run some phases, keep the others
        previous = json.loads((out_dir / "results.json").read_text())
        results = {**previous, "meta": results["meta"], "not_measured": previous.get("not_measured", [])}

    def save() -> None:
        results["meta"]["wall_s"] = time.perf_counter() - started
        results["meta"]["loadavg_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))

    def note(text: str) -> None:
        if text not in results["not_measured"]:
            results["not_measured"].append(text)

    upstream = Upstream(TOKEN)
    try:
        with tempfile.TemporaryDirectory(prefix="mcp-bench-") as scratch:
            workspace = Workspace(Path(scratch), upstream.url, TOKEN)
            workspace.setup()
            p = params
            for phase in phases:
                t0 = time.perf_counter()
                log(f"== {phase}")
                try:
                    if phase == "floor":
                        results["floor"] = await floor(upstream.url, TOKEN, p["n_seq"] * 2, p["duration"])
                    elif phase == "transports":
                        results["transports"] = {}
                        for transport in TRANSPORTS:
                            results["transports"][transport] = await bench_transport(
                                workspace,
                                transport,
                                rounds=p["rounds"],
                                n_seq=p["n_seq"],
                                duration=p["duration"],
                                warmup=p["warmup"],
                                log=log,
                            )
                            save()
                    elif phase == "sdk":
                        results["sdk_pass"] = await sdk_pass(
                            workspace, TRANSPORTS, n_seq=p["sdk_n_seq"], duration=p["sdk_duration"], warmup=20, log=log
                        )
                    elif phase == "catalog":
                        results["catalog"] = await bench_catalog(
                            workspace,
                            p["catalog_sizes"],
                            fastmcp_max=p["fastmcp_max"],
                            min_reps=p["catalog_min_reps"],
                            max_reps=p["catalog_max_reps"],
                            min_seconds=p["catalog_min_seconds"],
                            variants=p["catalog_variants"],
                            page100_sizes=p["page100_sizes"],
                            log=log,
                        )
                        if 5000 not in p["catalog_sizes"]:
                            note("The 1,000- and 5,000-tool catalogs (and the targets at 5,000) are full-run only.")
                    elif phase == "startup":
                        if not (workspace.root / "catalog-10.tools.json").exists():
                            await bench_catalog(
                                workspace,
                                [10],
                                fastmcp_max=0,
                                min_reps=1,
                                max_reps=1,
                                min_seconds=0,
                                variants=("ours",),
                                log=log,
                            )
                        results["startup"] = await bench_startup(workspace, p["startup_rounds"], log=log)
                    elif phase == "imports":
                        results["imports"] = await asyncio.to_thread(
                            bench_imports, workspace.python, p["import_runs"], p["import_fastmcp"], log
                        )
                        if not p["import_fastmcp"]:
                            note("FastMCP's OpenAPI import times: full run only.")
                    elif phase == "profiles":
                        profile_dir = out_dir / "profiles"
                        profile_dir.mkdir(exist_ok=True)
                        results.setdefault("profiles", {})
                        results["profiles"]["tools/call, 8 in flight, stdio"] = await profile_calls(
                            workspace, profile_dir, p["profile_seconds"]
                        )
                        size = p["profile_list_tools"]
                        from bench.catalog import generate

                        tools_dir = generate(workspace.root, size, workspace.upstream_url)
                        results["profiles"][f"tools/list, {size:,} tools, stdio"] = await profile_list(
                            workspace, profile_dir, tools_dir, p["profile_list_walks"]
                        )
                    else:
                        raise ValueError(f"unknown phase {phase!r}; phases: {', '.join(PHASES)}")
                except Exception as exc:
                    log(traceback.format_exc())
                    results.setdefault("phase_errors", {})[phase] = f"{type(exc).__name__}: {exc}"[:500]
                    note(f"phase `{phase}` failed: {type(exc).__name__}: {str(exc)[:300]}")
                results["meta"].setdefault("phase_seconds", {})[phase] = time.perf_counter() - t0
                save()
            stats = upstream.stats()
            results["meta"]["upstream"] = stats
            if stats["unauthorized"]:
                note(f"{stats['unauthorized']} upstream requests arrived without the right token.")
    finally:
        upstream.close()
    note(
        "Attaching py-spy to a running process is refused in this container (no ptrace of non-children), so the "
        "profiles launch the server under py-spy; they are separate runs, not the measured ones."
    )
    note(
        "CPU counters tick every 10 ms: per-call CPU is only meaningful over whole phases (thousands of calls); "
        "tools/list CPU at 10 and 100 tools is averaged over many walks and still coarse."
    )
    note("TLS to the upstream, and HTTP/2, are not measured: the upstream is plain HTTP/1.1 on loopback.")
    note(
        "stdio is measured with the 2025-11-25 handshake only; the 2026-07-28 envelope is measured over Streamable "
        "HTTP."
    )
    save()
    render(results, out_dir)
    log(f"done in {(time.perf_counter() - started) / 60:.1f} min: {out_dir / 'README.md'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a ~2-minute smoke run with fewer rounds and sizes")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--phases", help=f"comma-separated subset of: {','.join(PHASES)}")
    parser.add_argument("--keep", action="store_true", help="keep the other phases' results already in --out")
    args = parser.parse_args()
    if args.out is None:
        args.out = ROOT / (".cache/bench-quick" if args.quick else "docs/benchmarks")
    os.chdir(ROOT)
    # SIGTERM (and SIGINT, which background shells ignore) unwind like Ctrl-C: every server is stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
