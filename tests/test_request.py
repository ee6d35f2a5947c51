"""Building the HTTP request of one tool call: URL, headers, auth, cookies and body."""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import parse_qsl

import pytest

from mcp_server._catalog import manifest_validator
from mcp_server._errors import BlockedDestination, InvalidArguments
from mcp_server._model import (
    FORM_CONTENT_TYPE,
    ApiKeyAuth,
    Auth,
    BasicAuth,
    BearerAuth,
    Body,
    Connector,
    HeadersAuth,
    NoAuth,
    Operation,
    Parameter,
    PropertyEncoding,
)
from mcp_server._netguard import DestinationPolicy, IPAddress
from mcp_server._request import Binding, PreparedRequest, build_request, referenced_values
from mcp_server._secrets import ValueRef
from tests.test_serialize import AWKWARD, FILE_SCHEMA, b64, parse_multipart

TOKEN = ValueRef("secret", "token")
SECRET_VALUE = "s3cr3t-value"


def lit(value: str) -> ValueRef:
    return ValueRef("literal", value)


def connector(
    operation: Operation,
    auth: Auth | None = None,
    headers: Mapping[str, ValueRef] | None = None,
    base_url: str = "https://api.example.com/v1",
) -> Connector:
    return Connector(
        name="demo", base_url=base_url, operations=(operation,), auth=auth or NoAuth(), headers=headers or {}
    )


def bindings_for(operation: Operation) -> dict[str, Binding]:
    """Bindings as the registry makes them: parameters by name, object-body properties by name."""
    result = {p.name: Binding(p.location, p.name) for p in operation.parameters}
    if operation.body is not None:
        properties: dict[str, Any] = dict(operation.body.schema.get("properties", {}))
        if operation.body.schema.get("type") == "object" and properties:
            result.update({name: Binding("body_property", name) for name in properties})
        else:
            result["body"] = Binding("body", "body")
    return result


def build(
    operation: Operation,
    arguments: Mapping[str, Any],
    auth: Auth | None = None,
    headers: Mapping[str, ValueRef] | None = None,
    resolved: Mapping[ValueRef, str] | None = None,
    bindings: Mapping[str, Binding] | None = None,
    base_url: str = "https://api.example.com/v1",
) -> PreparedRequest:
    conn = connector(operation, auth, headers, base_url)
    return build_request(
        conn, operation, bindings if bindings is not None else bindings_for(operation), arguments, resolved or {}
    )


def header_map(request: PreparedRequest) -> dict[str, str]:
    return {name.lower(): value for name, value in request.headers}


GET_ITEM = Operation(
    name="get_item",
    method="GET",
    path="/items/{item_id}",
    parameters=(
        Parameter("item_id", "path", {"type": "string"}, required=True),
        Parameter("verbose", "query", {"type": "boolean"}),
        Parameter("tags", "query", {"type": "array"}),
        Parameter("limit", "query", {"type": "integer"}),
    ),
)


# --- URL --------------------------------------------------------------------------------------


def test_url_is_base_plus_expanded_path_plus_query() -> None:
    request = build(GET_ITEM, {"item_id": "42", "verbose": True, "tags": ["a", "b"], "limit": 10})
    assert request.method == "GET"
    assert request.url == "https://api.example.com/v1/items/42?verbose=true&tags=a&tags=b&limit=10"
    assert request.content is None
    assert request.headers == ()


def test_trailing_slash_of_base_url_is_dropped() -> None:
    assert build(GET_ITEM, {"item_id": "1"}, base_url="https://x.test/api/").url == "https://x.test/api/items/1"


def test_absent_and_none_arguments_are_not_sent() -> None:
    request = build(GET_ITEM, {"item_id": "42", "verbose": None})
    assert request.url == "https://api.example.com/v1/items/42"


def test_query_order_follows_parameters_not_arguments() -> None:
    request = build(GET_ITEM, {"limit": 5, "verbose": False, "item_id": "x"})
    assert request.url.endswith("/items/x?verbose=false&limit=5")


@pytest.mark.parametrize(
    ("value", "segment"),
    [
        ("a/b", "a%2Fb"),
        ("what?x=1", "what%3Fx%3D1"),
        ("#frag", "%23frag"),
        ("100%", "100%25"),
        ("two words", "two%20words"),
        ("naïve ☕", "na%C3%AFve%20%E2%98%95"),
        ("../etc", "..%2Fetc"),
        (7, "7"),
        (2.0, "2"),
        (True, "true"),
    ],
)
def test_path_values_are_percent_encoded(value: Any, segment: str) -> None:
    assert build(GET_ITEM, {"item_id": value}).url == f"https://api.example.com/v1/items/{segment}"


