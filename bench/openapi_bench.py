"""GitHub's full REST description served by mcp-connectors and by FastMCP, side by side in one run.

    python bench/openapi_bench.py [--fastmcp PYTHON] [--runs N] [--out docs/benchmarks/openapi.md]

For each server: cold start (spawn → initialize → first complete `tools/list`, over stdio),
`tools/list` latency (median of N, warm), the size of that listing, and peak RSS (VmHWM).
A minimal newline-delimited JSON-RPC client drives both, so client cost is identical.
Also the in-process import time (load + convert + build every tool) against FastMCP's
`FastMCP.from_openapi`. Ratios, not absolute numbers, are the point: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / ".cache" / "corpus" / "octokit" / "generated" / "api.github.com.json"


class StdioPeer:
    """Just enough of MCP over stdio: handshake, paginated tools/list, timing."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
        )
        self._next_id = 0

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next_id += 1
        message = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params or {}}
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"server exited during {method}")
            reply = json.loads(line)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def notify(self, method: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"jsonrpc": "2.0", "method": method}).encode() + b"\n")
        self.process.stdin.flush()

    def handshake(self) -> None:
        self.request(
            "initialize",
            {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
        )
        self.notify("notifications/initialized")

    def list_all_tools(self) -> tuple[int, int]:
        """(tool count, bytes of the listing as JSON)."""
        count = size = 0
        cursor: str | None = None
        while True:
            result = self.request("tools/list", {"cursor": cursor} if cursor else {})
            count += len(result["tools"])
            size += len(json.dumps(result))
            cursor = result.get("nextCursor")
            if not cursor:
                return count, size

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def measure(argv: list[str], env: dict[str, str], runs: int) -> dict[str, Any]:
    peer = StdioPeer(argv, env)
    try:
        peer.handshake()
        tools, size = peer.list_all_tools()
        cold = time.perf_counter() - peer.started
        latencies = []
        for _ in range(runs):
            started = time.perf_counter()
            peer.list_all_tools()
            latencies.append(time.perf_counter() - started)
        return {
            "cold_start_s": cold,
            "tools": tools,
            "listing_mb": size / 1e6,
            "list_median_ms": statistics.median(latencies) * 1000,
            "peak_rss_mb": peer.peak_rss_mb(),
        }
    finally:
        peer.close()


FASTMCP_SERVER = """
import json, logging, sys
logging.disable(logging.CRITICAL)
import httpx2
from fastmcp import FastMCP
spec = json.load(open(sys.argv[1]))
FastMCP.from_openapi(openapi_spec=spec, client=httpx2.AsyncClient(base_url="https://api.github.com")).run(
    show_banner=False
)
"""

FASTMCP_IMPORT = """
import json, sys, time, logging
logging.disable(logging.CRITICAL)
started = time.perf_counter()
import httpx2
from fastmcp import FastMCP
spec = json.load(open(sys.argv[1]))
server = FastMCP.from_openapi(openapi_spec=spec, client=httpx2.AsyncClient(base_url="https://api.github.com"))
import asyncio
tools = asyncio.run(server.list_tools())
print(json.dumps({"seconds": time.perf_counter() - started, "tools": len(tools)}))
"""

OURS_IMPORT = """
import json, sys, time
started = time.perf_counter()
from pathlib import Path
from mcp_server._catalog import load_catalog
from mcp_server._registry import Registry
catalog = load_catalog([Path(sys.argv[1])])
registry = Registry.from_catalog(catalog)
print(json.dumps({"seconds": time.perf_counter() - started, "tools": len(registry)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fastmcp", metavar="PYTHON", help="a Python with fastmcp installed")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "openapi.md")
    args = parser.parse_args()
    if not SPEC.exists():
        print(f"{SPEC} is missing: run `python bench/corpus.py --limit 1` first (it downloads it)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        tools_dir = Path(scratch) / "tools"
        tools_dir.mkdir()
        (tools_dir / "github.yaml").write_text(
            f"name: gh\nopenapi: {SPEC}\nbase_url: https://api.github.com\n"
            "auth: {type: bearer, token: {secret: github_token}}\n"
        )
        env = {**os.environ, "MCP_CONNECTORS_VAULT": str(Path(scratch) / "vault.json")}
        python = sys.executable
        rows: dict[str, dict[str, Any]] = {}
        ours_import = json.loads(
            subprocess.run(
                [python, "-c", OURS_IMPORT, str(tools_dir)],
                capture_output=True,
                text=True,
                check=True,
                env=env,
                cwd=ROOT,
            ).stdout
        )
        rows["mcp-connectors"] = {
            "import_s": ours_import["seconds"],
            **measure(
                [python, "-m", "mcp_server", "serve", "--tools", str(tools_dir), "--page-size", "5000"], env, args.runs
            ),
        }
        if args.fastmcp:
            theirs = json.loads(
                subprocess.run(
                    [args.fastmcp, "-c", FASTMCP_IMPORT, str(SPEC)], capture_output=True, text=True, check=True
                ).stdout
            )
            rows["FastMCP"] = {
                "import_s": theirs["seconds"],
                **measure([args.fastmcp, "-c", FASTMCP_SERVER, str(SPEC)], env, args.runs),
            }
    labels = [
        ("tools", "tools served", "{:.0f}"),
        ("import_s", "import, in process (s)", "{:.2f}"),
        ("cold_start_s", "spawn → first complete tools/list, stdio (s)", "{:.2f}"),
        ("list_median_ms", f"tools/list, warm, median of {args.runs} (ms)", "{:.1f}"),
        ("listing_mb", "tools/list size (MB)", "{:.2f}"),
        ("peak_rss_mb", "server peak RSS (MB)", "{:.0f}"),
    ]
    names = list(rows)
    lines = ["| GitHub REST (api.github.com, @octokit/openapi 23.0.2) | " + " | ".join(names) + " |"]
    lines.append("|---|" + "---|" * len(names))
    for key, label, fmt in labels:
        lines.append(f"| {label} | " + " | ".join(fmt.format(rows[n][key]) for n in names) + " |")
    table = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        "# OpenAPI import benchmark\n\nGenerated by `make bench-openapi`"
        f" on {time.strftime('%Y-%m-%d')}; 2 shared cores, so compare the columns, not the absolute numbers.\n\n"
        + table
    )
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
