"""OpenAPI document → connector manifest (`convert_document`), and `openapi:` manifests through the catalog.

The documents are small ones written for these tests: `tests/fixtures/openapi_convert/` holds a 3.0 shop
(one path per rule), a 3.1 notes API and a Swagger 2.0 pet shop; the rest are built inline.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from mcp_server._catalog import load_catalog, load_manifest
from mcp_server._model import ApiKeyAuth, BasicAuth, BearerAuth, PropertyEncoding
from mcp_server._openapi_convert import Converted, Selection, convert_document
from mcp_server._openapi_document import Document, load_document
from mcp_server._openapi_import import import_openapi
from mcp_server._registry import build_tool
from mcp_server._secrets import ValueRef

FIXTURES = Path(__file__).parent / "fixtures" / "openapi_convert"
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SHOP_OPERATIONS = [
    "list_items",
    "create_item",
    "get_item",
    "delete_item",
    "put_items_by_item_id_photo",
    "create_order",
    "add_note",
    "search",
    "search_2",
    "expo_ever_orde_ever_cust_ever_regi_as_one_larg_spre_70bbd1",
    "get_stats",
]
BROKEN_POINTER = "#/paths/~1reports~1{report_id}/get"


def convert_fixture(filename: str, *, name: str = "shop", selection: Selection | None = None) -> Converted:
    return convert_document(load_document(filename, FIXTURES), name=name, selection=selection)


def convert_doc(
    tmp_path: Path, doc: dict[str, Any], *, name: str = "demo", selection: Selection | None = None
) -> Converted:
    (tmp_path / "spec.json").write_text(json.dumps(doc))
    return convert_document(load_document("spec.json", tmp_path), name=name, selection=selection)


def doc30(paths: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    """An OpenAPI 3.0 document: one GET /ping unless `paths` says otherwise."""
    ping = {"/ping": {"get": {"operationId": "ping", "responses": {"200": {"description": "ok"}}}}}
    return {"openapi": "3.0.3", "info": {"title": "Demo", "version": "1"}, "paths": paths or ping, **top}


def by_name(converted: Converted) -> dict[str, dict[str, Any]]:
    return {op["name"]: op for op in converted.manifest["operations"]}


def params_of(operation: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["name"], p["in"]): p for p in operation.get("parameters", [])}


@pytest.fixture(scope="module")
def shop() -> Converted:
    return convert_fixture("shop-3.0.yaml")


# ---------------------------------------------------------------------------------------------- the document


def test_shop_converts_every_operation_but_the_broken_one(shop: Converted) -> None:
    assert [op["name"] for op in shop.manifest["operations"]] == SHOP_OPERATIONS
    assert shop.manifest["name"] == "shop"
    assert shop.manifest["title"] == "Shop API"
    assert shop.manifest["description"] == "A small shop, for the converter tests."
    assert len(shop.faults) == 1


def test_base_url_is_the_first_server_with_variable_defaults(shop: Converted) -> None:
    # `https://{region}.shop.example/{version}/`: defaults substituted, trailing slash dropped, second server unused.
    assert shop.manifest["base_url"] == "https://eu.shop.example/v2"


def test_server_variables_without_default_become_empty(tmp_path: Path) -> None:
    servers = [{"url": "https://api{suffix}.example.com/{v}", "variables": {"suffix": {}, "v": {"default": 3}}}]
    converted = convert_doc(tmp_path, doc30(servers=servers))
    assert converted.manifest["base_url"] == "https://api.example.com/3"


@pytest.mark.parametrize("servers", [None, [], [{"url": "/api"}], [{"url": "api.example.com/v1"}], [{"x": 1}]])
def test_no_absolute_server_with_a_file_source_means_no_base_url(tmp_path: Path, servers: Any) -> None:
    doc = doc30() if servers is None else doc30(servers=servers)
    converted = convert_doc(tmp_path, doc)
    assert "base_url" not in converted.manifest
    assert [op["name"] for op in converted.manifest["operations"]] == ["ping"]


def test_relative_server_url_is_joined_to_a_fetched_document_url() -> None:
    document = Document(
        root=doc30(servers=[{"url": "../api/v2/"}]), uri="https://docs.example.com/specs/a.yaml", version="3.0.3"
    )
    assert convert_document(document, name="demo").manifest["base_url"] == "https://docs.example.com/api/v2"


def test_relative_server_in_a_file_without_base_url_is_a_clear_fault(tmp_path: Path) -> None:
    notes = convert_fixture("notes-3.1.yaml", name="notes")
    assert "base_url" not in notes.manifest  # servers: [{url: /api}], read from a file

    tools = tmp_path / "tools"
    (tools / "specs").mkdir(parents=True)
    shutil.copy(FIXTURES / "notes-3.1.yaml", tools / "specs" / "notes.yaml")
    (tools / "notes.yaml").write_text("name: notes\nopenapi: specs/notes.yaml\n")
    catalog = load_catalog([tools])
    assert catalog.connectors == ()
    [fault] = catalog.faults
    assert fault.file == tools / "notes.yaml"
    assert fault.json_path == "$.base_url"
    assert "no absolute server URL" in fault.reason and "base_url" in fault.reason

    (tools / "notes.yaml").write_text("name: notes\nopenapi: specs/notes.yaml\nbase_url: https://notes.example/api\n")
    catalog = load_catalog([tools])
    assert catalog.faults == ()
    assert catalog.connectors[0].base_url == "https://notes.example/api"


# ---------------------------------------------------------------------------------------------- auth

_SCHEMES: dict[str, dict[str, Any]] = {
    "header": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}},
    "query": {"key": {"type": "apiKey", "in": "query", "name": "api_key"}},
    "cookie": {"sessionCookie": {"type": "apiKey", "in": "cookie", "name": "sid"}},
    "bearer": {"jwt": {"type": "http", "scheme": "Bearer", "bearerFormat": "JWT"}},
    "basic": {"login": {"type": "http", "scheme": "basic"}},
    "oauth2": {
        "oauth": {
            "type": "oauth2",
            "flows": {
                "authorizationCode": {"authorizationUrl": "https://x/a", "tokenUrl": "https://x/t", "scopes": {}}
            },
        }
    },
    "client credentials": {
        "oauth": {
            "type": "oauth2",
            "flows": {
                "implicit": {"authorizationUrl": "https://x/a", "scopes": {}},
                "authorizationCode": {"authorizationUrl": "https://x/a", "tokenUrl": "https://x/t", "scopes": {}},
                "clientCredentials": {"tokenUrl": "https://x/t2", "scopes": {"write": "", "read": ""}},
            },
        }
    },
    "implicit only": {
        "o": {"type": "oauth2", "flows": {"implicit": {"authorizationUrl": "https://x/a", "scopes": {}}}}
    },
    "aws": {
        "hmac": {
            "type": "apiKey",
            "name": "Authorization",
            "in": "header",
            "x-amazon-apigateway-authtype": "awsSigv4",
        }
    },
    "oidc": {
        "oidc": {"type": "openIdConnect", "openIdConnectUrl": "https://id.example/.well-known/openid-configuration"}
    },
    "digest only": {"d": {"type": "http", "scheme": "digest"}},
    "none": {},
}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("header", {"type": "api_key", "in": "header", "name": "X-Api-Key", "value": {"secret": "demo_api_key"}}),
        ("query", {"type": "api_key", "in": "query", "name": "api_key", "value": {"secret": "demo_key"}}),
        ("cookie", {"type": "api_key", "in": "cookie", "name": "sid", "value": {"secret": "demo_session_cookie"}}),
        ("bearer", {"type": "bearer", "token": {"secret": "demo_token"}}),
        (
            "basic",
            {"type": "basic", "username": {"secret": "demo_username"}, "password": {"secret": "demo_password"}},
        ),
        (
            "oauth2",
            {
                "type": "oauth2_authorization_code",
                "authorization_url": "https://x/a",
                "token_url": "https://x/t",
                "client_id": {"secret": "demo_client_id"},
                "client_secret": {"secret": "demo_client_secret"},
            },
        ),
        (
            "client credentials",
            {
                "type": "oauth2_client_credentials",
                "token_url": "https://x/t2",
                "client_id": {"secret": "demo_client_id"},
                "client_secret": {"secret": "demo_client_secret"},
                "scopes": ["read", "write"],
            },
        ),
        ("implicit only", {"type": "bearer", "token": {"secret": "demo_token"}}),
        (
            "aws",
            {
                "type": "aws_sigv4",
                "access_key_id": {"secret": "aws_access_key_id"},
                "secret_access_key": {"secret": "aws_secret_access_key"},
                "region": "us-east-1",
                "service": "demo",
            },
        ),
        ("oidc", {"type": "bearer", "token": {"secret": "demo_token"}}),
        ("digest only", {"type": "none"}),
        ("none", {"type": "none"}),
    ],
)
def test_security_schemes_become_manifest_auth(tmp_path: Path, case: str, expected: dict[str, Any]) -> None:
    converted = convert_doc(tmp_path, doc30(components={"securitySchemes": _SCHEMES[case]}))
    assert converted.manifest["auth"] == expected


def test_global_security_order_decides_among_schemes(tmp_path: Path) -> None:
    schemes = {**_SCHEMES["header"], **_SCHEMES["basic"], **_SCHEMES["digest only"]}

    def auth(security: list[dict[str, list[str]]]) -> str:
        converted = convert_doc(tmp_path, doc30(components={"securitySchemes": schemes}, security=security))
        return converted.manifest["auth"]["type"]

    assert auth([]) == "api_key"  # no requirement: the first declared scheme
    assert auth([{"login": []}, {"ApiKey": []}]) == "basic"
    assert auth([{"ApiKey": []}, {"login": []}]) == "api_key"
    # A requirement we cannot inject (digest) or that names no declared scheme is passed over.
    assert auth([{"d": []}, {"undeclared": []}, {"login": []}]) == "basic"


def test_fixture_security_prefers_the_global_requirement(shop: Converted) -> None:
    # cookieAuth is declared first, but `security` lists bearerAuth first.
    assert shop.manifest["auth"] == {"type": "bearer", "token": {"secret": "shop_token"}}


# ---------------------------------------------------------------------------------------------- parameters


def test_parameters_are_merged_referenced_and_filtered(shop: Converted) -> None:
    list_items = by_name(shop)["list_items"]
    params = params_of(list_items)
    # Path-level X-Request-Id and sort, then the operation's own; the operation's sort replaces the path item's.
    assert [key for key in params] == [
        ("X-Request-Id", "header"),
        ("sort", "query"),
        ("limit", "query"),
        ("colors", "query"),
        ("filter", "query"),
    ]
    assert params[("sort", "query")]["description"] == "Sort order."
    assert params[("sort", "query")]["schema"] == {"type": "string", "enum": ["new", "old"]}
    # A $ref parameter, with its description and constraints.
    assert params[("limit", "query")] == {
        "name": "limit",
        "in": "query",
        "description": "Items per page.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    }
    # Accept, Content-Type and Authorization (any case) are the server's business, as OpenAPI says.
    assert not any(name.lower() in ("accept", "content-type", "authorization") for name, _ in params)
    # style/explode kept; a `content` parameter takes its media type's schema.
    assert params[("colors", "query")]["style"] == "pipeDelimited"
    assert params[("colors", "query")]["explode"] is False
    assert params[("filter", "query")]["schema"] == {"type": "object", "properties": {"min_price": {"type": "number"}}}
    # The other operation of the path keeps the path-level description of sort.
    create = params_of(by_name(shop)["create_item"])
    assert create[("sort", "query")]["description"] == "Sort order (path level)."


def test_path_parameters_are_always_required(shop: Converted) -> None:
    add_note = by_name(shop)["add_note"]  # order_id declared without `required: true`
    assert params_of(add_note)[("order_id", "path")] == {
        "name": "order_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer"},
    }
    assert params_of(by_name(shop)["get_item"])[("item_id", "path")]["required"] is True


def test_style_and_explode_the_manifest_cannot_hold_are_dropped(tmp_path: Path) -> None:
    parameters = [
        {"name": "a", "in": "query", "style": "FORM", "explode": "yes", "schema": {"type": "string"}},
        {"name": "b", "in": "query", "style": "deepObject", "explode": True, "schema": {"type": "object"}},
    ]
    converted = convert_doc(tmp_path, doc30({"/x": {"get": {"operationId": "x", "parameters": parameters}}}))
    params = params_of(by_name(converted)["x"])
    assert "style" not in params[("a", "query")] and "explode" not in params[("a", "query")]
    assert params[("b", "query")]["style"] == "deepObject" and params[("b", "query")]["explode"] is True


# ---------------------------------------------------------------------------------------------- bodies


def test_body_keeps_required_and_description(shop: Converted) -> None:
    body = by_name(shop)["create_item"]["body"]
    assert body["content_type"] == "application/json"  # `application/json; charset=utf-8` in the document
    assert body["required"] is True
    assert body["description"] == "The new item."
    assert body["schema"]["required"] == ["title"]
    assert "id" not in body["schema"]["properties"]  # readOnly: not sent in a request
    assert body["schema"]["properties"]["price"] == {"type": ["number", "null"]}  # 3.0 nullable


@pytest.mark.parametrize(
    ("media_types", "expected"),
    [
        (["text/plain", "application/vnd.api+json", "application/json; charset=utf-8"], "application/json"),
        (["application/vnd.api+json", "application/json"], "application/json"),
        (["text/plain", "application/json;charset=UTF-8"], "application/json"),
        (["application/x-www-form-urlencoded", "application/vnd.api+json"], "application/vnd.api+json"),
        (["multipart/form-data", "application/x-www-form-urlencoded"], "application/x-www-form-urlencoded"),
        (["application/octet-stream", "multipart/form-data"], "multipart/form-data"),
        (["application/octet-stream", "text/csv"], "text/csv"),
        (["application/pdf"], "application/pdf"),
        (["Application/JSON"], "application/json"),
    ],
)
def test_body_media_type_preference(tmp_path: Path, media_types: list[str], expected: str) -> None:
    content = {media: {"schema": {"type": "object", "properties": {"f": {"type": "string"}}}} for media in media_types}
    paths = {"/x": {"post": {"operationId": "x", "requestBody": {"content": content}}}}
    converted = convert_doc(tmp_path, doc30(paths))
    assert by_name(converted)["x"]["body"]["content_type"] == expected


def test_fixture_bodies_follow_the_preference(shop: Converted) -> None:
    ops = by_name(shop)
    assert ops["put_items_by_item_id_photo"]["body"]["content_type"] == "multipart/form-data"
    photo = ops["put_items_by_item_id_photo"]["body"]["schema"]["properties"]["file"]
    assert photo["contentEncoding"] == "base64"
    assert ops["create_order"]["body"]["content_type"] == "application/x-www-form-urlencoded"
    assert ops["create_order"]["body"]["schema"]["required"] == ["sku"]
    assert ops["add_note"]["body"] == {"content_type": "text/markdown", "schema": {"type": "string"}}
    assert "body" not in ops["list_items"]


# ---------------------------------------------------------------------------------------------- names


def test_names_from_operation_id_and_from_method_and_path(shop: Converted) -> None:
    ops = by_name(shop)
    assert ops["list_items"]["path"] == "/items" and ops["list_items"]["method"] == "GET"  # listItems
    assert ops["get_item"]["path"] == "/items/{item_id}"  # get-item
    assert ops["put_items_by_item_id_photo"]["method"] == "PUT"  # no operationId


def test_a_100_character_operation_id_fits_64_with_the_connector(tmp_path: Path) -> None:
    operation_id = (
        "exportEveryOrderOfEveryCustomerInEveryRegionAsOneLargeSpreadsheetIncludingArchivedAndCancelledOnesOk"
    )
    assert len(operation_id) == 100
    for connector in ("shop", "a_connector_name_of_32_chars_xyz"):
        converted = convert_doc(tmp_path, doc30({"/exports": {"get": {"operationId": operation_id}}}), name=connector)
        [operation] = converted.manifest["operations"]
        tool_name = f"{connector}_{operation['name']}"
        assert len(tool_name) <= 64 and TOOL_NAME.match(tool_name)
        assert operation["name"].startswith("expo")  # still readable at the front
    # Deterministic across runs.
    assert convert_fixture("shop-3.0.yaml").manifest["operations"][9]["name"] == SHOP_OPERATIONS[9]


def test_duplicate_operation_ids_are_both_kept(shop: Converted) -> None:
    ops = by_name(shop)
    assert ops["search"]["path"] == "/search"
    assert ops["search_2"]["path"] == "/search/archive"


def test_many_colliding_names_are_all_kept_and_unique(tmp_path: Path) -> None:
    paths = {f"/v{i}/items": {"get": {"operationId": "listItems"}} for i in range(12)}
    names = [op["name"] for op in convert_doc(tmp_path, doc30(paths)).manifest["operations"]]
    assert len(names) == 12 and len(set(names)) == 12
    assert names[:3] == ["list_items", "list_items_2", "list_items_3"]


# ---------------------------------------------------------------------------------------------- selection


EXPORTS = SHOP_OPERATIONS[9]


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        ({"tags": ["orders"]}, {}, ["create_order", "add_note", EXPORTS]),
        ({"tags": ["items"]}, {"tags": ["admin"]}, ["list_items", "create_item", "get_item"]),
        # By operationId as written, or by the generated name of an operation without one.
        (
            {"operations": ["listItems", "get-item", "put_items_by_item_id_photo"]},
            {},
            ["list_items", "get_item", "put_items_by_item_id_photo"],
        ),
        # An operationId shared by two operations selects both.
        (
            {},
            {"operations": ["deleteItem", "search", "put_items_by_item_id_photo"]},
            ["list_items", "create_item", "get_item", "create_order", "add_note", EXPORTS, "get_stats"],
        ),
        # Path globs (fnmatch: `*` crosses `/`); entries of include are alternatives.
        ({"paths": ["/items/*"]}, {}, ["get_item", "delete_item", "put_items_by_item_id_photo"]),
        ({"paths": ["/search*"], "tags": ["admin"]}, {}, ["delete_item", "search", "search_2", "get_stats"]),
        ({}, {"paths": ["/items*", "/orders*", "/search*", "/exports", "/reports/*"]}, ["get_stats"]),
    ],
)
def test_include_and_exclude(include: dict[str, list[str]], exclude: dict[str, list[str]], expected: list[str]) -> None:
    converted = convert_fixture("shop-3.0.yaml", selection=Selection(include=include, exclude=exclude))
    assert [op["name"] for op in converted.manifest["operations"]] == expected
    # The broken GET /reports/{report_id} is reported only when selected: of these cases, by the operations exclude.
    broken_selected = "operations" in exclude
    assert [pointer for pointer, _ in converted.faults] == ([BROKEN_POINTER] if broken_selected else [])


def test_overrides_by_operation_id_and_by_generated_name() -> None:
    overrides = {
        "listItems": {"name": "browseCatalogue", "title": "Browse", "description": "Browse the catalogue."},
        "put_items_by_item_id_photo": {"name": "upload_photo"},
        "get_item": {"description": "Generated name of get-item."},
    }
    converted = convert_fixture("shop-3.0.yaml", selection=Selection(overrides=overrides))
    ops = by_name(converted)
    assert ops["browse_catalogue"]["title"] == "Browse"
    assert ops["browse_catalogue"]["description"] == "Browse the catalogue."
    assert ops["browse_catalogue"]["path"] == "/items"
    assert ops["upload_photo"]["path"] == "/items/{item_id}/photo"
    assert ops["upload_photo"].get("title") is None
    assert ops["get_item"]["description"] == "Generated name of get-item."
    assert "list_items" not in ops and "put_items_by_item_id_photo" not in ops


# ---------------------------------------------------------------------------------------------- descriptions


def test_deprecated_is_marked(shop: Converted) -> None:
    assert by_name(shop)["delete_item"]["description"] == "Delete an item. Deprecated."


def test_deprecated_mark_survives_a_long_description(tmp_path: Path) -> None:
    long = "This operation does something worth explaining at length. " * 40
    paths = {
        "/old": {"get": {"operationId": "old", "deprecated": True, "description": long}},
        "/bare": {"get": {"operationId": "bare", "deprecated": True}},
    }
    ops = by_name(convert_doc(tmp_path, doc30(paths)))
    assert ops["old"]["description"].endswith("Deprecated.")
    assert len(ops["old"]["description"]) <= 1000
    assert ops["bare"]["description"] == "Deprecated."


# ---------------------------------------------------------------------------------------------- faults


def test_a_broken_ref_is_a_fault_naming_the_operation_and_the_rest_converts(shop: Converted) -> None:
    [(pointer, reason)] = shop.faults
    assert pointer == BROKEN_POINTER
    assert reason.startswith("GET /reports/{report_id}: ")
    assert "#/components/parameters/ReportId" in reason
    assert "get_report" not in by_name(shop)
    assert len(shop.manifest["operations"]) == len(SHOP_OPERATIONS)


def test_broken_refs_in_bodies_and_path_items(tmp_path: Path) -> None:
    paths = {
        "/a": {"post": {"operationId": "a", "requestBody": {"$ref": "#/components/requestBodies/Nope"}}},
        "/b": {"$ref": "#/components/x-missing/B"},
        "/c": {"get": {"operationId": "c"}},
        "/d": {"put": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "other.yaml#/Nope"}}}}}},
    }
    converted = convert_doc(tmp_path, doc30(paths))
    assert [op["name"] for op in converted.manifest["operations"]] == ["c"]
    faults = dict(converted.faults)
    assert set(faults) == {"#/paths/~1a/post", "#/paths/~1b", "#/paths/~1d/put"}
    assert faults["#/paths/~1a/post"].startswith("POST /a: cannot resolve $ref '#/components/requestBodies/Nope'")
    assert faults["#/paths/~1d/put"].startswith("PUT /d: ")
    assert "other.yaml" in faults["#/paths/~1d/put"]
    assert "#/components/x-missing/B" in faults["#/paths/~1b"]


def test_path_item_refs(shop: Converted) -> None:
    # shop: `/admin/stats: {$ref: admin-paths.yaml#/stats}`, whose own refs resolve in that file.
    stats = by_name(shop)["get_stats"]
    assert stats["path"] == "/admin/stats"
    assert params_of(stats)[("period", "query")]["schema"] == {"type": "string", "enum": ["day", "week"]}
    # notes (3.1): `/health: {$ref: '#/components/pathItems/Health'}`.
    notes = by_name(convert_fixture("notes-3.1.yaml", name="notes"))
    assert notes["get_health"] == {
        "name": "get_health",
        "method": "GET",
        "path": "/health",
        "title": "Liveness",
        "description": "Liveness.",
    }


def test_openapi_31_document() -> None:
    notes = convert_fixture("notes-3.1.yaml", name="notes")
    assert notes.faults == ()
    assert notes.manifest["auth"] == {"type": "bearer", "token": {"secret": "notes_token"}}  # openIdConnect
    ops = by_name(notes)
    assert list(ops) == ["create_note", "get_note", "get_health"]  # webhooks are not operations to call
    body = ops["create_note"]["body"]["schema"]
    assert body["properties"]["pinned"] == {"type": ["boolean", "null"]}
    # 3.1: a description beside $ref applies.
    assert body["properties"]["color"] == {
        "type": "string",
        "enum": ["red", "green"],
        "description": "Background colour.",
    }
    assert params_of(ops["get_note"])[("note_id", "path")]["schema"] == {"type": ["string", "integer"]}


# ---------------------------------------------------------------------------------------------- through the catalog


def shop_folder(folder: Path) -> None:
    """The shop document as `spec.yaml` (with the file its path item refers to) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "shop-3.0.yaml", folder / "spec.yaml")
    shutil.copy(FIXTURES / "admin-paths.yaml", folder / "admin-paths.yaml")


