"""Tools as clients see them: names, flat input schemas, annotations, compiled validators.

Built once from a `Catalog`; everything a `tools/list` or a call needs is computed
here so the hot path only looks things up.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import mcp_types as types
from jsonschema import Draft202012Validator, FormatChecker

from mcp_server._errors import InvalidArguments, UnknownTool
from mcp_server._model import IDEMPOTENT_METHODS, READ_ONLY_METHODS, Catalog, Connector, Operation
from mcp_server._request import Binding
from mcp_server._serialize import local_subschema
from mcp_server._violations import violations

MAX_REPORTED_ERRORS = 10


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One operation of one connector, ready to list and to call."""

    name: str
    title: str
    description: str
    input_schema: Mapping[str, Any]
    annotations: Mapping[str, bool]
    connector: Connector
    operation: Operation
    bindings: Mapping[str, Binding]
    validator: Draft202012Validator
    mcp_tool: types.Tool

    def validate(self, arguments: Mapping[str, Any]) -> None:
        """Raise `InvalidArguments` naming the JSON path of the best-matching violation."""
        errors = violations(self.validator, arguments)
        if not errors:
            return
        best = errors[0]
        reported = [{"path": e.json_path, "message": e.message} for e in errors[:MAX_REPORTED_ERRORS]]
        raise InvalidArguments(
            f"Invalid arguments for {self.name} at {best.json_path}: {best.message}",
            path=best.json_path,
            errors=reported,
        )


def tool_annotations(operation: Operation) -> dict[str, bool]:
    """Hints from the method, then whatever the manifest says explicitly."""
    read_only = operation.method in READ_ONLY_METHODS
    hints: dict[str, bool] = {"readOnlyHint": read_only, "openWorldHint": True}
    if not read_only:
        hints["destructiveHint"] = operation.method == "DELETE"
        hints["idempotentHint"] = operation.method in IDEMPOTENT_METHODS
    hints.update(operation.annotations)
    return hints


def _with_description(schema: Mapping[str, Any], description: str | None) -> dict[str, Any]:
    result = dict(schema)
    if description and "description" not in result:
        result["description"] = description
    return result


def flatten_input(operation: Operation) -> tuple[dict[str, Any], dict[str, Binding]]:
    """The tool's flat input schema and where each of its properties goes in the request.

    Parameters keep their names; a name used in two locations gets the later
    location as a prefix (`query_id`). An object body's properties join them at
    the top level (`body_` prefix on a clash); any other body is one `body` property.
    """
    properties: dict[str, Any] = {}
    required: list[str] = []
    bindings: dict[str, Binding] = {}
    defs: dict[str, Any] = {}

    def claim(preferred: str, prefix: str) -> str:
        name = preferred if preferred not in properties else f"{prefix}_{preferred}"
        while name in properties:
            name = f"{prefix}_{name}"
        return name

    for parameter in operation.parameters:
        name = claim(parameter.name, parameter.location)
        # A parameter's own `$defs` move to the root, where its `#/$defs/...` references now resolve.
        defs.update(cast(Mapping[str, Any], parameter.schema.get("$defs", {})))
        param_schema = {k: v for k, v in parameter.schema.items() if k != "$defs"}
        properties[name] = _with_description(param_schema, parameter.description)
        bindings[name] = Binding(parameter.location, parameter.name)
        if parameter.required:
            required.append(name)

    body = operation.body
    if body is not None:
        defs.update(cast(Mapping[str, Any], body.schema.get("$defs", {})))
        # A body that is only `{"$ref": "#/$defs/X", "$defs": ...}` is flattened from X.
        object_schema = local_subschema(body.schema, body.schema)
        body_properties = cast(Mapping[str, Any] | None, object_schema.get("properties"))
        if object_schema.get("type") == "object" and body_properties:
            body_required = set(cast(Sequence[str], object_schema.get("required", ())))
            for prop, prop_schema in body_properties.items():
                name = claim(prop, "body")
                properties[name] = prop_schema
                bindings[name] = Binding("body_property", prop)
                # The body's own required list applies whenever a body is sent, and a flat
                # schema cannot express "required only if any sibling is present".
                if prop in body_required:
                    required.append(name)
        else:
            name = claim("body", "body")
            properties[name] = _with_description(
                {k: v for k, v in body.schema.items() if k != "$defs"}, body.description
            )
            bindings[name] = Binding("body", "body")
            if body.required:
                required.append(name)

    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    if defs:
        schema["$defs"] = defs
    return schema, bindings


