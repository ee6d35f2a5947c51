"""`_shape.finish`: results under the cap kept whole, over it trimmed, whichever way the upstream spaced its JSON."""

from __future__ import annotations

import json

from mcp_server._model import CallPolicy
from mcp_server._shape import Parsed, finish


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
