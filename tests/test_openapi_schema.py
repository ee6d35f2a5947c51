"""OpenAPI schema objects → self-contained JSON Schema 2020-12 (mcp_server._openapi_schema)."""

from __future__ import annotations

import datetime
import gc
import random
import sys
import time
from typing import Any
from urllib.parse import urljoin

import pytest
from jsonschema import Draft202012Validator

from mcp_server import _openapi_schema
from mcp_server._openapi_schema import MAX_DEPTH, SchemaCache, Translated, translate_schema

BASE = "file:///specs/api.yaml"
PREFIX = "#/components/schemas/"


class Doc:
    """A one-file document: resolves "#/components/schemas/X" and keeps the base URI."""

    def __init__(self, schemas: dict[str, Any]) -> None:
        self.schemas = schemas
        self.calls = 0

    def resolve(self, ref: str, base: str) -> tuple[Any, str]:
        self.calls += 1
        if not ref.startswith(PREFIX) or ref[len(PREFIX) :] not in self.schemas:
            raise LookupError(f"cannot resolve {ref}")
        return self.schemas[ref[len(PREFIX) :]], base


class Files:
    """Several documents keyed by URI; refs are resolved against the base of the document holding them."""

    def __init__(self, documents: dict[str, Any]) -> None:
        self.documents = documents

    def resolve(self, ref: str, base: str) -> tuple[Any, str]:
        uri, _, pointer = urljoin(base, ref).partition("#")
        node = self.documents[uri]
        for part in pointer.split("/")[1:]:
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, uri


def ref(name: str) -> dict[str, str]:
    return {"$ref": PREFIX + name}


SCHEMA_MAPS = ("properties", "patternProperties", "dependentSchemas")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
SCHEMA_SINGLES = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
                  "unevaluatedItems", "unevaluatedProperties", "contentSchema")  # fmt: skip


def subschemas(node: dict[str, Any]) -> list[Any]:
    """The schemas directly inside a schema object (not example or default values)."""
    out: list[Any] = []
    for key, value in node.items():
        if key in SCHEMA_MAPS:
            out.extend(value.values())
        elif key in SCHEMA_LISTS:
            out.extend(value)
        elif key in SCHEMA_SINGLES:
            out.append(value)
    return out


def walk(schema: Any) -> list[dict[str, Any]]:
    """Every distinct schema object in the output (shared objects once)."""
    seen: dict[int, dict[str, Any]] = {}
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict) and id(item) not in seen:
            seen[id(item)] = item
            stack.extend(subschemas(item))
    return list(seen.values())


def checked(result: Translated) -> Translated:
    """The invariants of every translation: valid 2020-12, no $ref, notes are strings."""
    Draft202012Validator.check_schema(result.schema)
    assert not any("$ref" in node for node in walk(result.schema))
    assert all(isinstance(note, str) for note in result.notes)
    return result


def translate(schema: Any, schemas: dict[str, Any] | None = None, **options: Any) -> Translated:
    options.setdefault("dialect", "3.0")
    return checked(translate_schema(schema, base_uri=BASE, resolve=Doc(schemas or {}).resolve, **options))


def ref_depth(schema: Any, key: str) -> int:
    """How many times `key` nests inside itself along the deepest path."""
    if not isinstance(schema, dict):
        return 0
    inner = max((ref_depth(v, key) for v in _children(schema)), default=0)
    return inner + 1 if key in schema.get("properties", {}) else inner