@pytest.mark.parametrize("value", ["", ".", ".."])
def test_path_values_that_would_change_the_route_are_refused(value: str) -> None:
    with pytest.raises(InvalidArguments) as caught:
        build(GET_ITEM, {"item_id": value})
    assert caught.value.details == {"path": "$.item_id"}


def test_missing_path_argument_is_refused() -> None:
    with pytest.raises(InvalidArguments) as caught:
        build(GET_ITEM, {"verbose": True})
    assert caught.value.details == {"path": "$.item_id"}


def test_path_parameter_with_style_and_renamed_argument() -> None:
    operation = Operation(
        name="op",
        method="GET",
        path="/shapes/{color}/{id}",
        parameters=(
            Parameter("color", "path", {"type": "array"}, required=True, style="matrix", explode=True),
            Parameter("id", "path", {"type": "string"}, required=True),
            Parameter("id", "query", {"type": "string"}),
        ),
    )
    bindings = {
        "color": Binding("path", "color"),
        "id": Binding("path", "id"),
        "query_id": Binding("query", "id"),
    }
    request = build(operation, {"color": ["blue", "black"], "id": "a b", "query_id": "q/1"}, bindings=bindings)
    assert request.url == "https://api.example.com/v1/shapes/;color=blue;color=black/a%20b?id=q%2F1"


# --- body -------------------------------------------------------------------------------------

CREATE_SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "done": {"type": "boolean"}, "tags": {"type": "array"}},
}
CREATE = Operation(name="create_item", method="POST", path="/items", body=Body(schema=CREATE_SCHEMA))


def test_json_body_is_compact_utf8_with_content_type() -> None:
    request = build(CREATE, {"title": 'Café ☕ "quoted"', "done": False, "tags": ["x"]})
    assert request.content == '{"title":"Café ☕ \\"quoted\\"","done":false,"tags":["x"]}'.encode()
    assert request.headers == (("Content-Type", "application/json"),)


def test_none_body_properties_are_not_sent() -> None:
    request = build(CREATE, {"title": "t", "done": None})
    assert request.content == b'{"title":"t"}'


def test_optional_body_absent_sends_no_body_and_no_content_type() -> None:
    request = build(CREATE, {})
    assert request.content is None
    assert request.headers == ()


def test_required_object_body_without_arguments_is_an_empty_object() -> None:
    operation = Operation(name="op", method="POST", path="/x", body=Body(schema=CREATE_SCHEMA, required=True))
    assert build(operation, {}).content == b"{}"