@pytest.mark.parametrize("document", ["shop-3.0.yaml", "notes-3.1.yaml", "petshop-swagger2.yaml"])
def test_every_generated_tool_schema_is_valid_json_schema(tmp_path: Path, document: str) -> None:
    shutil.copytree(FIXTURES, tmp_path / "specs")
    manifest = tmp_path / "demo.yaml"
    manifest.write_text(f"name: demo\nopenapi: specs/{document}\nbase_url: https://api.example.com\n")
    connector, _ = load_manifest(manifest)
    assert connector.operations
    for operation in connector.operations:
        tool = build_tool(connector, operation)
        Draft202012Validator.check_schema(dict(tool.input_schema))
        assert tool.input_schema["type"] == "object"
        assert TOOL_NAME.match(tool.name)


def test_generated_tool_input_schema_is_flat(tmp_path: Path) -> None:
    shop_folder(tmp_path)
    (tmp_path / "shop.yaml").write_text("name: shop\nopenapi: spec.yaml\n")
    connector, _ = load_manifest(tmp_path / "shop.yaml")
    tools = {op.name: build_tool(connector, op) for op in connector.operations}
    create = tools["create_item"].input_schema
    assert create["required"] == ["title"]
    assert set(create["properties"]) == {"X-Request-Id", "sort", "title", "price"}
    assert tools["get_item"].annotations["readOnlyHint"] is True
    assert tools["delete_item"].annotations["destructiveHint"] is True
    tools["list_items"].validate({"limit": 5, "sort": "new", "colors": ["red"]})


