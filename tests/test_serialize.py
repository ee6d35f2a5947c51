"""Value serialization per location, checked against OpenAPI 3.1's "Style Examples" table."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl

import pytest

from mcp_server._model import FormStyle, Parameter, ParameterLocation, PropertyEncoding
from mcp_server._serialize import (
    UnserializableValue,
    decode_base64,
    dump_json,
    form_body,
    format_scalar,
    multipart_body,
    serialize_cookie,
    serialize_header,
    serialize_path,
    serialize_query,
    unencodable_path,
)

STRING = "blue"
ARRAY = ["blue", "black", "brown"]
OBJECT = {"R": 100, "G": 200, "B": 150}


def param(location: ParameterLocation, style: str | None = None, explode: bool | None = None) -> Parameter:
    return Parameter("color", location, {}, style=style, explode=explode)


def query_string(parameter: Parameter, value: Any) -> str:
    return "&".join(f"{key}={text}" for key, text in serialize_query(parameter, value))


# (style, explode, value, expected) — rows of the OpenAPI 3.1 table.
PATH_CASES = [
    ("simple", False, STRING, "blue"),
    ("simple", False, ARRAY, "blue,black,brown"),
    ("simple", False, OBJECT, "R,100,G,200,B,150"),
    ("simple", True, STRING, "blue"),
    ("simple", True, ARRAY, "blue,black,brown"),
    ("simple", True, OBJECT, "R=100,G=200,B=150"),
    ("label", False, "", "."),
    ("label", False, STRING, ".blue"),
    ("label", False, ARRAY, ".blue,black,brown"),
    ("label", False, OBJECT, ".R,100,G,200,B,150"),
    ("label", True, STRING, ".blue"),
    ("label", True, ARRAY, ".blue.black.brown"),
    ("label", True, OBJECT, ".R=100.G=200.B=150"),
    ("matrix", False, "", ";color"),
    ("matrix", False, STRING, ";color=blue"),
    ("matrix", False, ARRAY, ";color=blue,black,brown"),
    ("matrix", False, OBJECT, ";color=R,100,G,200,B,150"),
    ("matrix", True, "", ";color"),
    ("matrix", True, STRING, ";color=blue"),
    ("matrix", True, ARRAY, ";color=blue;color=black;color=brown"),
    ("matrix", True, OBJECT, ";R=100;G=200;B=150"),
]


@pytest.mark.parametrize(("style", "explode", "value", "expected"), PATH_CASES)
def test_path_styles(style: str, explode: bool, value: Any, expected: str) -> None:
    assert serialize_path(param("path", style, explode), value) == expected


def test_path_defaults_to_simple_unexploded() -> None:
    assert serialize_path(param("path"), OBJECT) == "R,100,G,200,B,150"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a/b", "a%2Fb"),
        ("what?", "what%3F"),
        ("#1", "%231"),
        ("100%", "100%25"),
        ("two words", "two%20words"),
        ("café", "caf%C3%A9"),
        ("日本", "%E6%97%A5%E6%9C%AC"),
        ("a,b;c=d&e+f", "a%2Cb%3Bc%3Dd%26e%2Bf"),
        ("keep-._~", "keep-._~"),
    ],
)
def test_path_values_are_encoded_with_nothing_safe(value: str, expected: str) -> None:
    assert serialize_path(param("path"), value) == expected


def test_path_array_delimiters_literal_but_commas_in_values_encoded() -> None:
    assert serialize_path(param("path"), ["a,b", "c/d"]) == "a%2Cb,c%2Fd"
    assert serialize_path(param("path", "matrix", True), {"k y": "v/w"}) == ";k%20y=v%2Fw"


QUERY_CASES = [
    ("form", True, "", "color="),
    ("form", True, STRING, "color=blue"),
    ("form", True, ARRAY, "color=blue&color=black&color=brown"),
    ("form", True, OBJECT, "R=100&G=200&B=150"),
    ("form", False, "", "color="),
    ("form", False, STRING, "color=blue"),
    ("form", False, ARRAY, "color=blue,black,brown"),
    ("form", False, OBJECT, "color=R,100,G,200,B,150"),
    ("spaceDelimited", False, ARRAY, "color=blue%20black%20brown"),
    ("spaceDelimited", False, OBJECT, "color=R%20100%20G%20200%20B%20150"),
    ("pipeDelimited", False, ARRAY, "color=blue|black|brown"),
    ("pipeDelimited", False, OBJECT, "color=R|100|G|200|B|150"),
    ("deepObject", True, OBJECT, "color[R]=100&color[G]=200&color[B]=150"),
    # Outside the table: the exploded delimited styles behave as form, a primitive is name=value.
    ("spaceDelimited", True, ARRAY, "color=blue&color=black&color=brown"),
    ("pipeDelimited", True, ARRAY, "color=blue&color=black&color=brown"),
    ("pipeDelimited", False, STRING, "color=blue"),
    ("deepObject", True, STRING, "color=blue"),
]


@pytest.mark.parametrize(("style", "explode", "value", "expected"), QUERY_CASES)
def test_query_styles(style: str, explode: bool, value: Any, expected: str) -> None:
    assert query_string(param("query", style, explode), value) == expected


def test_query_defaults_to_form_exploded() -> None:
    assert query_string(param("query"), ARRAY) == "color=blue&color=black&color=brown"


def test_deep_object_nests_and_indexes() -> None:
    value = {"a": {"b": {"c": 1}}, "list": ["x", "y"], "skip": None, "k y": "v&w"}
    assert query_string(param("query", "deepObject", True), value) == (
        "color[a][b][c]=1&color[list][0]=x&color[list][1]=y&color[k%20y]=v%26w"
    )


def test_deep_object_key_with_brackets_is_encoded_as_one_part() -> None:
    assert query_string(param("query", "deepObject", True), {"a]b": 1}) == "color[a%5Db]=1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("two words", "color=two%20words"),
        ("a+b", "color=a%2Bb"),
        ("a&b=c", "color=a%26b%3Dc"),
        ("x/y?z#w", "color=x%2Fy%3Fz%23w"),
        ("café", "color=caf%C3%A9"),
        ("50%", "color=50%25"),
    ],
)
def test_query_values_are_rfc3986_encoded(value: str, expected: str) -> None:
    assert query_string(param("query"), value) == expected


def test_query_commas_in_values_encoded_delimiters_literal() -> None:
    assert query_string(param("query", "form", False), ["a,b", "c"]) == "color=a%2Cb,c"
    assert query_string(param("query", "pipeDelimited", False), ["a|b", "c"]) == "color=a%7Cb|c"


def test_query_object_keys_are_encoded() -> None:
    assert query_string(param("query"), {"a b": "c", "d&e": "f"}) == "a%20b=c&d%26e=f"


@pytest.mark.parametrize("explode", [True, False])
@pytest.mark.parametrize("style", ["form", "spaceDelimited", "pipeDelimited", "deepObject"])
def test_query_empty_containers_are_not_sent(style: str, explode: bool) -> None:
    assert serialize_query(param("query", style, explode), []) == []
    assert serialize_query(param("query", style, explode), {}) == []


def test_none_members_are_skipped() -> None:
    assert query_string(param("query"), ["a", None, "b"]) == "color=a&color=b"
    assert query_string(param("query"), {"a": None, "b": 1}) == "b=1"
    assert serialize_path(param("path"), {"a": None, "b": 1}) == "b,1"


HEADER_CASES = [
    (False, STRING, "blue"),
    (False, ARRAY, "blue,black,brown"),
    (False, OBJECT, "R,100,G,200,B,150"),
    (True, STRING, "blue"),
    (True, ARRAY, "blue,black,brown"),
    (True, OBJECT, "R=100,G=200,B=150"),
    (False, True, "true"),
    (False, 7, "7"),
    (False, "a b/c", "a b/c"),
]


@pytest.mark.parametrize(("explode", "value", "expected"), HEADER_CASES)
def test_header_simple_style(explode: bool, value: Any, expected: str) -> None:
    assert serialize_header(param("header", None, explode), value) == expected


def test_header_empty_containers_are_not_sent() -> None:
    assert serialize_header(param("header"), []) is None
    assert serialize_header(param("header"), {}) is None


@pytest.mark.parametrize("value", ["a\r\nX-Evil: 1", "a\nb", "a\rb", "a\x00b", ["ok", "x\ny"], {"k": "v\r\n"}, "\x7f"])
def test_header_injection_is_refused(value: Any) -> None:
    with pytest.raises(UnserializableValue, match="line breaks"):
        serialize_header(param("header"), value)


def test_header_non_ascii_is_refused_and_tab_allowed() -> None:
    with pytest.raises(UnserializableValue, match="ASCII"):
        serialize_header(param("header"), "café")
    assert serialize_header(param("header"), "a\tb") == "a\tb"


COOKIE_CASES = [
    (True, STRING, [("color", "blue")]),
    (True, ARRAY, [("color", "blue"), ("color", "black"), ("color", "brown")]),
    (True, OBJECT, [("R", "100"), ("G", "200"), ("B", "150")]),
    (False, ARRAY, [("color", "blue,black,brown")]),
    (False, OBJECT, [("color", "R,100,G,200,B,150")]),
    (True, "a; b=c, d", [("color", "a%3B%20b%3Dc%2C%20d")]),
    (True, False, [("color", "false")]),
]


@pytest.mark.parametrize(("explode", "value", "expected"), COOKIE_CASES)
def test_cookie_form_style(explode: bool, value: Any, expected: list[tuple[str, str]]) -> None:
    assert serialize_cookie(param("cookie", None, explode), value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (1, "1"),
        (-42, "-42"),
        (1.5, "1.5"),
        (1.0, "1"),
        (-3.0, "-3"),
        (0.1, "0.1"),
        (1e-7, "1e-07"),
        (1e300, "1e+300"),
        (12345678901234567890, "12345678901234567890"),
        ("", ""),
        ("as is", "as is"),
        ({"a": [1, "é"]}, '{"a":[1,"é"]}'),
    ],
)
def test_format_scalar(value: Any, expected: str) -> None:
    assert format_scalar(value) == expected


@pytest.mark.parametrize("location", ["path", "query", "header", "cookie"])
def test_booleans_are_lowercase_everywhere(location: ParameterLocation) -> None:
    p = param(location)
    results = {
        "path": lambda v: serialize_path(p, v),
        "query": lambda v: query_string(p, v),
        "header": lambda v: serialize_header(p, v),
        "cookie": lambda v: serialize_cookie(p, v)[0][1],
    }
    assert "true" in str(results[location](True))
    assert "false" in str(results[location]([False]))
    assert "True" not in str(results[location](True))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_are_refused(value: float) -> None:
    with pytest.raises(UnserializableValue, match="finite"):
        format_scalar(value)
    with pytest.raises(UnserializableValue, match="finite"):
        dump_json({"x": value})


def test_json_is_compact_utf8() -> None:
    assert dump_json({"title": "Café ☕", "n": [1, 1.5, True, None]}) == (
        '{"title":"Café ☕","n":[1,1.5,true,null]}'.encode()
    )


# Stripe's documented form encodings.
FORM_CASES: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
    ({"metadata": {"order_id": 6735}}, [("metadata[order_id]", "6735")]),
    (
        {"items": [{"price": "p_1", "quantity": 2}, {"price": "p_2"}]},
        [("items[0][price]", "p_1"), ("items[0][quantity]", "2"), ("items[1][price]", "p_2")],
    ),
    (
        {"expand": ["customer", "invoice.subscription"]},
        [("expand[0]", "customer"), ("expand[1]", "invoice.subscription")],
    ),
    (
        {"a": {"b": {"c": {"d": "deep"}}}, "x": [[1, 2]]},
        [("a[b][c][d]", "deep"), ("x[0][0]", "1"), ("x[0][1]", "2")],
    ),
    ({"capture": True, "livemode": False}, [("capture", "true"), ("livemode", "false")]),
    ({"description": "", "metadata": {"old": ""}}, [("description", ""), ("metadata[old]", "")]),
    ({"skip": None, "nested": {"skip": None}, "keep": 1, "empty": [], "none": {}}, [("keep", "1")]),
    ({"amount": 2000, "rate": 2.5, "whole": 3.0}, [("amount", "2000"), ("rate", "2.5"), ("whole", "3")]),
]


@pytest.mark.parametrize(("value", "expected"), FORM_CASES)
def test_form_body_stripe_style(value: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert parse_qsl(form_body(value).decode("ascii"), keep_blank_values=True) == expected


def test_form_body_exact_encoding() -> None:
    body = form_body({"metadata": {"order id": "a&b"}, "name": "Jo Doe", "city": "Zürich", "empty": ""})
    assert body == b"metadata%5Border+id%5D=a%26b&name=Jo+Doe&city=Z%C3%BCrich&empty="


def test_form_body_must_be_an_object() -> None:
    with pytest.raises(UnserializableValue, match="object"):
        form_body(["a"])


# --- binary values and multipart/form-data ------------------------------------------------------

# Bytes that would trip a naive writer or parser: CR/LF, lone CR and LF, NUL, non-UTF-8 bytes,
# delimiter-like lines and a blank line (the header/body separator).
AWKWARD = bytes(range(256)) + b"\r\n--\r\n--boundary\r\n\r\nContent-Disposition: x\r\n--"
FILE_SCHEMA = {"type": "string", "contentEncoding": "base64"}
UPLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "file": FILE_SCHEMA,
        "attachments": {"type": "array", "items": FILE_SCHEMA},
        "title": {"type": "string"},
    },
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


Part = tuple[str | None, str | None, str, bytes]  # name, filename, content type, content


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """The parts as a standard MIME parser reads them (name, filename, content type, exact bytes)."""
    message = BytesParser(policy=policy.HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    assert isinstance(message, EmailMessage)
    assert message.is_multipart()
    assert not message.defects
    parts: list[Part] = []
    for part in message.iter_parts():
        assert not part.defects
        name = part.get_param("name", header="content-disposition")
        content = part.get_payload(decode=True)
        assert isinstance(content, bytes)
        parts.append((name if isinstance(name, str) else None, part.get_filename(), part.get_content_type(), content))
    return parts


@pytest.fixture
def fixed_boundaries(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """`secrets.token_hex` answers from this list (in order) instead of randomly."""
    answers: list[str] = []

    def token_hex(nbytes: int | None = None) -> str:
        assert nbytes == 16
        return answers.pop(0)

    monkeypatch.setattr(secrets, "token_hex", token_hex)
    yield answers


def test_multipart_exact_wire_format(fixed_boundaries: list[str]) -> None:
    fixed_boundaries.append("0" * 32)
    body, content_type = multipart_body({"title": "Café", "file": b64(b"\x00\xff"), "meta": {"k": 1}}, UPLOAD_SCHEMA)
    assert content_type == "multipart/form-data; boundary=" + "0" * 32
    delimiter = b"--" + b"0" * 32
    assert body == (
        delimiter + b"\r\n"
        b'Content-Disposition: form-data; name="title"\r\n'
        b"\r\n"
        b"Caf\xc3\xa9\r\n" + delimiter + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="file"\r\n'
        b"Content-Type: application/octet-stream\r\n"
        b"\r\n"
        b"\x00\xff\r\n" + delimiter + b"\r\n"
        b'Content-Disposition: form-data; name="meta"\r\n'
        b"Content-Type: application/json\r\n"
        b"\r\n"
        b'{"k":1}\r\n' + delimiter + b"--\r\n"
    )


def test_multipart_text_fields_scalars_and_none() -> None:
    value = {"title": "Zürich ☕", "count": 3, "ratio": 2.5, "whole": 4.0, "yes": True, "no": False, "gone": None}
    body, content_type = multipart_body(value, {"type": "object"})
    assert parse_multipart(body, content_type) == [
        ("title", None, "text/plain", "Zürich ☕".encode()),
        ("count", None, "text/plain", b"3"),
        ("ratio", None, "text/plain", b"2.5"),
        ("whole", None, "text/plain", b"4"),
        ("yes", None, "text/plain", b"true"),
        ("no", None, "text/plain", b"false"),
    ]
    assert b"gone" not in body
    assert b"Content-Type" not in body  # text parts are plain UTF-8 text, as browsers send them


def test_multipart_file_field_round_trips_awkward_bytes() -> None:
    body, content_type = multipart_body({"title": "t", "file": b64(AWKWARD)}, UPLOAD_SCHEMA)
    assert parse_multipart(body, content_type) == [
        ("title", None, "text/plain", b"t"),
        ("file", "file", "application/octet-stream", AWKWARD),
    ]


def test_multipart_empty_file() -> None:
    body, content_type = multipart_body({"file": ""}, UPLOAD_SCHEMA)
    assert parse_multipart(body, content_type) == [("file", "file", "application/octet-stream", b"")]


def test_multipart_arrays() -> None:
    value = {
        "tags": ["a", 2, True, None],
        "attachments": [b64(b"one\r\n"), b64(b"\xfftwo")],
        "rows": [{"id": 1}, {"id": 2}],
        "matrix": [[1, 2], [3]],
        "empty": [],
    }
    body, content_type = multipart_body(value, UPLOAD_SCHEMA)
    assert parse_multipart(body, content_type) == [
        ("tags", None, "text/plain", b"a"),
        ("tags", None, "text/plain", b"2"),
        ("tags", None, "text/plain", b"true"),
        ("attachments", "attachments", "application/octet-stream", b"one\r\n"),
        ("attachments", "attachments", "application/octet-stream", b"\xfftwo"),
        ("rows", None, "application/json", b'[{"id":1},{"id":2}]'),
        ("matrix", None, "application/json", b"[[1,2],[3]]"),
    ]
    assert b"empty" not in body


def test_multipart_nested_object_is_a_json_part() -> None:
    body, content_type = multipart_body({"meta": {"note": "naïve", "n": [1, None], "deep": {"x": True}}}, {})
    assert parse_multipart(body, content_type) == [
        ("meta", None, "application/json", '{"note":"naïve","n":[1,null],"deep":{"x":true}}'.encode())
    ]


def test_multipart_file_schema_behind_refs() -> None:
    schema = {
        "$ref": "#/$defs/Upload",
        "$defs": {
            "Upload": {"type": "object", "properties": {"doc": {"$ref": "#/$defs/Blob"}, "title": {"type": "string"}}},
            "Blob": FILE_SCHEMA,
        },
    }
    body, content_type = multipart_body({"doc": b64(b"%PDF\r\n"), "title": b64(b"not a file")}, schema)
    assert parse_multipart(body, content_type) == [
        ("doc", "doc", "application/octet-stream", b"%PDF\r\n"),
        ("title", None, "text/plain", b64(b"not a file").encode()),  # only declared file fields are decoded
    ]


@pytest.mark.parametrize("text", ["not base64!", "abc", "QU=D", "QUJ\u00e9", "A"])
def test_multipart_invalid_base64_names_the_property(text: str) -> None:
    with pytest.raises(UnserializableValue, match="base64") as caught:
        multipart_body({"title": "t", "file": text}, UPLOAD_SCHEMA)
    assert caught.value.key == "file"
    assert text not in str(caught.value)


def test_multipart_fault_in_an_array_item_names_the_property() -> None:
    with pytest.raises(UnserializableValue) as caught:
        multipart_body({"attachments": [b64(b"ok"), "%%%"]}, UPLOAD_SCHEMA)
    assert caught.value.key == "attachments"
    with pytest.raises(UnserializableValue, match="finite") as caught:
        multipart_body({"n": float("inf")}, {})
    assert caught.value.key == "n"


def test_multipart_boundary_is_random_per_body() -> None:
    boundaries = {multipart_body({"a": "b"}, {})[1].removeprefix("multipart/form-data; boundary=") for _ in range(20)}
    assert len(boundaries) == 20
    for boundary in boundaries:
        assert len(boundary) == 32
        int(boundary, 16)


def test_multipart_boundary_found_in_the_content_is_replaced(fixed_boundaries: list[str]) -> None:
    taken, in_name, free = "a" * 32, "b" * 32, "c" * 32
    fixed_boundaries += [taken, in_name, free]
    data = b"--" + taken.encode() + b"\r\n" + taken.encode() + b"--\r\n"
    body, content_type = multipart_body({"file": b64(data), f"x{in_name}": "v"}, UPLOAD_SCHEMA)
    assert content_type == f"multipart/form-data; boundary={free}"
    assert not fixed_boundaries
    assert parse_multipart(body, content_type) == [
        ("file", "file", "application/octet-stream", data),
        (f"x{in_name}", None, "text/plain", b"v"),
    ]


def test_multipart_names_and_filenames_are_escaped() -> None:
    name = 'evil"; filename="x.sh"\r\nContent-Type: text/html\r\n\r\n<b>'
    body, _ = multipart_body({name: "v", f"up{name}": b64(b"f")}, {"properties": {f"up{name}": FILE_SCHEMA}})
    escaped = b"evil%22; filename=%22x.sh%22%0D%0AContent-Type: text/html%0D%0A%0D%0A<b>"
    assert b'Content-Disposition: form-data; name="' + escaped + b'"\r\n\r\nv\r\n' in body
    assert b'name="up' + escaped + b'"; filename="up' + escaped + b'"\r\n' in body
    assert b"text/html\r\n" not in body


def test_multipart_non_ascii_names_are_utf8() -> None:
    body, content_type = multipart_body({"prénom": "Zoë"}, {})
    assert b'name="pr\xc3\xa9nom"' in body
    assert parse_multipart(body, content_type)[0][3] == "Zoë".encode()


def test_multipart_of_nothing_is_just_the_closing_delimiter() -> None:
    body, content_type = multipart_body({"a": None}, {})
    assert body == f"--{content_type.rsplit('=', 1)[1]}--\r\n".encode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", b""), ("AP8=", b"\x00\xff"), ("QUJD\r\nREVG\n", b"ABCDEF"), (b64(AWKWARD), AWKWARD)],
)
def test_decode_base64(text: str, expected: bytes) -> None:
    assert decode_base64(text) == expected


@pytest.mark.parametrize("value", ["QU=D", "QUJ", "QU*D", "QUJé", "_-8=", 42, None, {"data": "QUJD"}])
def test_decode_base64_refuses_what_is_not_base64_text(value: Any) -> None:
    with pytest.raises(UnserializableValue, match="base64") as caught:
        decode_base64(value)
    assert caught.value.key is None


def test_unserializable_value_key() -> None:
    assert UnserializableValue("x").key is None
    assert UnserializableValue("x", key="k").key == "k"


# --- form bodies the OpenAPI way, and per-property encoding --------------------------------------


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    return parse_qsl(body.decode("ascii"), keep_blank_values=True)


def test_openapi_form_style_is_form_exploded_per_property() -> None:
    body = form_body(
        {"tags": ["a", "b c"], "address": {"city": "Zürich", "zip": 8001}, "n": 2.0, "on": True, "x": None},
        "openapi",
    )
    assert body == b"tags=a&tags=b%20c&city=Z%C3%BCrich&zip=8001&n=2&on=true"
    assert form_pairs(body) == [
        ("tags", "a"),
        ("tags", "b c"),
        ("city", "Zürich"),
        ("zip", "8001"),
        ("n", "2"),
        ("on", "true"),
    ]


def test_openapi_form_style_sends_no_empty_containers_but_empty_strings() -> None:
    assert form_body({"tags": [], "meta": {}, "note": ""}, "openapi") == b"note="


def test_brackets_stays_the_default_byte_for_byte() -> None:
    value = {"metadata": {"order id": "a&b"}, "items": [{"price": "p 1"}], "tags": ["x"]}
    expected = b"metadata%5Border+id%5D=a%26b&items%5B0%5D%5Bprice%5D=p+1&tags%5B0%5D=x"
    assert form_body(value) == expected
    assert form_body(value, "brackets", {}) == expected


ENCODED = {
    "deep": PropertyEncoding(style="deepObject", explode=True),
    "csv": PropertyEncoding(style="form", explode=False),
    "spaces": PropertyEncoding(style="spaceDelimited", explode=False),
    "pipes": PropertyEncoding(style="pipeDelimited", explode=False),
    "exploded": PropertyEncoding(explode=True),  # style defaults to form
    "json": PropertyEncoding(content_type="application/json"),
    "vendor_json": PropertyEncoding(content_type="application/vnd.acme+json"),
    "text": PropertyEncoding(content_type="text/plain"),
    "styled_json": PropertyEncoding(content_type="application/json", style="form", explode=False),
}


@pytest.mark.parametrize("form_style", ["openapi", "brackets"])
@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("deep", {"a": 1, "b": "x y"}, [("deep[a]", "1"), ("deep[b]", "x y")]),
        ("deep", {"a": {"b": 1}}, [("deep[a][b]", "1")]),
        ("csv", ["a", "b,c"], [("csv", "a,b,c")]),
        ("csv", {"k": "v", "j": 2}, [("csv", "k,v,j,2")]),
        ("spaces", ["a", "b"], [("spaces", "a b")]),
        ("pipes", ["a", "b"], [("pipes", "a|b")]),
        ("exploded", ["a", "b"], [("exploded", "a"), ("exploded", "b")]),
        ("json", {"a": [1, "é"]}, [("json", '{"a":[1,"é"]}')]),
        ("json", ["x"], [("json", '["x"]')]),
        ("json", "text", [("json", '"text"')]),
        ("json", [], [("json", "[]")]),  # a JSON value, not an absent one
        ("vendor_json", {"a": 1}, [("vendor_json", '{"a":1}')]),
        ("text", "plain words", [("text", "plain words")]),
        ("text", 3.0, [("text", "3")]),
        ("styled_json", ["a", "b"], [("styled_json", "a,b")]),  # style wins over contentType, as OpenAPI says
    ],
)
def test_form_encoding_overrides_per_property(
    form_style: FormStyle, key: str, value: Any, expected: list[tuple[str, str]]
) -> None:
    assert form_pairs(form_body({key: value}, form_style, ENCODED)) == expected


def test_form_encoding_delimiters_stay_literal_and_values_are_encoded() -> None:
    body = form_body({"csv": ["a,b", "c"], "pipes": ["x|y", "z"], "deep": {"k[1]": "v"}}, "openapi", ENCODED)
    assert body == b"csv=a%2Cb,c&pipes=x%7Cy|z&deep[k%5B1%5D]=v"


def test_form_encoding_names_only_some_properties() -> None:
    value = {"deep": {"a": 1}, "tags": ["x", "y"], "meta": {"k": "v"}}
    assert form_pairs(form_body(value, "openapi", ENCODED)) == [
        ("deep[a]", "1"),
        ("tags", "x"),
        ("tags", "y"),
        ("k", "v"),
    ]
    assert form_pairs(form_body(value, "brackets", ENCODED)) == [
        ("deep[a]", "1"),
        ("tags[0]", "x"),
        ("tags[1]", "y"),
        ("meta[k]", "v"),
    ]


def test_form_fault_names_the_property() -> None:
    with pytest.raises(UnserializableValue, match="finite") as caught:
        form_body({"ok": 1, "rate": float("inf")}, "openapi")
    assert caught.value.key == "rate"
    with pytest.raises(UnserializableValue, match="finite") as caught:
        form_body({"json": {"x": float("nan")}}, "brackets", ENCODED)
    assert caught.value.key == "json"


def test_multipart_encoding_json_content_type_makes_json_parts() -> None:
    encoding = {
        "tags": PropertyEncoding(content_type="application/json"),
        "title": PropertyEncoding(content_type="application/vnd.acme+json"),
        "plain": PropertyEncoding(content_type="text/plain"),
    }
    schema = {"type": "object", "properties": {"tags": {"type": "array"}, "title": {}, "plain": {}}}
    value = {"tags": [["a"], {"b": 1}, "c"], "title": "Hi", "plain": ["x", "y"]}
    body, content_type = multipart_body(value, schema, encoding)
    assert parse_multipart(body, content_type) == [
        ("tags", None, "application/json", b'["a"]'),  # an array: one part per item
        ("tags", None, "application/json", b'{"b":1}'),
        ("tags", None, "application/json", b'"c"'),
        ("title", None, "application/vnd.acme+json", b'"Hi"'),
        ("plain", None, "text/plain", b"x"),
        ("plain", None, "text/plain", b"y"),
    ]


def test_multipart_encoding_content_type_of_file_parts() -> None:
    encoding = {"file": PropertyEncoding(content_type="image/png"), "attachments": PropertyEncoding("text/csv")}
    value = {"file": b64(b"\x89PNG"), "attachments": [b64(b"a,b"), b64(b"c")], "title": "t"}
    body, content_type = multipart_body(value, UPLOAD_SCHEMA, encoding)
    assert parse_multipart(body, content_type) == [
        ("file", "file", "image/png", b"\x89PNG"),
        ("attachments", "attachments", "text/csv", b"a,b"),
        ("attachments", "attachments", "text/csv", b"c"),
        ("title", None, "text/plain", b"t"),
    ]


def test_multipart_encoding_json_fault_names_the_property() -> None:
    encoding = {"meta": PropertyEncoding(content_type="application/json")}
    with pytest.raises(UnserializableValue, match="finite") as caught:
        multipart_body({"meta": [float("nan")]}, {}, encoding)
    assert caught.value.key == "meta"


# --- parameters described by `content` --------------------------------------------------------------


def content_param(location: ParameterLocation, content_type: str = "application/json") -> Parameter:
    # A style beside content is ignored: OpenAPI allows one or the other.
    return Parameter("filter", location, {}, style="deepObject", explode=True, content_type=content_type)


FILTER = {"tags": ["a b", "é"], "min": 1.0, "on": True}


def test_content_parameter_in_a_query_is_url_encoded_json() -> None:
    assert query_string(content_param("query"), FILTER) == (
        "filter=%7B%22tags%22%3A%5B%22a%20b%22%2C%22%C3%A9%22%5D%2C%22min%22%3A1.0%2C%22on%22%3Atrue%7D"
    )
    assert parse_qsl(query_string(content_param("query"), FILTER)) == [
        ("filter", '{"tags":["a b","é"],"min":1.0,"on":true}')
    ]


@pytest.mark.parametrize(("value", "expected"), [([], "%5B%5D"), ({}, "%7B%7D"), ("", "%22%22"), (3, "3")])
def test_content_parameter_sends_every_json_value(value: Any, expected: str) -> None:
    assert query_string(content_param("query"), value) == f"filter={expected}"


def test_content_parameter_in_a_path_header_and_cookie() -> None:
    value = {"q": "x/y;z", "n": "é"}
    assert serialize_path(content_param("path"), value) == "%7B%22q%22%3A%22x%2Fy%3Bz%22%2C%22n%22%3A%22%C3%A9%22%7D"
    # Headers carry ASCII only: the same JSON with `\u` escapes.
    assert serialize_header(content_param("header"), value) == '{"q":"x/y;z","n":"\\u00e9"}'
    assert serialize_header(content_param("header"), {"evil": "a\r\nX-Injected: 1"}) == (
        '{"evil":"a\\r\\nX-Injected: 1"}'
    )
    assert serialize_cookie(content_param("cookie"), value) == [
        ("filter", "%7B%22q%22%3A%22x%2Fy%3Bz%22%2C%22n%22%3A%22%C3%A9%22%7D")
    ]


def test_content_parameter_of_another_type_is_its_text() -> None:
    assert query_string(content_param("query", "text/plain"), "a b") == "filter=a%20b"
    assert query_string(content_param("query", "application/vnd.acme+json"), "a b") == "filter=%22a%20b%22"


def test_content_parameter_with_a_non_finite_number_is_refused() -> None:
    with pytest.raises(UnserializableValue, match="finite"):
        serialize_query(content_param("query"), {"x": float("nan")})


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("fine ✓", None),
        ({"a": ["x", {"b": "\ud800"}]}, "$.a[1].b"),
        ({"\udc80key": 1}, "$.\\udc80key"),  # escaped: the path goes into error bodies
        ([1, 2.5, None, True, "\udfff"], "$[4]"),
        ({"a": "ok", "b": ("t", "\ud83d")}, "$.b[1]"),
    ],
)
def test_unencodable_path_names_the_first_lone_surrogate(value: object, path: str | None) -> None:
    assert unencodable_path(value) == path


def test_json_with_a_lone_surrogate_is_refused_as_such() -> None:
    with pytest.raises(UnserializableValue, match="lone surrogate"):
        dump_json({"title": "a\ud800"})
    assert dump_json({"title": "a\ud800"}, ascii_only=True) == b'{"title":"a\\ud800"}'  # escaped: valid JSON text