def _tool_description(connector: Connector, operation: Operation) -> str:
    if operation.description:
        return operation.description
    if operation.title:
        return operation.title
    return f"{operation.method} {operation.path} on {connector.title or connector.name}."


def build_tool(connector: Connector, operation: Operation) -> ToolSpec:
    name = f"{connector.name}_{operation.name}"
    title = operation.title or operation.name.replace("_", " ").capitalize()
    description = _tool_description(connector, operation)
    schema, bindings = flatten_input(operation)
    annotations = tool_annotations(operation)
    mcp_tool = types.Tool(
        name=name,
        title=title,
        description=description,
        input_schema=schema,
        annotations=types.ToolAnnotations(
            title=title,
            read_only_hint=annotations.get("readOnlyHint"),
            destructive_hint=annotations.get("destructiveHint"),
            idempotent_hint=annotations.get("idempotentHint"),
            open_world_hint=annotations.get("openWorldHint"),
        ),
    )
    return ToolSpec(
        name=name,
        title=title,
        description=description,
        input_schema=schema,
        annotations=annotations,
        connector=connector,
        operation=operation,
        bindings=bindings,
        validator=Draft202012Validator(schema, format_checker=FormatChecker()),
        mcp_tool=mcp_tool,
    )


class InvalidCursor(ValueError):
    pass


class Registry:
    """Every tool of a catalog, in a deterministic order: connectors by name, operations as written."""

    def __init__(self, tools: Sequence[ToolSpec]) -> None:
        self._tools = tuple(tools)
        self._by_name = {tool.name: tool for tool in self._tools}
        self._index = {tool.name: index for index, tool in enumerate(self._tools)}

    @classmethod
    def from_catalog(cls, catalog: Catalog, *, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> Registry:
        """Every operation as a tool, or only those whose tool name matches an `include` glob and no `exclude` glob."""
        ordered = sorted(catalog.connectors, key=lambda c: c.name)

        def wanted(name: str) -> bool:
            matches = fnmatch.fnmatchcase
            return (not include or any(matches(name, p) for p in include)) and not any(
                matches(name, p) for p in exclude
            )

        return cls(
            [
                build_tool(connector, op)
                for connector in ordered
                for op in connector.operations
                if wanted(f"{connector.name}_{op.name}")
            ]
        )

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def get(self, name: str) -> ToolSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownTool(name) from None

    def page(self, cursor: str | None, page_size: int) -> tuple[Sequence[ToolSpec], str | None]:
        """One page of tools and the cursor of the next, or None on the last page.

        The cursor names the last tool served rather than an offset, so a client
        paging through a listing never sees a tool twice.
        """
        start = 0 if cursor is None else self._decode_cursor(cursor)
        tools = self._tools[start : start + page_size]
        end = start + len(tools)
        next_cursor = self._encode_cursor(tools[-1].name) if tools and end < len(self._tools) else None
        return tools, next_cursor

    @staticmethod
    def _encode_cursor(last_name: str) -> str:
        return base64.urlsafe_b64encode(json.dumps({"after": last_name}).encode()).decode().rstrip("=")

    def _decode_cursor(self, cursor: str) -> int:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            after = decoded["after"]
            return self._index[after] + 1
        except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
            raise InvalidCursor(f"Invalid cursor: {cursor[:64]!r}") from None
