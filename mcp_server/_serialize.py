"""Serialization rules for putting argument values on the wire.

Pure functions, one per location, following OpenAPI 3.1 `style`/`explode`
(whose path and query rules are RFC 6570's): path values are percent-encoded
with nothing left safe, query keys and values per RFC 3986 (space is `%20`),
header values are sent raw but must be printable ASCII, form bodies use
Stripe-style bracket keys with indexed arrays. Scalars print the same
everywhere: `true`/`false`, integers without `.0`, strings as they are.
`None` (and, in exploded or keyed positions, an empty array or object) means
"not sent".

Every failure is an `UnserializableValue` naming the fault but never the value;
the request builder turns it into `InvalidArguments` with the argument's path.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import quote, urlencode

from mcp_server._model import Parameter

# Header values must be visible ASCII, space or tab: a line break would start a new header
# (request smuggling by a model), other controls are refused by HTTP stacks, and non-ASCII
# text cannot be encoded by the HTTP client at all.
_BAD_HEADER_CHARS = re.compile(r"[^\t\x20-\x7e]")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_MAX_EXACT_FLOAT = 2**53


class UnserializableValue(ValueError):
    """An argument value that has no wire form in its location; the message never quotes the value."""


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


def dump_json(value: Any) -> bytes:
    """Compact UTF-8 JSON (no spaces, no `\\u` escapes); NaN and infinities are refused."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except ValueError:
        raise UnserializableValue("numbers must be finite") from None
    except TypeError:
        raise UnserializableValue("value is not JSON") from None


def encode(text: str) -> str:
    """RFC 3986 percent-encoding: everything but `A-Z a-z 0-9 - . _ ~` (UTF-8 for non-ASCII)."""
    return quote(text, safe="")


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
    inside a value cannot change the path; the style's own delimiters stay literal.
    """
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
    treats it as undefined). A primitive is `name=value` in every style.
    """
    style = parameter.effective_style
    if style == "deepObject" and isinstance(value, (Mapping, list, tuple)):
        return [
            (encode(path[0]) + "".join(f"[{encode(part)}]" for part in path[1:]), encode(text))
            for path, text in _flatten_brackets([parameter.name], value)
        ]
    delimiter = {"spaceDelimited": "%20", "pipeDelimited": "|"}.get(style, ",")
    return _form_pairs(parameter.name, value, parameter.effective_explode, delimiter)


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
    tab is refused. `None` when there is nothing to send (an empty array or object).
    """
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
    `;`, `,` and spaces in a value cannot break the `Cookie` header.
    """
    return _form_pairs(parameter.name, value, parameter.effective_explode, ",")


def form_body(value: Any) -> bytes:
    """An `application/x-www-form-urlencoded` body the way Stripe reads one.

    Nested objects become `metadata[order_id]=6735`, arrays are indexed (`expand[0]=a`,
    `items[0][price]=p_1`), booleans are `true`/`false`, `None` is skipped, an empty
    string is sent as `key=` (Stripe's "unset"), and empty arrays/objects send nothing
    (as Stripe's own client does). Encoded like `urllib.parse.urlencode`: space is `+`,
    brackets `%5B`/`%5D`.
    """
    if not isinstance(value, Mapping):
        raise UnserializableValue("a form-encoded body must be an object")
    pairs = [
        (path[0] + "".join(f"[{part}]" for part in path[1:]), text)
        for key, item in cast(Mapping[Any, Any], value).items()
        for path, text in _flatten_brackets([str(key)], item)
    ]
    return urlencode(pairs).encode("ascii")
