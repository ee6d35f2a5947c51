"""Serialization rules for putting argument values on the wire.

Pure functions, one per location, following OpenAPI 3.1 `style`/`explode`
(whose path and query rules are RFC 6570's): path values are percent-encoded
with nothing left safe, query keys and values per RFC 3986 (space is `%20`),
header values are sent raw but must be printable ASCII. A parameter described
by `content` instead of a schema is one piece of text in any location: JSON for
JSON media types. Form bodies write each property either Stripe-style (bracket
keys, indexed arrays; hand-written manifests) or the OpenAPI way (as a query
parameter of style `form`, exploded; imported documents), and a per-property
`encoding` overrides either (a query style, or a content type: JSON text).
Multipart bodies are one part per property (RFC 7578), binary values arrive as
base64 text. Scalars print the same everywhere: `true`/`false`, integers
without `.0`, strings as they are. `None` (and, in exploded or keyed positions,
an empty array or object) means "not sent".

Every failure is an `UnserializableValue` naming the fault but never the value;
the request builder turns it into `InvalidArguments` with the argument's path.
"""

from __future__ import annotations

import base64
import json
import math
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import quote, quote_plus

from mcp_server._errors import printable
from mcp_server._model import FormStyle, Parameter, PropertyEncoding

# Header values must be visible ASCII, space or tab: a line break would start a new header
# (request smuggling by a model), other controls are refused by HTTP stacks, and non-ASCII
# text cannot be encoded by the HTTP client at all.
_BAD_HEADER_CHARS = re.compile(r"[^\t\x20-\x7e]")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_MAX_EXACT_FLOAT = 2**53


class UnserializableValue(ValueError):
    """An argument value that has no wire form in its location; the message never quotes the value.

    `key` names the body property at fault when the body builder knows it (multipart parts).
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


LONE_SURROGATE = "text contains a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not Unicode text"


class LoneSurrogate(UnserializableValue):
    """Text the client sent with an unpaired surrogate escape (JSON allows `"\\ud800"`): no wire form has it."""

    def __init__(self) -> None:
        super().__init__(LONE_SURROGATE)


Pairs = list[tuple[str, str]]


def format_scalar(value: Any) -> str:
    """One value as text: `true`/`false`, JSON-style numbers (`1`, not `1.0`), strings as they are.

    An array or object in a scalar position (an object inside an array parameter, say) has
    no OpenAPI form; it is sent as compact JSON, which is what such APIs usually parse.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnserializableValue("numbers must be finite")
        # JSON Schema counts 1.0 as an integer, so a model may send it for an integer parameter;
        # APIs parsing integers reject "1.0".
        if value.is_integer() and abs(value) < _MAX_EXACT_FLOAT:
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    return dump_json(value).decode("utf-8")