def test_body_property_renamed_on_clash_keeps_its_original_name() -> None:
    operation = Operation(
        name="op",
        method="PATCH",
        path="/items/{id}",
        parameters=(Parameter("id", "path", {"type": "string"}, required=True),),
        body=Body(schema={"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}),
    )
    bindings = {
        "id": Binding("path", "id"),
        "body_id": Binding("body_property", "id"),
        "name": Binding("body_property", "name"),
    }
    request = build(operation, {"id": "1", "body_id": "new", "name": "n"}, bindings=bindings)
    assert request.url.endswith("/items/1")
    assert json.loads(request.content or b"") == {"id": "new", "name": "n"}


def test_whole_body_binding() -> None:
    operation = Operation(name="op", method="PUT", path="/tags", body=Body(schema={"type": "array"}))
    request = build(operation, {"body": ["a", "ü"]})
    assert request.content == '["a","ü"]'.encode()
    assert header_map(request)["content-type"] == "application/json"
    assert build(operation, {}).content is None


def test_form_body_stripe_style() -> None:
    operation = Operation(
        name="create_session",
        method="POST",
        path="/checkout/sessions",
        body=Body(
            schema={
                "type": "object",
                "properties": {"line_items": {}, "metadata": {}, "expand": {}, "allow_promotion_codes": {}, "x": {}},
            },
            content_type=FORM_CONTENT_TYPE,
        ),
    )
    request = build(
        operation,
        {
            "line_items": [{"price": "p_1", "quantity": 2, "adjustable_quantity": {"enabled": True}}],
            "metadata": {"order_id": 6735, "note": "two words", "clear": ""},
            "expand": ["customer", "invoice"],
            "allow_promotion_codes": False,
            "x": None,
        },
    )
    assert header_map(request)["content-type"] == FORM_CONTENT_TYPE
    assert parse_qsl((request.content or b"").decode("ascii"), keep_blank_values=True) == [
        ("line_items[0][price]", "p_1"),
        ("line_items[0][quantity]", "2"),
        ("line_items[0][adjustable_quantity][enabled]", "true"),
        ("metadata[order_id]", "6735"),
        ("metadata[note]", "two words"),
        ("metadata[clear]", ""),
        ("expand[0]", "customer"),
        ("expand[1]", "invoice"),
        ("allow_promotion_codes", "false"),
    ]
    assert b"metadata%5Bnote%5D=two+words" in (request.content or b"")


def test_unencodable_body_is_invalid_arguments() -> None:
    with pytest.raises(InvalidArguments) as caught:
        build(CREATE, {"title": float("nan")})
    assert caught.value.details == {"path": "$"}


def test_body_content_type_wins_over_connector_header() -> None:
    request = build(
        CREATE, {"title": "t"}, headers={"content-type": lit("text/plain"), "Accept": lit("application/json")}
    )
    assert request.headers == (("Accept", "application/json"), ("Content-Type", "application/json"))


# --- bodies beyond JSON and form ---------------------------------------------------------------

UPLOAD = Operation(
    name="upload",
    method="POST",
    path="/files/{folder}",
    parameters=(Parameter("folder", "path", {"type": "string"}, required=True),),
    body=Body(
        schema={
            "type": "object",
            "properties": {
                "file": FILE_SCHEMA,
                "folder": {"type": "string"},
                "purpose": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "meta": {"type": "object"},
                "public": {"type": "boolean"},
            },
        },
        content_type="multipart/form-data",
    ),
)
UPLOAD_BINDINGS = {
    "folder": Binding("path", "folder"),
    "file": Binding("body_property", "file"),
    "body_folder": Binding("body_property", "folder"),
    "purpose": Binding("body_property", "purpose"),
    "tags": Binding("body_property", "tags"),
    "meta": Binding("body_property", "meta"),
    "public": Binding("body_property", "public"),
}


def test_multipart_body_end_to_end() -> None:
    arguments = {
        "folder": "inbox",
        "file": b64(AWKWARD),
        "body_folder": "drafts",
        "purpose": "assistants",
        "tags": ["a", "b"],
        "meta": {"k": [1, True]},
        "public": False,
    }
    request = build(UPLOAD, arguments, headers={"Content-Type": lit("application/json")}, bindings=UPLOAD_BINDINGS)
    assert request.url == "https://api.example.com/v1/files/inbox"
    content_type = header_map(request)["content-type"]
    boundary = content_type.removeprefix("multipart/form-data; boundary=")
    assert len(boundary) == 32
    assert [name for name, _ in request.headers] == ["Content-Type"]
    assert parse_multipart(request.content or b"", content_type) == [
        ("file", "file", "application/octet-stream", AWKWARD),
        ("folder", None, "text/plain", b"drafts"),
        ("purpose", None, "text/plain", b"assistants"),
        ("tags", None, "text/plain", b"a"),
        ("tags", None, "text/plain", b"b"),
        ("meta", None, "application/json", b'{"k":[1,true]}'),
        ("public", None, "text/plain", b"false"),
    ]
    again = build(UPLOAD, arguments, bindings=UPLOAD_BINDINGS)
    assert header_map(again)["content-type"] != content_type


def test_multipart_invalid_base64_points_at_the_argument() -> None:
    with pytest.raises(InvalidArguments, match="base64") as caught:
        build(UPLOAD, {"folder": "x", "file": "not base64!"}, bindings=UPLOAD_BINDINGS)
    assert caught.value.details == {"path": "$.file"}
    assert "not base64!" not in caught.value.message


def test_multipart_fault_points_at_the_renamed_argument() -> None:
    operation = Operation(
        name="op",
        method="POST",
        path="/files/{file}",
        parameters=(Parameter("file", "path", {"type": "string"}, required=True),),
        body=Body(schema={"type": "object", "properties": {"file": FILE_SCHEMA}}, content_type="multipart/form-data"),
    )
    bindings = {"file": Binding("path", "file"), "body_file": Binding("body_property", "file")}
    with pytest.raises(InvalidArguments) as caught:
        build(operation, {"file": "x", "body_file": "%%%"}, bindings=bindings)
    assert caught.value.details == {"path": "$.body_file"}


def test_multipart_whole_body_binding() -> None:
    operation = Operation(
        name="op", method="POST", path="/x", body=Body(schema={"type": "object"}, content_type="multipart/form-data")
    )
    request = build(operation, {"body": {"a": "1", "b": None, "c": [2, 3]}})
    content_type = header_map(request)["content-type"]
    assert parse_multipart(request.content or b"", content_type) == [
        ("a", None, "text/plain", b"1"),
        ("c", None, "text/plain", b"2"),
        ("c", None, "text/plain", b"3"),
    ]
    with pytest.raises(InvalidArguments) as caught:
        build(operation, {"body": {"n": float("nan")}})
    assert caught.value.details == {"path": "$.body.n"}
    with pytest.raises(InvalidArguments, match="object") as caught:
        build(operation, {"body": ["not", "an", "object"]})
    assert caught.value.details == {"path": "$.body"}


def test_required_multipart_body_without_arguments_has_no_parts() -> None:
    operation = Operation(
        name="op",
        method="POST",
        path="/x",
        body=Body(schema=CREATE_SCHEMA, content_type="multipart/form-data", required=True),
    )
    request = build(operation, {})
    boundary = header_map(request)["content-type"].removeprefix("multipart/form-data; boundary=")
    assert request.content == f"--{boundary}--\r\n".encode()


BINARY_SCHEMA = {"type": "string", "contentEncoding": "base64"}


@pytest.mark.parametrize("content_type", ["application/octet-stream", "image/png", "application/pdf", "audio/ogg"])
def test_binary_body_is_decoded_base64(content_type: str) -> None:
    operation = Operation(
        name="op", method="PUT", path="/blob", body=Body(schema=BINARY_SCHEMA, content_type=content_type)
    )
    request = build(operation, {"body": b64(AWKWARD)}, headers={"Content-Type": lit("application/json")})
    assert request.content == AWKWARD
    assert request.headers == (("Content-Type", content_type),)
    assert build(operation, {"body": ""}).content == b""
    assert build(operation, {}).content is None


@pytest.mark.parametrize("value", ["not base64!", "QUJ", "QUJé", 42, ["QUJD"], {"data": "QUJD"}])
def test_binary_body_must_be_base64_text(value: Any) -> None:
    operation = Operation(
        name="op", method="PUT", path="/blob", body=Body(schema=BINARY_SCHEMA, content_type="application/octet-stream")
    )
    with pytest.raises(InvalidArguments, match="base64") as caught:
        build(operation, {"body": value})
    assert caught.value.details == {"path": "$.body"}


@pytest.mark.parametrize("content_type", ["text/plain", "text/csv", "text/markdown"])
def test_text_body_is_the_string_as_utf8(content_type: str) -> None:
    operation = Operation(
        name="op", method="POST", path="/note", body=Body(schema={"type": "string"}, content_type=content_type)
    )
    text = 'a,b\r\n"Zoë",☕\n'
    request = build(operation, {"body": text})
    assert request.content == text.encode("utf-8")
    assert request.headers == (("Content-Type", content_type),)


def test_text_body_with_structured_value_is_json() -> None:
    operation = Operation(name="op", method="POST", path="/note", body=Body(schema={}, content_type="text/plain"))
    assert build(operation, {"body": {"a": [1]}}).content == b'{"a":[1]}'


@pytest.mark.parametrize(
    "content_type", ["application/merge-patch+json", "application/vnd.api+json", "application/json"]
)
def test_json_types_are_json(content_type: str) -> None:
    operation = Operation(
        name="op", method="PATCH", path="/items", body=Body(schema=CREATE_SCHEMA, content_type=content_type)
    )
    request = build(operation, {"title": "Zoë", "tags": None, "done": True})
    assert request.content == '{"title":"Zoë","done":true}'.encode()
    assert request.headers == (("Content-Type", content_type),)
    whole = Operation(
        name="op", method="PATCH", path="/x", body=Body(schema={"type": "string"}, content_type=content_type)
    )
    assert build(whole, {"body": "QUJD"}).content == b'"QUJD"'  # a string is JSON text, not base64


# --- manifest: body content types ----------------------------------------------------------------


def manifest_with_body(content_type: str) -> dict[str, Any]:
    return {
        "name": "demo",
        "base_url": "https://api.example.com",
        "operations": [
            {
                "name": "send",
                "method": "POST",
                "path": "/send",
                "body": {"content_type": content_type, "schema": {"type": "object"}},
            }
        ],
    }


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "application/octet-stream",
        "text/plain",
        "text/csv",
        "image/png",
        "application/merge-patch+json",
        "application/vnd.github.v3+json",
        "application/x-ndjson",
    ],
)
def test_manifest_accepts_media_types(content_type: str) -> None:
    assert list(manifest_validator().iter_errors(manifest_with_body(content_type))) == []