def _children(schema: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for value in schema.values():
        if isinstance(value, dict):
            out.append(value)
            out.extend(value.values())
        elif isinstance(value, list):
            out.extend(value)
    return out


def logical_size(schema: Any) -> int:
    """Schema objects in the output as serialized (shared sub-objects counted each time they appear)."""
    memo: dict[int, int] = {}

    def size(node: Any) -> int:
        if not isinstance(node, dict):
            return 1
        if id(node) not in memo:
            memo[id(node)] = 1 + sum(size(v) for v in subschemas(node))
        return memo[id(node)]

    return size(schema)


# -- references ----------------------------------------------------------------------------------------------


def test_simple_ref_is_inlined() -> None:
    schemas = {"Pet": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}
    result = translate(ref("Pet"), schemas)
    assert result.schema == {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    assert result.notes == ()


def test_nested_refs_are_inlined() -> None:
    schemas = {
        "Owner": {"type": "object", "properties": {"pet": ref("Pet")}},
        "Pet": {"type": "object", "properties": {"tag": ref("Tag"), "tags": {"type": "array", "items": ref("Tag")}}},
        "Tag": {"type": "string", "enum": ["a", "b"]},
    }
    pet = translate(ref("Owner"), schemas).schema["properties"]["pet"]
    assert pet["properties"]["tag"] == {"type": "string", "enum": ["a", "b"]}
    assert pet["properties"]["tags"]["items"] == {"type": "string", "enum": ["a", "b"]}


LEAF = {"type": "integer", "minimum": 1}


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ({"properties": {"a": ref("Leaf")}}, ["properties", "a"]),
        ({"type": "array", "items": ref("Leaf")}, ["items"]),
        ({"additionalProperties": ref("Leaf")}, ["additionalProperties"]),
        ({"not": ref("Leaf")}, ["not"]),
        ({"prefixItems": [ref("Leaf")]}, ["prefixItems", 0]),
        ({"patternProperties": {"^x": ref("Leaf")}}, ["patternProperties", "^x"]),
        ({"dependentSchemas": {"a": ref("Leaf")}}, ["dependentSchemas", "a"]),
        ({"if": ref("Leaf"), "then": {"const": 1}}, ["if"]),
        ({"if": {"const": 1}, "then": ref("Leaf")}, ["then"]),
        ({"if": {"const": 1}, "else": ref("Leaf")}, ["else"]),
        ({"oneOf": [ref("Leaf"), {"type": "string"}]}, ["oneOf", 0]),
        ({"anyOf": [{"type": "string"}, ref("Leaf")]}, ["anyOf", 1]),
        ({"allOf": [ref("Leaf"), {"type": "string"}]}, ["allOf", 0]),  # not object-ish: allOf kept
        ({"contains": ref("Leaf")}, ["contains"]),
        ({"propertyNames": ref("Leaf")}, ["propertyNames"]),
        ({"unevaluatedProperties": ref("Leaf")}, ["unevaluatedProperties"]),
    ],
)
def test_refs_are_inlined_in_every_keyword(schema: dict[str, Any], path: list[Any]) -> None:
    node: Any = translate(schema, {"Leaf": LEAF}, dialect="3.1").schema
    for step in path:
        node = node[step]
    assert node == LEAF


def test_nested_relative_refs_use_the_base_of_the_document_holding_them() -> None:
    a, b, c = "file:///specs/a.yaml", "file:///specs/common/b.yaml", "file:///specs/c.yaml"
    files = Files(
        {
            a: {"components": {"schemas": {"Order": {"properties": {"item": {"$ref": "common/b.yaml#/Item"}}}}}},
            b: {
                "Item": {"type": "object", "properties": {"price": {"$ref": "#/Price"}, "c": {"$ref": "../c.yaml"}}},
                "Price": {"type": "number", "description": "Price in b"},
            },
            c: {"type": "string", "description": "the whole of c.yaml"},
        }
    )
    result = checked(
        translate_schema({"$ref": "#/components/schemas/Order"}, base_uri=a, resolve=files.resolve, dialect="3.1")
    )
    item = result.schema["properties"]["item"]
    assert item["properties"]["price"] == {"type": "number", "description": "Price in b"}
    assert item["properties"]["c"] == {"type": "string", "description": "the whole of c.yaml"}


def test_a_broken_ref_propagates_the_resolver_exception_unchanged() -> None:
    with pytest.raises(LookupError, match="cannot resolve #/components/schemas/Missing"):
        translate({"properties": {"a": ref("Missing")}}, {})


# -- recursion and depth -------------------------------------------------------------------------------------

NODE = {
    "type": "object",
    "description": "A tree node.",
    "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": ref("Node")}},
}


