"""`_shape`: results under the cap kept whole, over it trimmed, whichever way the upstream spaced its JSON; upstream
JSON read into what every transport can write."""

from __future__ import annotations

import json

from mcp_server._exchange import RawResponse
from mcp_server._model import CallPolicy
from mcp_server._redact import Redactor
from mcp_server._shape import Parsed, finish, read_response


def _parsed(value: object, text: str) -> Parsed:
    return Parsed(status=200, value=value, text=text, is_json=True)


def test_a_small_result_is_kept_whole_and_serialized_once() -> None:
    value = {"items": [{"id": i, "name": f"é{i}"} for i in range(5)]}
    result = finish(_parsed(value, json.dumps(value)), CallPolicy(max_result_chars=1000))
    assert result.value == value and result.note is None
    assert result.text == json.dumps(value, ensure_ascii=False)


def test_compact_json_under_the_cap_that_spaced_out_is_over_it_is_trimmed() -> None:
    value = list(range(300))
    compact = json.dumps(value, separators=(",", ":"))  # how many APIs send it
    spaced = json.dumps(value)  # how the result text is written
    cap = (len(compact) + len(spaced)) // 2
    result = finish(_parsed(value, compact), CallPolicy(max_result_chars=cap))
    assert len(compact) <= cap < len(spaced)
    assert result.note is not None and "items dropped" in result.note
    assert len(result.text) <= cap and result.value == value[: len(result.value)]


def test_over_the_cap_is_trimmed_as_before() -> None:
    value = {"data": list(range(10_000))}
    result = finish(_parsed(value, json.dumps(value)), CallPolicy(max_result_chars=500))
    assert len(result.text) <= 500 and result.note is not None


def _response(body: bytes, status: int = 200) -> RawResponse:
    return RawResponse(status, {"content-type": "application/json"}, body, None, "https://api.example/x")


def test_a_lone_surrogate_the_json_spells_is_kept_as_its_escape_text() -> None:
    # JSON may spell half of a surrogate pair alone; no UTF-8 answer can carry it, so it is written as the
    # escape's text, as error messages write one (it failed the answer's serialization on every transport).
    body = b'{"lone": "\\ud800 alone", "pair": "\\ud83d\\ude00", "list": ["\\udfff"], "\\udc00key": 1}'
    parsed = read_response("api", _response(body), Redactor([]))
    assert parsed.value == {"lone": "\\ud800 alone", "pair": "\U0001f600", "list": ["\\udfff"], "\\udc00key": 1}
    finished = finish(parsed, CallPolicy(max_result_chars=1000))
    finished.text.encode("utf-8")  # serializable as the wire needs it
    plain = read_response("api", _response(b'{"pair": "\\ud83d\\ude00", "text": "caf\\u00e9"}'), Redactor([]))
    assert plain.value == {"pair": "\U0001f600", "text": "café"}