def test_manifest_openapi_relative_to_its_folder_and_its_own_keys_win(tmp_path: Path) -> None:
    shop_folder(tmp_path)
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(
        """
name: shop
openapi: spec.yaml
base_url: https://staging.shop.example/v2
auth: {type: basic, username: alice, password: {secret: shop_password}}
headers: {X-Tenant: acme}
timeout: 7
operations:
  - {name: ping, method: GET, path: /ping}
"""
    )
    connector, faults = load_manifest(manifest)
    assert connector.base_url == "https://staging.shop.example/v2"
    assert connector.auth == BasicAuth(ValueRef("literal", "alice"), ValueRef("secret", "shop_password"))
    assert connector.headers == {"X-Tenant": ValueRef("literal", "acme")}
    assert connector.policy.timeouts.read == 7 and connector.policy.timeouts.total == 7
    assert all(op.policy.timeouts.read == 7 for op in connector.operations)
    assert connector.title == "Shop API"  # not in the manifest: from the document
    names = [op.name for op in connector.operations]
    assert names == [*SHOP_OPERATIONS, "ping"]  # hand-written operations come after the generated ones
    assert [(fault.json_path, fault.reason.split(":")[0]) for fault in faults] == [
        (BROKEN_POINTER, "GET /reports/{report_id}")
    ]