@pytest.mark.parametrize(
    "content_type",
    [
        "not a type",
        "application",
        "application/",
        "/json",
        "Application/JSON",
        "text/plain; charset=utf-8",
        "a/b/c",
        "",
    ],
)
def test_manifest_refuses_what_is_not_a_media_type(content_type: str) -> None:
    errors = list(manifest_validator().iter_errors(manifest_with_body(content_type)))
    assert errors
    assert all(list(error.absolute_path) == ["operations", 0, "body", "content_type"] for error in errors)


def test_manifest_body_content_type_defaults_to_json() -> None:
    schema = cast(dict[str, Any], manifest_validator().schema)
    content_type = schema["$defs"]["body"]["properties"]["content_type"]
    assert content_type["default"] == "application/json"
    assert Body(schema={}).content_type == "application/json"


# --- headers ----------------------------------------------------------------------------------

WITH_HEADER = Operation(
    name="op",
    method="GET",
    path="/h",
    parameters=(
        Parameter("X-Trace", "header", {"type": "string"}),
        Parameter("X-Ids", "header", {"type": "array"}),
        Parameter("authorization", "header", {"type": "string"}),
    ),
    headers={"X-Op": lit("op"), "X-Both": lit("from-operation")},
)


def test_header_precedence_connector_operation_parameter() -> None:
    request = build(
        WITH_HEADER,
        {"X-Trace": "t-1", "X-Ids": [1, 2]},
        headers={"X-Both": lit("from-connector"), "x-trace": lit("from-connector"), "Accept": lit("*/*")},
    )
    assert request.headers == (
        ("Accept", "*/*"),
        ("X-Op", "op"),
        ("X-Both", "from-operation"),
        ("X-Trace", "t-1"),
        ("X-Ids", "1,2"),
    )


