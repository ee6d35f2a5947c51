"""Where our server's time goes: py-spy profiles of mcp-connectors, as a text summary (self time by
package, time under key subsystems, top frames), an SVG flamegraph and the collapsed stacks (gzipped,
line numbers dropped; `zcat X.collapsed.txt.gz | flamegraph.pl` or speedscope read them).

- `stdio-calls-8-in-flight`: the proxied tool call at 8 in flight over stdio;
- `tools-list-5000`: full `tools/list` walks of the 5,000-tool catalog (start-up samples excluded).
py-spy launches the server (attaching to a running process is not permitted in this container) and
pauses it for each sample (accurate stacks; the profiled runs are slower and are not the measured ones);
idle threads are not sampled.
"""

from __future__ import annotations

import asyncio
import gzip
import html
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from bench.clients import list_all_tools
from bench.measure import throughput, tool_call
from bench.servers import ROOT, Running, Workspace, start

PY_SPY = ROOT / ".venv" / "bin" / "py-spy"

# Frame file path fragment → category; first match wins (the audit log before the rest of our code).
CATEGORIES = [
    ("/mcp_server/_audit.py", "audit log (ours)"),
    ("/mcp_server/_logging.py", "log scrubbing (ours)"),
    ("/mcp_server/_redact.py", "result redaction (ours)"),
    ("/mcp_server/", "mcp-connectors (other)"),
    ("/site-packages/mcp/", "MCP SDK"),
    ("/site-packages/mcp_types/", "MCP SDK"),
    ("/site-packages/pydantic", "pydantic"),
    ("/site-packages/jsonschema", "jsonschema"),
    ("/site-packages/referencing/", "jsonschema"),
    ("/site-packages/rfc3339_validator", "jsonschema"),
    ("/site-packages/httpx2/", "httpx2"),
    ("/site-packages/httpcore", "httpx2"),
    ("/site-packages/h11/", "httpx2"),
    ("/site-packages/anyio/", "anyio"),
    ("/site-packages/uvicorn/", "uvicorn/starlette"),
    ("/site-packages/starlette/", "uvicorn/starlette"),
    ("/site-packages/sse_starlette/", "uvicorn/starlette"),
    ("/site-packages/cryptography/", "cryptography"),
    ("/site-packages/yaml/", "PyYAML"),
    ("/asyncio/", "asyncio"),
    ("/selectors.py", "asyncio"),
    ("/json/", "json (stdlib)"),
    ("/logging/", "logging (stdlib)"),
    ("/threading.py", "threads (stdlib)"),
    ("/queue.py", "threads (stdlib)"),
    ("/concurrent/", "threads (stdlib)"),
    ("<frozen importlib", "imports"),
    ("/site-packages/", "other packages"),
]
SUBSYSTEMS = {  # time spent under (inclusive of) frames matching these: (file fragment, function or None)
    "our tools/call handler (_server.call_tool → Pipeline.invoke)": ("/mcp_server/_server.py", None),
    "  Pipeline.invoke (validate → credentials → send → shape)": ("/mcp_server/_pipeline.py", "invoke"),
    "  argument validation (jsonschema)": ("/site-packages/jsonschema", None),
    "  credential lookup handed to a worker thread (anyio.to_thread)": ("/site-packages/anyio/to_thread.py", None),
    "  vault file read + decrypt (_vault.py)": ("/mcp_server/_vault.py", None),
    "  SSRF guard (_netguard.py)": ("/mcp_server/_netguard.py", None),
    "  upstream exchange (_exchange.py, httpx2 included)": ("/mcp_server/_exchange.py", None),
    "  httpx2 / httpcore2 / h11": (("/site-packages/httpx2/", "/site-packages/httpcore", "/site-packages/h11/"), None),
    "  result redaction (_redact.py)": ("/mcp_server/_redact.py", None),
    "  audit log write (_audit.py)": ("/mcp_server/_audit.py", None),
    "  logging (stdlib logging, our scrubbing filter included)": ("/logging/", None),
    "SDK result serialization (ServerRunner._serialize)": ("/mcp/server/runner.py", "_serialize"),
    "pydantic, anywhere": ("/site-packages/pydantic", None),
    "SDK stdio reader/writer (mcp/server/stdio.py)": ("/mcp/server/stdio.py", None),
    "anyio worker threads (WorkerThread.run)": ("/site-packages/anyio/", "WorkerThread.run"),
}
STARTUP_MARKERS = ("_find_and_load", "build_application", "_check_vault", "build_parser", "load_catalog")
IDLE_LEAVES = ("Condition.wait", "Event.wait", "Queue.get", "select (", "EpollSelector.select", "_worker (")


def _file(frame: str) -> str:
    return frame.rsplit(" (", 1)[-1]


def category(frame: str) -> str:
    path = _file(frame)
    for fragment, name in CATEGORIES:
        if fragment in path:
            return name
    return "stdlib/other"