def test_manifest_without_own_keys_takes_the_documents(tmp_path: Path) -> None:
    shop_folder(tmp_path)
    (tmp_path / "shop.yaml").write_text("name: shop\nopenapi: ./spec.yaml\n")
    connector, _ = load_manifest(tmp_path / "shop.yaml")
    assert connector.base_url == "https://eu.shop.example/v2"
    assert connector.auth == BearerAuth(ValueRef("secret", "shop_token"))


def test_manifest_selection_and_overrides(tmp_path: Path) -> None:
    shop_folder(tmp_path)
    (tmp_path / "shop.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "shop",
                "openapi": "spec.yaml",
                "include": {"tags": ["items", "media"]},
                "exclude": {"operations": ["deleteItem"]},
                "overrides": {"createItem": {"name": "add_item", "description": "Add an item."}},
                "auth": {"type": "api_key", "in": "header", "name": "X-Key", "value": {"env": "SHOP_KEY"}},
            }
        )
    )
    connector, faults = load_manifest(tmp_path / "shop.yaml")
    assert [op.name for op in connector.operations] == [
        "list_items",
        "add_item",
        "get_item",
        "put_items_by_item_id_photo",
    ]
    assert connector.operations[1].description == "Add an item."
    assert faults == []  # the broken operation is not selected
    assert connector.auth == ApiKeyAuth("header", "X-Key", ValueRef("env", "SHOP_KEY"))


