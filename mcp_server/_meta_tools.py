"""Discovery mode: three meta-tools in place of a catalog too large to list.

`search_tools` ranks tools by BM25 over names, titles, descriptions and parameter
names; `describe_tool` returns one tool's full definition; `call_tool` runs a tool
through the same pipeline (validation, credentials, errors) as a direct call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import mcp_types as types
from jsonschema import Draft202012Validator

from mcp_server._access import ANONYMOUS, Access, Principal, forbidden
from mcp_server._discovery import ToolIndex
from mcp_server._errors import InvalidArguments, UnknownTool
from mcp_server._pipeline import Outcome, Pipeline, ProgressFn, ToolSuccess
from mcp_server._registry import ToolSpec
from mcp_server._violations import violations

SEARCH_RESULT_DESCRIPTION_CHARS = 300

_SCHEMAS: dict[str, dict[str, Any]] = {
    "search_tools": {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "description": "What you want to do, in a few words."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
        },
        "required": ["query"],
        "additionalProperties": False,
    },
    "describe_tool": {
        "type": "object",
        "properties": {"name": {"type": "string", "description": "A tool name from search_tools."}},
        "required": ["name"],
        "additionalProperties": False,
    },
    "call_tool": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "A tool name from search_tools."},
            "arguments": {"type": "object", "description": "Arguments matching the tool's input schema."},
        },
        "required": ["name"],
        "additionalProperties": False,
    },
}

META_TOOLS = [
    types.Tool(
        name="search_tools",
        title="Search the available API tools",
        description="Find the tools for a task among the many API operations this server offers. Returns the "
        "best matches with their names and short descriptions; then use describe_tool and call_tool.",
        input_schema=_SCHEMAS["search_tools"],
        annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
    ),
    types.Tool(
        name="describe_tool",
        title="Describe one API tool",
        description="Return one tool's full description and the JSON Schema of its arguments.",
        input_schema=_SCHEMAS["describe_tool"],
        annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
    ),
    types.Tool(
        name="call_tool",
        title="Call an API tool",
        description="Call a tool found with search_tools, with arguments matching its schema from describe_tool.",
        input_schema=_SCHEMAS["call_tool"],
        annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True),
    ),
]
_VALIDATORS = {name: Draft202012Validator(schema) for name, schema in _SCHEMAS.items()}


def _describe(tool: ToolSpec) -> dict[str, Any]:
    return tool.mcp_tool.model_dump(by_alias=True, mode="json", exclude_none=True)


class MetaTools:
    """The three meta-tools over what one principal may see: the same scope filter as `tools/list`."""

    def __init__(self, pipeline: Pipeline, access: Access | None = None) -> None:
        self._pipeline = pipeline
        self._access = access or Access(pipeline)

    @property
    def index(self) -> ToolIndex:
        """The search index of every served tool (each view keeps its own, rebuilt when a reload swaps the registry)."""
        return self._access.view(ANONYMOUS).index

    async def call(
        self,
        name: str,
        arguments: Mapping[str, Any],
        progress: ProgressFn | None = None,
        *,
        principal: Principal = ANONYMOUS,
        transport: str = "mcp",
    ) -> Outcome:
        """Raises `UnknownTool` for a name that is not a meta-tool."""
        validator = _VALIDATORS.get(name)
        if validator is None:
            raise UnknownTool(name)
        errors = violations(validator, dict(arguments))
        if errors:
            return InvalidArguments(
                f"Invalid arguments for {name} at {errors[0].json_path}: {errors[0].message}",
                path=errors[0].json_path,
            )
        view = self._access.view(principal)
        if name == "search_tools":
            # int(): JSON Schema's "integer" admits 2.0, which cannot slice a list.
            hits = view.index.search(arguments["query"], int(arguments.get("limit", 10)))
            found = [
                {
                    "name": tool.name,
                    "title": tool.title,
                    "description": tool.description[:SEARCH_RESULT_DESCRIPTION_CHARS],
                    "score": round(score, 3),
                }
                for tool, score in hits
            ]
            return _json({"tools": found, "total_tools": len(view.registry)})
        target: str = arguments["name"]
        verdict = view.verdict(target)
        if verdict == "unknown":
            return InvalidArguments(
                f"{UnknownTool(target).message}; use search_tools to find tool names", path="$.name"
            )
        if verdict == "forbidden":
            return forbidden(target)
        if name == "describe_tool":
            return _json(_describe(view.registry.get(target)))
        return await self._access.invoke(
            principal, target, arguments.get("arguments") or {}, transport=transport, progress=progress
        )


def _json(value: dict[str, Any]) -> ToolSuccess:
    return ToolSuccess(200, value, json.dumps(value, ensure_ascii=False), True)