def test_self_recursive_schema_is_cut_at_depth_with_a_note() -> None:
    result = translate(ref("Node"), {"Node": NODE})
    assert ref_depth(result.schema, "children") == 3
    cut = result.schema
    for _ in range(3):
        cut = cut["properties"]["children"]["items"]
    assert cut == {"type": "object", "description": "A tree node. (recursive Node omitted beyond depth 3)"}
    assert result.notes == (
        "recursive reference to Node cut at depth 3 (at $.children.items.children.items.children.items)",
    )


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_max_ref_depth_is_honoured(depth: int) -> None:
    result = translate(ref("Node"), {"Node": NODE}, max_ref_depth=depth)
    assert ref_depth(result.schema, "children") == depth
    assert f"cut at depth {depth}" in result.notes[0]


def test_recursive_component_passed_by_value_is_cut_like_a_ref() -> None:
    schemas = {"Node": NODE}
    result = checked(translate_schema(NODE, base_uri=BASE, resolve=Doc(schemas).resolve, dialect="3.0"))
    assert ref_depth(result.schema, "children") == 3


def test_mutually_recursive_schemas_are_cut() -> None:
    schemas = {
        "A": {"type": "object", "properties": {"b": ref("B"), "label": {"type": "string"}}},
        "B": {"description": "The B side", "properties": {"a": ref("A")}},
    }
    result = translate(ref("A"), schemas)
    node, hops = result.schema, 0
    while "properties" in node and ("b" in node["properties"] or "a" in node["properties"]):
        node = node["properties"].get("b") or node["properties"]["a"]
        hops += 1
    assert hops == 6  # A B A B A B, then the fourth A is cut
    assert node == {"type": "object", "description": "(recursive A omitted beyond depth 3)"}
    assert result.notes == ("recursive reference to A cut at depth 3 (at $.b.a.b.a.b.a)",)
    b_side = translate(ref("B"), schemas)
    assert "recursive reference to B cut at depth 3" in b_side.notes[0]


def test_repeated_but_not_recursive_refs_are_not_cut() -> None:
    schemas = {"Pair": {"properties": {"x": ref("Leaf"), "y": ref("Leaf")}}, "Leaf": LEAF}
    schema = {"properties": {str(i): ref("Pair") for i in range(10)}}
    result = translate(schema, schemas)
    assert all(p["properties"]["y"] == LEAF for p in result.schema["properties"].values())
    assert result.notes == ()


def test_deep_inline_nesting_is_cut_without_recursion_error() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(200):
        schema = {"type": "object", "properties": {"inner": schema}}
    result = translate(schema)
    depth, node = 0, result.schema
    while node.get("properties"):
        node, depth = node["properties"]["inner"], depth + 1
    assert depth == MAX_DEPTH and node == {}  # levels 0..63 kept
    assert result.notes == ("deeply nested subschema omitted (at $" + ".inner" * MAX_DEPTH + ")",)


def test_long_ref_chain_is_cut_without_recursion_error() -> None:
    schemas: dict[str, Any] = {
        f"L{i}": {"type": "object", "properties": {"next": ref(f"L{i + 1}")}} for i in range(2000)
    }
    schemas["L2000"] = {"type": "string"}
    limit = sys.getrecursionlimit()
    result = translate(ref("L0"), schemas)
    assert sys.getrecursionlimit() == limit
    assert any("deeply nested subschema omitted" in note for note in result.notes)


def test_max_nodes_cuts_deepest_levels_first() -> None:
    schemas = {
        "Wide": {"type": "object", "properties": {f"p{i}": ref("Deep") for i in range(10)}},
        "Deep": {"type": "object", "properties": {f"q{i}": ref("Leafy") for i in range(10)}},
        "Leafy": {"type": "object", "properties": {f"r{i}": {"type": "string"} for i in range(10)}},
    }
    full = translate(ref("Wide"), schemas)
    assert logical_size(full.schema) == 1 + 10 * (1 + 10 * (1 + 10))
    small = translate(ref("Wide"), schemas, max_nodes=200)
    assert logical_size(small.schema) <= 200
    assert small.notes[0].startswith("schema larger than 200 nodes: subschemas nested deeper than")
    # The top-level properties all survive; what goes is the deepest level.
    assert set(small.schema["properties"]) == {f"p{i}" for i in range(10)}
    assert all(p["properties"]["q0"] == {} for p in small.schema["properties"].values())


