"""Catalog scale: `tools/list` cost, start time and memory at 10, 100, 1,000 and 5,000 tools.

Our server loads a generated manifest whose operations have realistic input schemas (~4 KB each:
path, query and header parameters plus a JSON body with nested objects, enums, arrays and prose);
the peers serve exactly the tool definitions our server lists (`mcp-connectors tools --json`), so all
three answer with the same catalog. Everything over stdio with the light client.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.clients import list_all_tools
from bench.servers import Workspace, start

PROSE = (
    "Values are validated by the upstream service before anything is changed; an invalid value is "
    "reported with the field's name and nothing is written."
)


def _operation(i: int) -> dict[str, Any]:
    kind = f"kind{i:05d}"
    address = {
        "type": "object",
        "description": "Postal address used for invoices and shipping labels.",
        "properties": {
            "line1": {"type": "string", "maxLength": 200, "description": "Street and number."},
            "line2": {"type": "string", "maxLength": 200, "description": "Apartment, suite, floor."},
            "city": {"type": "string", "description": "City, district, suburb, town or village."},
            "postal_code": {"type": "string", "pattern": "^[A-Za-z0-9 -]{2,12}$"},
            "country": {"type": "string", "minLength": 2, "maxLength": 2, "description": "ISO 3166-1 alpha-2."},
        },
        "required": ["line1", "country"],
    }
    body = {
        "type": "object",
        "required": ["name", "status"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 120, "description": f"Display name of the {kind}."},
            "description": {
                "type": "string",
                "maxLength": 5000,
                "description": "Free text shown to customers. " + PROSE,
            },
            "status": {
                "type": "string",
                "enum": ["draft", "active", "paused", "archived"],
                "description": "Lifecycle state; archived objects are read-only.",
            },
            "priority": {"type": "integer", "minimum": 0, "maximum": 10, "default": 5},
            "amount": {"type": "number", "exclusiveMinimum": 0, "description": "Amount in the smallest currency unit."},
            "currency": {"type": "string", "enum": ["usd", "eur", "gbp", "jpy", "chf", "cad", "aud"]},
            "email": {"type": "string", "format": "email", "description": "Where receipts are sent."},
            "starts_at": {"type": "string", "format": "date-time", "description": "RFC 3339 start time."},
            "tags": {
                "type": "array",
                "items": {"type": "string", "maxLength": 40},
                "maxItems": 20,
                "uniqueItems": True,
                "description": "Labels for search and reporting.",
            },
            "address": address,
            "line_items": {
                "type": "array",
                "maxItems": 100,
                "description": "What the object is made of; order is kept.",
                "items": {
                    "type": "object",
                    "required": ["sku", "quantity"],
                    "properties": {
                        "sku": {"type": "string", "description": "Stock keeping unit."},
                        "quantity": {"type": "integer", "minimum": 1},
                        "unit_price": {"type": "number", "minimum": 0},
                        "tax_rate": {"type": "number", "minimum": 0, "maximum": 1},
                    },
                },
            },
            "shipping": {
                "type": "object",
                "description": "How and where physical goods are delivered.",
                "properties": {
                    "carrier": {"type": "string", "enum": ["ups", "fedex", "dhl", "usps", "royal_mail", "other"]},
                    "service_level": {"type": "string", "enum": ["standard", "express", "overnight"]},
                    "tracking_number": {"type": "string", "maxLength": 64, "description": "The carrier's id."},
                    "address": address,
                },
            },
            "notify": {"type": "boolean", "default": True, "description": "Send the customer an email. " + PROSE},
            "locale": {"type": "string", "enum": ["en-US", "en-GB", "fr-FR", "de-DE", "ja-JP", "es-ES"]},
            "metadata": {
                "type": "object",
                "additionalProperties": {"type": "string", "maxLength": 500},
                "description": "Up to 50 keys of your own. " + PROSE,
            },
        },
    }
    return {
        "name": f"update_{kind}",
        "title": f"Update a {kind}",
        "description": f"Update one {kind} by id. Fields left out are not changed. " + PROSE,
        "method": "POST",
        "path": f"/v1/{kind}/{{resource_id}}",
        "parameters": [
            {
                "name": "resource_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": "^[a-z]{3}_[A-Za-z0-9]{8,32}$"},
                "description": "The id.",
            },
            {
                "name": "expand",
                "in": "query",
                "schema": {"type": "array", "items": {"type": "string"}},
                "description": "Related objects to include in the answer.",
            },
            {
                "name": "Idempotency-Key",
                "in": "header",
                "schema": {"type": "string", "maxLength": 255},
                "description": "A unique key so a retried request is applied once.",
            },
        ],
        "body": {"content_type": "application/json", "schema": body},
    }


def generate(root: Path, size: int, upstream_url: str) -> Path:
    """Our manifest directory for `size` operations."""
    tools_dir = root / f"catalog-{size}"
    tools_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": "cat",
        "title": "Catalog",
        "description": "A generated API for catalog-scale measurements.",
        "base_url": upstream_url,
        "auth": {"type": "bearer", "token": {"secret": "bench_token"}},
        "operations": [_operation(i) for i in range(size)],
    }
    (tools_dir / "cat.json").write_text(json.dumps(manifest))
    return tools_dir


async def _walk(client: Any) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    cursor = None
    while True:
        result = await client.request("tools/list", {"cursor": cursor} if cursor else {})
        tools += result["tools"]
        cursor = result.get("nextCursor")
        if not cursor:
            return tools


async def _measure(
    workspace: Workspace,
    server: str,
    tools_dir: Path,
    tools_file: Path,
    *,
    min_reps: int,
    max_reps: int,
    min_seconds: float,
    extra: list[str] | None = None,
    capture: bool = False,
) -> dict[str, Any]:
    # Ours without a start-up snapshot: every listing here is the SDK's (the start-up phase measures snapshots).
    no_snapshot = {"MCP_CONNECTORS_STARTUP_CACHE": "off"} if server == "ours" else None
    run = await start(
        workspace,
        server,
        "stdio",
        tools_file=tools_file,
        tools_dir=tools_dir,
        extra=extra,
        environ=no_snapshot,
        timeout=600,
    )
    try:
        if capture:  # our first listing becomes the peers' catalog: the same definitions, byte for byte
            listing = await _walk(run.client)
            spawn_to_list = time.perf_counter() - run.spawned_at
            tools_file.write_text(json.dumps(listing))
        else:
            await list_all_tools(run.client)
            spawn_to_list = time.perf_counter() - run.spawned_at
        tools, pages, size = await list_all_tools(run.client)
        await asyncio.sleep(0.3)
        idle_rss = run.memory()["rss_mb"]
        latencies, cpus = [], []
        started = time.perf_counter()
        while len(latencies) < max_reps and (len(latencies) < min_reps or time.perf_counter() - started < min_seconds):
            cpu0, t0 = run.cpu(), time.perf_counter()
            await list_all_tools(run.client)
            latencies.append(time.perf_counter() - t0)
            cpus.append(run.cpu() - cpu0)
        cpu_per_list = sum(cpus) / len(cpus)  # ticks are 10 ms: the mean over reps, not a median of ticks
        return {
            "tools": tools,
            "pages": pages,
            "listing_mb": size / 1e6,
            "spawn_to_list_s": spawn_to_list,
            "list_ms": {
                "median": statistics.median(latencies) * 1000,
                "min": min(latencies) * 1000,
                "max": max(latencies) * 1000,
                "n": len(latencies),
            },
            "list_cpu_ms": cpu_per_list * 1000,
            "list_cpu_ms_per_page": cpu_per_list * 1000 / pages,
            "idle_rss_mb": idle_rss,
            "peak_rss_mb": run.memory()["hwm_mb"],
        }
    finally:
        await run.stop()


VARIANTS = {  # ours first: its listing is what the peers serve
    "ours": ("ours", None),
    "sdk": ("sdk", None),
    "fastmcp": ("fastmcp", None),
    "ours-page100": ("ours", ["--page-size", "100"]),
}


async def bench_catalog(
    workspace: Workspace,
    sizes: list[int],
    *,
    fastmcp_max: int,
    min_reps: int,
    max_reps: int,
    min_seconds: float,
    variants: tuple[str, ...] = tuple(VARIANTS),
    page100_sizes: tuple[int, ...] = (5000,),
    log: Any = print,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in sizes:
        tools_dir = generate(workspace.root, size, workspace.upstream_url)
        tools_file = workspace.root / f"catalog-{size}.tools.json"
        out[str(size)] = {"servers": {}}
        for variant, (server, extra) in VARIANTS.items():
            if variant not in variants or (variant == "ours-page100" and size not in page100_sizes):
                continue
            if server == "fastmcp" and size > fastmcp_max:
                out[str(size)]["servers"][variant] = {"skipped": f"FastMCP above {fastmcp_max} tools (time budget)"}
                continue
            try:
                result = await _measure(
                    workspace,
                    server,
                    tools_dir,
                    tools_file,
                    min_reps=min_reps,
                    max_reps=max_reps,
                    min_seconds=min_seconds,
                    extra=extra,
                    capture=variant == "ours",
                )
                if variant == "ours":
                    listing = json.loads(tools_file.read_text())
                    out[str(size)]["mean_input_schema_bytes"] = statistics.mean(
                        len(json.dumps(t["inputSchema"])) for t in listing
                    )
            except Exception as exc:
                result = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            out[str(size)]["servers"][variant] = result
            log(
                f"  catalog {size} {variant}: "
                + (
                    f"spawn→list {result['spawn_to_list_s']:.2f} s, list {result['list_ms']['median']:.0f} ms, "
                    f"CPU {result['list_cpu_ms']:.0f} ms, idle {result['idle_rss_mb']:.0f} MB"
                    if "tools" in result
                    else str(result)
                )
            )
    return out
