"""Requests conform to the OpenAPI description they were generated from (issue 3, item 5).

Three hand-written documents under tests/fixtures/conformance/ become connectors through `load_manifest` (an
`openapi:` manifest each): store-3.0.yaml (OpenAPI 3.0, with `$ref`s into common.yaml), events-3.1.json (3.1)
and legacy-2.0.yaml (Swagger 2.0, converted by `load_document`). For every operation, Hypothesis draws valid
arguments from the tool's flat input schema (hypothesis-jsonschema), `build_request` turns them into a request, and
openapi-core checks that request against the document: `validate_request` (server and path, method, security,
every parameter's style/explode serialization and schema, content type, body), then `unmarshal_request`, whose
decoded values must equal the arguments (a value that arrives mangled but still schema-valid is caught too; a JSON
body must equal the body arguments exactly, explicit nulls included). The 3.0 and 3.1 documents are read by
openapi-core straight from their files; Swagger 2.0, which openapi-core does not read, is checked against the
OpenAPI 3.0 document `load_document` converted it to. A few operations per document also go through a real
`Pipeline` to the fake upstream on 127.0.0.1, and the request as received there (raw path, query, headers, body)
is checked the same way, so the bytes on the wire conform too.

Numbers: 42 operations (store 18, events 15, legacy 9). 40 are validated with 20 generated examples each: 800
requests through `build_request`; 10 of them also go through the Pipeline, 6 examples each: 60 requests on the wire.
2 are skipped, for openapi-core limits (see `SKIPPED`): a form-style exploded object in a query string, and an
OpenAPI 3.1 multipart file part. The whole module runs in about 30 s.

Bugs this found, fixed (the regression tests are at the end of this module):
- an empty query value (`q=`) was offered and sent, though `allowEmptyValue` is false by default;
- `format: int32`/`int64` did not bound integers (JSON Schema ignores these formats; OpenAPI validators do not);
- `None` for a JSON body property was dropped even where the schema names null: a required nullable property
  went missing, and a PATCH could not clear a field;
- an array in a form-encoded body was sent Stripe-style (`tags[0]=a`) where the document, without an `encoding`,
  says `tags=a&tags=b`: imported form bodies now follow OpenAPI's rules (`form_style: openapi`) and the
  document's `encoding` (checked below for every query style and a JSON `contentType`).

Where openapi-core 0.23 falls short, the documents stay within what it can check, or this module helps it:
- Its `spaceDelimited` splits on the literal text `%20`, never present once the query string is decoded (its own
  werkzeug integration decodes it too), and its `deepObject` only finds keys of word characters: both deserializers
  are replaced, through its documented `style_deserializers_factory` setting, by ones that split on the decoded
  space and take any key text (one level, as OpenAPI defines the style).
- Path parameters are matched on the raw path (so an encoded `/` stays inside its segment) and then handed over
  still percent-encoded: `_DecodingParameters` decodes each one, as a server does after routing. Cookie values
  are percent-decoded the same way (our cookies are percent-encoded, as RFC 6570 form style is).
- Delimited values (form, pipe, space, simple) are split after decoding, so array items in those styles are
  enums, numbers or patterns that cannot contain the delimiter (an ambiguity of the styles themselves), and
  objects sent `deepObject` in form bodies declare their members (no nested free-form values).
- It looks for a path item's `servers` before its operation's (OpenAPI says the operation's win), so the
  document with an operation server has none at path level.
- Not in the documents: `label`/`matrix` path styles and a `deepObject` nested deeper than one level (not
  deserialized), parameters with a type array (crash), multipart text parts that are not strings (not cast);
  empty files (an empty body reads as none).
- hypothesis-jsonschema 0.23 drives Hypothesis's private `many` helper through a method Hypothesis removed;
  `_LegacyMany` restores it for that module only. Custom formats give it uuids and base64 file contents.
  Shrinking is off: each step re-runs openapi-core, and a failure could shrink for minutes; the derandomized
  failing example is printed as generated.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import hypothesis_jsonschema._from_schema as hypothesis_jsonschema_internals
import pytest
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture import utils as conjecture_utils
from hypothesis_jsonschema import from_schema
from openapi_core import Config, OpenAPI
from openapi_core.casting.schemas import oas30_write_schema_casters_factory, oas31_schema_casters_factory
from openapi_core.datatypes import RequestParameters
from openapi_core.deserializing.styles import StyleDeserializersFactory, style_deserializers
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from werkzeug.datastructures import Headers, ImmutableMultiDict

from mcp_server._catalog import load_manifest
from mcp_server._errors import InvalidArguments, ToolError
from mcp_server._model import Catalog, Connector
from mcp_server._openapi_document import load_document
from mcp_server._pipeline import Pipeline
from mcp_server._registry import Registry, ToolSpec, build_tool
from mcp_server._request import build_request, referenced_values
from mcp_server._secrets import Secret, ValueRef
from tests._upstream import FakeUpstream, UpstreamThread

# openapi-core warns on every read of `allowEmptyValue` (deprecated by OpenAPI 3.1), which store's `promo` uses.
pytestmark = pytest.mark.filterwarnings("ignore:Use of allowEmptyValue property is deprecated:DeprecationWarning")

FIXTURES = Path(__file__).parent / "fixtures" / "conformance"
CREDENTIAL = "conformance-credential"
EXAMPLES = 20
PIPELINE_EXAMPLES = 6


@dataclass(frozen=True, slots=True)
class Described:
    """One fixture document: its manifest, the document file, whether openapi-core reads that file (Swagger 2.0:
    it reads the converted document instead) and the first server, split into the origin a request goes to and
    the path prefix in front of every operation."""

    manifest: str
    document: str
    openapi_core_reads_file: bool
    origin: str
    prefix: str


DOCUMENTS = {
    "store": Described("store.yaml", "store-3.0.yaml", True, "https://api.store.example", "/v2"),
    "events": Described("events.yaml", "events-3.1.json", True, "https://eu.events.example.com", "/api"),
    "legacy": Described("legacy.yaml", "legacy-2.0.yaml", False, "https://legacy.example.org", "/v1"),
}

SKIPPED = {
    ("store", "list_stores"): (
        "openapi-core 0.23 reads a form-style exploded object (city=Berlin&country=DE) from a query key named "
        "after the parameter, which never exists, so it cannot check the one parameter this operation has"
    ),
    ("events", "upload_poster"): (
        "openapi-core 0.23 reads an OpenAPI 3.1 multipart file part as bytes, then its 3.1 schema validator "
        "rejects bytes as not `type: string` (3.0 file parts validate, see store/upload_product_image)"
    ),
}

PIPELINE_OPERATIONS = {
    "store": ("list_products", "get_review", "create_checkout_session", "upload_product_image"),
    "events": ("list_events", "search_events", "replace_event_settings"),
    "legacy": ("list_users", "get_user_file", "upload_avatar"),
}

_UNSAFE_SEGMENT = "a path parameter cannot be empty, '.' or '..'"


# ------------------------------------------------------------------ hypothesis-jsonschema on current Hypothesis


class _LegacyMany:
    """`many(...).more()` / `.reject()` as hypothesis-jsonschema 0.23 calls them, over the context-manager `many`
    of current Hypothesis (which must be entered, iterated and exited)."""

    def __init__(self, data: Any, **sizes: Any) -> None:
        self._many: Any = conjecture_utils.many(data, **sizes)
        self._elements: Iterator[None] | None = None

    def more(self) -> bool:
        if self._elements is None:
            self._elements = iter(self._many.__enter__())
        if next(self._elements, StopIteration) is StopIteration:
            self._many.__exit__(None, None, None)
            return False
        return True

    def reject(self, why: str | None = None) -> None:
        self._many.reject(why)


if not hasattr(conjecture_utils.many, "more"):
    hypothesis_jsonschema_internals.cu = types.SimpleNamespace(many=_LegacyMany)  # type: ignore[attr-defined]


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


_FORMATS = {
    "uuid": st.uuids().map(str),
    # Non-empty: openapi-core reads an empty body as a missing one.
    "binary": st.binary(min_size=1, max_size=48).map(_base64),
    "byte": st.binary(max_size=48).map(_base64),
}


def arguments_for(tool: ToolSpec) -> st.SearchStrategy[dict[str, Any]]:
    strategy = from_schema(json.loads(json.dumps(tool.input_schema)), custom_formats=_FORMATS)
    return cast(st.SearchStrategy[dict[str, Any]], strategy)


def _examples(count: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


# ------------------------------------------------------------------ openapi-core


class _DecodingParameters(RequestParameters):
    """Path values as a server sees them: openapi-core sets them from the raw path it matched, still encoded."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "path":
            value = {key: unquote(text) for key, text in cast(Mapping[str, str], value).items()}
        super().__setattr__(name, value)