# -- allOf ---------------------------------------------------------------------------------------------------


def test_allof_of_objects_is_merged() -> None:
    schemas = {
        "Base": {
            "type": "object",
            "description": "Base",
            "properties": {"id": {"type": "integer"}, "kind": {"type": "string"}},
            "required": ["id"],
        },
        "Extra": {
            "properties": {"kind": {"type": "string", "maxLength": 5}, "note": {"type": "string"}},
            "required": ["note", "id"],
            "additionalProperties": False,
        },
    }
    result = translate({"allOf": [ref("Base"), ref("Extra")], "description": "Mine"}, schemas)
    assert result.schema == {
        "description": "Mine",
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "kind": {"allOf": [{"type": "string"}, {"type": "string", "maxLength": 5}]},
            "note": {"type": "string"},
        },
        "required": ["id", "note"],
        "additionalProperties": False,
    }


def test_allof_keeps_the_most_specific_type() -> None:
    result = translate({"allOf": [{"type": ["object", "null"]}, {"type": "object", "properties": {}}]}, dialect="3.1")
    assert result.schema["type"] == "object"


def test_allof_with_a_non_object_member_is_kept() -> None:
    result = translate({"allOf": [{"type": "string", "minLength": 1}, {"maxLength": 3, "type": "string"}, {}]})
    assert result.schema == {"allOf": [{"type": "string", "minLength": 1}, {"maxLength": 3, "type": "string"}, {}]}


def test_allof_with_conflicting_compositions_is_kept() -> None:
    a = {"oneOf": [{"required": ["x"]}, {"required": ["y"]}]}
    b = {"oneOf": [{"required": ["z"]}, {"required": ["w"]}]}
    assert translate({"allOf": [a, b]}).schema == {"allOf": [a, b]}


def test_allof_of_a_single_item_collapses() -> None:
    schemas = {"User": {"type": "object", "description": "A user", "properties": {"login": {"type": "string"}}}}
    result = translate({"description": "The owner", "allOf": [ref("User")]}, schemas)
    assert result.schema == {"description": "The owner", "type": "object", "properties": {"login": {"type": "string"}}}
    assert translate({"allOf": [{"type": "string"}]}).schema == {"type": "string"}


# -- oneOf / anyOf / discriminator ---------------------------------------------------------------------------

PETS = {
    "Cat": {"type": "object", "properties": {"petType": {"type": "string", "description": "Kind"}, "meow": {}}},
    "Dog": {"type": "object", "required": ["bark"], "properties": {"bark": {"type": "boolean"}}},
    "Lizard": {"allOf": [{"type": "object", "properties": {"petType": {"type": "string"}}}]},
}


def test_discriminator_with_mapping_becomes_consts_and_a_sentence() -> None:
    schema = {
        "description": "A pet.",
        "oneOf": [ref("Cat"), ref("Dog"), {"type": "object", "properties": {"petType": {"const": "fish"}}}],
        "discriminator": {"propertyName": "petType", "mapping": {"cat": PREFIX + "Cat", "dog": "Dog"}},
    }
    result = translate(schema, PETS)
    cat, dog, fish = result.schema["oneOf"]
    assert cat["properties"]["petType"] == {"description": "Kind", "const": "cat"}
    assert cat["required"] == ["petType"]
    assert dog["properties"]["petType"] == {"const": "dog"}
    assert dog["required"] == ["bark", "petType"]
    assert fish == {"type": "object", "properties": {"petType": {"const": "fish"}}}
    assert result.schema["description"] == "A pet. Set petType to choose the variant: cat | dog."
    assert "discriminator" not in result.schema
    # The shared component is untouched: it is still the plain Cat elsewhere.
    assert translate(ref("Cat"), PETS).schema["properties"]["petType"] == {"type": "string", "description": "Kind"}


def test_discriminator_without_mapping_uses_schema_names() -> None:
    schema = {"anyOf": [ref("Cat"), ref("Lizard")], "discriminator": {"propertyName": "petType"}}
    result = translate(schema, PETS, dialect="3.1")
    assert [b["properties"]["petType"]["const"] for b in result.schema["anyOf"]] == ["Cat", "Lizard"]
    assert result.schema["description"] == "Set petType to choose the variant: Cat | Lizard."


