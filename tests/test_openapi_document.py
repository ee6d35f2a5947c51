"""Loading OpenAPI documents from files and URLs, resolving `$ref`s across files, refusing what is not OpenAPI,
and converting Swagger 2.0 to OpenAPI 3.0.3.

Fixtures are hand-written documents under tests/fixtures/openapi/; URL loading uses a small Starlette app that
serves that folder on 127.0.0.1.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from mcp_server._openapi_document import Document, OpenAPIError, convert_swagger2, load_document, parse_text
from tests._upstream import free_port

FIXTURES = Path(__file__).parent / "fixtures" / "openapi"


def load(name: str, **kwargs: Any) -> Document:
    return load_document(name, FIXTURES, **kwargs)


# ------------------------------------------------------------------ loading files


def test_openapi_30_yaml_loads() -> None:
    doc = load("petstore-3.0.yaml")
    assert doc.version == "3.0.3"
    assert doc.uri == (FIXTURES / "petstore-3.0.yaml").resolve().as_uri()
    assert doc.uri.startswith("file:///")
    assert doc.root["info"]["title"] == "Petstore (3.0 fixture)"
    responses = doc.root["paths"]["/pets"]["get"]["responses"]
    assert list(responses) == ["200"]  # an unquoted `200:` key is the string "200", as in JSON
    pet = doc.root["components"]["schemas"]["Pet"]["properties"]
    assert pet["born"]["example"] == "2020-01-31"  # a date stays a string (JSON-serializable)
    assert pet["vaccinated"]["enum"] == ["yes", "no"]  # YAML 1.2: not booleans
    json.dumps(doc.root)


def test_openapi_31_json_loads() -> None:
    doc = load("petstore-3.1.json")
    assert doc.version == "3.1.0"
    assert doc.root["components"]["schemas"]["Pet"]["properties"]["nickname"]["type"] == ["string", "null"]
    target, uri = doc.resolve("#/components/schemas/Pet", doc.uri)
    assert target["type"] == "object"
    assert uri == doc.uri


def test_absolute_path_and_file_uri(tmp_path: Path) -> None:
    absolute = (FIXTURES / "petstore-3.1.json").resolve()
    assert load_document(str(absolute), tmp_path).uri == absolute.as_uri()
    assert load_document(absolute.as_uri(), tmp_path).root["openapi"] == "3.1.0"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("spec.yaml", '{"openapi": "3.0.0", "info": {"title": "json in a .yaml", "version": "1"}, "paths": {}}'),
        ("spec.json", "openapi: 3.0.0\ninfo: {title: yaml in a .json, version: '1'}\npaths: {}\n"),
        ("spec", "\ufeff  {openapi: 3.1.0, info: {title: a YAML flow mapping, version: '1'}, paths: {}}"),
    ],
)
def test_format_is_decided_by_content(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    doc = load_document(name, tmp_path)
    assert doc.root["info"]["title"] in ("json in a .yaml", "yaml in a .json", "a YAML flow mapping")


def test_unquoted_version_number_is_read_as_meant(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text("openapi: 3.1\ninfo: {title: t, version: 1}\npaths: {}\n")
    doc = load_document("spec.yaml", tmp_path)
    assert doc.version == "3.1"
    assert doc.root["openapi"] == "3.1"


def test_yaml_uses_the_12_core_schema() -> None:
    text = """
    yes_no: [yes, no, on, off, y, n]
    booleans: [true, False, TRUE]
    nulls: [~, null, NULL]
    empty:
    numbers: [12, -3, 012, 0o17, 0x1F, 1.5, 1e3, .inf, -.inf]
    strings: [2011-01-26T19:01:12Z, 2020-01-31, 1:30, 1_000, "42", '3.0']
    200: integer-looking key
    true: boolean-looking key
    tagged: [!!str 12, !!int "7", !!float 1, !custom keep-me]
    """
    data = parse_text(text.replace("\n    ", "\n"))
    assert data["yes_no"] == ["yes", "no", "on", "off", "y", "n"]
    assert data["booleans"] == [True, False, True]
    assert data["nulls"] == [None, None, None]
    assert data["empty"] is None
    assert data["numbers"] == [12, -3, 12, 15, 31, 1.5, 1000.0, float("inf"), float("-inf")]
    assert data["strings"] == ["2011-01-26T19:01:12Z", "2020-01-31", "1:30", "1_000", "42", "3.0"]
    assert data["200"] == "integer-looking key"
    assert data["true"] == "boolean-looking key"
    assert data["tagged"] == ["12", 7, 1.0, "keep-me"]


def test_yaml_anchors_aliases_and_merge_keys() -> None:
    data = parse_text(
        "base: &base {type: string, maxLength: 10}\n"
        "other: &other {format: email}\n"
        "copy: *base\n"
        "merged:\n  <<: [*base, *other]\n  maxLength: 20\n"
        "list: [&item {a: 1}, *item]\n"
    )
    assert data["copy"] == {"type": "string", "maxLength": 10}
    assert data["merged"] == {"type": "string", "maxLength": 20, "format": "email"}
    assert data["list"] == [{"a": 1}, {"a": 1}]


def test_yaml_alias_bomb_is_refused() -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    with pytest.raises(OpenAPIError, match="aliases expand to too many nodes"):
        parse_text("\n".join(lines))


def test_yaml_recursive_alias_is_refused() -> None:
    with pytest.raises(OpenAPIError, match=r"unknown or recursive alias \*loop"):
        parse_text("a: &loop\n  b: *loop\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("openapi: 3.0.0\ninfo: {title: [unclosed\n", r"invalid YAML: .*\(line \d+, column \d+\)"),
        ("openapi: 3.0.0\n---\nopenapi: 3.1.0\n", "expected one YAML document, found more"),
        ("{? [a, b] : 1}", "a mapping key must be a scalar"),
        ("a: !!int twelve\n", "'twelve' is not a valid !!int"),
        ("[" * 100_000, "the document is nested too deeply"),
        ("a:\n" + "".join(" " * i + "- \n" for i in range(1, 600)), "the document is nested too deeply"),
    ],
)
def test_bad_yaml_is_reported(text: str, message: str) -> None:
    with pytest.raises(OpenAPIError, match=message):
        parse_text(text)


# ------------------------------------------------------------------ $ref resolution


@pytest.mark.parametrize(
    ("ref", "description"),
    [
        ("#/components/schemas/a~1b", "a name with a slash"),
        ("#/components/schemas/a~0b", "a name with a tilde"),
        ("#/components/schemas/Pet%20Info", "a name with a space"),
        ("#/components/schemas/50%25", "a name with a percent sign"),
        ("petstore-3.0.yaml#/components/schemas/a~1b", "a name with a slash"),
    ],
)
def test_local_refs_with_escapes(ref: str, description: str) -> None:
    doc = load("petstore-3.0.yaml")
    target, uri = doc.resolve(ref, doc.uri)
    assert target == {"type": "string", "description": description}
    assert uri == doc.uri


def test_pointer_into_paths_and_arrays() -> None:
    doc = load("petstore-3.0.yaml")
    operation, _ = doc.resolve("#/paths/~1pets~1%7BpetId%7D/get", doc.uri)
    assert operation["operationId"] == "getPet"
    parameter, _ = doc.resolve("#/paths/~1pets~1{petId}/get/parameters/0", doc.uri)
    assert parameter["name"] == "petId"
    whole, _ = doc.resolve("#", doc.uri)
    assert whole is doc.root


def test_refs_across_three_files_each_relative_to_its_own_document() -> None:
    doc = load("multi/api/openapi.yaml")
    common = (FIXTURES / "multi/common/schemas.yaml").resolve().as_uri()
    ids = (FIXTURES / "multi/common/types/ids.yaml").resolve().as_uri()

    ref = doc.root["paths"]["/pets/{petId}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    pet, pet_uri = doc.resolve(ref["$ref"], doc.uri)
    assert ref["$ref"] == "../common/schemas.yaml#/Pet"
    assert pet_uri == common

    # Inside schemas.yaml: a ref into a subfolder of *its* folder, and a local ref meaning schemas.yaml, not the root.
    id_schema, id_uri = doc.resolve(pet["properties"]["id"]["$ref"], pet_uri)
    assert (id_schema, id_uri) == ({"$ref": "#/Base"}, ids)
    base, base_uri = doc.resolve(id_schema["$ref"], id_uri)
    assert (base, base_uri) == ({"type": "string", "pattern": "^[a-z0-9]+$"}, ids)
    tag, tag_uri = doc.resolve(pet["properties"]["tag"]["$ref"], pet_uri)
    assert (tag, tag_uri) == ({"type": "string", "description": "a tag"}, common)

    # From the third file back up into the second.
    owner, _ = doc.resolve(pet["properties"]["owner"]["$ref"], pet_uri)
    assert doc.resolve(owner["$ref"], ids) == (tag, common)

    parameter, parameter_uri = doc.resolve("../common/schemas.yaml#/PetId", doc.uri)
    assert parameter["name"] == "petId"
    assert doc.resolve(parameter["schema"]["$ref"], parameter_uri)[1] == ids


def test_ref_to_a_whole_file() -> None:
    doc = load("multi/api/openapi.yaml")
    target, uri = doc.resolve("../common/error.json", doc.uri)
    assert target == {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}}
    assert uri == (FIXTURES / "multi/common/error.json").resolve().as_uri()


def test_other_files_are_loaded_once() -> None:
    doc = load("multi/api/openapi.yaml")
    first, _ = doc.resolve("../common/schemas.yaml#/Pet", doc.uri)
    second, _ = doc.resolve("../common/./schemas.yaml#/Pet", doc.uri)
    assert first is second


def test_percent_encoded_file_names(tmp_path: Path) -> None:
    (tmp_path / "shared schemas.yaml").write_text("Thing: {type: integer}\n")
    (tmp_path / "api.yaml").write_text("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n")
    doc = load_document("api.yaml", tmp_path)
    assert doc.resolve("shared%20schemas.yaml#/Thing", doc.uri)[0] == {"type": "integer"}


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ("../common/nope.yaml#/Pet", "no such file"),
        ("../common/schemas.yaml#/Nope", "has nothing at #/Nope"),
        ("../common/schemas.yaml#/Pet/properties/id/$ref/x", "non-container"),
        ("#/paths/~1nowhere", "has nothing at #/paths/~1nowhere"),
        ("#/info/1", "has nothing at #/info/1"),
        ("../common/schemas.yaml#Pet", "only JSON-pointer fragments"),
        ("ftp://example.com/x.yaml#/a", "only file, http and https"),
    ],
)
def test_broken_refs_name_the_ref(ref: str, reason: str) -> None:
    doc = load("multi/api/openapi.yaml")
    with pytest.raises(OpenAPIError) as caught:
        doc.resolve(ref, doc.uri)
    assert repr(ref) in caught.value.message
    assert reason in caught.value.message
    assert caught.value.pointer == ""


def test_broken_ref_to_an_unparseable_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    (tmp_path / "api.yaml").write_text("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n")
    doc = load_document("api.yaml", tmp_path)
    for _ in range(2):  # the failure is cached, and reported the same way each time
        with pytest.raises(OpenAPIError, match=r"cannot resolve \$ref 'bad.yaml#/a': invalid YAML"):
            doc.resolve("bad.yaml#/a", doc.uri)


def test_refs_obey_the_size_limit(tmp_path: Path) -> None:
    (tmp_path / "huge.yaml").write_text("a: " + "x" * 5000 + "\n")
    (tmp_path / "api.yaml").write_text("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n")
    doc = load_document("api.yaml", tmp_path, max_bytes=1000)
    with pytest.raises(OpenAPIError, match="too large"):
        doc.resolve("huge.yaml#/a", doc.uri)


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("not-openapi/json-schema.json", "is not an OpenAPI document: it looks like a JSON Schema"),
        ("not-openapi/list.yaml", "is not an OpenAPI document: its top level is a list, not a mapping"),
        ("not-openapi/postman.json", "is not an OpenAPI document: it looks like a Postman collection"),
        ("not-openapi/openapi-4.yaml", r"unsupported OpenAPI version '4.0.0' \(supported: 3.0, 3.1 and Swagger 2.0\)"),
    ],
)
def test_not_openapi_is_refused(name: str, message: str) -> None:
    with pytest.raises(OpenAPIError, match=message) as caught:
        load(name)
    assert caught.value.pointer == ""
    assert name.split("/")[-1] in caught.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("openapi: '1.0'\n", "unsupported OpenAPI version '1.0'"),
        ("openapi: '2.0'\n", "unsupported OpenAPI version '2.0'"),
        ("openapi: true\n", "unsupported OpenAPI version True"),
        ("swagger: '1.2'\n", "unsupported Swagger version '1.2'"),
        ("asyncapi: 2.6.0\nchannels: {}\n", "AsyncAPI"),
        ("title: something else\n", "no top-level 'openapi' \\(3.x\\) or 'swagger' \\('2.0'\\) field"),
        ("", "its top level is empty"),
        ("just a string\n", "its top level is a str"),
    ],
)
def test_other_inputs_are_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "doc.yaml").write_text(text)
    with pytest.raises(OpenAPIError, match=message):
        load_document("doc.yaml", tmp_path)


def test_missing_unreadable_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(OpenAPIError, match=r"cannot read .*nope\.yaml: no such file"):
        load_document("nope.yaml", tmp_path)
    with pytest.raises(OpenAPIError, match="it is a directory"):
        load_document(".", tmp_path)
    (tmp_path / "binary.yaml").write_bytes(b"openapi: 3.0.0\n\xff\xfe\xfa")
    with pytest.raises(OpenAPIError, match=r"is not UTF-8 text \(byte 15\)"):
        load_document("binary.yaml", tmp_path)


def test_oversize_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n# " + "x" * 2000)
    with pytest.raises(OpenAPIError, match=r"big\.yaml is too large \(\d+ bytes; the limit is 1000\)"):
        load_document("big.yaml", tmp_path, max_bytes=1000)
    assert load_document("big.yaml", tmp_path, max_bytes=3000).version == "3.0.3"


# ------------------------------------------------------------------ URLs


class SpecServer:
    """Serves the fixtures folder on 127.0.0.1 and counts requests per path."""

    def __init__(self) -> None:
        self.port = free_port()
        self.hits: dict[str, int] = {}
        app = Starlette(
            routes=[
                Route("/specs/{path:path}", self.spec),
                Route("/latest", lambda _: RedirectResponse("/specs/multi/api/openapi.yaml", status_code=302)),
                Route("/big-declared", lambda _: Response(b"openapi: 3.0.0\n#" + b"x" * 5000)),
                Route("/big-streamed", self.streamed),
                Route("/sneaky.yaml", self.sneaky),
                Route("/to-metadata", lambda _: RedirectResponse("http://169.254.169.254/latest/meta-data/")),
            ]
        )
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def spec(self, request: Request) -> Response:
        self.hits[request.url.path] = self.hits.get(request.url.path, 0) + 1
        path = (FIXTURES / request.path_params["path"]).resolve()
        if not path.is_relative_to(FIXTURES.resolve()) or not path.is_file():
            return PlainTextResponse("not found", status_code=404)
        return Response(path.read_bytes(), media_type="application/yaml")

    async def streamed(self, _: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"openapi: 3.0.0\n"
            for _ in range(10):
                yield b"#" + b"x" * 999 + b"\n"

        return StreamingResponse(chunks(), media_type="application/yaml")

    async def sneaky(self, _: Request) -> Response:
        local = (FIXTURES / "multi/common/error.json").resolve().as_uri()
        return PlainTextResponse(
            "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n"
            f"x-file: {local}\n"
            "x-metadata: http://169.254.169.254/latest/meta-data/\n"
            "x-private: http://10.1.2.3/x.yaml\n"
            "x-redirect: to-metadata\n"
        )

    def __enter__(self) -> SpecServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "spec server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def spec_server() -> Iterator[SpecServer]:
    with SpecServer() as server:
        yield server


def test_url_loading_with_relative_refs(spec_server: SpecServer, tmp_path: Path) -> None:
    url = f"{spec_server.url}/specs/multi/api/openapi.yaml"
    doc = load_document(url, tmp_path)
    assert (doc.uri, doc.version) == (url, "3.0.3")
    pet, pet_uri = doc.resolve("../common/schemas.yaml#/Pet", doc.uri)
    assert pet_uri == f"{spec_server.url}/specs/multi/common/schemas.yaml"
    id_schema, id_uri = doc.resolve(pet["properties"]["id"]["$ref"], pet_uri)
    assert id_uri == f"{spec_server.url}/specs/multi/common/types/ids.yaml"
    assert doc.resolve(id_schema["$ref"], id_uri)[0]["type"] == "string"
    doc.resolve("../common/schemas.yaml#/Tag", doc.uri)
    assert spec_server.hits["/specs/multi/common/schemas.yaml"] == 1  # fetched once, then cached


def test_url_redirect_sets_the_base_for_relative_refs(spec_server: SpecServer, tmp_path: Path) -> None:
    doc = load_document(f"{spec_server.url}/latest", tmp_path)
    assert doc.uri == f"{spec_server.url}/specs/multi/api/openapi.yaml"
    assert doc.resolve("../common/error.json", doc.uri)[0]["required"] == ["message"]


def test_url_swagger_document(spec_server: SpecServer, tmp_path: Path) -> None:
    doc = load_document(f"{spec_server.url}/specs/swagger/petstore-2.0.yaml", tmp_path)
    assert (doc.version, doc.root["openapi"]) == ("2.0", "3.0.3")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/big-declared", r"big-declared is too large \(\d+ bytes; the limit is 2000\)"),
        ("/big-streamed", r"big-streamed is too large \(over 2000 bytes\)"),
        ("/specs/nope.yaml", "cannot fetch .*nope.yaml: HTTP 404"),
    ],
)
def test_url_failures(spec_server: SpecServer, tmp_path: Path, path: str, message: str) -> None:
    with pytest.raises(OpenAPIError, match=message):
        load_document(spec_server.url + path, tmp_path, max_bytes=2000)


def test_unreachable_url(tmp_path: Path) -> None:
    with pytest.raises(OpenAPIError, match=r"cannot fetch http://127\.0\.0\.1:\d+/x\.yaml"):
        load_document(f"http://127.0.0.1:{free_port()}/x.yaml", tmp_path, timeout=5)


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("x-file", "a document fetched from a URL may not refer to local files"),
        ("x-metadata", "refusing to fetch http://169.254.169.254/latest/meta-data/: .* is a cloud metadata address"),
        ("x-private", "refusing to fetch http://10.1.2.3/x.yaml: 10.1.2.3 is a private address"),
        ("x-redirect", "refusing to fetch http://169.254.169.254/latest/meta-data/: .* cloud metadata"),
    ],
)
def test_a_fetched_document_cannot_reach_local_files_or_internal_addresses(
    spec_server: SpecServer, tmp_path: Path, field: str, message: str
) -> None:
    doc = load_document(f"{spec_server.url}/sneaky.yaml", tmp_path)
    with pytest.raises(OpenAPIError, match=message):
        doc.resolve(doc.root[field], doc.uri)


def test_a_local_document_may_refer_to_its_own_network(spec_server: SpecServer, tmp_path: Path) -> None:
    # The operator's own files are trusted: a ref from one to a loopback URL is fetched.
    (tmp_path / "api.yaml").write_text("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n")
    doc = load_document("api.yaml", tmp_path)
    target, uri = doc.resolve(f"{spec_server.url}/specs/multi/common/schemas.yaml#/Tag", doc.uri)
    assert target == {"type": "string", "description": "a tag"}
    assert uri == f"{spec_server.url}/specs/multi/common/schemas.yaml"


# ------------------------------------------------------------------ Swagger 2.0


@pytest.fixture(scope="module")
def swagger() -> dict[str, Any]:
    return parse_text((FIXTURES / "swagger/petstore-2.0.yaml").read_text())


@pytest.fixture(scope="module")
def converted(swagger: dict[str, Any]) -> dict[str, Any]:
    return convert_swagger2(swagger)


def both(schema: dict[str, Any]) -> dict[str, Any]:
    """The content map for the document's global `produces`."""
    return {"application/json": {"schema": schema}, "application/xml": {"schema": schema}}


