"""What each optional stage of a proxied call costs: `Pipeline.invoke` in-process, one stage switched off at a time.

    python -m bench.stages [--calls 3000] [--rounds 4]

No MCP transport and no SDK: the bench's one-operation manifest, its vault and audit log, the fake upstream
in its own process, 8 calls in flight, this process's CPU time per call. Each round runs every variant once
(interleaved, so noise lands on all of them); the medians are printed. A dev tool for the profile-driven
changes in docs/benchmarks/changes.md, not part of `make bench`.

Switching a stage off replaces it here only (a class attribute or the pipeline's audit log is swapped for
the run); the server never runs that way.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.run import TOKEN
from bench.servers import Workspace
from bench.upstream import Upstream

VARIANTS = ("everything", "no audit log", "no per-call log line", "no argument validation", "no SSRF guard", "none")


async def _calls(pipeline: Any, n: int, in_flight: int = 8) -> None:
    async def worker() -> None:
        for i in range(n // in_flight):
            await pipeline.invoke("bench_get_item", {"item_id": str(i)})

    await asyncio.gather(*(worker() for _ in range(in_flight)))


async def main_async(calls: int, rounds: int) -> None:
    from mcp_server._app import build_application
    from mcp_server._config import Settings
    from mcp_server._logging import configure_logging
    from mcp_server._netguard import DestinationPolicy
    from mcp_server._registry import ToolSpec

    upstream = Upstream(TOKEN)
    try:
        with tempfile.TemporaryDirectory(prefix="mcp-stages-") as scratch:
            workspace = Workspace(Path(scratch), upstream.url, TOKEN)
            workspace.setup()
            environ = {**os.environ, **{k: v for k, v in workspace.ours_env.items() if k.startswith("MCP_")}}
            configure_logging("info", "text")
            logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))  # noqa: ASYNC230, SIM115 - for the whole run
            app = build_application(Settings.resolve(environ=environ, tools_dirs=[workspace.tools_dir]))
            pipeline = app.pipeline
            audit, validate, check = pipeline.audit, ToolSpec.validate, DestinationPolicy.check
            checked: dict[str, Any] = {}

            async def check_once(self: DestinationPolicy, url: str) -> Any:
                if "destination" not in checked:
                    checked["destination"] = await check(self, url)
                return checked["destination"]

            def configure(variant: str) -> None:
                off = {variant} if variant != "none" else set(VARIANTS)
                pipeline.audit = None if "no audit log" in off else audit
                logging.getLogger().setLevel(logging.WARNING if "no per-call log line" in off else logging.INFO)
                ToolSpec.validate = (lambda self, arguments: None) if "no argument validation" in off else validate  # type: ignore[method-assign]
                DestinationPolicy.check = check_once if "no SSRF guard" in off else check  # type: ignore[method-assign]

            results: dict[str, list[float]] = {v: [] for v in VARIANTS}
            async with pipeline:
                configure("everything")
                await _calls(pipeline, 400)  # connections, caches and the vault read warmed
                for _ in range(rounds):
                    for variant in VARIANTS:
                        configure(variant)
                        started = time.process_time()
                        await _calls(pipeline, calls)
                        results[variant].append((time.process_time() - started) * 1e6 / calls)
            configure("everything")
    finally:
        upstream.close()
    base = statistics.median(results["everything"])
    print(f"CPU per call, in-process Pipeline.invoke, 8 in flight ({rounds} rounds of {calls} calls, medians)")
    for variant in VARIANTS:
        value = statistics.median(results[variant])
        saved = "" if variant == "everything" else f"   (saves {base - value:+.0f} µs)"
        print(f"  {variant:24s} {value:6.0f} µs{saved}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main_async(args.calls, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