def parse(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


ROOTS = ("_run_module_as_main", "Thread._bootstrap", "<module>")


def split(stacks: list[tuple[list[str], int]]) -> dict[str, list[tuple[list[str], int]]]:
    parts: dict[str, list[tuple[list[str], int]]] = {"startup": [], "idle": [], "truncated": [], "serving": []}
    for frames, count in stacks:
        if not frames[0].startswith(ROOTS):  # py-spy could not unwind to the thread's root
            parts["truncated"].append((frames, count))
        elif any(marker in frame for frame in frames for marker in STARTUP_MARKERS):
            parts["startup"].append((frames, count))
        elif any(frames[-1].startswith(leaf) or leaf in frames[-1] for leaf in IDLE_LEAVES):
            parts["idle"].append((frames, count))
        else:
            parts["serving"].append((frames, count))
    return parts


def summarise(stacks: list[tuple[list[str], int]], title: str, context: str, top: int = 30) -> str:
    parts = split(stacks)
    serving = parts["serving"]
    total = sum(c for _, c in serving) or 1
    self_by_category: Counter[str] = Counter()
    self_by_frame: Counter[str] = Counter()
    inclusive_by_frame: Counter[str] = Counter()
    for frames, count in serving:
        self_by_category[category(frames[-1])] += count
        self_by_frame[frames[-1]] += count
        for frame in set(frames):
            inclusive_by_frame[frame] += count
    lines = [title, "=" * len(title), "", context, ""]
    lines.append(
        "Samples: "
        + ", ".join(f"{name} {sum(c for _, c in part)}" for name, part in parts.items())
        + " (only 'serving' is analysed below; 'startup' is imports, vault and catalog loading,"
        " 'idle' is threads waiting on a lock or the selector, 'truncated' are stacks py-spy could not unwind)"
    )
    lines += ["", "Self time by package (the leaf frame's file)", "-" * 44]
    for name, count in self_by_category.most_common():
        lines.append(f"{100 * count / total:6.1f} %  {name}")
    lines += ["", "Time under key frames (inclusive; overlapping)", "-" * 46]
    for label, (fragment, function) in SUBSYSTEMS.items():
        fragments = (fragment,) if isinstance(fragment, str) else fragment
        count = sum(
            c
            for frames, c in serving
            if any(
                any(x in _file(f) for x in fragments)
                and (function is None or f.startswith(function + " (") or f".{function} (" in f)
                for f in frames
            )
        )
        lines.append(f"{100 * count / total:6.1f} %  {label}")
    startup = parts["startup"]
    startup_total = sum(c for _, c in startup)
    if startup_total >= 0.2 * (total + startup_total):  # only where start-up is a story of its own
        ours: Counter[str] = Counter()
        for frames, count in startup:
            for frame in set(frames):
                if "/mcp_server/" in _file(frame):
                    ours[frame] += count
        by_category: Counter[str] = Counter()
        for frames, count in startup:
            by_category[category(frames[-1])] += count
        lines += ["", f"Start-up samples ({startup_total}): self time by package", "-" * 40]
        lines += [f"{100 * c / startup_total:6.1f} %  {n}" for n, c in by_category.most_common(8)]
        lines += ["", "Start-up samples: our frames by inclusive time", "-" * 46]
        lines += [f"{100 * c / startup_total:6.1f} %  {f}" for f, c in ours.most_common(12)]
    lines += ["", f"Top {top} frames by self time", "-" * 30]
    for frame, count in self_by_frame.most_common(top):
        lines.append(f"{100 * count / total:6.1f} %  [{category(frame)}] {frame}")
    lines += ["", f"Top {top} frames by inclusive time (below the event loop)", "-" * 52]
    shown = 0
    for frame, count in inclusive_by_frame.most_common():
        if category(frame) in ("asyncio", "stdlib/other", "anyio", "threads (stdlib)") and count / total > 0.5:
            continue  # the loop and runner frames every sample sits under
        lines.append(f"{100 * count / total:6.1f} %  [{category(frame)}] {frame}")
        shown += 1
        if shown == top:
            break
    return "\n".join(lines) + "\n"


PALETTE = {
    "audit log (ours)": "#d62728",
    "log scrubbing (ours)": "#ff7f0e",
    "result redaction (ours)": "#ff9896",
    "mcp-connectors (other)": "#e377c2",
    "MCP SDK": "#1f77b4",
    "pydantic": "#9467bd",
    "jsonschema": "#2ca02c",
    "httpx2": "#17becf",
    "anyio": "#bcbd22",
    "asyncio": "#c7c7c7",
    "json (stdlib)": "#8c564b",
    "logging (stdlib)": "#f7b6d2",
    "uvicorn/starlette": "#aec7e8",
}


def flamegraph(stacks: list[tuple[list[str], int]], title: str, width: int = 1400) -> str:
    """A plain icicle-style flamegraph (root at the top); hover a box for its frame and share."""
    tree: dict[str, Any] = {"count": 0, "children": {}}
    for frames, count in stacks:
        tree["count"] += count
        node = tree
        for frame in frames:
            node = node["children"].setdefault(frame, {"count": 0, "children": {}})
            node["count"] += count
    total = tree["count"] or 1
    row, boxes, depth_max = 17, [], 0

    def walk(node: dict[str, Any], x: float, depth: int) -> None:
        nonlocal depth_max
        for frame, child in sorted(node["children"].items()):
            w = child["count"] / total * width
            if w >= 0.4:
                depth_max = max(depth_max, depth)
                y = 30 + depth * row
                label = html.escape(frame)
                color = PALETTE.get(category(frame), "#dddddd")
                text = html.escape(frame.split(" (")[0][: int(w / 7)]) if w > 35 else ""
                boxes.append(
                    f"<g><title>{label} — {child['count']} samples ({100 * child['count'] / total:.1f} %)</title>"
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" fill="{color}"/>'
                    f'<text x="{x + 2:.1f}" y="{y + 12}">{text}</text></g>'
                )
                walk(child, x, depth + 1)
            x += w

    walk(tree, 0.0, 0)
    height = 30 + (depth_max + 2) * row + 20
    legend = " · ".join(f'<tspan fill="{c}">■</tspan> {html.escape(n)}' for n, c in PALETTE.items())
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" '
        f'font-size="11">\n<rect width="100%" height="100%" fill="white"/>\n'
        f'<text x="4" y="16" font-size="13">{html.escape(title)} — {total} samples</text>\n'
        + "\n".join(boxes)
        + f'\n<text x="4" y="{height - 6}" font-size="10">{legend}</text>\n</svg>\n'
    )


