"""results.json → docs/benchmarks/README.md (tables with targets and pass/fail for ours) and calls.png."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.servers import LABELS, SERVERS, TRANSPORT_LABELS, TRANSPORTS

TARGETS = {
    "cpu_per_call_ms": 1.0,
    "calls_per_s_at_8": 1000.0,
    "collapse_ratio": 0.9,  # calls/s at 64 must stay within 10 % of calls/s at 8
    "list_cpu_5000_ms": 50.0,
    "list_cpu_per_100_ms": 10.0,
    "idle_rss_mb": 60.0,
    "import_s": 1.0,
}


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def num(value: Any, digits: int = 1) -> str:
    if _nan(value):
        return "–"
    return f"{value:,.{digits}f}"


def spread(stat: dict[str, Any] | None, digits: int = 1) -> str:
    """median (min–max over rounds)."""
    if not stat or _nan(stat.get("median")):
        return "–"
    if stat.get("n", 1) <= 1:
        return num(stat["median"], digits)
    return f"{num(stat['median'], digits)} ({num(stat['min'], digits)}–{num(stat['max'], digits)})"


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("**pass**" if ok else "**FAIL**")


def _transport_table(transport: str, data: dict[str, Any], floor: dict[str, Any]) -> list[str]:
    lines = [
        f"### {TRANSPORT_LABELS[transport]}",
        "",
        "| server | p50 ms | p99 ms | calls/s @8 | calls/s @64 | server CPU ms/call @8 "
        "| server CPU ms/call, sequential | client CPU ms/call @8 | spawn → list s | idle RSS MB | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for server in SERVERS:
        s = data[server]["summary"]
        errors = s["at_8"]["errors"] + s["at_64"]["errors"]
        name = LABELS[server] + (f" ({errors} errors)" if errors else "")
        lines.append(
            f"| {name} | {num(s['p50_ms'], 2)} | {num(s['p99_ms'], 2)} | {spread(s['at_8']['calls_per_s'], 0)} | "
            f"{spread(s['at_64']['calls_per_s'], 0)} | {spread(s['at_8']['server_cpu_ms'], 2)} | "
            f"{spread(s['seq_server_cpu_ms'], 2)} | {num(s['at_8']['client_cpu_ms']['median'], 2)} | "
            f"{spread(s['spawn_to_list_s'], 2)} | {spread(s['idle_rss_mb'], 0)} | {spread(s['peak_rss_mb'], 0)} |"
        )
    ours = data["ours"]["summary"]
    sdk = data["sdk"]["summary"]
    at8, at64 = ours["at_8"]["calls_per_s"]["median"], ours["at_64"]["calls_per_s"]["median"]
    cpu = ours["at_8"]["server_cpu_ms"]["median"]
    lines.append(
        f"| *target (ours)* | | | ≥ 1,000 | ≥ 0.9 × @8 | ≤ {TARGETS['cpu_per_call_ms']:.1f} | | | ≤ SDK 10 tools "
        f"(see start-up) | ≤ {TARGETS['idle_rss_mb']:.0f} | |"
    )
    lines.append(
        f"| *ours: pass/fail* | | | {verdict(at8 >= TARGETS['calls_per_s_at_8'])} | "
        f"{verdict(at64 >= TARGETS['collapse_ratio'] * at8)} | {verdict(cpu <= TARGETS['cpu_per_call_ms'])} | | | | "
        f"{verdict(ours['idle_rss_mb']['median'] <= TARGETS['idle_rss_mb'])} | |"
    )
    lines.append(
        f"| *ours ÷ SDK* | {num(ours['p50_ms'] / sdk['p50_ms'], 2)} | {num(ours['p99_ms'] / sdk['p99_ms'], 2)} | "
        f"{num(at8 / sdk['at_8']['calls_per_s']['median'], 2)} | "
        f"{num(at64 / sdk['at_64']['calls_per_s']['median'], 2)} | "
        f"{num(cpu / sdk['at_8']['server_cpu_ms']['median'], 2)} | "
        f"{num(ours['seq_server_cpu_ms']['median'] / sdk['seq_server_cpu_ms']['median'], 2)} | | "
        f"{num(ours['spawn_to_list_s']['median'] / sdk['spawn_to_list_s']['median'], 2)} | "
        f"{num(ours['idle_rss_mb']['median'] / sdk['idle_rss_mb']['median'], 2)} | "
        f"{num(ours['peak_rss_mb']['median'] / sdk['peak_rss_mb']['median'], 2)} |"
    )
    lines.append("")
    return lines


def _sdk_pass_table(data: dict[str, Any]) -> list[str]:
    lines = [
        "| transport | server | p50 ms | calls/s @8 | server CPU ms/call @8 | SDK client CPU ms/call @8 "
        "| spawn → list s |",
        "|---|---|---|---|---|---|---|",
    ]
    for transport, servers in data.items():
        for server in SERVERS:
            row = servers.get(server, {})
            if "error" in row:
                lines.append(
                    f"| {TRANSPORT_LABELS[transport]} | {LABELS[server]} | failed: {row['error'][:120]} | | | | |"
                )
                continue
            lines.append(
                f"| {TRANSPORT_LABELS[transport]} | {LABELS[server]} | {num(row['sequential']['p50_ms'], 2)} | "
                f"{num(row['at_8']['calls_per_s'], 0)} | {num(row['at_8']['server_cpu_ms_per_call'], 2)} | "
                f"{num(row['at_8']['client_cpu_ms_per_call'], 2)} | {num(row['spawn_to_list_s'], 2)} |"
            )
    return [*lines, ""]


CATALOG_LABELS = {
    "sdk": "SDK low-level",
    "fastmcp": "FastMCP",
    "ours": "mcp-connectors",
    "ours-page100": "mcp-connectors, --page-size 100",
}


def _catalog_table(data: dict[str, Any]) -> list[str]:
    lines = [
        "| tools | server | pages | spawn → first full list s | tools/list walk ms (median, min–max) | "
        "server CPU per walk ms | server CPU per page ms | per 100 tools ms | idle RSS MB | peak RSS MB | "
        "listing MB | target (ours) | pass/fail |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, block in data.items():
        for variant, row in block["servers"].items():
            label = CATALOG_LABELS[variant]
            if "tools" not in row:
                lines.append(f"| {size} | {label} | {row.get('skipped') or row.get('error')} | | | | | | | | | | |")
                continue
            per_100 = row["list_cpu_ms"] / row["tools"] * 100
            target, ok = "", None
            if variant == "ours" and int(size) == 5000:
                target, ok = f"walk ≤ {TARGETS['list_cpu_5000_ms']:.0f} ms", row["list_cpu_ms"] <= 50
            elif variant == "ours-page100" and int(size) == 5000:
                target = f"page of 100 ≤ {TARGETS['list_cpu_per_100_ms']:.0f} ms"
                ok = row["list_cpu_ms_per_page"] <= TARGETS["list_cpu_per_100_ms"]
            lines.append(
                f"| {int(size):,} | {label} | {row['pages']} | {num(row['spawn_to_list_s'], 2)} | "
                f"{num(row['list_ms']['median'], 1)} ({num(row['list_ms']['min'], 0)}–{num(row['list_ms']['max'], 0)},"
                f" n={row['list_ms']['n']}) | {num(row['list_cpu_ms'], 1)} | {num(row['list_cpu_ms_per_page'], 1)} | "
                f"{num(per_100, 1)} | {num(row['idle_rss_mb'], 0)} | {num(row['peak_rss_mb'], 0)} | "
                f"{num(row['listing_mb'], 2)} | {target} | {verdict(ok)} |"
            )
    return [*lines, ""]


def _startup_table(data: dict[str, Any]) -> list[str]:
    lines = [
        "| server and catalog | tools | spawn → first complete tools/list s | RSS after it MB |",
        "|---|---|---|---|",
    ]
    for name, row in data.items():
        lines.append(
            f"| {name} | {row['tools']:,} | {spread(row['spawn_to_list_s'], 2)} | {spread(row['rss_mb'], 0)} |"
        )
    github = data.get("mcp-connectors, GitHub (1,223 tools)")
    sdk = data.get("SDK low-level, 10 tools")
    if github and sdk:
        ok = github["spawn_to_list_s"]["median"] <= sdk["spawn_to_list_s"]["median"]
        lines += [
            "",
            "Ours answers `initialize` and `tools/list` from the start-up snapshot the previous start with the same "
            "configuration wrote, while it loads (`mcp_server/_warm_start.py`); the rows marked *no snapshot* are "
            "the very first start (`MCP_CONNECTORS_STARTUP_CACHE=off`). RSS is read right after the listing: "
            "with a snapshot, the server is still loading then.",
            "",
            f"Target: ours with GitHub's full description no slower than the bare SDK server with 10 tools "
            f"({num(github['spawn_to_list_s']['median'], 2)} s vs {num(sdk['spawn_to_list_s']['median'], 2)}"
            f" s, ratio {num(github['spawn_to_list_s']['median'] / sdk['spawn_to_list_s']['median'], 2)}): "
            f"{verdict(ok)}",
        ]
        cold = data.get("mcp-connectors, GitHub (1,223 tools), no snapshot")
        if cold:
            lines.append(
                f"Without a snapshot (the first start): {num(cold['spawn_to_list_s']['median'], 2)} s, "
                f"ratio {num(cold['spawn_to_list_s']['median'] / sdk['spawn_to_list_s']['median'], 2)}."
            )
    return [*lines, ""]


def _imports_table(data: dict[str, Any]) -> list[str]:
    lines = [
        "| description | size MB | tools | ours s (median, min–max) | FastMCP from_openapi s | target | pass/fail |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in data.items():
        if "ours_s" not in row or not row["ours_s"]:
            lines.append(f"| {name} | | | {row.get('error') or row.get('ours_errors')} | | ≤ 1 s | – |")
            continue
        fast = num(row.get("fastmcp_s"), 2) if "fastmcp_s" in row else "not run"
        lines.append(
            f"| {name} (`{row['document']}`) | {num(row['document_mb'], 1)} | {row['tools']:,} | "
            f"{spread(row['ours_s'], 2)} | {fast} | ≤ {TARGETS['import_s']:.0f} s | "
            f"{verdict(row['ours_s']['median'] <= TARGETS['import_s'])} |"
        )
    return [*lines, ""]


def _floor_table(floor: dict[str, Any]) -> list[str]:
    return [
        "| raw httpx2 → upstream | p50 ms | p99 ms | calls/s @8 | calls/s @64 | client CPU ms/call @8 |",
        "|---|---|---|---|---|---|",
        f"| floor | {num(floor['sequential']['p50_ms'], 2)} | {num(floor['sequential']['p99_ms'], 2)} | "
        f"{num(floor['at_8']['calls_per_s'], 0)} | {num(floor['at_64']['calls_per_s'], 0)} | "
        f"{num(floor['at_8']['client_cpu_ms_per_call'], 2)} |",
        "",
    ]


def _scorecard(results: dict[str, Any]) -> list[str]:
    rows = []
    transports = results.get("transports", {})
    for transport in ("stdio", "http-2026", "http-2025", "sse"):
        if transport not in transports:
            continue
        s = transports[transport]["ours"]["summary"]
        at8, at64 = s["at_8"]["calls_per_s"]["median"], s["at_64"]["calls_per_s"]["median"]
        cpu = s["at_8"]["server_cpu_ms"]["median"]
        label = TRANSPORT_LABELS[transport]
        rows.append(
            (
                f"server CPU per proxied call, {label}",
                f"≤ {TARGETS['cpu_per_call_ms']} ms",
                f"{cpu:.2f} ms",
                cpu <= TARGETS["cpu_per_call_ms"],
            )
        )
        if transport in ("stdio", "http-2026", "http-2025"):
            rows.append((f"calls/s at 8 in flight, {label}", "≥ 1,000", f"{at8:,.0f}", at8 >= 1000))
            rows.append(
                (
                    f"no collapse at 64 in flight, {label}",
                    "@64 ≥ 0.9 × @8",
                    f"{at64:,.0f} vs {at8:,.0f}",
                    at64 >= TARGETS["collapse_ratio"] * at8,
                )
            )
    catalog = results.get("catalog", {}).get("5000", {}).get("servers", {})
    if "tools" in catalog.get("ours", {}):
        cpu = catalog["ours"]["list_cpu_ms"]
        rows.append(("tools/list at 5,000 tools, server CPU per full walk", "≤ 50 ms", f"{cpu:,.0f} ms", cpu <= 50))
    if "tools" in catalog.get("ours-page100", {}):
        cpu = catalog["ours-page100"]["list_cpu_ms_per_page"]
        rows.append(("tools/list at 5,000 tools, server CPU per page of 100", "≤ 10 ms", f"{cpu:,.1f} ms", cpu <= 10))
    startup = results.get("startup", {})
    github, sdk = startup.get("mcp-connectors, GitHub (1,223 tools)"), startup.get("SDK low-level, 10 tools")
    cold = startup.get("mcp-connectors, GitHub (1,223 tools), no snapshot")
    if github and sdk:
        g, s10 = github["spawn_to_list_s"]["median"], sdk["spawn_to_list_s"]["median"]
        rows.append(
            (
                "spawn → first list, ours with GitHub vs SDK with 10 tools",
                "ours ≤ SDK",
                f"{g:.2f} s vs {s10:.2f} s"
                + (f" (first start: {cold['spawn_to_list_s']['median']:.2f} s)" if cold else ""),
                g <= s10,
            )
        )
    if "stdio" in transports:
        idle = transports["stdio"]["ours"]["summary"]["idle_rss_mb"]["median"]
        rows.append(("idle RSS (stdio, one connector)", "≤ 60 MB", f"{idle:.0f} MB", idle <= 60))
    for name, row in results.get("imports", {}).items():
        if row.get("ours_s"):
            t = row["ours_s"]["median"]
            rows.append((f"{name} description imported", "≤ 1 s", f"{t:.2f} s", t <= 1))
    lines = ["| target | goal | ours | pass/fail |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {verdict(d)} |" for a, b, c, d in rows]
    passed = sum(1 for r in rows if r[3])
    return [*lines, "", f"{passed} of {len(rows)} targets met.", ""]


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    transports = [t for t in TRANSPORTS if t in results.get("transports", {})]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    width = 0.26
    colors = {"sdk": "#1f77b4", "fastmcp": "#ff7f0e", "ours": "#2ca02c"}
    panels = [
        (axes[0], lambda s: s["at_8"]["calls_per_s"], "tools/call per second, 8 in flight (higher is better)", 1000),
        (axes[1], lambda s: s["at_64"]["calls_per_s"], "tools/call per second, 64 in flight (higher is better)", 1000),
        (axes[2], lambda s: s["at_8"]["server_cpu_ms"], "server CPU ms per call, 8 in flight (lower is better)", 1.0),
    ]
    for ax, pick, title, target in panels:
        for i, server in enumerate(SERVERS):
            stats = [pick(results["transports"][t][server]["summary"]) for t in transports]
            medians = [s["median"] for s in stats]
            errors = [[s["median"] - s["min"] for s in stats], [s["max"] - s["median"] for s in stats]]
            xs = [x + (i - 1) * width for x in range(len(transports))]
            ax.bar(xs, medians, width, yerr=errors, capsize=3, label=LABELS[server], color=colors[server])
        ax.axhline(target, color="#d62728", linestyle="--", linewidth=1, label="target (ours)")
        if "per second" in title and "floor" in results:
            key = "at_8" if "8 in" in title else "at_64"
            ax.axhline(
                results["floor"][key]["calls_per_s"],
                color="#555555",
                linestyle=":",
                linewidth=1,
                label="raw httpx2 → upstream",
            )
        ax.set_xticks(range(len(transports)))
        ax.set_xticklabels([TRANSPORT_LABELS[t].replace("Streamable HTTP ", "HTTP ") for t in transports], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper right")
    meta = results.get("meta", {})
    fig.suptitle(
        f"One proxied tools/call, same upstream, same machine ({meta.get('date', '')}, "
        f"{meta.get('mode', '')} run; bars: median of rounds, whiskers: min–max)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _profile_section(results: dict[str, Any]) -> list[str]:
    lines = []
    for name, row in results.get("profiles", {}).items():
        if "error" in row:
            lines += [f"- {name}: not produced ({row['error']})", ""]
            continue
        stacks = f", [stacks]({row['stacks']})" if "stacks" in row else ""
        lines += [f"**{name}** — [summary]({row['summary_file']}), [flamegraph]({row['svg']}){stacks}", "", "```text"]
        text = row["summary"].splitlines()
        keep = [line for line in text[4:] if line.strip()]
        # The self-time and inclusive sections, not the long frame lists.
        cut = next((i for i, line in enumerate(keep) if line.startswith("Top ")), len(keep))
        lines += [*keep[:cut], "```", ""]
    return lines


def render(results: dict[str, Any], out_dir: Path) -> None:
    meta = results["meta"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`python -m bench.run{' --quick' if meta['mode'] == 'quick' else ''}`) on "
        f"{meta['date']} in {meta['wall_s'] / 60:.1f} min ({meta['mode']} run). Raw numbers: "
        "[`results.json`](results.json); chart: [`calls.png`](calls.png); profiles: [`profiles/`](profiles/).",
        "",
        f"Machine: {meta['cpu']}, {meta['cores']} cores (shared and noisy), {meta['memory_gb']:.0f} GB RAM, "
        f"{meta['kernel']}; load average {meta['loadavg_before']} before, {meta['loadavg_after']} after. "
        f"Python {meta['python']}; {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}; "
        f"FastMCP's venv: {', '.join(f'{k} {v}' for k, v in meta.get('fastmcp_versions', {}).items())}. "
        f"Code: `{meta['commit']}`{meta['dirty']}.",
        "",
        "Only ratios within this one run mean much: two shared cores, with the client, the server and the "
        "upstream all on them. Servers are interleaved (all three started each round, each phase run on each in "
        "turn, rotating the order), values are medians over rounds with (min–max) beside them.",
        "",
        "What the profiles changed in our server, what each change bought, and which targets this design cannot "
        "meet (and why): [changes.md](changes.md).",
        "",
        "## Scorecard",
        "",
        *_scorecard(results),
        "## What is measured",
        "",
        "- **Upstream**: `bench/upstream.py`, raw asyncio HTTP/1.1 on 127.0.0.1 in its own process, ~120-byte JSON "
        "answer, 401 without the right bearer token (the run checks that every call was authorised).",
        "- **Servers**, each forwarding `bench_get_item(item_id)` to `GET /items/{item_id}` with "
        "`Authorization: Bearer …`: **SDK low-level** — `bench/peers/sdk_server.py`, the official SDK's low-level "
        "`Server` with `on_list_tools`/`on_call_tool` and an `httpx2.AsyncClient`, token from an env var; "
        "**FastMCP** — `bench/peers/fastmcp_server.py`, an `@mcp.tool` doing the same call, run with FastMCP's "
        "own Python; **mcp-connectors** — `python -m mcp_server serve` with a one-operation manifest, the token in "
        "a fresh vault (scrypt passphrase via `MCP_CONNECTORS_VAULT_KEY`), full argument validation, the audit log "
        "on (`MCP_CONNECTORS_AUDIT_LOG` in the temp dir), default log level (one INFO line per call to stderr, "
        "and over HTTP one access line per request: JSON lines, as a service logs).",
        "- **Clients**: a light hand-written JSON-RPC client (`bench/clients.py`: pipes for stdio; for HTTP a "
        "minimal HTTP/1.1 keep-alive client on asyncio streams, one connection per request in flight — about a "
        "quarter of httpx2's client CPU per call, which on two shared cores is CPU the measured server gets back; "
        "Streamable HTTP with `Mcp-Session-Id`/`MCP-Protocol-Version` for 2025-11-25 and the per-request `_meta` "
        "envelope plus `MCP-Protocol-Version`/`Mcp-Method`/`Mcp-Name` headers for 2026-07-28; GET /sse (httpx2) + "
        "POST /messages/ for SSE). The SDK's `mcp.Client` speaks all four (`mode='2026-07-28'` / `'legacy'`) and "
        "is used for a sanity pass below.",
        "- **Server CPU** is the server process's own utime+stime from `/proc/<pid>/stat` before/after a phase "
        "(10 ms ticks, phases of thousands of calls); client CPU is reported beside it, never added to it. "
        "**p50/p99** are sequential calls pooled over rounds; **calls/s** are N workers calling back to back for a "
        "fixed time. **spawn → list** is process spawn to the first complete `tools/list` (all pages), handshake "
        "included. **Idle RSS** is VmRSS after a warm-up and 0.5 s of quiet; **peak** is VmHWM at the end.",
        "- Bench-only dependencies (`matplotlib`, `psutil`, `py-spy`) are pip-installed into `.venv` by "
        "`make bench` when missing; they are not in `pyproject.toml`.",
        "",
        "## Floor: raw httpx2 to the upstream",
        "",
        *_floor_table(results["floor"]),
        "## One proxied tools/call, per transport (light client)",
        "",
        f"{meta['params']['rounds']} rounds; per round and server: {meta['params']['n_seq']} sequential calls, then "
        f"{meta['params']['duration']} s at 8 and at 64 in flight, each after 0.3 s of unmeasured calls at that level "
        '(new client connections, the upstream pool growing). "No collapse at 64" is read as calls/s at 64 '
        "≥ 0.9 × calls/s at 8.",
        "",
        "![calls](calls.png)",
        "",
    ]
    for transport in TRANSPORTS:
        if transport in results.get("transports", {}):
            lines += _transport_table(transport, results["transports"][transport], results["floor"])
    if "sdk_pass" in results:
        lines += [
            "## Sanity pass with the SDK's `mcp.Client`",
            "",
            "Same servers and tool, driven by the official client instead of the light one (one round). "
            "The SDK client's own CPU per call is the reason the light client exists.",
            "",
            *_sdk_pass_table(results["sdk_pass"]),
        ]
    if "catalog" in results:
        sizes = ", ".join(f"{int(s):,}" for s in results["catalog"])
        schema = next(iter(results["catalog"].values())).get("mean_input_schema_bytes")
        lines += [
            "## Catalog scale (stdio)",
            "",
            f"Generated catalogs of {sizes} tools with ~{num(schema, 0)}-byte input schemas (path, query and "
            "header parameters, a JSON body with nested objects, enums, arrays, formats and prose). The peers "
            "serve exactly the tool definitions our server lists, in one page; ours pages 500 at a time "
            "by default. A *walk* is every page, start to end; its latency includes the client parsing the "
            "answer. CPU is the mean over the walks.",
            "",
            *_catalog_table(results["catalog"]),
        ]
    if "startup" in results:
        lines += ["## Start-up: spawn → first complete tools/list (stdio)", "", *_startup_table(results["startup"])]
    if "imports" in results:
        lines += [
            "## Importing real OpenAPI descriptions",
            "",
            "In a fresh process, after our modules are imported: load, resolve `$ref`s, convert, validate and "
            "build every tool (what `serve` does before it can answer). FastMCP: `FastMCP.from_openapi` + "
            "`list_tools()`, timed the same way.",
            "",
            *_imports_table(results["imports"]),
        ]
    if "profiles" in results:
        lines += [
            "## Where our time goes (py-spy)",
            "",
            "Sampled with py-spy at 250 Hz (the server launched under it, paused per sample; idle threads "
            "excluded) in separate runs. Percentages are of the serving samples. The flamegraphs (SVG, hover "
            "for names) show serving samples only; the gzipped collapsed stacks have every sample.",
            "",
            *_profile_section(results),
        ]
    lines += ["## Not measured, and why", ""]
    lines += [f"- {note}" for note in results.get("not_measured", [])]
    (out_dir / "README.md").write_text("\n".join(lines) + "\n")
    chart(results, out_dir / "calls.png")


if __name__ == "__main__":
    import sys

    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "docs" / "benchmarks"
    render(json.loads((folder / "results.json").read_text()), folder)