def test_discriminator_property_survives_read_only_and_several_keys() -> None:
    schemas = {"Cat": {"type": "object", "properties": {"kind": {"type": "string", "readOnly": True}}}}
    schema = {
        "oneOf": [ref("Cat")],
        "discriminator": {"propertyName": "kind", "mapping": {"cat": PREFIX + "Cat", "kitty": PREFIX + "Cat"}},
    }
    cat = translate(schema, schemas).schema["oneOf"][0]
    assert cat["properties"]["kind"] == {"enum": ["cat", "kitty"]}
    assert cat["required"] == ["kind"]


# -- OpenAPI 3.0 specifics -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string", "nullable": True}, {"type": ["string", "null"]}),
        ({"type": "string", "x-nullable": True}, {"type": ["string", "null"]}),
        ({"type": "string", "nullable": False}, {"type": "string"}),
        ({"type": "string", "enum": ["a"], "nullable": True}, {"type": ["string", "null"], "enum": ["a", None]}),
        ({"enum": ["a"], "nullable": True}, {"enum": ["a", None]}),
        (
            {"nullable": True, "description": "Who", "allOf": [ref("User")]},
            {"description": "Who", "type": ["object", "null"], "properties": {"id": {"type": "integer"}}},
        ),
        (
            {"nullable": True, "oneOf": [{"type": "string"}, {"type": "integer"}], "title": "T"},
            {"title": "T", "anyOf": [{"oneOf": [{"type": "string"}, {"type": "integer"}]}, {"type": "null"}]},
        ),
        (
            {"$ref": PREFIX + "User", "nullable": True, "description": "Owner"},
            {"type": ["object", "null"], "properties": {"id": {"type": "integer"}}, "description": "Owner"},
        ),
        (
            {"$ref": PREFIX + "Either", "nullable": True},
            {"anyOf": [{"anyOf": [{"type": "string"}, {"type": "integer"}]}, {"type": "null"}]},
        ),
        ({"nullable": True, "description": "anything"}, {"description": "anything"}),
    ],
)
def test_nullable_in_each_form(schema: dict[str, Any], expected: dict[str, Any]) -> None:
    schemas = {
        "User": {"type": "object", "properties": {"id": {"type": "integer"}}},
        "Either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
    }
    result = translate(schema, schemas)
    assert result.schema == expected
    validator = Draft202012Validator(result.schema)
    if "null" in str(expected):
        assert validator.is_valid(None)


def test_nullable_is_not_a_3_1_keyword() -> None:
    assert translate({"type": "string", "nullable": True}, dialect="3.1").schema == {"type": "string"}


def test_exclusive_bounds_become_numeric() -> None:
    schema = {"type": "number", "minimum": 1, "exclusiveMinimum": True, "maximum": 9, "exclusiveMaximum": False}
    assert translate(schema).schema == {"type": "number", "maximum": 9, "exclusiveMinimum": 1}
    assert translate({"exclusiveMaximum": True}).schema == {}
    numeric = {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10}
    assert translate(numeric, dialect="3.1").schema == numeric


@pytest.mark.parametrize("dialect", ["3.0", "3.1"])
def test_example_becomes_examples(dialect: str) -> None:
    assert translate({"type": "string", "example": "abc"}, dialect=dialect).schema == {
        "type": "string",
        "examples": ["abc"],
    }
    both = translate({"example": 1, "examples": [2, 1]}, dialect=dialect).schema
    assert both == {"examples": [2, 1]}


def test_examples_as_an_example_object_map_become_a_list() -> None:
    assert translate({"examples": {"one": {"value": 1}, "two": {"summary": "no value"}}}).schema == {"examples": [1]}