@pytest.mark.parametrize("value", ["t\r\nX-Injected: 1", "t\nx", "t\rx", "t\x00x"])
def test_header_injection_is_invalid_arguments(value: str) -> None:
    with pytest.raises(InvalidArguments) as caught:
        build(WITH_HEADER, {"X-Trace": value})
    assert caught.value.details == {"path": "$.X-Trace"}
    assert value not in caught.value.message


def test_auth_header_wins_over_header_parameter_in_other_case() -> None:
    request = build(
        WITH_HEADER, {"authorization": "Bearer model-chosen"}, auth=BearerAuth(TOKEN), resolved={TOKEN: SECRET_VALUE}
    )
    assert request.headers == (
        ("X-Op", "op"),
        ("X-Both", "from-operation"),
        ("Authorization", f"Bearer {SECRET_VALUE}"),
    )


def test_api_key_header_wins_over_header_parameter_and_connector_header() -> None:
    operation = Operation(name="op", method="GET", path="/h", parameters=(Parameter("x-api-key", "header", {}),))
    request = build(
        operation,
        {"x-api-key": "model-chosen"},
        auth=ApiKeyAuth("header", "X-API-Key", TOKEN),
        headers={"X-Api-Key": lit("manifest")},
        resolved={TOKEN: SECRET_VALUE},
    )
    assert request.headers == (("X-API-Key", SECRET_VALUE),)


# --- auth -------------------------------------------------------------------------------------

PLAIN = Operation(name="op", method="GET", path="/me")


@pytest.mark.parametrize(
    ("auth", "url", "headers"),
    [
        (NoAuth(), "https://api.example.com/v1/me", ()),
        (BearerAuth(TOKEN), "https://api.example.com/v1/me", (("Authorization", f"Bearer {SECRET_VALUE}"),)),
        (
            BearerAuth(TOKEN, scheme="token"),
            "https://api.example.com/v1/me",
            (("Authorization", f"token {SECRET_VALUE}"),),
        ),
        (ApiKeyAuth("header", "X-API-Key", TOKEN), "https://api.example.com/v1/me", (("X-API-Key", SECRET_VALUE),)),
        (ApiKeyAuth("query", "api_key", TOKEN), f"https://api.example.com/v1/me?api_key={SECRET_VALUE}", ()),
        (
            ApiKeyAuth("cookie", "session", TOKEN),
            "https://api.example.com/v1/me",
            (("Cookie", f"session={SECRET_VALUE}"),),
        ),
        (
            HeadersAuth({"X-Tenant": lit("acme"), "X-Auth": TOKEN}),
            "https://api.example.com/v1/me",
            (("X-Tenant", "acme"), ("X-Auth", SECRET_VALUE)),
        ),
    ],
)
def test_auth_types(auth: Auth, url: str, headers: tuple[tuple[str, str], ...]) -> None:
    request = build(PLAIN, {}, auth=auth, resolved={TOKEN: SECRET_VALUE})
    assert request.url == url
    assert request.headers == headers