class WireRequest:
    """openapi-core's `Request` protocol over a request as sent: method, absolute URL, header list and body."""

    def __init__(self, method: str, url: str, headers: Sequence[tuple[str, str]], body: bytes | None) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host_url = f"{parts.scheme}://{parts.netloc}"
        self.path = parts.path
        self.method = method.lower()
        self.headers = Headers(list(headers))
        cookies = []
        for pair in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = pair.strip().partition("=")
            if name:
                cookies.append((unquote(name), unquote(value)))
        self.parameters: RequestParameters = _DecodingParameters(
            query=ImmutableMultiDict(parse_qsl(parts.query, keep_blank_values=True)),
            header=self.headers,
            cookie=ImmutableMultiDict(cookies),
        )
        self.body = body
        self.content_type = (self.headers.get("Content-Type") or "").lower()

    def describe(self) -> str:
        body = self.body[:600] if self.body else self.body
        return f"{self.method.upper()} {self.url}\n{list(self.headers.items())}\n{body!r}"


def _space_delimited(explode: bool, name: str, schema_type: str, location: Mapping[str, Any]) -> Any:
    """`a%20b`, as decoded: `a b` (openapi-core 0.23 looks for the literal `%20`)."""
    if explode or schema_type != "array":
        raise ValueError("not available")
    return cast(str, location[name]).split(" ")