def test_extensions_xml_external_docs_and_unknown_keywords_are_dropped() -> None:
    schema = {
        "type": "object",
        "x-internal": True,
        "xml": {"name": "pet"},
        "externalDocs": {"url": "https://example.com"},
        "deprecated": False,
        "$comment": "c",
        "$id": "https://example.com/pet",
        "$defs": {"unused": {"type": "string"}},
        "frobnicate": 3,
        "properties": {"name": {"type": "string", "x-order": 1, "deprecated": True}},
    }
    assert translate(schema).schema == {
        "type": "object",
        "properties": {"name": {"type": "string", "deprecated": True}},
    }


# -- direction -----------------------------------------------------------------------------------------------

ACCOUNT = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "readOnly": True},
        "password": {"type": "string", "writeOnly": True},
        "name": {"type": "string"},
        "owner": ref("Owner"),
    },
    "required": ["id", "password", "name"],
}


def test_read_only_properties_are_dropped_from_requests() -> None:
    schemas = {"Owner": {"type": "object", "readOnly": True}}
    result = translate(ACCOUNT, schemas)
    assert set(result.schema["properties"]) == {"password", "name"}
    assert result.schema["required"] == ["password", "name"]


def test_write_only_properties_are_dropped_from_responses() -> None:
    schemas = {"Owner": {"type": "object", "readOnly": True}}
    result = translate(ACCOUNT, schemas, direction="response")
    assert set(result.schema["properties"]) == {"id", "name", "owner"}
    assert result.schema["required"] == ["id", "name"]


def test_read_only_property_dropped_in_one_allof_member_is_not_required_by_another() -> None:
    schemas = {"Base": {"type": "object", "properties": {"id": {"type": "integer", "readOnly": True}}}}
    schema = {"allOf": [ref("Base"), {"type": "object", "properties": {"n": {}}, "required": ["id", "n"]}]}
    assert translate(schema, schemas).schema["required"] == ["n"]
    assert translate(schema, schemas, direction="response").schema["required"] == ["id", "n"]
    sibling = {"$ref": PREFIX + "Base", "required": ["id"], "description": "d"}
    assert "required" not in translate(sibling, schemas, dialect="3.1").schema


def test_read_only_ref_sibling_in_3_0_drops_the_property() -> None:
    schema = {"properties": {"owner": {"$ref": PREFIX + "Owner", "readOnly": True}, "n": {"type": "string"}}}
    assert set(translate(schema, {"Owner": {"type": "object"}}).schema["properties"]) == {"n"}


# -- strings, files, texts, values ---------------------------------------------------------------------------


def test_binary_and_byte_formats_are_base64() -> None:
    assert translate({"type": "string", "format": "binary"}).schema == {
        "type": "string",
        "format": "binary",
        "contentEncoding": "base64",
        "description": "File content, base64-encoded.",
    }
    assert translate({"type": "string", "format": "binary", "description": "The  avatar."}).schema["description"] == (
        "The avatar. File content, base64-encoded."
    )
    assert translate({"type": "string", "format": "byte"}).schema == {
        "type": "string",
        "format": "byte",
        "contentEncoding": "base64",
    }
    assert translate({"type": "integer", "format": "byte"}).schema == {"type": "integer", "format": "byte"}


def test_swagger_file_type_becomes_base64_string() -> None:
    assert translate({"type": "file"}).schema["contentEncoding"] == "base64"


def test_descriptions_are_collapsed_and_trimmed() -> None:
    result = translate({"title": " A\n  title ", "description": "word\n\n" * 400})
    assert result.schema["title"] == "A title"
    description = result.schema["description"]
    assert len(description) == 1000 and description.endswith("…") and "\n" not in description


def test_standard_keywords_are_kept() -> None:
    schema = {
        "type": "array",
        "items": {"type": "string", "pattern": "^[a-z]+$", "minLength": 1, "maxLength": 9, "format": "email"},
        "minItems": 1,
        "maxItems": 5.0,
        "uniqueItems": True,
        "default": ["a"],
        "description": "Tags",
    }
    expected = dict(schema, maxItems=5)
    assert translate(schema).schema == expected
    number = {"type": "number", "minimum": 0, "maximum": 1.5, "multipleOf": 0.5, "const": 1}
    assert translate(number).schema == number