def test_basic_auth_is_utf8_base64() -> None:
    password = ValueRef("env", "PASSWORD")
    request = build(PLAIN, {}, auth=BasicAuth(lit("zoë"), password), resolved={password: "pä:ss"})
    expected = base64.b64encode("zoë:pä:ss".encode()).decode("ascii")
    assert request.headers == (("Authorization", f"Basic {expected}"),)


def test_query_api_key_is_encoded_and_wins_over_a_parameter_of_the_same_name() -> None:
    operation = Operation(
        name="op",
        method="GET",
        path="/search",
        parameters=(Parameter("q", "query", {}), Parameter("api_key", "query", {}), Parameter("f", "query", {})),
    )
    request = build(
        operation,
        {"q": "a b", "api_key": "model-chosen", "f": {"api_key": "sneaky", "x": 1}},
        auth=ApiKeyAuth("query", "api_key", TOKEN),
        resolved={TOKEN: "k/y+z"},
    )
    assert request.url == "https://api.example.com/v1/search?q=a%20b&x=1&api_key=k%2Fy%2Bz"


def test_secret_with_line_break_is_a_value_error_without_the_secret() -> None:
    for auth in (BearerAuth(TOKEN), ApiKeyAuth("header", "X-Key", TOKEN), ApiKeyAuth("cookie", "c", TOKEN)):
        with pytest.raises(ValueError, match="vault secret 'token'") as caught:
            build(PLAIN, {}, auth=auth, resolved={TOKEN: "leak\r\nX-Evil: 1"})
        assert "leak" not in str(caught.value)
        assert not isinstance(caught.value, InvalidArguments)


def test_connector_header_secret_with_line_break_is_a_value_error() -> None:
    env = ValueRef("env", "TENANT")
    with pytest.raises(ValueError, match="environment variable TENANT"):
        build(PLAIN, {}, headers={"X-Tenant": env}, resolved={env: "a\nb"})


def test_unresolved_secret_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="vault secret 'token'"):
        build(PLAIN, {}, auth=BearerAuth(TOKEN))


# --- cookies ----------------------------------------------------------------------------------

WITH_COOKIES = Operation(
    name="op",
    method="GET",
    path="/c",
    parameters=(
        Parameter("a", "cookie", {}),
        Parameter("b", "cookie", {}),
        Parameter("session", "cookie", {}),
        Parameter("Cookie", "header", {}),
    ),
)


def test_cookie_parameters_merge_into_one_header() -> None:
    request = build(WITH_COOKIES, {"a": 1, "b": True})
    assert request.headers == (("Cookie", "a=1; b=true"),)


def test_cookie_parameters_merge_with_auth_cookie_which_wins() -> None:
    request = build(
        WITH_COOKIES,
        {"a": "x y", "session": "model-chosen", "b": [1, 2]},
        auth=ApiKeyAuth("cookie", "session", TOKEN),
        resolved={TOKEN: SECRET_VALUE},
    )
    assert request.headers == (("Cookie", f"a=x%20y; b=1; b=2; session={SECRET_VALUE}"),)


def test_model_cookie_header_cannot_shadow_auth_cookie() -> None:
    request = build(
        WITH_COOKIES,
        {"Cookie": "session=model-chosen"},
        auth=ApiKeyAuth("cookie", "session", TOKEN),
        resolved={TOKEN: SECRET_VALUE},
    )
    assert request.headers == (("Cookie", f"session={SECRET_VALUE}"),)


def test_manifest_cookie_header_is_merged() -> None:
    request = build(WITH_COOKIES, {"a": "1"}, headers={"Cookie": lit("theme=dark; a=old")})
    assert request.headers == (("Cookie", "theme=dark; a=1"),)


def test_no_cookies_no_cookie_header() -> None:
    assert build(WITH_COOKIES, {}).headers == ()


# --- referenced_values ------------------------------------------------------------------------