def test_swagger_top_level(converted: dict[str, Any]) -> None:
    assert converted["openapi"] == "3.0.3"
    assert converted["info"] == {"title": "Petstore (2.0 fixture)", "version": "1.0.5"}
    # https first, whatever order `schemes` lists them in.
    assert converted["servers"] == [{"url": "https://pets.example.com/v2"}, {"url": "http://pets.example.com/v2"}]
    assert converted["security"] == [{"api_key": []}]
    assert converted["tags"] == [{"name": "pet", "description": "Everything about pets"}]
    assert converted["x-origin"] == "hand-written"
    for gone in ("swagger", "host", "basePath", "schemes", "consumes", "produces", "definitions"):
        assert gone not in converted
    assert sorted(converted["components"]) == [
        "parameters",
        "requestBodies",
        "responses",
        "schemas",
        "securitySchemes",
    ]


def test_swagger_security_schemes(converted: dict[str, Any]) -> None:
    authorize, token = "https://auth.example.com/authorize", "https://auth.example.com/token"
    assert converted["components"]["securitySchemes"] == {
        "basic_auth": {"type": "http", "scheme": "basic", "description": "HTTP basic"},
        "api_key": {"type": "apiKey", "name": "X-API-Key", "in": "header"},
        "query_key": {"type": "apiKey", "name": "key", "in": "query", "x-vault": "pets"},
        "implicit_auth": {
            "type": "oauth2",
            "flows": {
                "implicit": {
                    "authorizationUrl": authorize,
                    "scopes": {"read:pets": "read your pets", "write:pets": "modify pets"},
                }
            },
        },
        "password_auth": {"type": "oauth2", "flows": {"password": {"tokenUrl": token, "scopes": {}}}},
        "client_auth": {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": token, "scopes": {}}}},
        "code_auth": {
            "type": "oauth2",
            "flows": {
                "authorizationCode": {
                    "authorizationUrl": authorize,
                    "tokenUrl": token,
                    "scopes": {"read:pets": "read your pets"},
                }
            },
        },
    }


def test_swagger_definitions_become_schemas_with_refs_rewritten(converted: dict[str, Any]) -> None:
    schemas = converted["components"]["schemas"]
    assert schemas["Pet"] == {
        "allOf": [
            {"$ref": "#/components/schemas/Animal"},
            {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "example": "Rex"},
                    "category": {"$ref": "#/components/schemas/Category"},
                    "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
                    "nickname": {"type": "string", "x-nullable": True, "nullable": True},
                },
            },
        ]
    }
    assert schemas["Animal"] == {
        "type": "object",
        "discriminator": {"propertyName": "kind"},
        "required": ["kind"],
        "properties": {"id": {"type": "integer", "format": "int64"}, "kind": {"type": "string"}},
    }
    assert schemas["Order"] == {
        "type": "object",
        "properties": {
            "lines": {"type": "array", "items": {"$ref": "#/components/schemas/OrderLine"}},
            "extras": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Tag"}},
        },
    }
    assert schemas["OrderLine"]["properties"]["pet"] == {"$ref": "#/components/schemas/Pet"}
    assert "#/definitions/" not in json.dumps(converted)
    assert '"#/parameters/' not in json.dumps(converted)
    assert '"#/responses/' not in json.dumps(converted)