def _deep_object(explode: bool, name: str, schema_type: str, location: Mapping[str, Any]) -> Any:
    """`name[key]=value` for any key text (openapi-core 0.23 needs at least one key of word characters)."""
    if not explode or schema_type != "object":
        raise ValueError("not available")
    prefix = f"{name}["
    found = {
        key[len(prefix) : -1]: value for key, value in location.items() if key.startswith(prefix) and key[-1] == "]"
    }
    if not found:
        raise KeyError(name)
    return found


def _as_given(value: Any) -> Any:
    return value


def _openapi_core_config(version: str) -> Config:
    casters = oas31_schema_casters_factory if version.startswith("3.1") else oas30_write_schema_casters_factory
    return Config(
        style_deserializers_factory=StyleDeserializersFactory(
            casters,
            style_deserializers={
                **style_deserializers,
                "spaceDelimited": _space_delimited,
                "deepObject": _deep_object,
            },
        ),
        # Formatted strings stay strings, so unmarshalled values compare with the arguments as given.
        extra_format_unmarshallers={name: _as_given for name in ("date", "date-time", "uuid", "byte")},
    )


# ------------------------------------------------------------------ the documents as connectors


@dataclass(frozen=True)
class Api:
    name: str
    described: Described
    connector: Connector
    tools: Mapping[str, ToolSpec]  # by operation name

    @functools.cached_property
    def openapi(self) -> OpenAPI:
        path = FIXTURES / self.described.document
        document = load_document(str(path), FIXTURES)
        config = _openapi_core_config(str(document.root["openapi"]))
        if self.described.openapi_core_reads_file:
            return OpenAPI.from_file_path(str(path), config=config)
        return OpenAPI.from_dict(document.root, config=config, base_uri=document.uri)

    def credentials(self, tool: ToolSpec) -> dict[ValueRef, str]:
        return {ref: CREDENTIAL for ref in referenced_values(self.connector, tool.operation)}

    def check(self, tool: ToolSpec, arguments: Mapping[str, Any], request: WireRequest) -> None:
        """The request validates against the document, and what the document's reader gets back is the arguments."""
        try:
            self.openapi.validate_request(request)
            result = self.openapi.unmarshal_request(request)
            result.raise_for_errors()
        except Exception as exc:
            causes = [repr(exc)]
            while exc.__cause__ is not None:
                exc = cast(Exception, exc.__cause__)
                causes.append(repr(exc))
            pytest.fail(f"{tool.name}: request does not conform:\n{request.describe()}\n" + "\n".join(causes))
        try:
            _compare(tool, arguments, request, result.parameters, result.body)
        except AssertionError as exc:
            pytest.fail(f"{tool.name}: {exc}\n{request.describe()}\nunmarshalled body: {result.body!r}")