def dump_json(value: Any, *, ascii_only: bool = False) -> bytes:
    """Compact UTF-8 JSON (no spaces, no `\\u` escapes unless `ascii_only`); NaN and infinities are refused."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only, allow_nan=False)
    except ValueError:
        raise UnserializableValue("numbers must be finite") from None
    except TypeError:
        raise UnserializableValue("value is not JSON") from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # JSON let the client send a lone surrogate ("\ud800")
        raise LoneSurrogate from None


def encode(text: str) -> str:
    """RFC 3986 percent-encoding: everything but `A-Z a-z 0-9 - . _ ~` (UTF-8 for non-ASCII)."""
    return quote(text, safe="")


def is_json_media_type(media_type: str) -> bool:
    """`application/json` or any `+json` type, parameters and case ignored."""
    essence = media_type.split(";", 1)[0].strip().lower()
    return essence == "application/json" or essence.endswith("+json")


def content_text(content_type: str, value: Any, *, ascii_only: bool = False) -> str:
    """A value as one piece of text of `content_type`: JSON for JSON types, otherwise the scalar form (structured
    values as JSON all the same). `ascii_only` writes non-ASCII characters as `\\u` escapes: the same JSON."""
    if not is_json_media_type(content_type):
        return format_scalar(value)
    return dump_json(value, ascii_only=ascii_only).decode("utf-8")


def _items(value: Any) -> list[Any] | None:
    """The members of an array value, `None` members dropped; `None` if it is not an array."""
    if isinstance(value, (list, tuple)):
        return [item for item in cast(Sequence[Any], value) if item is not None]
    return None


def _entries(value: Any) -> list[tuple[str, Any]] | None:
    """The (key, value) entries of an object value, `None` values dropped; `None` if not an object."""
    if isinstance(value, Mapping):
        return [(str(k), v) for k, v in cast(Mapping[Any, Any], value).items() if v is not None]
    return None


def _flat(entries: list[tuple[str, Any]], enc: Callable[[str], str]) -> list[str]:
    """`k1, v1, k2, v2` — the non-exploded object form."""
    return [text for key, item in entries for text in (enc(key), enc(format_scalar(item)))]


def serialize_path(parameter: Parameter, value: Any) -> str:
    """The text that replaces `{name}`: style `simple` (default), `label` or `matrix`, per RFC 6570.

    Values, keys and names are percent-encoded with nothing safe, so `/`, `?` and `#`
    inside a value cannot change the path; the style's own delimiters stay literal. A `content`
    parameter is its text, percent-encoded.
    """
    if parameter.content_type is not None:
        return encode(content_text(parameter.content_type, value))
    style = parameter.effective_style
    explode = parameter.effective_explode
    name = encode(parameter.name)
    items = _items(value)
    entries = _entries(value)
    if style == "matrix":
        if items is not None:
            if explode and items:
                return "".join(f";{name}={encode(format_scalar(item))}" for item in items)
            return f";{name}={','.join(encode(format_scalar(i)) for i in items)}" if items else f";{name}"
        if entries is not None:
            if explode and entries:
                return "".join(f";{encode(k)}={encode(format_scalar(v))}" for k, v in entries)
            return f";{name}={','.join(_flat(entries, encode))}" if entries else f";{name}"
        text = encode(format_scalar(value))
        return f";{name}={text}" if text else f";{name}"
    if style == "label":
        if items is not None:
            return "." + ("." if explode else ",").join(encode(format_scalar(item)) for item in items)
        if entries is not None:
            if explode:
                return "." + ".".join(f"{encode(k)}={encode(format_scalar(v))}" for k, v in entries)
            return "." + ",".join(_flat(entries, encode))
        return "." + encode(format_scalar(value))
    return _simple(value, explode, encode)


def _simple(value: Any, explode: bool, enc: Callable[[str], str]) -> str:
    items = _items(value)
    if items is not None:
        return ",".join(enc(format_scalar(item)) for item in items)
    entries = _entries(value)
    if entries is not None:
        if explode:
            return ",".join(f"{enc(k)}={enc(format_scalar(v))}" for k, v in entries)
        return ",".join(_flat(entries, enc))
    return enc(format_scalar(value))


def serialize_query(parameter: Parameter, value: Any) -> Pairs:
    """Percent-encoded `(key, value)` pairs for the query string, joined by the caller with `=` and `&`.

    Styles: `form` (default; exploded arrays repeat the name, exploded objects use their own
    keys), `spaceDelimited` and `pipeDelimited` (non-exploded arrays and objects joined by
    `%20` / `|`; exploded ones behave as `form`) and `deepObject` (`o[k]=v`, nested
    `o[k][j]=v`, arrays indexed `o[k][0]=v`, brackets literal). Delimiters stay literal; a
    comma or pipe inside a value is encoded. An empty array or object is not sent (RFC 6570
    treats it as undefined). A primitive is `name=value` in every style. A `content` parameter is
    `name=<its text>` (JSON for JSON types; `[]` and `{}` are sent, being JSON values).
    """
    if parameter.content_type is not None:
        return [(encode(parameter.name), encode(content_text(parameter.content_type, value)))]
    return query_pairs(parameter.name, value, parameter.effective_style, parameter.effective_explode)


def query_pairs(name: str, value: Any, style: str, explode: bool) -> Pairs:
    """`serialize_query` for a name, style and explode given directly (form bodies reuse it per property)."""
    if style == "deepObject" and isinstance(value, (Mapping, list, tuple)):
        return [
            (encode(path[0]) + "".join(f"[{encode(part)}]" for part in path[1:]), encode(text))
            for path, text in _flatten_brackets([name], value)
        ]
    delimiter = {"spaceDelimited": "%20", "pipeDelimited": "|"}.get(style, ",")
    return _form_pairs(name, value, explode, delimiter)


def _form_pairs(name: str, value: Any, explode: bool, delimiter: str) -> Pairs:
    items = _items(value)
    if items is not None:
        if not items:
            return []
        if explode:
            return [(encode(name), encode(format_scalar(item))) for item in items]
        return [(encode(name), delimiter.join(encode(format_scalar(item)) for item in items))]
    entries = _entries(value)
    if entries is not None:
        if not entries:
            return []
        if explode:
            return [(encode(k), encode(format_scalar(v))) for k, v in entries]
        return [(encode(name), delimiter.join(_flat(entries, encode)))]
    return [(encode(name), encode(format_scalar(value)))]


def _flatten_brackets(path: list[str], value: Any) -> list[tuple[list[str], str]]:
    """Leaves of a nested value with their key paths (arrays indexed `0`, `1`, ...); `None` skipped.

    Paths stay lists so a key containing `[` or `]` is still encoded as one part.
    """
    if value is None:
        return []
    if isinstance(value, Mapping):
        children = [(str(k), v) for k, v in cast(Mapping[Any, Any], value).items()]
    elif isinstance(value, (list, tuple)):
        children = [(str(i), v) for i, v in enumerate(cast(Sequence[Any], value))]
    else:
        return [(path, format_scalar(value))]
    return [leaf for key, item in children for leaf in _flatten_brackets([*path, key], item)]


def serialize_header(parameter: Parameter, value: Any) -> str | None:
    """A header parameter's value, style `simple`: arrays `a,b`; objects `k,v,k2,v2`, exploded `k=v,k2=v2`.

    Not percent-encoded (headers carry raw text), so anything but printable ASCII, space and
    tab is refused. `None` when there is nothing to send (an empty array or object). A `content`
    parameter is its text, JSON with non-ASCII characters escaped (`\\u00e9`) so that it fits a header.
    """
    if parameter.content_type is not None:
        text = content_text(parameter.content_type, value, ascii_only=True)
        check_header_value(text)
        return text
    items = _items(value)
    entries = _entries(value)
    if (items is not None and not items) or (entries is not None and not entries):
        return None
    text = _simple(value, parameter.effective_explode, lambda s: s)
    check_header_value(text)
    return text


def check_header_value(text: str) -> None:
    """Refuse a header value that could split the header or that the HTTP client cannot encode."""
    match = _BAD_HEADER_CHARS.search(text)
    if match is None:
        return
    if has_control_characters(match.group()):
        raise UnserializableValue("header values cannot contain line breaks or other control characters")
    raise UnserializableValue("header values must be ASCII text")


def has_control_characters(text: str) -> bool:
    """Line breaks, NUL and the other controls HTTP forbids in header values (tab is allowed)."""
    return _CONTROL_CHARS.search(text) is not None


def serialize_cookie(parameter: Parameter, value: Any) -> Pairs:
    """`(name, value)` cookie pairs, style `form`: exploded arrays repeat the name, exploded objects use
    their keys, non-exploded ones are comma-joined. Names and values are percent-encoded (RFC 3986) so
    `;`, `,` and spaces in a value cannot break the `Cookie` header. A `content` parameter is
    `name=<its text, percent-encoded>`.
    """
    if parameter.content_type is not None:
        return [(encode(parameter.name), encode(content_text(parameter.content_type, value)))]
    return _form_pairs(parameter.name, value, parameter.effective_explode, ",")


def form_body(
    value: Any, style: FormStyle = "brackets", encoding: Mapping[str, PropertyEncoding] | None = None
) -> bytes:
    """An `application/x-www-form-urlencoded` body, property by property.

    A property named in `encoding` with a `style` or `explode` is written as a query parameter of that style
    (`deepObject` → `a[b]=1`, `form` unexploded → `tags=a,b`, `spaceDelimited`, `pipeDelimited`); one with only
    a `content_type` is `name=<its text>` (JSON for JSON types). Any other property follows `style`:

    - `openapi`: OpenAPI's default, a query parameter of style `form`, exploded: arrays repeat the key
      (`tags=a&tags=b`), objects become their own `key=value` pairs; percent-encoded as in a query (`%20`).
    - `brackets`: the way Stripe reads a form. Nested objects become `metadata[order_id]=6735`, arrays are
      indexed (`expand[0]=a`, `items[0][price]=p_1`), an empty string is sent as `key=` (Stripe's "unset"),
      and empty arrays/objects send nothing (as Stripe's own client does). Encoded like
      `urllib.parse.urlencode`: space is `+`, brackets `%5B`/`%5D`.

    `None` is skipped everywhere; booleans are `true`/`false`. A fault names the property (`key`).
    """
    if not isinstance(value, Mapping):
        raise UnserializableValue("a form-encoded body must be an object")
    pairs: Pairs = []
    for raw_key, item in cast(Mapping[Any, Any], value).items():
        key = str(raw_key)
        try:
            pairs += _form_property(key, item, style, (encoding or {}).get(key))
        except UnserializableValue as exc:
            raise UnserializableValue(str(exc), key=key) from None
    return "&".join(f"{name}={text}" for name, text in pairs).encode("ascii")


def _form_property(key: str, value: Any, style: FormStyle, encoding: PropertyEncoding | None) -> Pairs:
    """The encoded `(name, value)` pairs one form body property becomes."""
    if value is None:
        return []
    if encoding is not None and (encoding.style is not None or encoding.explode is not None):
        # OpenAPI: an explicit style or explode makes the property a query parameter; its contentType is ignored.
        property_style = encoding.style or "form"
        explode = encoding.explode if encoding.explode is not None else property_style == "form"
        return query_pairs(key, value, property_style, explode)
    if encoding is not None and encoding.content_type is not None:
        return [(encode(key), encode(content_text(encoding.content_type, value)))]
    if style == "openapi":
        return query_pairs(key, value, "form", True)
    return [
        (quote_plus(path[0] + "".join(f"[{part}]" for part in path[1:]), safe=""), quote_plus(text, safe=""))
        for path, text in _flatten_brackets([key], value)
    ]


def decode_base64(value: Any) -> bytes:
    """The bytes of base64 text (standard alphabet, padded; whitespace such as MIME line breaks is ignored)."""
    if not isinstance(value, str):
        raise UnserializableValue("binary data must be base64 text")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        raise UnserializableValue("binary data must be valid base64 text") from None


MULTIPART_CONTENT_TYPE = "multipart/form-data"
_DISPOSITION_ESCAPES = str.maketrans({'"': "%22", "\r": "%0D", "\n": "%0A"})


def multipart_body(
    value: Mapping[str, Any], schema: Mapping[str, Any], encoding: Mapping[str, PropertyEncoding] | None = None
) -> tuple[bytes, str]:
    """A `multipart/form-data` body (RFC 7578) and its Content-Type with the boundary.

    Each property is one part named after it. A property whose schema (or, for an array, whose
    `items`) has `contentEncoding: base64` is a file: its base64 text is decoded and sent with
    `filename="<name>"` and `Content-Type: application/octet-stream` (or the media type its
    `encoding` names). A property whose `encoding` names a JSON type is a JSON part of that type,
    whatever its value; an array is one such part per item (OpenAPI derives an array's part type
    from its items, and readers such as openapi-core decode each part as one item). Otherwise
    objects and arrays holding objects or arrays are one JSON part; arrays of scalars repeat the
    name, one part per item; scalars print as everywhere else (text
    parts carry no Content-Type: UTF-8 text, as browsers send it). `None` is skipped. Names are
    quoted with `"`, CR and LF percent-encoded (RFC 7578 §2). The boundary is random and never
    occurs in the body.
    """
    root = schema
    object_schema = local_subschema(schema, root)
    properties = cast(Mapping[str, Any], object_schema.get("properties", {}))
    parts: list[bytes] = []
    for key, item in value.items():
        if item is None:
            continue
        prop_schema = local_subschema(properties.get(key), root)
        declared = (encoding or {}).get(key)
        content_type = declared.content_type if declared is not None else None
        try:
            parts += _multipart_parts(key, item, prop_schema, root, content_type)
        except UnserializableValue as exc:
            raise UnserializableValue(str(exc), key=key) from None
    boundary = secrets.token_hex(16)
    while any(boundary.encode("ascii") in part for part in parts):
        boundary = secrets.token_hex(16)
    delimiter = f"--{boundary}\r\n".encode("ascii")
    body = b"".join(delimiter + part + b"\r\n" for part in parts) + f"--{boundary}--\r\n".encode("ascii")
    return body, f"{MULTIPART_CONTENT_TYPE}; boundary={boundary}"


def local_subschema(schema: Any, root: Mapping[str, Any]) -> Mapping[str, Any]:
    """`schema` with a local `{"$ref": "#/$defs/X"}` replaced by X from `root`; `{}` for a non-object schema."""
    if not isinstance(schema, Mapping):
        return {}
    schema = cast(Mapping[str, Any], schema)
    ref = schema.get("$ref")
    defs = root.get("$defs")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(defs, Mapping):
        target = cast(Mapping[str, Any], defs).get(ref[len("#/$defs/") :])
        if isinstance(target, Mapping):
            return cast(Mapping[str, Any], target)
    return schema


def _is_file(schema: Mapping[str, Any]) -> bool:
    return schema.get("contentEncoding") == "base64"


def _multipart_parts(
    name: str, value: Any, schema: Mapping[str, Any], root: Mapping[str, Any], content_type: str | None = None
) -> list[bytes]:
    """The parts (headers, blank line, content; no delimiters) one property becomes; `content_type` is the one
    the body's `encoding` names for it, if any."""
    json_type = content_type if content_type is not None and is_json_media_type(content_type) else None
    items = _items(value)
    if items is not None:
        if json_type is not None:
            return [_part(name, dump_json(item), json_type) for item in items]
        if any(isinstance(item, (Mapping, list, tuple)) for item in items):
            return [_part(name, dump_json(value), "application/json")]
        item_schema = local_subschema(schema.get("items"), root)
        return [part for item in items for part in _multipart_parts(name, item, item_schema, root, content_type)]
    if json_type is not None:
        return [_part(name, dump_json(value), json_type)]
    if isinstance(value, Mapping):
        return [_part(name, dump_json(value), "application/json")]
    if _is_file(schema):
        return [_part(name, decode_base64(value), content_type or "application/octet-stream", filename=name)]
    return [_part(name, format_scalar(value).encode("utf-8"))]


def _part(name: str, content: bytes, content_type: str | None = None, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name.translate(_DISPOSITION_ESCAPES)}"'
    if filename is not None:
        disposition += f'; filename="{filename.translate(_DISPOSITION_ESCAPES)}"'
    headers = f"Content-Disposition: {disposition}\r\n"
    if content_type is not None:
        headers += f"Content-Type: {content_type}\r\n"
    return headers.encode("utf-8") + b"\r\n" + content


def unencodable_path(value: Any, path: str = "$") -> str | None:
    """The JSON path of the first string (or key) in `value` that UTF-8 cannot encode, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    if isinstance(value, Mapping):
        for key, item in cast(Mapping[Any, Any], value).items():
            # The path goes into error bodies: a key that is itself the bad text is written escaped.
            inner = f"{path}.{printable(key)}" if isinstance(key, str) else path
            found = unencodable_path(key, inner) or unencodable_path(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(cast(Sequence[Any], value)):
            found = unencodable_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