def test_swagger_global_parameters_bodies_and_responses(converted: dict[str, Any]) -> None:
    components = converted["components"]
    assert components["parameters"] == {
        "Limit": {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "format": "int32", "default": 20, "maximum": 100, "minimum": 1},
        }
    }  # the formData NoteField is not a parameter in 3.0: it is inlined into form bodies
    assert components["requestBodies"] == {
        "PetBody": {
            "description": "The pet to store.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}},
            "required": True,
        }
    }
    assert components["responses"] == {
        "NotFound": {"description": "No such pet.", "content": both({"$ref": "#/components/schemas/Error"})}
    }


def test_swagger_query_parameters_and_collection_formats(converted: dict[str, Any]) -> None:
    find = converted["paths"]["/pets"]["get"]
    strings = {"type": "array", "items": {"type": "string"}}
    assert find["parameters"] == [
        {
            "name": "tags",
            "in": "query",
            "description": "Tags to match.",
            "style": "form",
            "explode": False,
            "schema": strings,
        },
        {
            "name": "status",
            "in": "query",
            "style": "form",
            "explode": True,
            "schema": {"type": "array", "items": {"type": "string", "enum": ["available", "sold"]}},
        },
        # No collectionFormat: 2.0's default is csv, which is *not* 3.0's default (exploded).
        {
            "name": "ids",
            "in": "query",
            "style": "form",
            "explode": False,
            "schema": {"type": "array", "items": {"type": "integer"}},
        },
        {"$ref": "#/components/parameters/Limit"},
    ]
    search = converted["paths"]["/pets/search"]["get"]["parameters"]
    assert search == [
        {"name": "words", "in": "query", "style": "spaceDelimited", "explode": False, "schema": strings},
        {"name": "colors", "in": "query", "style": "pipeDelimited", "explode": False, "schema": strings},
        {
            "name": "codes",
            "in": "query",
            "description": "Codes. Values are separated by tabs (collectionFormat tsv).",
            "style": "form",
            "explode": False,
            "schema": strings,
        },
    ]


