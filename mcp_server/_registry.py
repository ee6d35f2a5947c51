"""Tools as clients see them: names, flat input schemas, output schemas, annotations, compiled validators.

Built once from a `Catalog`; everything a `tools/list` or a call needs is computed
here so the hot path only looks things up. A paginated operation's tool gains
`all_pages` (and, keyset-paged, its cursor argument) and an output schema that wraps
the item schema in the page object; a tool with variants offers the union of their
arguments and picks the request by `when` (`ToolSpec.request_for`).
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
from mcp_server._model import IDEMPOTENT_METHODS, READ_ONLY_METHODS, Catalog, Connector, Operation, Pagination
from mcp_server._request import Binding
from mcp_server._serialize import local_subschema
from mcp_server._violations import NON_SCHEMA_KEYWORDS, QuickCheck, quick_check_for, violations

MAX_REPORTED_ERRORS = 10
ALL_PAGES = "all_pages"


@dataclass(frozen=True, slots=True)
class RequestShape:
    """One request a tool can send: a variant's (matched by `when`), or the operation's own (`when` empty)."""

    operation: Operation
    bindings: Mapping[str, Binding]
    fixed: Mapping[str, Any]
    """Arguments the tool does not offer, with the values this request always sends (a variant's `set`)."""
    when: Mapping[str, Any]


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
    output_schema: Mapping[str, Any] | None = None
    output_validator: Draft202012Validator | None = None
    requests: tuple[RequestShape, ...] = ()
    """The variants in manifest order, then the operation's own request; empty for a plain operation."""
    local: frozenset[str] = frozenset()
    """Arguments the server reads itself and never sends: `all_pages`, a keyset cursor, declared `arguments`."""
    quick_check: QuickCheck | None = None

    def request_for(self, arguments: Mapping[str, Any]) -> tuple[Operation, Mapping[str, Binding], dict[str, Any]]:
        """The request these (validated) arguments ask for, its bindings, and the arguments to build it from.

        An argument the chosen request has no place for is refused rather than dropped: `invoice_now` on a cancel
        at the period's end would otherwise be silently ignored.
        """
        sent = {name: value for name, value in arguments.items() if name not in self.local}
        if not self.requests:
            return self.operation, self.bindings, sent
        defaults = {a.name: a.schema.get("default") for a in self.operation.arguments}
        chosen = next(
            shape
            for shape in self.requests
            if all(arguments.get(name, defaults.get(name)) == value for name, value in shape.when.items())
        )
        for name, value in sent.items():
            if value is not None and name not in chosen.bindings:
                switches = ", ".join(f"{k}={json.dumps(v)}" for k, v in chosen.when.items()) or "these arguments"
                raise InvalidArguments(
                    f"Invalid arguments for {self.name} at $.{name}: it does not apply with {switches}",
                    path=f"$.{name}",
                )
        return chosen.operation, chosen.bindings, {**sent, **chosen.fixed}

    def output_problem(self, value: Any) -> tuple[str, str] | None:
        """`(json_path, message)` of the first way `value` breaks the output schema, or None when it conforms."""
        if self.output_validator is None:
            return None
        errors = violations(self.output_validator, value)
        return (errors[0].json_path, errors[0].message) if errors else None

    def validate(self, arguments: Mapping[str, Any]) -> None:
        """Raise `InvalidArguments` naming the JSON path of the best-matching violation."""
        if self.quick_check is not None and self.quick_check.conforms(arguments):
            return
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
    """Hints from the methods the tool may send (its variants' too: a GET tool with a POST variant is not read-only),
    then what the manifest says explicitly (a POST search endpoint may declare itself read-only)."""
    methods = {operation.method, *(variant.operation.method for variant in operation.variants)}
    read_only = methods <= READ_ONLY_METHODS
    hints: dict[str, bool] = {"readOnlyHint": read_only, "openWorldHint": True}
    if not read_only:
        hints["destructiveHint"] = "DELETE" in methods
        hints["idempotentHint"] = methods <= IDEMPOTENT_METHODS
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


def _hide(schema: dict[str, Any], bindings: Mapping[str, Binding], names: Mapping[str, Any]) -> dict[str, Any]:
    """Drop from `schema` the arguments bound to the parameters or body properties in `names` (written by the server,
    not the model); returns those arguments with their values, keyed by argument name."""
    hidden = {arg: names[b.name] for arg, b in bindings.items() if b.name in names}
    for arg in hidden:
        schema["properties"].pop(arg, None)
    if "required" in schema:
        schema["required"] = [arg for arg in schema["required"] if arg not in hidden]
        if not schema["required"]:
            del schema["required"]
    return hidden


def tool_input(operation: Operation) -> tuple[dict[str, Any], dict[str, Binding], tuple[RequestShape, ...], set[str]]:
    """The flat input schema with the manifest's extensions: hidden `set` parameters, variants' arguments, declared
    arguments, `all_pages` and a keyset cursor. Also the bindings, the request shapes and the local arguments."""
    schema, bindings = flatten_input(operation)
    pagination = operation.pagination
    if pagination is not None and pagination.set:
        _hide(schema, bindings, pagination.set)
    properties: dict[str, Any] = schema["properties"]
    required: list[str] = list(schema.get("required", []))
    shapes: list[RequestShape] = []
    for variant in operation.variants:
        variant_schema, variant_bindings = flatten_input(variant.operation)
        fixed = _hide(variant_schema, variant_bindings, variant.set)
        for prop, prop_schema in variant_schema["properties"].items():
            properties.setdefault(prop, prop_schema)  # a name both requests use keeps the operation's schema
        if variant_schema.get("$defs"):
            schema.setdefault("$defs", {}).update(variant_schema["$defs"])
        shapes.append(RequestShape(variant.operation, variant_bindings, fixed, variant.when))
    if shapes:
        shapes.append(RequestShape(operation, bindings, {}, {}))
    local: set[str] = set()
    for argument in operation.arguments:
        properties[argument.name] = _with_description(argument.schema, argument.description)
        local.add(argument.name)
        if argument.required:
            required.append(argument.name)
    if pagination is not None:
        if pagination.style == "keyset" and pagination.cursor_param:
            properties[pagination.cursor_param] = {
                "type": "string",
                "minLength": 1,
                "description": "The `next_page.cursor` of an earlier result of this tool, to continue after its last "
                "item; omit it to start.",
            }
            local.add(pagination.cursor_param)
        properties[ALL_PAGES] = {
            "type": "boolean",
            "default": False,
            "description": f"Follow the next pages and return their items in one result, up to "
            f"{pagination.max_items:,} items or {pagination.max_pages} pages within the call's time limit. A result "
            f"cut short says `truncated: true` and why, and its `next_page` continues from there.",
        }
        local.add(ALL_PAGES)
    # Rebuilt so the extensions' properties sit before `additionalProperties: false`, as in any other tool.
    rebuilt: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        rebuilt["required"] = required
    rebuilt["additionalProperties"] = False
    if "$defs" in schema:
        rebuilt["$defs"] = schema["$defs"]
    return rebuilt, bindings, tuple(shapes), local


def page_output_schema(operation: Operation, pagination: Pagination) -> dict[str, Any]:
    """The page object every paginated tool answers with, its items described by the operation's output schema."""
    item = dict(operation.output_schema or {})
    defs = item.pop("$defs", None)  # hoisted: the item's `#/$defs/...` references resolve from the root
    cursor: dict[str, Any] = {"type": "string"}
    if pagination.style == "offset":
        position = pagination.offset_param
        cursor = {"type": "integer", "minimum": 0}
    elif pagination.style == "keyset":
        position = pagination.cursor_param
    else:
        position = pagination.cursor_param
        parameter = next((p for p in operation.parameters if p.name == position), None)
        if parameter is not None:
            cursor = {k: v for k, v in parameter.schema.items() if k in ("type", "minimum", "maxLength")}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "has_more": {"type": "boolean", "description": "Whether more items follow the last one here."},
            "next_page": {
                "type": ["object", "null"],
                "description": "The arguments that fetch the next page: call this tool again with them added to "
                "the same arguments. Null when there is no next page.",
                "properties": {position: cursor} if position else {},
            },
            "truncated": {
                "type": "boolean",
                "description": "True when all_pages or the result size limit stopped before the last item; `note` "
                "says why.",
            },
            "pages": {"type": "integer", "minimum": 1, "description": "How many pages all_pages fetched."},
            "note": {"type": "string"},
            "items": {"type": "array", "items": item},
        },
        "required": ["has_more", "next_page", "items"],
    }
    if defs:
        schema["$defs"] = defs
    return schema


