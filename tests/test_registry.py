"""`Registry`, `flatten_input`, `tool_annotations` and `ToolSpec.validate`, built from manifest files."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from mcp_server._catalog import load_catalog
from mcp_server._errors import InvalidArguments, UnknownTool
from mcp_server._model import Operation
from mcp_server._registry import (
    ERROR_RESULT_SCHEMA,
    InvalidCursor,
    Registry,
    ToolSpec,
    flatten_input,
    tool_annotations,
)
from mcp_server._request import Binding
from mcp_server._resources import bundled_dir

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# ------------------------------------------------------------------ helpers


def write_manifest(directory: Path, name: str, operations: list[dict[str, Any]], **extra: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    document = {"name": name, "base_url": "https://api.example.com", **extra, "operations": operations}
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def load_registry(*directories: Path) -> Registry:
    catalog = load_catalog(list(directories))
    assert catalog.faults == (), [str(f) for f in catalog.faults]
    return Registry.from_catalog(catalog)


def single_tool(tmp_path: Path, operation: dict[str, Any]) -> ToolSpec:
    """The one tool of a connector `demo` holding `operation`."""
    write_manifest(tmp_path / "tools", "demo", [operation])
    (tool,) = load_registry(tmp_path / "tools")
    return tool


def op(name: str, method: str = "GET", path: str = "/items", **extra: Any) -> dict[str, Any]:
    return {"name": name, "method": method, "path": path, **extra}


def invalid(tool: ToolSpec, arguments: dict[str, Any]) -> InvalidArguments:
    with pytest.raises(InvalidArguments) as caught:
        tool.validate(arguments)
    return caught.value


@pytest.fixture
def several(tmp_path: Path) -> Path:
    """Three connectors whose file order, name order and operation order all differ."""
    directory = tmp_path / "several"
    write_manifest(directory, "zeta", [op("second"), op("first", "DELETE", "/x")])
    write_manifest(directory, "alpha", [op("make", "POST", "/y"), op("list")])
    write_manifest(directory, "mid", [op("only", "PUT", "/z")])
    return directory


# ------------------------------------------------------------------ names and order


def test_tool_names_and_order(several: Path) -> None:
    registry = load_registry(several)
    assert [tool.name for tool in registry] == ["alpha_make", "alpha_list", "mid_only", "zeta_second", "zeta_first"]
    assert len(registry) == 5
    tool = registry.get("zeta_first")
    assert (tool.connector.name, tool.operation.name) == ("zeta", "first")
    assert tool.mcp_tool.name == "zeta_first"


def test_order_is_by_connector_name_not_directory_order(tmp_path: Path) -> None:
    write_manifest(tmp_path / "one", "zulu", [op("a")])
    write_manifest(tmp_path / "two", "bravo", [op("b")])
    assert [tool.name for tool in load_registry(tmp_path / "one", tmp_path / "two")] == ["bravo_b", "zulu_a"]


def test_unknown_tool(several: Path) -> None:
    with pytest.raises(UnknownTool) as caught:
        load_registry(several).get("alpha_nope")
    assert caught.value.name == "alpha_nope"


def test_bundled_tool_names_are_valid_unique_and_stable() -> None:
    first = load_registry(bundled_dir("tools"))
    second = load_registry(bundled_dir("tools"))
    names = [tool.name for tool in first]
    assert "github_get_repo" in names
    assert len(names) == len(set(names))
    assert all(TOOL_NAME.match(name) for name in names), names
    assert names == [tool.name for tool in second]
    assert [json.dumps(t.input_schema) for t in first] == [json.dumps(t.input_schema) for t in second]
    assert [t.mcp_tool.model_dump(by_alias=True) for t in first] == [
        t.mcp_tool.model_dump(by_alias=True) for t in second
    ]
    for tool in first:
        Draft202012Validator.check_schema(dict(tool.input_schema))


def test_same_registry_from_two_loads(several: Path) -> None:
    first, second = load_registry(several), load_registry(several)
    assert [t.mcp_tool.model_dump(by_alias=True) for t in first] == [
        t.mcp_tool.model_dump(by_alias=True) for t in second
    ]


def test_github_tool_schema(tmp_path: Path) -> None:
    tool = load_registry(bundled_dir("tools")).get("github_create_issue")
    schema = tool.input_schema
    assert list(schema["properties"]) == ["owner", "repo", "title", "body", "assignees", "labels", "milestone"]
    assert schema["required"] == ["owner", "repo", "title"]
    assert tool.bindings["body"] == Binding("body_property", "body")
    assert tool.annotations == {
        "readOnlyHint": False,
        "openWorldHint": True,
        "destructiveHint": False,
        "idempotentHint": False,
    }


# ------------------------------------------------------------------ flat input schema


def test_parameters_become_properties(tmp_path: Path) -> None:
    tool = single_tool(
        tmp_path,
        op(
            "get_item",
            path="/items/{item_id}",
            parameters=[
                {"name": "item_id", "in": "path", "description": "The id.", "schema": {"type": "string"}},
                {"name": "verbose", "in": "query", "schema": {"type": "boolean"}},
                {"name": "limit", "in": "query", "required": True, "schema": {"type": "integer", "minimum": 1}},
                {"name": "X-Trace", "in": "header", "description": "Trace id.", "schema": {"type": "string"}},
                {"name": "session", "in": "cookie"},
                {
                    "name": "sort",
                    "in": "query",
                    "description": "Ignored: the schema has its own.",
                    "schema": {"type": "string", "description": "Sort order."},
                },
            ],
        ),
    )
    assert tool.input_schema == {
        "type": "object",
        "properties": {
            "item_id": {"type": "string", "description": "The id."},
            "verbose": {"type": "boolean"},
            "limit": {"type": "integer", "minimum": 1},
            "X-Trace": {"type": "string", "description": "Trace id."},
            "session": {"type": "string"},
            "sort": {"type": "string", "description": "Sort order."},
        },
        "required": ["item_id", "limit"],
        "additionalProperties": False,
    }
    assert tool.bindings == {
        "item_id": Binding("path", "item_id"),
        "verbose": Binding("query", "verbose"),
        "limit": Binding("query", "limit"),
        "X-Trace": Binding("header", "X-Trace"),
        "session": Binding("cookie", "session"),
        "sort": Binding("query", "sort"),
    }
    assert tool.mcp_tool.input_schema == tool.input_schema


def test_no_parameters_is_an_empty_object(tmp_path: Path) -> None:
    tool = single_tool(tmp_path, op("ping"))
    assert tool.input_schema == {"type": "object", "properties": {}, "additionalProperties": False}
    tool.validate({})
    assert invalid(tool, {"x": 1}).details["path"] == "$"


def test_object_body_properties_are_lifted(tmp_path: Path) -> None:
    body = {
        "schema": {
            "type": "object",
            "required": ["title"],
            "properties": {"title": {"type": "string"}, "count": {"type": "integer"}},
        }
    }
    tool = single_tool(
        tmp_path,
        op("create", "POST", "/items/{kind}", parameters=[{"name": "kind", "in": "path"}], body=body),
    )
    assert tool.input_schema["properties"] == {
        "kind": {"type": "string"},
        "title": {"type": "string"},
        "count": {"type": "integer"},
    }
    assert tool.input_schema["required"] == ["kind", "title"]
    assert tool.bindings == {
        "kind": Binding("path", "kind"),
        "title": Binding("body_property", "title"),
        "count": Binding("body_property", "count"),
    }


def test_body_property_clashing_with_a_parameter_gets_body_prefix(tmp_path: Path) -> None:
    body = {
        "schema": {
            "type": "object",
            "required": ["title"],
            "properties": {"title": {"type": "string", "maxLength": 10}, "other": {"type": "integer"}},
        }
    }
    parameters = [{"name": "title", "in": "query", "schema": {"type": "integer"}}]
    tool = single_tool(tmp_path, op("create", "POST", parameters=parameters, body=body))
    assert list(tool.input_schema["properties"]) == ["title", "body_title", "other"]
    assert tool.input_schema["properties"]["title"] == {"type": "integer"}
    assert tool.input_schema["properties"]["body_title"] == {"type": "string", "maxLength": 10}
    assert tool.input_schema["required"] == ["body_title"]
    assert tool.bindings["title"] == Binding("query", "title")
    assert tool.bindings["body_title"] == Binding("body_property", "title")
    assert tool.bindings["other"] == Binding("body_property", "other")


def test_same_name_in_path_and_query_prefixes_the_later_location(tmp_path: Path) -> None:
    parameters = [
        {"name": "id", "in": "path", "schema": {"type": "integer"}},
        {"name": "id", "in": "query", "schema": {"type": "string"}},
        {"name": "id", "in": "header"},
    ]
    tool = single_tool(tmp_path, op("get", path="/items/{id}", parameters=parameters))
    assert list(tool.input_schema["properties"]) == ["id", "query_id", "header_id"]
    assert tool.input_schema["properties"]["id"] == {"type": "integer"}
    assert tool.input_schema["properties"]["query_id"] == {"type": "string"}
    assert tool.input_schema["required"] == ["id"]
    assert tool.bindings == {
        "id": Binding("path", "id"),
        "query_id": Binding("query", "id"),
        "header_id": Binding("header", "id"),
    }


@pytest.mark.parametrize(
    ("body_schema", "required"),
    [
        ({"type": "array", "items": {"type": "integer"}}, True),
        ({"type": "array", "items": {"type": "integer"}}, False),
        ({"type": "string"}, True),
        ({"type": "string"}, False),
        ({"type": "object", "additionalProperties": {"type": "string"}}, True),
    ],
)
def test_non_object_body_is_one_body_property(tmp_path: Path, body_schema: dict[str, Any], required: bool) -> None:
    body = {"schema": body_schema, "required": required, "description": "The payload."}
    tool = single_tool(tmp_path, op("send", "POST", body=body))
    assert tool.input_schema["properties"] == {"body": {**body_schema, "description": "The payload."}}
    assert tool.input_schema.get("required") == (["body"] if required else None)
    assert tool.bindings == {"body": Binding("body", "body")}


def test_body_property_clashes_with_a_parameter_named_body(tmp_path: Path) -> None:
    body = {"schema": {"type": "array", "items": {"type": "string"}}, "required": True}
    tool = single_tool(tmp_path, op("send", "POST", parameters=[{"name": "body", "in": "query"}], body=body))
    assert list(tool.input_schema["properties"]) == ["body", "body_body"]
    assert tool.input_schema["required"] == ["body_body"]
    assert tool.bindings == {"body": Binding("query", "body"), "body_body": Binding("body", "body")}


def test_defs_are_hoisted_from_a_root_ref_body(tmp_path: Path) -> None:
    body_schema = {
        "$ref": "#/$defs/Item",
        "$defs": {
            "Item": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "tag": {"$ref": "#/$defs/Tag"}},
            },
            "Tag": {"type": "string", "enum": ["red", "blue"]},
        },
    }
    tool = single_tool(tmp_path, op("create", "POST", body={"schema": body_schema}))
    schema = tool.input_schema
    assert schema["properties"] == {"name": {"type": "string"}, "tag": {"$ref": "#/$defs/Tag"}}
    assert schema["required"] == ["name"]
    assert schema["$defs"] == body_schema["$defs"]
    assert schema["additionalProperties"] is False
    Draft202012Validator.check_schema(dict(schema))
    tool.validate({"name": "n", "tag": "red"})
    error = invalid(tool, {"name": "n", "tag": "green"})
    assert error.details["path"] == "$.tag"


def test_defs_are_hoisted_from_a_non_object_body(tmp_path: Path) -> None:
    body_schema = {"type": "array", "items": {"$ref": "#/$defs/Id"}, "$defs": {"Id": {"type": "integer"}}}
    tool = single_tool(tmp_path, op("send", "POST", body={"schema": body_schema, "required": True}))
    assert tool.input_schema["properties"]["body"] == {"type": "array", "items": {"$ref": "#/$defs/Id"}}
    assert tool.input_schema["$defs"] == {"Id": {"type": "integer"}}
    tool.validate({"body": [1, 2]})
    assert invalid(tool, {"body": [1, "x"]}).details["path"] == "$.body[1]"


def test_defs_are_hoisted_from_a_parameter_schema(tmp_path: Path) -> None:
    state = {"$ref": "#/$defs/State", "$defs": {"State": {"type": "string", "enum": ["open", "closed"]}}}
    tool = single_tool(tmp_path, op("list", parameters=[{"name": "state", "in": "query", "schema": state}]))
    assert tool.input_schema["properties"]["state"] == {"$ref": "#/$defs/State"}
    assert tool.input_schema["$defs"] == {"State": {"type": "string", "enum": ["open", "closed"]}}
    tool.validate({"state": "open"})
    error = invalid(tool, {"state": "merged"})
    assert error.details["path"] == "$.state"
    # The manifest's own parameter schema is untouched: requests are serialized from it.
    assert "$defs" in tool.operation.parameters[0].schema


def test_every_generated_schema_is_valid_draft_2020_12(tmp_path: Path) -> None:
    operations = [
        op("a", parameters=[{"name": "q", "in": "query", "schema": {"type": "array", "items": {"type": "integer"}}}]),
        op("b", "POST", body={"schema": {"type": "object", "properties": {"x": {"type": "number"}}}}),
        op("c", "PUT", body={"schema": {"type": "string"}, "required": True}),
        op(
            "d",
            "PATCH",
            path="/d/{id}",
            parameters=[{"name": "id", "in": "path"}, {"name": "id", "in": "query"}],
            body={"schema": {"type": "object", "properties": {"id": {"type": "string"}}}},
        ),
    ]
    write_manifest(tmp_path / "tools", "demo", operations)
    registry = load_registry(tmp_path / "tools")
    assert len(registry) == 4
    for tool in registry:
        Draft202012Validator.check_schema(dict(tool.input_schema))
        assert tool.input_schema["type"] == "object"
        assert tool.input_schema["additionalProperties"] is False
    assert list(registry.get("demo_d").input_schema["properties"]) == ["id", "query_id", "body_id"]


def test_flatten_input_on_a_model_operation() -> None:
    from mcp_server._model import Body, Parameter

    operation = Operation(
        name="op",
        method="POST",
        path="/x/{a}",
        parameters=(Parameter("a", "path", {"type": "string"}, required=True),),
        body=Body(schema={"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}),
    )
    schema, bindings = flatten_input(operation)
    assert schema == {
        "type": "object",
        "properties": {"a": {"type": "string"}, "body_a": {"type": "integer"}},
        "required": ["a", "body_a"],
        "additionalProperties": False,
    }
    assert bindings == {"a": Binding("path", "a"), "body_a": Binding("body_property", "a")}


# ------------------------------------------------------------------ annotations


def test_annotations_follow_the_method(tmp_path: Path) -> None:
    operations = [op(m.lower(), m, "/r") for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")]
    write_manifest(tmp_path / "tools", "demo", operations)
    registry = load_registry(tmp_path / "tools")
    hints = {tool.operation.method: dict(tool.annotations) for tool in registry}
    assert hints["GET"] == {"readOnlyHint": True, "openWorldHint": True}
    assert hints["HEAD"] == {"readOnlyHint": True, "openWorldHint": True}
    assert hints["DELETE"] == {
        "readOnlyHint": False,
        "openWorldHint": True,
        "destructiveHint": True,
        "idempotentHint": True,
    }
    assert hints["PUT"] == {
        "readOnlyHint": False,
        "openWorldHint": True,
        "destructiveHint": False,
        "idempotentHint": True,
    }
    for method in ("POST", "PATCH"):
        assert hints[method] == {
            "readOnlyHint": False,
            "openWorldHint": True,
            "destructiveHint": False,
            "idempotentHint": False,
        }
    for tool in registry:
        annotations = tool.mcp_tool.annotations
        assert annotations is not None
        assert annotations.read_only_hint == tool.annotations["readOnlyHint"]
        assert annotations.destructive_hint == tool.annotations.get("destructiveHint")
        assert annotations.idempotent_hint == tool.annotations.get("idempotentHint")
        assert annotations.open_world_hint is True
        assert tool.annotations == tool_annotations(tool.operation)


def test_manifest_annotations_override_the_method(tmp_path: Path) -> None:
    operations = [
        op("purge", "DELETE", annotations={"destructiveHint": False}),
        op("search", "POST", annotations={"readOnlyHint": True, "idempotentHint": True}),
        op("local", "GET", annotations={"openWorldHint": False}),
    ]
    write_manifest(tmp_path / "tools", "demo", operations)
    registry = load_registry(tmp_path / "tools")
    purge, search, local = registry
    assert purge.annotations["destructiveHint"] is False
    assert purge.annotations["idempotentHint"] is True
    assert search.annotations["readOnlyHint"] is True
    assert search.annotations["idempotentHint"] is True
    assert local.annotations == {"readOnlyHint": True, "openWorldHint": False}
    dumped = [t.mcp_tool.model_dump(by_alias=True, exclude_none=True)["annotations"] for t in registry]
    assert dumped[0]["destructiveHint"] is False
    assert dumped[1]["readOnlyHint"] is True
    assert dumped[2]["openWorldHint"] is False
    assert dumped[0]["title"] == "Purge"


# ------------------------------------------------------------------ argument validation


@pytest.fixture
def item_tool(tmp_path: Path) -> ToolSpec:
    return single_tool(
        tmp_path,
        op(
            "create",
            "POST",
            "/items/{kind}",
            parameters=[
                {"name": "kind", "in": "path", "schema": {"type": "string", "enum": ["a", "b"]}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
            ],
            body={
                "schema": {
                    "type": "object",
                    "required": ["title"],
                    "properties": {
                        "title": {"type": "string"},
                        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                }
            },
        ),
    )


def test_valid_arguments_pass(item_tool: ToolSpec) -> None:
    item_tool.validate({"kind": "a", "title": "t"})
    item_tool.validate({"kind": "b", "title": "t", "limit": 5, "metadata": {"k": "v"}})


def test_missing_required_argument(item_tool: ToolSpec) -> None:
    error = invalid(item_tool, {"kind": "a"})
    assert error.error_code == "INVALID_ARGUMENTS"
    assert error.details["path"] == "$"
    assert "'title' is a required property" in error.message
    assert "create" in error.message
    assert error.to_body()["details"]["path"] == "$"


def test_wrong_type_names_the_argument(item_tool: ToolSpec) -> None:
    error = invalid(item_tool, {"kind": "a", "title": "t", "limit": "ten"})
    assert error.details["path"] == "$.limit"
    assert "'ten' is not of type 'integer'" in error.message


def test_nested_wrong_type_names_the_nested_path(item_tool: ToolSpec) -> None:
    error = invalid(item_tool, {"kind": "a", "title": "t", "metadata": {"k": 1}})
    assert error.details["path"] == "$.metadata.k"


def test_unknown_argument_is_rejected(item_tool: ToolSpec) -> None:
    error = invalid(item_tool, {"kind": "a", "title": "t", "colour": "red"})
    assert error.details["path"] == "$"
    assert "'colour'" in error.message


def test_every_violation_is_listed(item_tool: ToolSpec) -> None:
    error = invalid(item_tool, {"kind": "c", "limit": 0})
    assert sorted(e["path"] for e in error.details["errors"]) == ["$", "$.kind", "$.limit"]


# ------------------------------------------------------------------ pagination


@pytest.fixture
def seven(tmp_path: Path) -> Registry:
    write_manifest(tmp_path / "tools", "b", [op("one"), op("two"), op("three")])
    write_manifest(tmp_path / "tools", "a", [op("x"), op("y"), op("z"), op("w")])
    return load_registry(tmp_path / "tools")


@pytest.mark.parametrize("page_size", [1, 2, 3, 6, 7, 100])
def test_pages_cover_every_tool_once_in_order(seven: Registry, page_size: int) -> None:
    expected = ["a_x", "a_y", "a_z", "a_w", "b_one", "b_two", "b_three"]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        tools, cursor = seven.page(cursor, page_size)
        pages += 1
        assert 1 <= len(tools) <= page_size
        seen.extend(tool.name for tool in tools)
        if cursor is None:
            break
        assert pages < 20
    assert seen == expected
    assert pages == -(-len(expected) // page_size)


def test_first_page_of_two(seven: Registry) -> None:
    tools, cursor = seven.page(None, 2)
    assert [t.name for t in tools] == ["a_x", "a_y"]
    assert cursor is not None
    tools, _ = seven.page(cursor, 2)
    assert [t.name for t in tools] == ["a_z", "a_w"]
    # A cursor is reusable: asking again gives the same page.
    assert [t.name for t in seven.page(cursor, 2)[0]] == ["a_z", "a_w"]


def test_empty_registry_has_one_empty_page() -> None:
    registry = Registry([])
    assert registry.page(None, 10) == ((), None)


def _cursor(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "",
        "€uro",
        _cursor(b"not json at all"),
        _cursor(b"\xff\xfe"),
        _cursor(b"[1, 2]"),
        _cursor(b"null"),
        _cursor(b'"a_x"'),
        _cursor(b'{"offset": 2}'),
        _cursor(b'{"after": ["a_x"]}'),
        _cursor(b'{"after": "nope_nope"}'),
    ],
)
def test_invalid_cursor(seven: Registry, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        seven.page(cursor, 2)


def test_cursor_from_another_registry_naming_an_unknown_tool(seven: Registry, several: Path) -> None:
    _, cursor = load_registry(several).page(None, 1)
    assert cursor is not None
    with pytest.raises(InvalidCursor):
        seven.page(cursor, 2)


# ------------------------------------------------------------------ output schemas, pagination arguments

ITEM_WITH_DEFS = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "card": {"$ref": "#/$defs/card"}},
    "$defs": {"card": {"type": ["object", "null"], "properties": {"last4": {"type": "string"}}}},
}


def test_output_schema_is_served_and_checked(tmp_path: Path) -> None:
    tool = single_tool(tmp_path, op("get_charge", output_schema=ITEM_WITH_DEFS))
    assert tool.output_schema == ITEM_WITH_DEFS
    served = dict(tool.mcp_tool.output_schema or {})
    branch = {k: v for k, v in ITEM_WITH_DEFS.items() if k != "$defs"}
    assert served == {"type": "object", "anyOf": [branch, ERROR_RESULT_SCHEMA], "$defs": ITEM_WITH_DEFS["$defs"]}
    served_validator = Draft202012Validator(served)
    assert served_validator.is_valid({"id": "ch_1", "card": {"last4": "4242"}})
    assert not served_validator.is_valid({"id": "ch_1", "card": {"last4": 4242}})  # the $ref resolves from the root
    error = {"success": False, "error": "Stripe answered HTTP 404", "error_code": "UPSTREAM_ERROR", "details": {}}
    assert served_validator.is_valid(error)  # a failed call's structuredContent conforms too
    assert tool.output_problem({"id": "ch_1", "card": None}) is None
    assert tool.output_problem({"id": "ch_1", "card": {"last4": 4242}}) == (
        "$.card.last4",
        "4242 is not of type 'string'",
    )
    assert single_tool(tmp_path / "plain", op("plain")).mcp_tool.output_schema is None


def test_paged_output_schema_wraps_the_item_and_hoists_its_defs(tmp_path: Path) -> None:
    pagination = {"style": "cursor", "items": "/data", "cursor_param": "after", "cursor_field": "/id"}
    parameters = [{"name": "after", "in": "query", "schema": {"type": "string", "maxLength": 100}}]
    tool = single_tool(
        tmp_path, op("list_charges", parameters=parameters, pagination=pagination, output_schema=ITEM_WITH_DEFS)
    )
    served = dict(tool.mcp_tool.output_schema or {})
    Draft202012Validator.check_schema(served)
    schema = served["anyOf"][0]
    assert served["$defs"] == ITEM_WITH_DEFS["$defs"] and "$defs" not in schema["properties"]["items"]["items"]
    assert schema["properties"]["next_page"]["properties"] == {"after": {"type": "string", "maxLength": 100}}
    page = {"has_more": True, "next_page": {"after": "ch_1"}, "items": [{"id": "ch_1", "card": {"last4": "4242"}}]}
    assert tool.output_problem(page) is None
    assert tool.output_problem({**page, "items": [{"card": {"last4": 1}}]}) is not None  # the hoisted $ref resolves
    assert tool.output_problem({"items": []}) is not None  # has_more and next_page are always there
    assert tool.input_schema["properties"]["all_pages"]["type"] == "boolean"
    assert tool.local == {"all_pages"}
    tool.validate({"all_pages": True, "after": "ch_1"})
    assert invalid(tool, {"all_pages": "yes"}).details["path"] == "$.all_pages"


def test_a_get_tool_with_a_writing_variant_is_not_read_only() -> None:
    from mcp_server._model import Operation, Variant
    from mcp_server._registry import tool_annotations

    cancel = Operation(name="c", method="POST", path="/x")
    tool = Operation(name="t", method="GET", path="/x", variants=(Variant(when={"now": False}, operation=cancel),))
    hints = tool_annotations(tool)
    assert hints["readOnlyHint"] is False and hints["idempotentHint"] is False
    assert tool_annotations(Operation(name="g", method="GET", path="/x"))["readOnlyHint"] is True


# ------------------------------------------------------------------ the quick check in front of the Python validator


def pattern_tool(tmp_path: Path, pattern: str, **schema: Any) -> ToolSpec:
    return single_tool(
        tmp_path,
        op(
            "find",
            parameters=[{"name": "q", "in": "query", "schema": {"type": "string", "pattern": pattern, **schema}}],
        ),
    )


def test_the_quick_check_and_the_python_validator_agree_on_ordinary_arguments(item_tool: ToolSpec) -> None:
    assert item_tool.quick_check is not None
    samples: list[dict[str, Any]] = [{}, {"item_id": "a"}, {"item_id": 5}, {"item_id": "a", "limit": 0}]
    for arguments in samples:
        python_says = not list(item_tool.validator.iter_errors(arguments))
        assert item_tool.quick_check.conforms(arguments) == python_says, arguments


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        # Python's `$` also matches before a final newline; ECMA's \d is ASCII only, Python's is Unicode.
        ({"type": "string", "pattern": "^abc$"}, "abc\n"),
        ({"type": "string", "pattern": "^\\d+$"}, "\u0663"),
        ({"type": "string", "pattern": "^abc\\Z"}, "abc"),  # `\Z` is Python's; jsonschema-rs cannot compile it
    ],
)
def test_patterns_are_judged_by_the_python_validator_alone(tmp_path: Path, schema: dict[str, Any], value: str) -> None:
    tool = single_tool(tmp_path, op("find", parameters=[{"name": "q", "in": "query", "schema": schema}]))
    assert tool.quick_check is None  # the two validators disagree on regexes: no fast path
    tool.validate({"q": value})  # accepted, as it always was


def test_formats_are_judged_by_the_python_validator_alone(tmp_path: Path) -> None:
    schema = {"type": "string", "format": "date-time"}
    tool = single_tool(tmp_path, op("since", parameters=[{"name": "since", "in": "query", "schema": schema}]))
    assert tool.quick_check is None
    tool.validate({"since": "2026-11-22T10:00:00Z"})
    assert invalid(tool, {"since": "0000-01-01T00:00:00Z"}).details["path"] == "$.since"  # jsonschema-rs says yes


def test_a_fractional_multiple_of_keeps_the_python_verdict(tmp_path: Path) -> None:
    schema = {"type": "number", "multipleOf": 0.01}
    tool = single_tool(tmp_path, op("pay", parameters=[{"name": "amount", "in": "query", "schema": schema}]))
    assert tool.quick_check is None


def test_integers_beyond_64_bits_are_judged(tmp_path: Path) -> None:
    tool = single_tool(
        tmp_path, op("count", parameters=[{"name": "n", "in": "query", "schema": {"type": "integer", "maximum": 10}}])
    )
    tool.validate({"n": 3})
    assert invalid(tool, {"n": 2**70}).details["path"] == "$.n"


@pytest.mark.parametrize(
    "output_schema",
    [
        {
            "type": "object",
            "properties": {"item": {"$ref": "#/definitions/item"}},
            "definitions": {"item": {"type": "object", "properties": {"n": {"type": "integer"}}}},
        },
        {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"$ref": "#/properties/a"}},
        },
        {
            "type": "object",
            "properties": {"n": {"type": "integer"}, "child": {"$ref": "#"}},
        },
    ],
)
def test_served_output_schema_keeps_every_local_ref_pointing_where_it_did(
    tmp_path: Path, output_schema: dict[str, Any]
) -> None:
    tool = single_tool(tmp_path, op("get", output_schema=output_schema))
    served = Draft202012Validator(dict(tool.mcp_tool.output_schema or {}))
    original = Draft202012Validator(output_schema)
    good = {"item": {"n": 1}, "a": 1, "b": 2, "n": 1, "child": {"n": 2}}
    bad = {"item": {"n": "x"}, "a": 1, "b": "x", "n": 1, "child": {"n": "x"}}
    assert original.is_valid(good) and served.is_valid(good)
    assert not original.is_valid(bad) and not served.is_valid(bad)  # the refs resolve, and still constrain
    error = {"success": False, "error": "failed", "error_code": "UPSTREAM_ERROR", "details": {}}
    assert served.is_valid(error)