def test_swagger_responses(converted: dict[str, Any]) -> None:
    find = converted["paths"]["/pets"]["get"]
    pets = {"type": "array", "items": {"$ref": "#/components/schemas/Pet"}}
    assert find["responses"] == {
        "200": {
            "description": "Matching pets.",
            "headers": {
                "X-Rate-Limit": {
                    "description": "Calls left this hour.",
                    "schema": {"type": "integer", "format": "int32"},
                }
            },
            "content": {
                "application/json": {"schema": pets, "example": [{"id": 1, "name": "Rex"}]},
                "application/xml": {"schema": pets},
            },
        },
        "default": {"$ref": "#/components/responses/NotFound"},
    }
    photo = converted["paths"]["/pets/{petId}/photo"]["get"]
    assert photo["responses"] == {
        "200": {
            "description": "The photo.",
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
        }
    }
    get_pet = converted["paths"]["/pets/{petId}"]["get"]
    assert get_pet == {
        "operationId": "getPet",
        "responses": {
            "200": {
                "description": "One pet.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}},
            },
            "404": {"$ref": "#/components/responses/NotFound"},
        },
    }


def test_swagger_body_parameters_become_request_bodies(converted: dict[str, Any]) -> None:
    pets = converted["paths"]["/pets"]
    # Its own `consumes` differs from the global one, so the shared body is inlined with the right media types.
    assert pets["post"] == {
        "operationId": "addPet",
        "security": [{"implicit_auth": ["write:pets"]}],
        "requestBody": {
            "description": "The pet to store.",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Pet"}},
                "application/xml": {"schema": {"$ref": "#/components/schemas/Pet"}},
            },
            "required": True,
        },
        "responses": {"201": {"description": "Stored."}},
    }
    assert pets["put"] == {
        "operationId": "updatePet",
        "requestBody": {"$ref": "#/components/requestBodies/PetBody"},
        "responses": {"200": {"description": "Updated."}},
    }
    assert converted["paths"]["/orders"]["post"]["requestBody"] == {
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"lines": {"type": "array", "items": {"$ref": "#/components/schemas/OrderLine"}}},
                }
            }
        }
    }