def _load(name: str, manifest: Path) -> Api:
    connector, faults = load_manifest(manifest)
    assert not faults, faults
    return Api(name, DOCUMENTS[name], connector, {op.name: build_tool(connector, op) for op in connector.operations})


@functools.cache
def api(name: str) -> Api:
    return _load(name, FIXTURES / "manifests" / DOCUMENTS[name].manifest)


CASES = [(name, operation) for name in DOCUMENTS for operation in api(name).tools]


# ------------------------------------------------------------------ what arrived is what was given


def _unsent(value: Any) -> bool:
    """No wire form outside JSON: `None`, and (RFC 6570's "undefined") an empty array or object."""
    return value is None or value == [] or value == {}


def _same(expected: Any, received: Any, where: str) -> None:
    """`received` carries `expected`; it may carry more object members (defaults the reader filled in)."""
    if isinstance(expected, Mapping):
        assert isinstance(received, Mapping), f"{where}: expected an object, received {received!r}"
        got = cast(Mapping[str, Any], received)
        for key, value in cast(Mapping[str, Any], expected).items():
            if _unsent(value):
                continue
            assert key in got, f"{where}.{key}: not received"
            _same(value, got[key], f"{where}.{key}")
    elif isinstance(expected, list):
        items = cast(list[Any], expected)
        assert isinstance(received, list), f"{where}: expected an array, received {received!r}"
        assert len(cast(list[Any], received)) == len(items), f"{where}: {received!r} != {items!r}"
        for index, (item, got) in enumerate(zip(items, cast(list[Any], received), strict=True)):
            _same(item, got, f"{where}[{index}]")
    else:
        if isinstance(received, str) and not isinstance(expected, str):
            # A member the document declares no type for: form encodings carry its text only.
            try:
                received = json.loads(received)
            except ValueError:
                raise AssertionError(f"{where}: sent {expected!r}, received the text {received!r}") from None
        assert received == expected and isinstance(received, bool) == isinstance(expected, bool), (
            f"{where}: sent {expected!r}, received {received!r}"
        )


def _compare(tool: ToolSpec, arguments: Mapping[str, Any], request: WireRequest, parameters: Any, body: Any) -> None:
    body_properties: dict[str, Any] = {}
    whole_body: Any = None
    for argument, value in arguments.items():
        binding = tool.bindings[argument]
        if binding.location == "body_property":
            body_properties[binding.name] = value
        elif binding.location == "body":
            whole_body = value
        elif not _unsent(value):
            received = cast(Mapping[str, Any], getattr(parameters, binding.location))
            assert binding.name in received, f"{binding.location} parameter {binding.name!r}: not received"
            _same(value, received[binding.name], f"{binding.location} parameter {binding.name!r}")
    operation_body = tool.operation.body
    if operation_body is None:
        assert request.body is None, "a body was sent for an operation without one"
        return
    media_type = operation_body.content_type
    if whole_body is None and not body_properties:
        assert request.body is None or request.body == b"{}", f"unexpected body {request.body!r}"
        return
    sent: Any = whole_body if whole_body is not None else body_properties
    if media_type == "application/json" or media_type.endswith("+json"):
        assert request.body is not None
        assert json.loads(request.body) == sent, f"JSON body {request.body!r} is not the arguments {sent!r}"
    elif media_type.startswith("text/"):
        assert body == sent
    elif media_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        properties = cast(Mapping[str, Any], tool.input_schema["properties"])
        expected = {
            binding.name: _file_bytes(value, properties[argument])
            for argument, value in arguments.items()
            if (binding := tool.bindings[argument]).location == "body_property"
        }
        _same(expected, body, "body")
    else:
        assert body == base64.b64decode(sent), "binary body is not the decoded argument"