def test_referenced_values_dedup_and_order() -> None:
    user = ValueRef("env", "USER")
    shared = ValueRef("secret", "shared")
    op_only = ValueRef("env", "OP_ONLY")
    operation = Operation(name="op", method="GET", path="/", headers={"X-A": shared, "X-B": op_only, "X-C": lit("c")})
    conn = Connector(
        name="demo",
        base_url="https://x.test",
        operations=(operation,),
        auth=BasicAuth(user, TOKEN),
        headers={"X-Shared": shared, "X-Token": TOKEN, "X-Lit": lit("literal")},
    )
    assert referenced_values(conn, operation) == (user, TOKEN, shared, op_only)


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (NoAuth(), ()),
        (BearerAuth(lit("inline")), ()),
        (BearerAuth(TOKEN), (TOKEN,)),
        (ApiKeyAuth("query", "k", TOKEN), (TOKEN,)),
        (HeadersAuth({"A": TOKEN, "B": lit("x"), "C": TOKEN}), (TOKEN,)),
    ],
)
def test_referenced_values_per_auth(auth: Auth, expected: tuple[ValueRef, ...]) -> None:
    conn = Connector(name="demo", base_url="https://x.test", operations=(PLAIN,), auth=auth)
    assert referenced_values(conn, PLAIN) == expected


def test_literals_are_resolved_without_the_mapping() -> None:
    request = build(PLAIN, {}, auth=BearerAuth(lit("inline")), headers={"X-Lit": lit("v")})
    assert request.headers == (("X-Lit", "v"), ("Authorization", "Bearer inline"))


# --- form bodies the OpenAPI way and per-property encoding ----------------------------------------

OPENAPI_FORM = Operation(
    name="subscribe",
    method="POST",
    path="/subscriptions",
    parameters=(Parameter("topics", "query", {"type": "string"}),),
    body=Body(
        schema={
            "type": "object",
            "properties": {"topics": {"type": "array"}, "filter": {"type": "object"}, "meta": {"type": "object"}},
        },
        content_type=FORM_CONTENT_TYPE,
        form_style="openapi",
        encoding={"filter": PropertyEncoding(style="deepObject", explode=True)},
    ),
)
OPENAPI_FORM_BINDINGS = {
    "topics": Binding("query", "topics"),
    "body_topics": Binding("body_property", "topics"),
    "filter": Binding("body_property", "filter"),
    "meta": Binding("body_property", "meta"),
}


def test_openapi_form_body_end_to_end() -> None:
    arguments = {"topics": "q", "body_topics": ["news", "offers"], "filter": {"lang": "de"}, "meta": {"a": 1}}
    request = build(OPENAPI_FORM, arguments, bindings=OPENAPI_FORM_BINDINGS)
    assert request.url == "https://api.example.com/v1/subscriptions?topics=q"
    assert header_map(request)["content-type"] == FORM_CONTENT_TYPE
    assert request.content == b"topics=news&topics=offers&filter[lang]=de&a=1"


def test_form_body_fault_points_at_the_renamed_argument() -> None:
    with pytest.raises(InvalidArguments, match="finite") as caught:
        build(OPENAPI_FORM, {"body_topics": [float("nan")]}, bindings=OPENAPI_FORM_BINDINGS)
    assert caught.value.details == {"path": "$.body_topics"}


def test_multipart_json_encoding_end_to_end() -> None:
    operation = Operation(
        name="upload",
        method="POST",
        path="/files",
        body=Body(
            schema={"type": "object", "properties": {"file": FILE_SCHEMA, "tags": {"type": "array"}}},
            content_type="multipart/form-data",
            encoding={"tags": PropertyEncoding(content_type="application/json"), "file": PropertyEncoding("image/png")},
        ),
    )
    request = build(operation, {"file": b64(b"PNG"), "tags": ["a", "b"]})
    assert parse_multipart(request.content or b"", header_map(request)["content-type"]) == [
        ("file", "file", "image/png", b"PNG"),
        ("tags", None, "application/json", b'"a"'),
        ("tags", None, "application/json", b'"b"'),
    ]


def test_manifest_accepts_form_style_and_encoding() -> None:
    document = manifest_with_body("application/x-www-form-urlencoded")
    body = document["operations"][0]["body"]
    body["form_style"] = "openapi"
    body["encoding"] = {
        "filter": {"style": "deepObject", "explode": True},
        "tags": {"style": "pipeDelimited", "explode": False},
        "meta": {"content_type": "application/json"},
    }
    assert list(manifest_validator().iter_errors(document)) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("form_style", "stripe"),
        ("encoding", {"a": {"style": "matrix"}}),
        ("encoding", {"a": {"style": "simple"}}),
        ("encoding", {"a": {"content_type": "image/*"}}),
        ("encoding", {"a": {"contentType": "application/json"}}),
        ("encoding", {"a": {"headers": {}}}),
        ("encoding", {"a": {"explode": "yes"}}),
        ("encoding", ["a"]),
    ],
)
def test_manifest_refuses_bad_form_style_and_encoding(key: str, value: Any) -> None:
    document = manifest_with_body("application/x-www-form-urlencoded")
    document["operations"][0]["body"][key] = value
    errors = list(manifest_validator().iter_errors(document))
    assert errors
    assert all(list(error.absolute_path)[:4] == ["operations", 0, "body", key] for error in errors)