def catalog_dir(tmp_path: Path) -> Path:
    """A tools folder: the shop via `openapi:`, a manifest pointing at a non-OpenAPI file, a plain manifest."""
    tools = tmp_path / "tools"
    shop_folder(tools / "specs")
    (tools / "specs" / "postman.json").write_text(json.dumps({"info": {"_postman_id": "1", "name": "x"}, "item": []}))
    (tools / "shop.yaml").write_text("name: shop\nopenapi: specs/spec.yaml\n")
    (tools / "postman.yaml").write_text("name: postman\nopenapi: specs/postman.json\nbase_url: https://x.example\n")
    (tools / "plain.yaml").write_text(
        "name: plain\nbase_url: https://plain.example\noperations: [{name: ping, method: GET, path: /ping}]\n"
    )
    return tools


def test_catalog_keeps_per_operation_faults_and_refuses_non_openapi(tmp_path: Path) -> None:
    tools = catalog_dir(tmp_path)
    catalog = load_catalog([tools])
    assert sorted(c.name for c in catalog.connectors) == ["plain", "shop"]
    faults = {(fault.file.name, fault.json_path): fault.reason for fault in catalog.faults}
    assert set(faults) == {("postman.yaml", "$.openapi"), ("shop.yaml", BROKEN_POINTER)}
    assert "not an OpenAPI document" in faults[("postman.yaml", "$.openapi")]
    assert "Postman" in faults[("postman.yaml", "$.openapi")]
    assert faults[("shop.yaml", BROKEN_POINTER)].startswith("GET /reports/{report_id}: ")
    shop = next(c for c in catalog.connectors if c.name == "shop")
    assert len(shop.operations) == len(SHOP_OPERATIONS)