def _file_bytes(value: Any, schema: Mapping[str, Any]) -> Any:
    return base64.b64decode(value) if schema.get("format") == "binary" and isinstance(value, str) else value


# ------------------------------------------------------------------ every operation, through build_request


@pytest.mark.parametrize(("document", "operation"), CASES, ids=[f"{d}/{o}" for d, o in CASES])
def test_requests_conform_to_the_description(document: str, operation: str) -> None:
    if (document, operation) in SKIPPED:
        pytest.skip(SKIPPED[(document, operation)])
    described = api(document)
    tool = described.tools[operation]
    credentials = described.credentials(tool)
    validated = 0

    @_examples(EXAMPLES)
    @given(arguments=arguments_for(tool))
    def check(arguments: dict[str, Any]) -> None:
        nonlocal validated
        tool.validate(arguments)  # the generator only produces what the tool accepts
        try:
            request = build_request(described.connector, tool.operation, tool.bindings, arguments, credentials)
        except InvalidArguments as exc:
            if _UNSAFE_SEGMENT in exc.message:  # refused by design: it would address another resource
                reject()
            raise
        described.check(tool, arguments, WireRequest(request.method, request.url, request.headers, request.content))
        validated += 1

    check()
    assert validated >= EXAMPLES // 2, f"only {validated} examples were validated"


def test_every_operation_of_every_document_is_covered() -> None:
    assert len(CASES) == 42
    assert {name: len(api(name).tools) for name in DOCUMENTS} == {"store": 18, "events": 15, "legacy": 9}
    assert all(key in CASES for key in SKIPPED)


# ------------------------------------------------------------------ a few operations, on the wire


class _Vault:
    def get(self, name: str) -> Secret | None:
        return Secret(CREDENTIAL)


class _AnswerEverything:
    """ASGI middleware that hands every HTTP request to the fake upstream's handler before any routing: Starlette's
    `{path:path}` route does not match a path whose decoded form holds a line break, and would answer 404 unseen."""

    def __init__(self, app: Any, upstream: FakeUpstream) -> None:
        self.app = app
        self.upstream = upstream

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response = await self.upstream._handle(Request(scope, receive))
        await response(scope, receive, send)


class _RecordingUpstream(FakeUpstream):
    def app(self) -> Starlette:
        return Starlette(middleware=[Middleware(_AnswerEverything, upstream=self)])


@pytest.fixture(scope="module")
def recording_upstream() -> Iterator[FakeUpstream]:
    thread = UpstreamThread(_RecordingUpstream())
    yield thread.start()
    thread.stop()


@pytest.fixture(scope="module")
def wire_apis(recording_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Api]:
    """The documents again, with the fake upstream (under the server's path prefix) as base URL."""
    directory = tmp_path_factory.mktemp("conformance")
    loaded: dict[str, Api] = {}
    for name, described in DOCUMENTS.items():
        manifest = directory / f"{name}.yaml"
        manifest.write_text(
            f"name: {name}\nopenapi: {FIXTURES / described.document}\n"
            f"base_url: {recording_upstream.url}{described.prefix}\n"
        )
        loaded[name] = _load(name, manifest)
    return loaded


async def _invoke(registry: Registry, tool: str, arguments: Mapping[str, Any]) -> Any:
    async with Pipeline(registry, _Vault(), environ={}) as pipeline:
        return await pipeline.invoke(tool, arguments)


WIRE_CASES = [(name, operation) for name, operations in PIPELINE_OPERATIONS.items() for operation in operations]


@pytest.mark.parametrize(("document", "operation"), WIRE_CASES, ids=[f"{d}/{o}" for d, o in WIRE_CASES])
def test_requests_on_the_wire_conform(
    document: str, operation: str, wire_apis: dict[str, Api], recording_upstream: FakeUpstream
) -> None:
    wire = wire_apis[document]
    tool = wire.tools[operation]
    registry = Registry.from_catalog(Catalog(connectors=(wire.connector,)))
    origin = DOCUMENTS[document].origin
    checker = api(document)  # the same validator; only the base URL differs

    @_examples(PIPELINE_EXAMPLES)
    @given(arguments=arguments_for(tool))
    def check(arguments: dict[str, Any]) -> None:
        recording_upstream.requests.clear()
        outcome = asyncio.run(_invoke(registry, tool.name, arguments))
        if isinstance(outcome, InvalidArguments) and _UNSAFE_SEGMENT in outcome.message:
            reject()
        assert len(recording_upstream.requests) == 1, outcome.to_body() if isinstance(outcome, ToolError) else outcome
        seen = recording_upstream.requests[0]
        url = origin + seen.raw_path + (f"?{seen.query}" if seen.query else "")
        received = WireRequest(seen.method, url, list(seen.headers.items()), seen.body or None)
        checker.check(tool, arguments, received)

    check()


