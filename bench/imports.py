"""Import time of real OpenAPI descriptions: GitHub's full REST description and Stripe's.

Each run is a fresh process; the clock starts after our modules are imported and covers what
`serve` does before it can answer: load the document, resolve `$ref`s, convert every operation,
validate the manifest and build every tool (flat schema + compiled validator). FastMCP's
`FastMCP.from_openapi` + `list_tools()` is timed the same way (after its imports) for the ratio.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.servers import FASTMCP_PYTHON, ROOT

CORPUS = ROOT / ".cache" / "corpus"
DOCUMENTS = {
    "GitHub": (CORPUS / "octokit" / "generated" / "api.github.com.json", "https://api.github.com"),
    "Stripe": (CORPUS / "apis" / "api" / "stripe.com.json", "https://api.stripe.com"),
}

OURS = """
import json, sys, time
from pathlib import Path
from mcp_server._catalog import load_catalog
from mcp_server._registry import Registry
started = time.perf_counter()
catalog = load_catalog([Path(sys.argv[1])])
registry = Registry.from_catalog(catalog)
print(json.dumps({"seconds": time.perf_counter() - started, "tools": len(registry), "faults": len(catalog.faults)}))
"""

FASTMCP = """
import asyncio, json, logging, sys, time, warnings
logging.disable(logging.CRITICAL); warnings.filterwarnings("ignore")
import httpx2
from fastmcp import FastMCP
started = time.perf_counter()
spec = json.load(open(sys.argv[1]))
server = FastMCP.from_openapi(openapi_spec=spec, client=httpx2.AsyncClient(base_url=sys.argv[2]))
tools = asyncio.run(server.list_tools())
print(json.dumps({"seconds": time.perf_counter() - started, "tools": len(tools)}))
"""


def manifest_dir(root: Path, name: str, spec: Path, base_url: str) -> Path:
    folder = root / f"import-{name.lower()}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name.lower()}.yaml").write_text(
        f"name: {name.lower()}\nopenapi: {spec}\nbase_url: {base_url}\n"
        f"auth: {{type: bearer, token: {{secret: {name.lower()}_token}}}}\n"
    )
    return folder


def _run(argv: list[str], timeout: float) -> dict[str, Any]:
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    if done.returncode != 0:
        return {
            "error": done.stderr.strip().splitlines()[-1][:300] if done.stderr.strip() else f"exit {done.returncode}"
        }
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_imports(python: str, runs: int, with_fastmcp: bool, log: Any = print) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, (spec, base_url) in DOCUMENTS.items():
            if not spec.exists():
                out[name] = {"error": f"{spec} is missing: run `python bench/corpus.py --fetch-only`"}
                continue
            folder = manifest_dir(Path(scratch), name, spec, base_url)
            ours = [_run([python, "-c", OURS, str(folder)], 600) for _ in range(runs)]
            good = [r["seconds"] for r in ours if "seconds" in r]
            row: dict[str, Any] = {
                "document": str(spec.relative_to(ROOT)),
                "document_mb": spec.stat().st_size / 1e6,
                "tools": ours[0].get("tools"),
                "faults": ours[0].get("faults"),
                "ours_s": {"median": statistics.median(good), "min": min(good), "max": max(good), "n": len(good)}
                if good
                else None,
                "ours_errors": [r["error"] for r in ours if "error" in r],
            }
            if with_fastmcp and FASTMCP_PYTHON.exists():
                theirs = _run([str(FASTMCP_PYTHON), "-c", FASTMCP, str(spec), base_url], 900)
                row["fastmcp_s"] = theirs.get("seconds")
                row["fastmcp_tools"] = theirs.get("tools")
                if "error" in theirs:
                    row["fastmcp_error"] = theirs["error"]
            out[name] = row
            log(
                f"  import {name}: ours {row['ours_s']['median'] if row['ours_s'] else 'failed'} s"
                + (f", FastMCP {row.get('fastmcp_s')} s" if with_fastmcp else "")
            )
    return out