def test_missing_document_is_a_fault_at_openapi(tmp_path: Path) -> None:
    (tmp_path / "gone.yaml").write_text("name: gone\nopenapi: nowhere.yaml\nbase_url: https://x.example\n")
    [fault] = load_catalog([tmp_path]).faults
    assert fault.json_path == "$.openapi"
    assert "nowhere.yaml" in fault.reason


def test_validate_command_reports_operation_faults(tmp_path: Path) -> None:
    tools = catalog_dir(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "mcp_server", "validate", "--tools", str(tools)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"ok     {tools / 'shop.yaml'}: shop ({len(SHOP_OPERATIONS)} operations)" in lines
    assert any(
        line.startswith("FAULT") and BROKEN_POINTER in line and "GET /reports/{report_id}" in line for line in lines
    )
    assert any(line.startswith("FAULT") and "postman.yaml: at $.openapi:" in line for line in lines)
    assert "Traceback" not in result.stderr
    assert "2 valid, 2 refused" in result.stderr


def test_aws_descriptions_sign_with_the_region_and_signing_name_of_their_server(tmp_path: Path) -> None:
    servers = [
        {
            "url": "https://streams.dynamodb.{region}.amazonaws.com",
            "variables": {"region": {"default": "eu-west-1", "enum": ["eu-west-1", "us-east-1"]}},
        }
    ]
    doc = doc30(components={"securitySchemes": _SCHEMES["aws"]}, servers=servers)
    auth = convert_doc(tmp_path, doc).manifest["auth"]
    assert (auth["type"], auth["region"], auth["service"]) == ("aws_sigv4", "eu-west-1", "dynamodb")


def test_an_upper_case_scheme_is_still_an_absolute_server_url(tmp_path: Path) -> None:
    converted = convert_doc(tmp_path, doc30(servers=[{"url": "HTTPS://API.Example.com/v2/"}]))
    assert converted.manifest["base_url"] == "https://API.Example.com/v2"


# ---------------------------------------------------------------------------------------------- form encoding


def body_doc(media_type: str, media: dict[str, Any]) -> dict[str, Any]:
    return doc30({"/x": {"post": {"operationId": "x", "requestBody": {"content": {media_type: media}}}}})


FORM_SCHEMA = {
    "type": "object",
    "properties": {
        "tags": {"type": "array", "items": {"type": "string"}},
        "filter": {"type": "object", "properties": {"lang": {"type": "string"}}},
        "meta": {"type": "object"},
        "ids": {"type": "array", "items": {"type": "integer"}},
        "file": {"type": "string", "format": "binary"},
    },
}


def test_form_bodies_follow_openapi_rules_with_the_documents_encoding(tmp_path: Path) -> None:
    encoding = {
        "tags": {"style": "form", "explode": False, "allowReserved": True},
        "filter": {"style": "deepObject", "explode": True},
        "meta": {"contentType": "application/json; charset=utf-8", "headers": {"X-A": {"schema": {}}}},
        "ids": {"style": "matrix", "contentType": "text/*, text/plain"},  # matrix is no query style: dropped
        "file": {"contentType": "image/*"},  # no concrete type: nothing to keep
    }
    converted = convert_doc(
        tmp_path, body_doc("application/x-www-form-urlencoded", {"schema": FORM_SCHEMA, "encoding": encoding})
    )
    body = by_name(converted)["x"]["body"]
    assert body["form_style"] == "openapi"
    assert body["encoding"] == {
        "tags": {"style": "form", "explode": False},
        "filter": {"style": "deepObject", "explode": True},
        "meta": {"content_type": "application/json"},
        "ids": {"content_type": "text/plain"},
    }


def test_form_bodies_without_encoding_are_openapi_style_all_the_same(tmp_path: Path) -> None:
    converted = convert_doc(tmp_path, body_doc("application/x-www-form-urlencoded", {"schema": FORM_SCHEMA}))
    body = by_name(converted)["x"]["body"]
    assert body["form_style"] == "openapi"
    assert "encoding" not in body


def test_multipart_bodies_keep_only_content_types(tmp_path: Path) -> None:
    encoding = {
        "meta": {"contentType": "application/json"},
        "file": {"contentType": "image/png, image/jpeg"},
        "tags": {"style": "form", "explode": False},  # OpenAPI ignores styles in multipart bodies
    }
    converted = convert_doc(tmp_path, body_doc("multipart/form-data", {"schema": FORM_SCHEMA, "encoding": encoding}))
    body = by_name(converted)["x"]["body"]
    assert "form_style" not in body
    assert body["encoding"] == {"meta": {"content_type": "application/json"}, "file": {"content_type": "image/png"}}


def test_json_bodies_carry_no_encoding(tmp_path: Path) -> None:
    encoding = {"meta": {"contentType": "application/json"}}
    converted = convert_doc(tmp_path, body_doc("application/json", {"schema": FORM_SCHEMA, "encoding": encoding}))
    body = by_name(converted)["x"]["body"]
    assert "encoding" not in body and "form_style" not in body


def test_swagger2_collection_formats_reach_the_form_encoding(tmp_path: Path) -> None:
    doc = {
        "swagger": "2.0",
        "info": {"title": "Old", "version": "1"},
        "host": "old.example",
        "paths": {
            "/x": {
                "post": {
                    "operationId": "x",
                    "consumes": ["application/x-www-form-urlencoded"],
                    "parameters": [
                        {"name": "csv", "in": "formData", "type": "array", "items": {"type": "string"}},
                        {
                            "name": "multi",
                            "in": "formData",
                            "type": "array",
                            "items": {"type": "string"},
                            "collectionFormat": "multi",
                        },
                        {
                            "name": "pipes",
                            "in": "formData",
                            "type": "array",
                            "items": {"type": "string"},
                            "collectionFormat": "pipes",
                        },
                    ],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    body = by_name(convert_doc(tmp_path, doc))["x"]["body"]
    assert body["form_style"] == "openapi"
    assert body["encoding"] == {
        "csv": {"style": "form", "explode": False},
        "multi": {"style": "form", "explode": True},
        "pipes": {"style": "pipeDelimited", "explode": False},
    }


def test_imported_form_bodies_are_visible_in_import_openapi_output_and_load(tmp_path: Path) -> None:
    encoding = {"filter": {"style": "deepObject", "explode": True}}
    doc = body_doc("application/x-www-form-urlencoded", {"schema": FORM_SCHEMA, "encoding": encoding})
    doc["servers"] = [{"url": "https://forms.example"}]
    (tmp_path / "spec.json").write_text(json.dumps(doc))
    text, _ = import_openapi("spec.json", name="forms", base_dir=tmp_path)
    written = yaml.safe_load(text)["operations"][0]["body"]
    assert written["form_style"] == "openapi"
    assert written["encoding"] == {"filter": {"style": "deepObject", "explode": True}}
    (tmp_path / "forms.yaml").write_text(text)
    connector, faults = load_manifest(tmp_path / "forms.yaml")
    assert not faults
    body = connector.operations[0].body
    assert body is not None and body.form_style == "openapi"
    assert body.encoding == {"filter": PropertyEncoding(style="deepObject", explode=True)}


# ---------------------------------------------------------------------------------------------- content parameters


def test_content_parameters_keep_their_media_type(tmp_path: Path) -> None:
    filter_schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    parameters = [
        {"name": "filter", "in": "query", "content": {"application/json; charset=utf-8": {"schema": filter_schema}}},
        {"name": "word", "in": "query", "content": {"application/json": {"schema": {"type": "string"}}}},
        {"name": "any", "in": "header", "content": {"*/*": {"schema": {"type": "object"}}}},
        {"name": "plain", "in": "query", "style": "form", "explode": False, "schema": {"type": "array"}},
    ]
    converted = convert_doc(tmp_path, doc30({"/x": {"get": {"operationId": "x", "parameters": parameters}}}))
    params = params_of(by_name(converted)["x"])
    assert params[("filter", "query")] == {
        "name": "filter",
        "in": "query",
        "schema": filter_schema,
        "content_type": "application/json",
    }
    assert params[("word", "query")]["schema"] == {"type": "string"}  # `""` is JSON text: no minLength
    assert params[("any", "header")]["content_type"] == "application/json"  # a wildcard: JSON, as for bodies
    assert "content_type" not in params[("plain", "query")]
    assert params[("plain", "query")]["style"] == "form"


# ---------------------------------------------------------------------------------------------- servers per operation


def servers_doc(
    path_servers: list[dict[str, Any]] | None = None,
    op_servers: list[dict[str, Any]] | None = None,
    doc_servers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    get: dict[str, Any] = {"operationId": "get_x", "responses": {"200": {"description": "ok"}}}
    if op_servers is not None:
        get["servers"] = op_servers
    item: dict[str, Any] = {
        "get": get,
        "post": {"operationId": "post_x", "responses": {"200": {"description": "ok"}}},
    }
    if path_servers is not None:
        item["servers"] = path_servers
    other = {"get": {"operationId": "other", "responses": {"200": {"description": "ok"}}}}
    servers = doc_servers if doc_servers is not None else [{"url": "https://api.example.com/v1"}]
    return doc30({"/x": item, "/other": other}, servers=servers)


def base_urls(converted: Converted) -> dict[str, str | None]:
    return {op["name"]: op.get("base_url") for op in converted.manifest["operations"]}


def test_operation_servers_win_over_path_item_servers_which_win_over_the_documents(tmp_path: Path) -> None:
    converted = convert_doc(
        tmp_path,
        servers_doc(
            path_servers=[{"url": "https://path.example.com/p/"}, {"url": "https://ignored.example.com"}],
            op_servers=[
                {
                    "url": "https://{region}.op.example.com/{version}",
                    "variables": {"region": {"default": "eu", "enum": ["eu", "us"]}, "version": {"default": "v3"}},
                }
            ],
        ),
    )
    assert converted.manifest["base_url"] == "https://api.example.com/v1"
    assert base_urls(converted) == {
        "get_x": "https://eu.op.example.com/v3",
        "post_x": "https://path.example.com/p",
        "other": None,
    }


def test_a_server_equal_to_the_documents_is_not_repeated(tmp_path: Path) -> None:
    converted = convert_doc(tmp_path, servers_doc(path_servers=[{"url": "https://api.example.com/v1/"}]))
    assert base_urls(converted) == {"get_x": None, "post_x": None, "other": None}


@pytest.mark.parametrize("unusable", [[{"url": "/relative"}], [], [{"description": "no url"}], "not a list"])
def test_an_unusable_operation_server_passes_over_to_the_next_level(tmp_path: Path, unusable: Any) -> None:
    doc = servers_doc(path_servers=[{"url": "https://path.example.com"}], op_servers=[])
    doc["paths"]["/x"]["get"]["servers"] = unusable
    assert base_urls(convert_doc(tmp_path, doc))["get_x"] == "https://path.example.com"


def test_relative_operation_servers_join_a_fetched_documents_url() -> None:
    doc = servers_doc(op_servers=[{"url": "/uploads"}], doc_servers=[{"url": "/api"}])
    document = Document(root=doc, uri="https://specs.example.com/v1/openapi.json", version="3.0.3")
    converted = convert_document(document, name="demo")
    assert converted.manifest["base_url"] == "https://specs.example.com/api"
    assert base_urls(converted)["get_x"] == "https://specs.example.com/uploads"


def test_operation_servers_through_import_and_the_catalog(tmp_path: Path) -> None:
    doc = servers_doc(op_servers=[{"url": "https://uploads.example.com"}])
    (tmp_path / "spec.json").write_text(json.dumps(doc))
    text, _ = import_openapi("spec.json", name="demo", base_dir=tmp_path)
    assert yaml.safe_load(text)["operations"][0]["base_url"] == "https://uploads.example.com"
    (tmp_path / "demo.yaml").write_text(text)
    connector, _ = load_manifest(tmp_path / "demo.yaml")
    assert [op.base_url for op in connector.operations] == ["https://uploads.example.com", None, None]


def test_extensions_of_the_paths_object_are_not_paths(tmp_path: Path) -> None:
    ping = {"get": {"operationId": "ping", "responses": {"200": {"description": "ok"}}}}
    converted = convert_doc(tmp_path, doc30(paths={"/ping": ping, "x-codegen-contextRoot": "/apis/registry"}))
    assert not converted.faults and [op["name"] for op in converted.manifest["operations"]] == ["ping"]