# ------------------------------------------------------------------ the bugs this module found


def _request_for(document: str, operation: str, arguments: dict[str, Any]) -> WireRequest:
    described = api(document)
    tool = described.tools[operation]
    tool.validate(arguments)
    request = build_request(described.connector, tool.operation, tool.bindings, arguments, described.credentials(tool))
    wire = WireRequest(request.method, request.url, request.headers, request.content)
    described.check(tool, arguments, wire)
    return wire


def test_query_strings_are_not_offered_empty_unless_allow_empty_value() -> None:
    """`allowEmptyValue` is false by default: `q=` does not conform, so the tool schema asks for one character."""
    tool = api("store").tools["list_products"]
    properties = tool.input_schema["properties"]
    assert properties["q"]["minLength"] == 1
    assert "minLength" not in properties["promo"]  # allowEmptyValue: true
    assert "minLength" not in properties["sort"]  # an enum says for itself
    with pytest.raises(InvalidArguments, match=r"\$\.q"):
        tool.validate({"q": ""})
    assert _request_for("store", "list_products", {"promo": ""}).parameters.query["promo"] == ""


def test_integer_formats_bound_the_tool_schema() -> None:
    """`format: int64`/`int32` is enforced by OpenAPI validators, not by JSON Schema's: the bounds say it."""
    product_id = api("store").tools["get_product"].input_schema["properties"]["productId"]
    assert (product_id["minimum"], product_id["maximum"]) == (1, 2**63 - 1)  # the document's own minimum is tighter
    user_id = api("legacy").tools["get_user"].input_schema["properties"]["userId"]
    assert (user_id["minimum"], user_id["maximum"]) == (1, 2**31 - 1)
    limit = api("store").tools["list_products"].input_schema["properties"]["limit"]
    assert (limit["minimum"], limit["maximum"]) == (1, 100)
    with pytest.raises(InvalidArguments, match="productId"):
        api("store").tools["get_product"].validate({"productId": 2**63})
    _request_for("store", "get_product", {"productId": 2**63 - 1})


def test_null_reaches_a_json_body_where_the_schema_names_it() -> None:
    """A required nullable property must be sent, and a PATCH clears a field with null: `None` becomes `null`."""
    settings_body = _request_for(
        "events",
        "replace_event_settings",
        {
            "eventId": "0b9e4c1e-54a5-4a43-9f0c-3f1e2a0f8d11",
            "registration": {"open": True},
            "reminders": [],
            "contact": None,
        },
    ).body
    assert settings_body is not None
    assert json.loads(settings_body) == {"registration": {"open": True}, "reminders": [], "contact": None}
    patch = _request_for("events", "update_event", {"eventId": "0b9e4c1e-54a5-4a43-9f0c-3f1e2a0f8d11", "ends_at": None})
    assert patch.body == b'{"ends_at":null}'
    # Where the schema has no null, None still means "not given" (the tool refuses it before any request).
    with pytest.raises(InvalidArguments):
        api("events").tools["update_event"].validate({"eventId": "0b9e4c1e-54a5-4a43-9f0c-3f1e2a0f8d11", "title": None})


FORM_ARRAY_DOCUMENT = """
openapi: 3.0.3
info: {title: Form arrays, version: "1"}
servers: [{url: "https://forms.example"}]
paths:
  /subscriptions:
    post:
      operationId: subscribe
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              required: [topics]
              properties:
                topics: {type: array, items: {type: string, enum: [news, offers]}}
      responses: {"200": {description: Subscribed.}}
"""