def test_swagger_form_parameters_become_one_form_body(converted: dict[str, Any]) -> None:
    item = converted["paths"]["/pets/{petId}"]
    assert item["parameters"] == [
        {"name": "petId", "in": "path", "required": True, "schema": {"type": "integer", "format": "int64"}}
    ]
    assert item["post"] == {
        "operationId": "updatePetWithForm",
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "description": "New name."},
                            "nicknames": {"type": "array", "items": {"type": "string"}},
                            "note": {"type": "string", "description": "A free-text note."},
                        },
                        "required": ["name"],
                    },
                    "encoding": {"nicknames": {"style": "form", "explode": True}},
                }
            },
            "required": True,
        },
        "responses": {"200": {"description": "Updated."}},
    }


def test_swagger_file_upload_becomes_multipart(converted: dict[str, Any]) -> None:
    upload = converted["paths"]["/pets/{petId}/photo"]["post"]
    assert upload == {
        "operationId": "uploadPhoto",
        "x-rate-class": "slow",
        "parameters": [{"name": "petId", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "caption": {"type": "string"},
                            "file": {"type": "string", "format": "binary", "description": "The photo."},
                        },
                        "required": ["file"],
                    }
                }
            },
            "required": True,
        },
        "responses": {
            "200": {"description": "Uploaded.", "content": both({"$ref": "#/components/schemas/ApiResponse"})}
        },
    }