def test_manifest_form_style_defaults_to_brackets() -> None:
    schema = cast(dict[str, Any], manifest_validator().schema)
    assert schema["$defs"]["body"]["properties"]["form_style"]["default"] == "brackets"
    assert Body(schema={}).form_style == "brackets"
    assert dict(Body(schema={}).encoding) == {}


# --- parameters described by `content` --------------------------------------------------------------

SEARCH = Operation(
    name="search",
    method="GET",
    path="/search/{scope}",
    parameters=(
        Parameter("scope", "path", {"type": "object"}, required=True, content_type="application/json"),
        Parameter("filter", "query", {"type": "object"}, content_type="application/json"),
        Parameter("ids", "query", {"type": "array"}, content_type="application/json"),
        Parameter("X-Context", "header", {"type": "object"}, content_type="application/json"),
    ),
)


def test_content_parameters_are_json_text() -> None:
    request = build(SEARCH, {"scope": {"org": "a/b"}, "filter": {"q": "é x"}, "ids": [], "X-Context": {"user": "Zoë"}})
    assert request.url == (
        "https://api.example.com/v1/search/%7B%22org%22%3A%22a%2Fb%22%7D"
        "?filter=%7B%22q%22%3A%22%C3%A9%20x%22%7D&ids=%5B%5D"
    )
    assert header_map(request)["x-context"] == '{"user":"Zo\\u00eb"}'


def test_manifest_accepts_a_parameter_content_type() -> None:
    document = manifest_with_body("application/json")
    document["operations"][0]["parameters"] = [
        {"name": "filter", "in": "query", "content_type": "application/json", "schema": {"type": "object"}}
    ]
    assert list(manifest_validator().iter_errors(document)) == []
    document["operations"][0]["parameters"][0]["content_type"] = "application/*"
    assert list(manifest_validator().iter_errors(document))


# --- an operation's own server ----------------------------------------------------------------------


def test_a_request_goes_to_the_operations_own_server() -> None:
    upload = Operation(
        name="upload_asset",
        method="POST",
        path="/assets/{name}",
        parameters=(Parameter("name", "path", {"type": "string"}, required=True),),
        body=Body(schema={"type": "string", "contentEncoding": "base64"}, content_type="application/octet-stream"),
        base_url="https://uploads.example.com/v2/",
    )
    request = build(upload, {"name": "a b", "body": b64(b"data")}, auth=BearerAuth(lit("t")))
    assert request.url == "https://uploads.example.com/v2/assets/a%20b"
    assert header_map(request)["authorization"] == "Bearer t"
    assert build(GET_ITEM, {"item_id": "1"}).url == "https://api.example.com/v1/items/1"  # no own server


def test_manifest_accepts_an_absolute_operation_base_url_only() -> None:
    document = manifest_with_body("application/json")
    document["operations"][0]["base_url"] = "https://uploads.example.com/v2"
    assert list(manifest_validator().iter_errors(document)) == []
    for bad in ("/v2", "ftp://uploads.example.com", "https://uploads.example.com/v2?x=1", ""):
        document["operations"][0]["base_url"] = bad
        errors = list(manifest_validator().iter_errors(document))
        assert errors and all(list(e.absolute_path) == ["operations", 0, "base_url"] for e in errors), bad


async def test_the_ssrf_guard_lets_an_operations_own_host_through() -> None:
    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address({"uploads.internal": "10.1.2.3"}.get(host, "10.9.9.9"))]

    guard = DestinationPolicy(
        base_url="https://api.example.com/v1",
        operation_base_urls=["https://uploads.internal/v2", "http://127.0.0.1:8080"],
        resolver=resolver,
    )
    assert (await guard.check("https://uploads.internal/v2/assets")).addresses == (ipaddress.ip_address("10.1.2.3"),)
    assert (await guard.check("http://127.0.0.1:8080/x")).host == "127.0.0.1"
    with pytest.raises(BlockedDestination):
        await guard.check("https://other.internal/")
    with pytest.raises(BlockedDestination):
        await guard.check("http://127.0.0.2:8080/")