def test_form_body_arrays_follow_the_default_encoding(tmp_path: Path) -> None:
    """Without an `encoding` object a form body is form style, exploded: `topics=news&topics=offers`."""
    (tmp_path / "forms.yaml").write_text(FORM_ARRAY_DOCUMENT)
    (tmp_path / "manifest.yaml").write_text("name: forms\nopenapi: forms.yaml\n")
    connector, _ = load_manifest(tmp_path / "manifest.yaml")
    tool = build_tool(connector, connector.operations[0])
    arguments = {"topics": ["news", "offers"]}
    request = build_request(connector, tool.operation, tool.bindings, arguments, {})
    assert request.content == b"topics=news&topics=offers"
    wire = WireRequest(request.method, request.url, request.headers, request.content)
    OpenAPI.from_file_path(str(tmp_path / "forms.yaml")).validate_request(wire)


# ------------------------------------------------------------------ OpenAPI fidelity: one document per rule


def _document_api(tmp_path: Path, name: str, document: str, origin: str = "https://fidelity.example") -> Api:
    """A document written to `tmp_path` as an `openapi:` connector, checked by openapi-core like the fixtures."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(document)
    (tmp_path / f"{name}-manifest.yaml").write_text(f"name: {name}\nopenapi: {path.name}\n")
    connector, faults = load_manifest(tmp_path / f"{name}-manifest.yaml")
    assert not faults, faults
    described = Described(f"{name}-manifest.yaml", str(path), True, origin, "")
    tools = {op.name: build_tool(connector, op) for op in connector.operations}
    return Api(name, described, connector, tools)


def _checked(described: Api, operation: str, arguments: dict[str, Any]) -> WireRequest:
    tool = described.tools[operation]
    tool.validate(arguments)
    request = build_request(described.connector, tool.operation, tool.bindings, arguments, {})
    wire = WireRequest(request.method, request.url, request.headers, request.content)
    described.check(tool, arguments, wire)
    return wire


FORM_ENCODING_DOCUMENT = """
openapi: 3.0.3
info: {title: Form encodings, version: "1"}
servers: [{url: "https://fidelity.example"}]
paths:
  /forms:
    post:
      operationId: submit
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              properties:
                exploded: {type: array, items: {type: string, enum: [a, b, c]}}
                commas: {type: array, items: {type: string, enum: [a, b, c]}}
                spaces: {type: array, items: {type: integer}}
                pipes: {type: array, items: {type: string, enum: [x, y]}}
                filter:
                  type: object
                  properties: {lang: {type: string, enum: [de, en]}, level: {type: integer}}
                settings:
                  type: object
                  properties: {note: {type: string}, flags: {type: array, items: {type: boolean}}}
                title: {type: string}
            encoding:
              commas: {style: form, explode: false}
              spaces: {style: spaceDelimited, explode: false}
              pipes: {style: pipeDelimited, explode: false}
              filter: {style: deepObject, explode: true}
              settings: {contentType: application/json}
      responses: {"200": {description: OK.}}
"""


def test_form_body_encoding_styles_conform(tmp_path: Path) -> None:
    described = _document_api(tmp_path, "forms", FORM_ENCODING_DOCUMENT)
    arguments = {
        "exploded": ["a", "b"],
        "commas": ["b", "c"],
        "spaces": [1, 22],
        "pipes": ["x", "y"],
        "filter": {"lang": "de", "level": 3},
        "settings": {"note": "über & more", "flags": [True, False]},
        "title": "a + b = c",
    }
    wire = _checked(described, "submit", arguments)
    assert wire.body == (
        b"exploded=a&exploded=b&commas=b,c&spaces=1%2022&pipes=x|y&filter[lang]=de&filter[level]=3"
        b"&settings=%7B%22note%22%3A%22%C3%BCber%20%26%20more%22%2C%22flags%22%3A%5Btrue%2Cfalse%5D%7D"
        b"&title=a%20%2B%20b%20%3D%20c"
    )


MULTIPART_ENCODING_DOCUMENT = """
openapi: 3.0.3
info: {title: Multipart encodings, version: "1"}
servers: [{url: "https://fidelity.example"}]
paths:
  /uploads:
    post:
      operationId: upload
      requestBody:
        required: true
        content:
          multipart/form-data:
            schema:
              type: object
              required: [file]
              properties:
                file: {type: string, format: binary}
                labels: {type: array, items: {type: string}}
                caption: {type: string}
            encoding:
              file: {contentType: image/png}
              labels: {contentType: application/json}
      responses: {"201": {description: Uploaded.}}
