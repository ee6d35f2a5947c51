"""Turn one validated tool call into the HTTP request to send. Pure: no I/O, no clock.

The rules (the per-location value forms live in `_serialize`):

- URL: the operation's own `base_url` (OpenAPI's operation or path item `servers`) or else the
  connector's, + the operation path with its `{placeholders}` expanded + `?query`.
  Query pairs follow `operation.parameters` order; an `api_key` in the query comes last.
- Headers, lowest to highest precedence: connector `headers`, operation `headers`, header
  parameters, the body's `Content-Type`, the merged `Cookie`, auth. Names compare
  case-insensitively and only the winner is sent, so no argument can replace credentials.
- Cookies: a `Cookie` from the manifest's headers, then cookie parameters, then an
  `api_key` cookie, merged into one `Cookie: a=1; b=2`; a later cookie of the same name
  replaces earlier ones.
- Body: a `body` binding supplies the whole value; otherwise `body_property` arguments are
  collected into an object. An optional body with no arguments is not sent at all. The declared
  media type picks the encoding: `application/json` and `+json` types JSON; form-urlencoded
  per the body's `form_style` (Stripe-style brackets, or OpenAPI's exploded form) with its
  per-property `encoding`; `multipart/form-data` one part per property (base64 file fields
  decoded; an `encoding` JSON type makes a JSON part), sent with its boundary; `text/*` a
  string as UTF-8 (anything else as JSON); any other type is binary: the value is base64 text,
  sent decoded.
- Arguments absent or `None` are not sent; a path parameter must have a value, and one that
  would expand to an empty, `.` or `..` segment is refused (it would address another resource).
  The exception is a property of a JSON body whose schema admits null explicitly: its `None`
  is sent as `null` (a required nullable property must be present; in a PATCH, null clears).

Faults in arguments raise `InvalidArguments` with `details["path"]` = `$.<argument>`. A manifest
or secret value that would split a header raises `ValueError` naming the value's source,
never the value.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast

from mcp_server._errors import InvalidArguments
from mcp_server._model import (
    FORM_CONTENT_TYPE,
    PATH_PLACEHOLDER,
    ApiKeyAuth,
    Auth,
    BasicAuth,
    BearerAuth,
    Connector,
    HeadersAuth,
    HmacAuth,
    JwtAuth,
    NoAuth,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    Operation,
    SigV4Auth,
)
from mcp_server._secrets import ValueRef
from mcp_server._serialize import (
    MULTIPART_CONTENT_TYPE,
    LoneSurrogate,
    Pairs,
    UnserializableValue,
    decode_base64,
    dump_json,
    encode,
    form_body,
    has_control_characters,
    is_json_media_type,
    multipart_body,
    serialize_cookie,
    serialize_header,
    serialize_path,
    serialize_query,
    unencodable_path,
)

BindingLocation = Literal["path", "query", "header", "cookie", "body_property", "body"]

# Segments a URL normaliser collapses: `/items/..` would be sent as `/`.
_UNSAFE_SEGMENTS = frozenset({"", ".", ".."})
_PARAMETER_LOCATIONS = frozenset({"path", "query", "header", "cookie"})


@dataclass(frozen=True, slots=True)
class Binding:
    """Where one flat tool argument goes: a parameter (by its original name and location), one property of an
    object body, or the whole body."""

    location: BindingLocation
    name: str  # original parameter name / body property name ("body" for the whole body)


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    method: str
    url: str  # base_url + expanded path + "?" + encoded query (if any)
    headers: tuple[tuple[str, str], ...]  # in send order; Content-Type with a body, Cookie with cookies
    content: bytes | None


def referenced_values(connector: Connector, operation: Operation) -> tuple[ValueRef, ...]:
    """Every non-literal ValueRef the request needs (auth values, connector headers, operation headers),
    deduplicated, in that order."""
    refs = [*_auth_refs(connector), *connector.headers.values(), *operation.headers.values()]
    return tuple(ref for ref in dict.fromkeys(refs) if ref.is_sensitive)


def _auth_refs(connector: Connector) -> list[ValueRef]:
    auth = connector.auth
    if isinstance(auth, BearerAuth):
        return [auth.token]
    if isinstance(auth, ApiKeyAuth):
        return [auth.value]
    if isinstance(auth, BasicAuth):
        return [auth.username, auth.password]
    if isinstance(auth, HeadersAuth):
        return list(auth.headers.values())
    if isinstance(auth, OAuth2ClientCredentials):
        return [auth.client_id, auth.client_secret]
    if isinstance(auth, OAuth2AuthorizationCode):
        # The token set itself is read by the token provider from its own vault record.
        return [auth.client_id, *([auth.client_secret] if auth.client_secret is not None else [])]
    if isinstance(auth, JwtAuth):
        return [auth.key]
    if isinstance(auth, HmacAuth):
        return [auth.key_id, auth.secret]
    if isinstance(auth, SigV4Auth):
        return [auth.access_key_id, auth.secret_access_key, *([auth.session_token] if auth.session_token else [])]
    return []


def build_request(
    connector: Connector,
    operation: Operation,
    bindings: Mapping[str, Binding],
    arguments: Mapping[str, Any],
    resolved: Mapping[ValueRef, str],
) -> PreparedRequest:
    """`arguments` are already validated against the tool's input schema; `resolved` maps every ValueRef from
    referenced_values() to its plain value (literals are resolved by build_request itself)."""

    def value_of(ref: ValueRef) -> str:
        if not ref.is_sensitive:
            return ref.value
        try:
            return resolved[ref]
        except KeyError:
            raise LookupError(f"{ref.describe()} was not resolved") from None

    def header_value(ref: ValueRef) -> str:
        text = value_of(ref)
        if has_control_characters(text):
            raise ValueError(f"{ref.describe()} contains a line break or another control character")
        if not text.isascii():
            # The HTTP client encodes header values as ASCII; anything else would fail mid-send.
            raise ValueError(f"{ref.describe()} contains non-ASCII characters, which a header cannot carry")
        return text

    # Parameters are keyed by (location, original name); the argument names are the tool's.
    argument_of = {(b.location, b.name): arg for arg, b in bindings.items() if b.location in _PARAMETER_LOCATIONS}
    path_values: dict[str, str] = {}
    query: Pairs = []
    header_params: list[tuple[str, str]] = []
    cookies: Pairs = []
    for parameter in operation.parameters:
        arg = argument_of.get((parameter.location, parameter.name))
        value = arguments.get(arg) if arg is not None else None
        if arg is None or value is None:
            if parameter.location == "path":
                where = arg or parameter.name
                raise InvalidArguments(f"Missing required path parameter {where!r}", path=f"$.{where}")
            continue
        with _blame(arg):
            if parameter.location == "path":
                path_values[parameter.name] = text = serialize_path(parameter, value)
                if text in _UNSAFE_SEGMENTS:
                    raise UnserializableValue("a path parameter cannot be empty, '.' or '..'")
            elif parameter.location == "query":
                query += serialize_query(parameter, value)
            elif parameter.location == "header":
                text = serialize_header(parameter, value)
                if text is not None:
                    header_params.append((parameter.name, text))
            else:
                cookies += serialize_cookie(parameter, value)

    path = PATH_PLACEHOLDER.sub(lambda m: path_values.get(m.group(1), m.group(0)), operation.path)
    auth = connector.auth

    headers = _Headers()
    for name, ref in [*connector.headers.items(), *operation.headers.items()]:
        headers.set(name, header_value(ref))
    manifest_cookie = headers.get("cookie") or ""
    for name, text in header_params:
        headers.set(name, text)

    content, content_type = _body(operation, bindings, arguments)
    if content_type is not None:
        headers.set("Content-Type", content_type)

    auth_cookie: Pairs = []
    if isinstance(auth, ApiKeyAuth) and auth.location == "cookie":
        auth_cookie = [(encode(auth.name), header_value(auth.value))]
    if cookies or auth_cookie:
        # Generated cookies replace any Cookie header, so a model-supplied one cannot shadow the credential.
        cookies = _merge(_merge(_parse_cookie(manifest_cookie), cookies), auth_cookie)
        headers.set("Cookie", "; ".join(f"{name}={text}" for name, text in cookies))
    if isinstance(auth, ApiKeyAuth) and auth.location == "query":
        query = _merge(query, [(encode(auth.name), encode(value_of(auth.value)))])
    _apply_auth_headers(auth, headers, value_of, header_value)

    url = (operation.base_url or connector.base_url).rstrip("/") + path
    if query:
        url += "?" + "&".join(f"{key}={text}" for key, text in query)
    return PreparedRequest(method=operation.method, url=url, headers=headers.items(), content=content)


@contextmanager
def _blame(arg: str) -> Generator[None]:
    """Turn a serialization fault into `InvalidArguments` pointing at the tool argument."""
    try:
        yield
    except UnserializableValue as exc:
        raise InvalidArguments(f"Argument {arg!r}: {exc}", path=f"$.{arg}") from None


def _body(
    operation: Operation, bindings: Mapping[str, Binding], arguments: Mapping[str, Any]
) -> tuple[bytes | None, str | None]:
    """The encoded body and its Content-Type, or `(None, None)` when no body is sent."""
    body = operation.body
    if body is None:
        return None, None
    content_type = body.content_type
    media_type = content_type.split(";", 1)[0].strip().lower()
    is_json = is_json_media_type(media_type)
    schemas = cast(Mapping[str, Any], (body.schema.get("properties") if is_json else None) or {})
    whole_arg = next((arg for arg, b in bindings.items() if b.location == "body"), None)
    argument_of = {b.name: arg for arg, b in bindings.items() if b.location == "body_property"}
    properties = {
        name: arguments[arg]
        for name, arg in argument_of.items()
        if arguments.get(arg) is not None or (arg in arguments and _admits_null(schemas.get(name)))
    }
    if whole_arg is not None and arguments.get(whole_arg) is not None:
        payload, fault_path = arguments[whole_arg], f"$.{whole_arg}"
    elif properties or (body.required and whole_arg is None):
        payload, fault_path = properties, "$"
    else:
        return None, None
    try:
        if media_type == FORM_CONTENT_TYPE:
            content = form_body(payload, body.form_style, body.encoding)
        elif media_type == MULTIPART_CONTENT_TYPE:
            if not isinstance(payload, Mapping):
                raise UnserializableValue("a multipart body must be an object")
            content, content_type = multipart_body(cast(Mapping[str, Any], payload), body.schema, body.encoding)
        elif media_type.startswith("text/"):
            # Text as it is; structured data has no other sensible encoding than JSON.
            content = payload.encode("utf-8") if isinstance(payload, str) else dump_json(payload)
        elif is_json:
            content = dump_json(payload)
        else:
            # `application/octet-stream`, `image/png`, ...: bytes cannot travel in JSON arguments but as base64.
            content = decode_base64(payload)
    except UnserializableValue as exc:
        if exc.key is not None:
            fault_path = f"{fault_path}.{exc.key}" if fault_path != "$" else f"$.{argument_of.get(exc.key, exc.key)}"
        elif isinstance(exc, LoneSurrogate):
            fault_path = unencodable_path(arguments) or fault_path
        raise InvalidArguments(f"Request body: {exc}", path=fault_path) from None
    return content, content_type


def _admits_null(schema: Any) -> bool:
    """Whether a schema names null itself: a `null` type, null in `enum` or `const`, or an `anyOf`/`oneOf` branch
    that does (an untyped `{}` accepts null too, but there `None` more likely means "not given")."""
    if not isinstance(schema, Mapping):
        return False
    spec = cast(Mapping[str, Any], schema)
    kind = spec.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    if ("const" in spec and spec["const"] is None) or (isinstance(spec.get("enum"), list) and None in spec["enum"]):
        return True
    branches = [branch for key in ("anyOf", "oneOf") for branch in cast(list[Any], spec.get(key) or [])]
    return any(_admits_null(branch) for branch in branches)


def _apply_auth_headers(
    auth: Auth,
    headers: _Headers,
    value_of: Callable[[ValueRef], str],
    header_value: Callable[[ValueRef], str],
) -> None:
    if isinstance(auth, NoAuth):
        return
    if isinstance(auth, BearerAuth):
        headers.set("Authorization", f"{auth.scheme} {header_value(auth.token)}")
    elif isinstance(auth, ApiKeyAuth):
        if auth.location == "header":
            headers.set(auth.name, header_value(auth.value))
    elif isinstance(auth, BasicAuth):
        pair = f"{value_of(auth.username)}:{value_of(auth.password)}".encode()
        headers.set("Authorization", "Basic " + base64.b64encode(pair).decode("ascii"))
    elif isinstance(auth, HeadersAuth):
        for name, ref in auth.headers.items():
            headers.set(name, header_value(ref))
    # Dynamic schemes (OAuth2, JWT, HMAC, SigV4) are applied per attempt by `_credentials`.


def _merge(lower: Pairs, higher: Pairs) -> Pairs:
    """`lower` without the names `higher` sets, then `higher`: the later source wins every name."""
    names = {name for name, _ in higher}
    return [pair for pair in lower if pair[0] not in names] + higher


def _parse_cookie(header: str) -> Pairs:
    pairs: Pairs = []
    for part in header.split(";"):
        name, _, text = part.strip().partition("=")
        if name:
            pairs.append((name, text))
    return pairs


class _Headers:
    """Headers in send order; setting a name again (any case) drops the earlier value."""

    def __init__(self) -> None:
        self._by_key: dict[str, tuple[str, str]] = {}

    def set(self, name: str, value: str) -> None:
        key = name.lower()
        self._by_key.pop(key, None)
        self._by_key[key] = (name, value)

    def get(self, name: str) -> str | None:
        entry = self._by_key.get(name.lower())
        return entry[1] if entry is not None else None

    def items(self) -> tuple[tuple[str, str], ...]:
        return tuple(self._by_key.values())