def test_yaml_dates_become_iso_strings() -> None:
    schema = {
        "type": "string",
        "format": "date",
        "default": datetime.date(2024, 1, 2),
        "enum": [datetime.date(2024, 1, 2)],
    }
    assert translate(schema).schema == {
        "type": "string",
        "format": "date",
        "default": "2024-01-02",
        "enum": ["2024-01-02"],
    }


def test_arrays_without_items_get_items() -> None:
    assert translate({"type": "array"}).schema == {"type": "array", "items": {}}
    assert translate({"type": "array", "items": [{"type": "string"}], "additionalItems": False}).schema == {
        "type": "array",
        "prefixItems": [{"type": "string"}],
        "items": False,
    }


def test_draft_7_dependencies_are_split() -> None:
    schema = {"dependencies": {"a": ["b"], "c": {"required": ["d"]}}}
    assert translate(schema).schema == {
        "dependentRequired": {"a": ["b"]},
        "dependentSchemas": {"c": {"required": ["d"]}},
    }


# -- 3.1 siblings --------------------------------------------------------------------------------------------


def test_3_1_siblings_next_to_ref_are_merged_over_the_target() -> None:
    schemas = {"Pet": {"type": "object", "description": "A pet", "properties": {"a": {}}, "required": ["a"]}}
    schema = {
        "$ref": PREFIX + "Pet",
        "description": "The pet to add",
        "properties": {"b": {"type": "string"}},
        "required": ["b"],
        "maxProperties": 3,
    }
    assert translate(schema, schemas, dialect="3.1").schema == {
        "type": "object",
        "description": "The pet to add",
        "properties": {"a": {}, "b": {"type": "string"}},
        "required": ["a", "b"],
        "maxProperties": 3,
    }


def test_3_0_siblings_next_to_ref_are_ignored_except_annotations() -> None:
    schemas = {"Pet": {"type": "object", "description": "A pet"}}
    schema = {"$ref": PREFIX + "Pet", "description": "Mine", "maxProperties": 3, "x-foo": 1}
    assert translate(schema, schemas).schema == {"type": "object", "description": "Mine"}


# -- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("garbage", ["a string", 42, 1.5, None, ["a", "list"], {"$ref": 7}])
def test_garbage_where_a_schema_is_expected_becomes_empty_with_a_note(garbage: Any) -> None:
    result = translate(garbage)
    assert result.schema == {}
    assert len(result.notes) == 1
    inner = translate({"type": "object", "properties": {"a": garbage}, "items": garbage, "allOf": [garbage]})
    assert inner.schema["properties"]["a"] == {}
    assert inner.notes


GARBAGE_VALUES: list[Any] = [None, True, -1, 2.5, float("nan"), "x", "[", [], [1, None, "a", "a"], {}, {"a": 1}, {1: 2}]
KEYWORDS = [
    "type", "properties", "required", "items", "additionalProperties", "allOf", "anyOf", "oneOf", "not", "enum",
    "const", "default", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
    "maxItems", "uniqueItems", "pattern", "format", "title", "description", "nullable", "discriminator",
    "readOnly", "deprecated", "example", "examples", "patternProperties", "dependentRequired", "dependencies",
    "prefixItems", "contentEncoding", "if", "additionalItems", "$ref",
]  # fmt: skip


@pytest.mark.parametrize("keyword", KEYWORDS)
@pytest.mark.parametrize("dialect", ["3.0", "3.1"])
def test_garbage_keyword_values_never_crash_and_stay_valid(keyword: str, dialect: str) -> None:
    for value in GARBAGE_VALUES:
        schema = {keyword: value, "type": "object"} if keyword != "type" else {keyword: value}
        if keyword == "$ref" and isinstance(value, str):
            continue  # a string $ref is resolved; a broken one is the resolver's error
        translate(schema, dialect=dialect)
        translate({"properties": {"p": schema}, "allOf": [schema, {"nullable": True}]}, dialect=dialect)


def test_invalid_patterns_are_dropped_with_a_note() -> None:
    result = translate({"type": "string", "pattern": "^\\p{L}+$", "patternProperties": {"(?<x>a)": {}, "^b": {}}})
    assert result.schema == {"type": "string", "patternProperties": {"^b": {}}}
    assert len(result.notes) == 2


