"""`batch_invoke`: several tool calls in one, run concurrently under a bound, answered in order.

Each call is dispatched exactly like a single call from the same client (`LocalTools.dispatch`: the
scope check, the client's limits and `Pipeline.invoke` with the client's `Caller`), so nothing a batch
does is possible without it. A failed call (unknown tool included) is that call's error body; the
batch itself fails only when its own arguments are wrong — too many calls, or a nested `batch_invoke`
(refused before anything runs: a batch inside a batch would multiply the bound it is meant to keep).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from functools import cache
from typing import Any, cast

import anyio
import mcp_types as types
from jsonschema import Draft202012Validator

from mcp_server._errors import InvalidArguments, ToolError
from mcp_server._pipeline import Outcome, ProgressFn, ToolSuccess
from mcp_server._violations import violations

BATCH_TOOL = "batch_invoke"

Dispatch = Callable[[str, Mapping[str, Any]], Awaitable[Outcome]]
"""Runs one call of the batch as its client's own single call would run."""


class UnknownToolCall(ToolError):
    """One call of a batch names a tool that does not exist (a single call answers this as a protocol error / 404)."""

    error_code = "UNKNOWN_TOOL"


def batch_schema(max_calls: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "calls": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_calls,
                "description": f"Up to {max_calls} tool calls, each {{tool, arguments}}; results come in this order.",
                "items": {
                    "type": "object",
                    "properties": {
                        "tool": {"type": "string", "minLength": 1, "description": "A tool name from tools/list."},
                        "arguments": {"type": "object", "description": "Arguments matching that tool's schema."},
                    },
                    "required": ["tool"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["calls"],
        "additionalProperties": False,
    }


@cache
def _validator(max_calls: int) -> Draft202012Validator:
    return Draft202012Validator(batch_schema(max_calls))


def batch_tool(max_calls: int, concurrency: int, *, read_only: bool) -> types.Tool:
    """The tool definition; `read_only` when every tool the client may call is read-only (`--read-only`, scopes)."""
    return types.Tool(
        name=BATCH_TOOL,
        title="Run several tool calls at once",
        description=(
            f"Run up to {max_calls} calls of the other tools in one request ({concurrency} at a time) and get every "
            'result in the same order: {"results": [{"tool", "success": true, "result"} or {"tool", "success": '
            'false, "error", "error_code", "details"}]}. One failing call does not stop the others. '
            f"Use it for independent calls only; {BATCH_TOOL} cannot call itself."
        ),
        input_schema=batch_schema(max_calls),
        annotations=types.ToolAnnotations(
            title="Run several tool calls at once",
            read_only_hint=read_only,
            destructive_hint=not read_only,
            idempotent_hint=False,
            open_world_hint=True,
        ),
    )


def call_body(name: str, outcome: Outcome) -> dict[str, Any]:
    """One call's entry: the REST façade's single-call body, with the tool's name."""
    if isinstance(outcome, ToolError):
        return {"tool": name, **outcome.to_body()}
    body: dict[str, Any] = {"tool": name, "success": True, "result": outcome.value if outcome.is_json else outcome.text}
    if outcome.note:
        body["note"] = outcome.note
    return body


async def run_batch(
    arguments: Mapping[str, Any],
    dispatch: Dispatch,
    *,
    max_calls: int,
    concurrency: int,
    progress: ProgressFn | None = None,
) -> Outcome:
    """Validate, run every call (at most `concurrency` at once) and collect their bodies in order."""
    errors = violations(_validator(max_calls), dict(arguments))
    if errors:
        return InvalidArguments(
            f"Invalid arguments for {BATCH_TOOL} at {errors[0].json_path}: {errors[0].message}",
            path=errors[0].json_path,
        )
    calls = cast(list[dict[str, Any]], arguments["calls"])
    for index, call in enumerate(calls):
        if call["tool"] == BATCH_TOOL:
            return InvalidArguments(
                f"{BATCH_TOOL} cannot be nested (call {index}); put those calls in this batch instead",
                path=f"$.calls[{index}].tool",
            )
    results: list[dict[str, Any] | None] = [None] * len(calls)
    limiter = anyio.Semaphore(max(1, concurrency))
    finished = 0

    async def run(index: int, call: Mapping[str, Any]) -> None:
        nonlocal finished
        async with limiter:
            outcome = await dispatch(call["tool"], cast(Mapping[str, Any], call.get("arguments") or {}))
        results[index] = call_body(call["tool"], outcome)
        finished += 1
        if progress is not None:
            await progress(float(finished), float(len(calls)), f"{finished} of {len(calls)} calls finished")

    # A cancelled batch (client gone, notifications/cancelled) cancels every call in it, upstream requests included.
    async with anyio.create_task_group() as group:
        for index, call in enumerate(calls):
            group.start_soon(run, index, call)
    done = [result for result in results if result is not None]
    succeeded = sum(1 for result in done if result["success"])
    value = {"results": done, "succeeded": succeeded, "failed": len(done) - succeeded}
    return ToolSuccess(200, value, json.dumps(value, ensure_ascii=False), True)