"""


def test_multipart_encoding_content_types_conform(tmp_path: Path) -> None:
    described = _document_api(tmp_path, "uploads", MULTIPART_ENCODING_DOCUMENT)
    arguments = {"file": base64.b64encode(b"\x89PNG").decode(), "labels": ["a", "b c"], "caption": "hi"}
    wire = _checked(described, "upload", arguments)
    assert wire.body is not None
    assert b'name="labels"\r\nContent-Type: application/json\r\n\r\n"b c"\r\n' in wire.body  # a part per item
    assert b'filename="file"\r\nContent-Type: image/png\r\n' in wire.body


CONTENT_PARAMETER_DOCUMENT = """
openapi: 3.0.3
info: {title: Content parameters, version: "1"}
servers: [{url: "https://fidelity.example"}]
paths:
  /search/{scope}:
    get:
      operationId: search
      parameters:
        - name: scope
          in: path
          required: true
          content:
            application/json:
              schema: {type: object, required: [org], properties: {org: {type: string}}}
        - name: filter
          in: query
          content:
            application/json:
              schema:
                type: object
                properties:
                  q: {type: string}
                  tags: {type: array, items: {type: string}}
                  min: {type: integer}
        - name: X-Context
          in: header
          content:
            application/json:
              schema: {type: object, properties: {user: {type: string}}}
      responses: {"200": {description: OK.}}
"""


def test_content_parameters_conform(tmp_path: Path) -> None:
    described = _document_api(tmp_path, "content", CONTENT_PARAMETER_DOCUMENT)
    arguments = {
        "scope": {"org": "a/b c"},
        "filter": {"q": "größe & more", "tags": ["x", "y,z"], "min": 2},
        "X-Context": {"user": "Zoë"},
    }
    wire = _checked(described, "search", arguments)
    assert wire.parameters.query["filter"] == '{"q":"größe & more","tags":["x","y,z"],"min":2}'
    assert wire.headers["X-Context"] == '{"user":"Zo\\u00eb"}'


def test_an_operations_own_server_is_reached_through_the_guard(
    tmp_path: Path, recording_upstream: FakeUpstream
) -> None:
    """Operation `servers` win over the document's; the SSRF guard lets that host through like the base URL's.

    The document's server is a name that never resolves and the operation's is the fake upstream on loopback,
    which the guard refuses unless it is one of the connector's own base URL hosts. (No path item servers here:
    openapi-core 0.23 would prefer them to the operation's; the converter's tests cover that order.)
    """
    document = f"""
openapi: 3.0.3
info: {{title: Servers, version: "1"}}
servers: [{{url: "https://api.fidelity.invalid/v1"}}]
paths:
  /assets/{{name}}:
    put:
      operationId: putAsset
      servers: [{{url: "{recording_upstream.url}/uploads"}}]
      parameters:
        - {{name: name, in: path, required: true, schema: {{type: string, enum: [logo.png]}}}}
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema: {{type: object, properties: {{tags: {{type: array, items: {{type: string, enum: [a, b]}}}}}}}}
      responses: {{"200": {{description: OK.}}}}
"""
    described = _document_api(tmp_path, "servers", document, origin=recording_upstream.url)
    tool = described.tools["put_asset"]
    assert tool.operation.base_url == f"{recording_upstream.url}/uploads"
    registry = Registry.from_catalog(Catalog(connectors=(described.connector,)))
    arguments = {"name": "logo.png", "tags": ["a", "b"]}
    recording_upstream.requests.clear()
    outcome = asyncio.run(_invoke(registry, tool.name, arguments))
    assert len(recording_upstream.requests) == 1, outcome.to_body() if isinstance(outcome, ToolError) else outcome
    seen = recording_upstream.requests[0]
    assert seen.raw_path == "/uploads/assets/logo.png"
    url = recording_upstream.url + seen.raw_path + (f"?{seen.query}" if seen.query else "")
    described.check(tool, arguments, WireRequest(seen.method, url, list(seen.headers.items()), seen.body or None))