ERROR_RESULT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "description": "A failed call (isError: true): DESIGN.md's error body, the same for every tool.",
    "properties": {
        "success": {"const": False},
        "error": {"type": "string"},
        "error_code": {"type": "string"},
        "details": {"type": "object"},
    },
    "required": ["success", "error", "error_code"],
}


def served_output_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The `outputSchema` clients are given: the operation's result, or the error body of a failed call.

    MCP says a tool's structured results conform to its output schema, and a failed call's structuredContent
    is the error body; clients that check results with isError too (the TypeScript SDK 1.x) would otherwise
    raise on every failed call instead of showing the error. `$defs` stay at the root, where `$ref`s point.
    """
    result = dict(schema)
    defs = result.pop("$defs", None)
    served: dict[str, Any] = {"type": "object", "anyOf": [_rebased(result), dict(ERROR_RESULT_SCHEMA)]}
    if defs is not None:
        served["$defs"] = _rebased(defs)
    return served


def _rebased(node: Any) -> Any:
    """`node` with every local `$ref` other than `#/$defs/...` pointed into `anyOf[0]`, where the result moved."""
    if isinstance(node, list):
        return [_rebased(item) for item in cast(list[Any], node)]
    if not isinstance(node, dict):
        return node
    rebased: dict[str, Any] = {}
    for key, value in cast(dict[str, Any], node).items():
        if key == "$ref" and isinstance(value, str) and value.startswith("#") and not value.startswith("#/$defs"):
            rebased[key] = "#/anyOf/0" + value[1:]
        elif key in NON_SCHEMA_KEYWORDS:
            rebased[key] = value
        else:
            rebased[key] = _rebased(value)
    return rebased


def tool_output_schema(operation: Operation) -> dict[str, Any] | None:
    if operation.pagination is not None:
        return page_output_schema(operation, operation.pagination)
    return dict(operation.output_schema) if operation.output_schema is not None else None


def build_tool(connector: Connector, operation: Operation) -> ToolSpec:
    name = f"{connector.name}_{operation.name}"
    title = operation.title or operation.name.replace("_", " ").capitalize()
    description = _tool_description(connector, operation)
    schema, bindings, requests, local = tool_input(operation)
    output_schema = tool_output_schema(operation)
    annotations = tool_annotations(operation)
    mcp_tool = types.Tool(
        name=name,
        title=title,
        description=description,
        input_schema=schema,
        output_schema=served_output_schema(output_schema) if output_schema is not None else None,
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
        quick_check=quick_check_for(schema),
        mcp_tool=mcp_tool,
        output_schema=output_schema,
        # No format checker: clients validate outputSchema without one, and an upstream's date format is not ours to
        # police; types, required members and shapes are.
        output_validator=Draft202012Validator(output_schema) if output_schema is not None else None,
        requests=requests,
        local=frozenset(local),
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