def _target_pid(wrapper_pid: int, timeout: float = 10) -> int:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        children = psutil.Process(wrapper_pid).children()
        if children:
            return children[0].pid
        time.sleep(0.01)
    raise RuntimeError("py-spy did not start the server")


async def _finish(run: Running) -> None:
    """Close the server's stdin so it exits by itself and py-spy writes its file."""
    await run.client.close()
    assert run.process.stdin is not None
    run.process.stdin.close()
    try:
        await asyncio.wait_for(run.process.wait(), 60)
    except TimeoutError:
        run.process.send_signal(2)
        await asyncio.wait_for(run.process.wait(), 30)


def _wrap(raw: Path, rate: int) -> list[str]:
    return [str(PY_SPY), "record", "-r", str(rate), "-f", "raw", "--full-filenames", "-o", str(raw), "--"]


def _write(out_dir: Path, name: str, raw: Path, title: str, context: str) -> dict[str, Any]:
    stacks = parse(raw)
    serving = split(stacks)["serving"]
    merged: Counter[str] = Counter()
    for frames, count in stacks:  # line numbers dropped and identical stacks merged: a tenth of the size
        merged[";".join(re.sub(r":\d+\)$", ")", f) for f in frames)] += count
    text = "".join(f"{k} {v}\n" for k, v in sorted(merged.items()))
    (out_dir / f"{name}.collapsed.txt.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    summary = summarise(stacks, title, context)
    (out_dir / f"{name}.txt").write_text(summary)
    (out_dir / f"{name}.svg").write_text(flamegraph(serving, title + " (serving samples)"))
    return {
        "summary_file": f"profiles/{name}.txt",
        "svg": f"profiles/{name}.svg",
        "stacks": f"profiles/{name}.collapsed.txt.gz",
        "summary": summary,
    }


async def profile_calls(workspace: Workspace, out_dir: Path, duration: float) -> dict[str, Any]:
    raw = workspace.root / "calls.raw"
    run = await start(workspace, "ours", "stdio", wrap=_wrap(raw, 250))
    pid = _target_pid(run.pid)
    await list_all_tools(run.client)
    await throughput(tool_call(run), 8, 1.0)
    result = await throughput(tool_call(run), 8, duration)
    await _finish(run)
    context = (
        f"mcp-connectors over stdio, `bench_get_item` proxied to the fake upstream at 8 in flight for "
        f"{duration:.0f} s under py-spy ({result['calls']} calls, {result['calls_per_s']:.0f} calls/s while "
        f"profiled; pid {pid}). Audit log on, log level INFO."
    )
    return _write(out_dir, "stdio-calls-8-in-flight", raw, "mcp-connectors: tools/call at 8 in flight (stdio)", context)


async def profile_list(workspace: Workspace, out_dir: Path, tools_dir: Path, walks: int) -> dict[str, Any]:
    raw = workspace.root / "list.raw"
    run = await start(workspace, "ours", "stdio", tools_dir=tools_dir, wrap=_wrap(raw, 250), timeout=900)
    tools, pages, _ = await list_all_tools(run.client)
    started = time.perf_counter()
    for _ in range(walks):
        await list_all_tools(run.client)
    elapsed = time.perf_counter() - started
    await _finish(run)
    context = (
        f"mcp-connectors over stdio, {walks} full tools/list walks of a {tools}-tool catalog (~4 KB input "
        f"schemas, default page size: {pages} pages per walk) under py-spy; {elapsed / walks * 1000:.0f} ms "
        "per walk while profiled, client parsing included."
    )
    return _write(out_dir, f"tools-list-{tools}", raw, f"mcp-connectors: tools/list of {tools} tools (stdio)", context)