def test_swagger_header_parameter_keeps_extensions(converted: dict[str, Any]) -> None:
    assert converted["paths"]["/pets/{petId}"]["delete"]["parameters"] == [
        {"name": "api_key", "in": "header", "schema": {"type": "string"}, "example": "abc123", "x-example": "abc123"}
    ]


def test_swagger_converter_does_not_mutate_or_share_its_input(swagger: dict[str, Any]) -> None:
    before = copy.deepcopy(swagger)
    out = convert_swagger2(swagger)
    assert swagger == before
    # Nothing is shared either: editing the result leaves the input alone.
    out["components"]["schemas"]["Pet"]["allOf"][1]["properties"].clear()
    out["info"]["title"] = "changed"
    out["tags"].append({"name": "new"})
    assert swagger == before


def test_swagger_servers_without_host_or_schemes() -> None:
    def servers(**fields: Any) -> Any:
        return convert_swagger2({"swagger": "2.0", "info": {}, "paths": {}, **fields}).get("servers")

    assert servers() is None
    assert servers(basePath="/api/") == [{"url": "/api"}]  # relative to where the description was found
    assert servers(host="h.example", basePath="/") == [{"url": "https://h.example"}]
    assert servers(host="h.example", schemes=["ws", "http"]) == [{"url": "http://h.example"}]