def test_boolean_schemas_pass_through() -> None:
    assert translate({"properties": {"a": True, "b": False}, "additionalProperties": False}).schema == {
        "properties": {"a": True, "b": False},
        "additionalProperties": False,
    }
    assert translate(True).schema == {}
    assert translate(False).schema == {"not": {}}


# -- caching -------------------------------------------------------------------------------------------------


def test_translations_are_cached_across_calls_and_the_top_level_is_a_fresh_copy() -> None:
    doc = Doc({"Pet": {"type": "object", "properties": {"tag": {"type": "string"}, "id": {"readOnly": True}}}})
    first = checked(translate_schema(ref("Pet"), base_uri=BASE, resolve=doc.resolve, dialect="3.0"))
    second = checked(translate_schema(ref("Pet"), base_uri=BASE, resolve=doc.resolve, dialect="3.0"))
    assert doc.calls == 1
    assert first.schema == second.schema and first.schema is not second.schema
    assert first.schema["properties"] is second.schema["properties"]  # shared: read-only
    first.schema["description"] = "edited"
    third = translate_schema(ref("Pet"), base_uri=BASE, resolve=doc.resolve, dialect="3.0")
    assert "description" not in third.schema
    # Other options keep translations of their own, interleaved calls included.
    for _ in range(2):
        response = translate_schema(ref("Pet"), base_uri=BASE, resolve=doc.resolve, dialect="3.0", direction="response")
        assert set(response.schema["properties"]) == {"tag", "id"}
        request = translate_schema(ref("Pet"), base_uri=BASE, resolve=doc.resolve, dialect="3.0")
        assert set(request.schema["properties"]) == {"tag"}


def test_the_automatic_cache_goes_with_its_document() -> None:
    doc = Doc({"X": {"type": "string"}})
    translate_schema(ref("X"), base_uri=BASE, resolve=doc.resolve, dialect="3.1")
    key = id(doc)
    assert key in _openapi_schema._AUTO_CACHES
    del doc
    gc.collect()
    assert key not in _openapi_schema._AUTO_CACHES


def test_an_explicit_cache_is_rebound_to_another_resolver() -> None:
    cache = SchemaCache()
    one, two = Doc({"X": {"type": "string"}}), Doc({"X": {"type": "integer"}})
    assert translate_schema(ref("X"), base_uri=BASE, resolve=one.resolve, dialect="3.1", cache=cache).schema == {
        "type": "string"
    }
    assert translate_schema(ref("X"), base_uri=BASE, resolve=two.resolve, dialect="3.1", cache=cache).schema == {
        "type": "integer"
    }


def test_a_plain_function_resolver_gets_no_cross_call_cache() -> None:
    schemas: dict[str, Any] = {"X": {"type": "string"}}

    def resolve(ref: str, base: str) -> tuple[Any, str]:
        return schemas[ref.rsplit("/", 1)[-1]], base

    assert translate_schema(ref("X"), base_uri=BASE, resolve=resolve, dialect="3.1").schema == {"type": "string"}
    schemas["X"] = {"type": "integer"}
    assert translate_schema(ref("X"), base_uri=BASE, resolve=resolve, dialect="3.1").schema == {"type": "integer"}


# -- performance ---------------------------------------------------------------------------------------------


def test_performance_of_a_large_cyclic_document() -> None:
    rng = random.Random(7)
    count = 2000
    schemas = {
        f"S{i}": {
            "type": "object",
            "description": f"Schema number {i}, with a few words of description.",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "maxLength": 40},
                **{f"link{j}": ref(f"S{rng.randrange(count)}") for j in range(5)},
            },
        }
        for i in range(count)
    }
    doc = Doc(schemas)
    start = time.perf_counter()
    results = [translate_schema(ref(f"S{i}"), base_uri=BASE, resolve=doc.resolve, dialect="3.0") for i in range(500)]
    elapsed = time.perf_counter() - start
    print(f"\n{count} cyclic schemas, 500 roots translated in {elapsed:.2f} s")
    assert elapsed < 5
    for result in (results[0], results[-1]):  # check_schema walks the full (unshared) trees: slow
        checked(result)
        assert logical_size(result.schema) <= 20_000