def test_swagger_path_level_body_and_overrides() -> None:
    doc = {
        "swagger": "2.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/x/{id}": {
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "type": "string"},
                    {"name": "payload", "in": "body", "schema": {"type": "object"}},
                ],
                "put": {"parameters": [{"name": "id", "in": "path", "required": True, "type": "integer"}]},
                "patch": {"responses": {"200": {"description": "ok"}}},
            }
        },
    }
    item = convert_swagger2(doc)["paths"]["/x/{id}"]
    assert item["parameters"] == [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
    body = {"content": {"application/json": {"schema": {"type": "object"}}}}
    assert item["put"] == {
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "requestBody": body,
        "responses": {"default": {"description": ""}},
    }
    assert item["patch"] == {"requestBody": body, "responses": {"200": {"description": "ok"}}}


def test_loaded_swagger_document_resolves_converted_refs() -> None:
    doc = load("swagger/petstore-2.0.yaml")
    assert (doc.version, doc.root["openapi"]) == ("2.0", "3.0.3")
    body, _ = doc.resolve("#/components/requestBodies/PetBody", doc.uri)
    pet, _ = doc.resolve(body["content"]["application/json"]["schema"]["$ref"], doc.uri)
    assert pet["allOf"][0] == {"$ref": "#/components/schemas/Animal"}


# ------------------------------------------------------------------ speed


def big_yaml(target_bytes: int) -> tuple[str, int]:
    """An OpenAPI document in typical block-and-flow YAML, about `target_bytes` long."""
    paths: list[str] = []
    schemas: list[str] = []
    size = count = 0
    while size < target_bytes:
        path = (
            f"  /repos/{{owner}}/{{repo}}/things-{count}/{{thing_id}}:\n"
            f"    get:\n"
            f"      operationId: things/get-{count}\n"
            f"      summary: Get thing {count}\n"
            f'      description: "Gets one thing, with \\"quotes\\", unicode (\\u00e9) and a\\nnew line."\n'
            f"      tags: [things, generated]\n"
            f"      parameters:\n"
            f"        - {{name: owner, in: path, required: true, schema: {{type: string}}}}\n"
            f"        - name: per_page\n"
            f"          in: query\n"
            f"          description: >-\n"
            f"            The number of results per page (max 100).\n"
            f"          schema: {{type: integer, default: 30, maximum: 100}}\n"
            f"      responses:\n"
            f"        200:\n"
            f"          description: OK\n"
            f"          content:\n"
            f"            application/json:\n"
            f'              schema: {{$ref: "#/components/schemas/thing-{count}"}}\n'
            f"              example: {{id: {count}, created_at: 2011-01-26T19:01:12Z, ok: true, ratio: 0.5}}\n"
            f'        "404":\n'
            f"          description: Not found\n"
        )
        schema = (
            f"    thing-{count}:\n"
            f"      type: object\n"
            f"      required: [id, name]\n"
            f"      properties:\n"
            f"        id: {{type: integer, format: int64, example: 42}}\n"
            f"        name: {{type: string, nullable: true, example: octocat}}\n"
            f"        tags:\n"
            f"          type: array\n"
            f"          items: {{type: string, enum: [alpha, beta, gamma]}}\n"
            f"        created_at: {{type: string, format: date-time, example: '2011-01-26T19:01:12Z'}}\n"
        )
        paths.append(path)
        schemas.append(schema)
        size += len(path) + len(schema)
        count += 1
    head = "openapi: 3.0.3\ninfo:\n  title: Generated\n  version: 1.0.0\npaths:\n"
    return head + "".join(paths) + "components:\n  schemas:\n" + "".join(schemas), count


def test_a_10_mb_yaml_document_loads_fast(tmp_path: Path) -> None:
    text, count = big_yaml(10 * 1024 * 1024)
    (tmp_path / "big.yaml").write_text(text, encoding="utf-8")
    started = time.perf_counter()
    doc = load_document("big.yaml", tmp_path)
    elapsed = time.perf_counter() - started
    print(f"\nloaded a {len(text) / 1024 / 1024:.1f} MB YAML document ({count} operations) in {elapsed:.2f} s")
    assert len(doc.root["paths"]) == count
    last = doc.root["paths"][f"/repos/{{owner}}/{{repo}}/things-{count - 1}/{{thing_id}}"]["get"]
    assert last["responses"]["200"]["content"]["application/json"]["example"]["created_at"] == "2011-01-26T19:01:12Z"
    assert last["description"] == 'Gets one thing, with "quotes", unicode (\u00e9) and a\nnew line.'
    assert elapsed < 5
