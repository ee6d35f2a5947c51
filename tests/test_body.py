"""Bounded decoding of streamed bodies (BoundedDecoder) and trimming of long JSON results (trim_json)."""

from __future__ import annotations

import copy
import gzip
import json
import random
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_server._body import (
    ACCEPT_ENCODING,
    BodyDecodeError,
    BodyTooLarge,
    BoundedDecoder,
    UnsupportedEncoding,
    trim_json,
)
from tests._upstream import FakeUpstream, UpstreamThread

MiB = 1024 * 1024
# Some entropy, so that compressed streams span many deflate blocks and 1-byte feeding is a real test.
PAYLOAD = json.dumps([{"id": i, "name": f"item {i}", "score": random.Random(i).random()} for i in range(3000)]).encode()


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def decode(content_encoding: str | None, raw: bytes, *, limit: int = 100 * MiB, chunk: int | None = None) -> bytes:
    decoder = BoundedDecoder(content_encoding, limit)
    step = chunk or max(len(raw), 1)
    for start in range(0, len(raw), step):
        decoder.feed(raw[start : start + step])
    return decoder.finish()


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "identity": lambda data: data,
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,  # zlib-wrapped, as RFC 9110 says
    "gzip, gzip": lambda data: gzip.compress(gzip.compress(data)),
    "deflate, gzip": lambda data: gzip.compress(zlib.compress(data)),
}


# --- BoundedDecoder -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 7, None], ids=["1-byte", "7-byte", "one-chunk"])
@pytest.mark.parametrize("coding", list(ENCODERS))
def test_decodes_each_coding_in_any_chunking(coding: str, chunk: int | None) -> None:
    assert decode(coding, ENCODERS[coding](PAYLOAD), chunk=chunk) == PAYLOAD


@pytest.mark.parametrize("chunk", [1, None], ids=["1-byte", "one-chunk"])
def test_raw_deflate_as_some_servers_send_it(chunk: int | None) -> None:
    assert decode("deflate", raw_deflate(PAYLOAD), chunk=chunk) == PAYLOAD


@pytest.mark.parametrize("header", [None, "", "identity", " GZIP ", "Gzip, Identity"])
def test_header_spelling(header: str | None) -> None:
    raw = gzip.compress(PAYLOAD) if header and "zip" in header.lower() else PAYLOAD
    assert decode(header, raw) == PAYLOAD


@pytest.mark.parametrize("coding", ["identity", "gzip", "deflate", "gzip, gzip"])
def test_exact_limit_passes_and_one_byte_more_fails(coding: str) -> None:
    raw = ENCODERS[coding](PAYLOAD)
    assert decode(coding, raw, limit=len(PAYLOAD), chunk=1000) == PAYLOAD
    with pytest.raises(BodyTooLarge) as caught:
        decode(coding, raw, limit=len(PAYLOAD) - 1, chunk=1000)
    assert caught.value.limit == len(PAYLOAD) - 1
    assert caught.value.received > caught.value.limit


def test_empty_bodies() -> None:
    for coding in ("identity", "gzip", "deflate", "gzip, gzip"):
        assert decode(coding, b"") == b""
    assert decode("gzip", gzip.compress(b"")) == b""


def test_truncated_gzip_returns_what_was_decoded() -> None:
    raw = gzip.compress(PAYLOAD)
    decoded = decode("gzip", raw[: len(raw) // 2], chunk=100)
    assert 0 < len(decoded) < len(PAYLOAD)
    assert PAYLOAD.startswith(decoded)


def test_concatenated_gzip_members_and_trailing_junk() -> None:
    raw = gzip.compress(b"first ") + gzip.compress(b"second")
    assert decode("gzip", raw, chunk=3) == b"first second"
    assert decode("gzip", gzip.compress(PAYLOAD) + b"\x00\x00junk") == PAYLOAD


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, br", "snappy"])
def test_unknown_codings_are_refused(coding: str) -> None:
    with pytest.raises(UnsupportedEncoding):
        BoundedDecoder(coding, 1000)


def test_absurdly_deep_stacking_is_refused() -> None:
    with pytest.raises(UnsupportedEncoding):
        BoundedDecoder(", ".join(["gzip"] * 20), 1000)


def test_corrupt_data_is_a_decode_error_the_caller_already_handles() -> None:
    with pytest.raises(BodyDecodeError) as caught:
        decode("gzip", b"\x1f\x8b this is not gzip")
    assert isinstance(caught.value, UnsupportedEncoding)
    with pytest.raises(BodyDecodeError):
        decode("deflate", zlib.compress(PAYLOAD)[:50] + b"\xff" * 200)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """1 GiB of zeros, gzip-compressed to about 1 MB, built without ever holding the 1 GiB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS, 9, zlib.Z_RLE)
    zeros = bytes(MiB)
    parts = [compressor.compress(zeros) for _ in range(1024)]
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.mark.parametrize("chunk", [64 * 1024, None], ids=["network-chunks", "one-chunk"])
def test_gzip_bomb_is_stopped_with_bounded_memory(gzip_bomb: bytes, chunk: int | None) -> None:
    limit = 5 * MiB
    step = chunk or len(gzip_bomb)
    chunks = [gzip_bomb[start : start + step] for start in range(0, len(gzip_bomb), step)]
    decoder = BoundedDecoder("gzip", limit)
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge) as caught:
            for raw in chunks:
                decoder.feed(raw)
            decoder.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"bomb of {len(gzip_bomb)} bytes ({chunk=}): peak {peak / MiB:.2f} MiB, stopped at {caught.value.received}")
    assert len(gzip_bomb) < 2 * MiB
    assert caught.value.limit == limit
    assert limit < caught.value.received <= limit + 64 * 1024
    assert peak < 20 * MiB


class GzipUpstream(FakeUpstream):
    """Answers every request with PAYLOAD, gzip-encoded, and remembers the Accept-Encoding it was sent."""

    accept_encoding: str | None = None

    async def _gzipped(self, request: Request) -> Response:
        GzipUpstream.accept_encoding = request.headers.get("accept-encoding")
        return Response(gzip.compress(PAYLOAD), media_type="application/json", headers={"Content-Encoding": "gzip"})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/gz", self._gzipped)])


@pytest.fixture(scope="module")
def gzip_upstream() -> Iterator[FakeUpstream]:
    thread = UpstreamThread(GzipUpstream())
    yield thread.start()
    thread.stop()


async def test_round_trip_through_httpx2_raw_stream(gzip_upstream: FakeUpstream) -> None:
    async with (
        httpx2.AsyncClient(trust_env=False) as client,
        client.stream("GET", f"{gzip_upstream.url}/gz", headers={"Accept-Encoding": ACCEPT_ENCODING}) as response,
    ):
        assert response.headers["content-encoding"] == "gzip"
        decoder = BoundedDecoder(response.headers.get("content-encoding"), 10 * MiB)
        raw = bytearray()
        async for chunk in response.aiter_raw():
            raw += chunk
            decoder.feed(chunk)
        body = decoder.finish()
    assert GzipUpstream.accept_encoding == "gzip, deflate"
    assert raw[:2] == b"\x1f\x8b"  # aiter_raw hands over the bytes as sent, still gzip
    assert gzip.decompress(raw) == PAYLOAD
    assert body == PAYLOAD


# --- trim_json ------------------------------------------------------------------------------------------------------


def size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False))


def records(count: int, pad: int = 40) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"ítem {i}", "text": "x" * pad, "tags": ["a", "b"]} for i in range(count)]


def assert_prefix(original: list[Any], kept: list[Any]) -> None:
    assert len(kept) < len(original)
    assert kept == original[: len(kept)]


def test_small_value_is_unchanged() -> None:
    value = {"items": records(3), "total": 3}
    result = trim_json(value, 10_000)
    assert result.value == value
    assert result.dropped == 0
    assert result.note is None


def test_exactly_max_chars_is_unchanged() -> None:
    value = {"items": records(50)}
    assert trim_json(value, size(value)).note is None
    assert trim_json(value, size(value) - 1).dropped >= 1


def test_top_level_array() -> None:
    value = records(500)
    result = trim_json(value, 5000)
    assert size(result.value) <= 5000
    assert_prefix(value, result.value)
    assert result.dropped == 500 - len(result.value)
    assert result.note == (
        f"Result trimmed to fit 5000 characters: {result.dropped} of 500 items dropped from $; "
        "ask for fewer (page size / filters)."
    )


def test_nested_array() -> None:
    value = {"data": {"items": records(300), "next": "cursor-2"}, "meta": {"count": 300}}
    result = trim_json(value, 4000)
    assert 3000 < size(result.value) <= 4000
    kept = result.value["data"]["items"]
    assert_prefix(value["data"]["items"], kept)
    assert result.value["data"]["next"] == "cursor-2"
    assert result.value["meta"] == {"count": 300}
    assert list(result.value) == ["data", "meta"]  # key order kept
    assert f"{300 - len(kept)} of 300 items dropped from $.data.items" in (result.note or "")


def test_lone_item_is_trimmed_inside_rather_than_dropped() -> None:
    value = {"data": [{"name": "root", "children": records(200)}]}
    result = trim_json(value, 3000)
    assert size(result.value) <= 3000
    [only] = result.value["data"]
    assert only["name"] == "root"
    assert_prefix(value["data"][0]["children"], only["children"])
    assert "from $.data[0].children" in (result.note or "")


def test_two_arrays_the_larger_is_trimmed_first() -> None:
    value = {"small": records(10), "large": records(200)}
    budget = size(value) - size(records(150))
    result = trim_json(value, budget)
    assert size(result.value) <= budget
    assert result.value["small"] == value["small"]  # still smaller than what the large one keeps: untouched
    assert_prefix(value["large"], result.value["large"])
    assert "from $.large" in (result.note or "") and "$.small" not in (result.note or "")


def test_two_arrays_cut_to_about_equal_sizes_when_both_must_shrink() -> None:
    value = {"a": records(300), "b": records(200)}
    result = trim_json(value, 10_000)
    assert size(result.value) <= 10_000
    assert_prefix(value["a"], result.value["a"])
    assert_prefix(value["b"], result.value["b"])
    assert abs(len(result.value["a"]) - len(result.value["b"])) <= 1
    assert result.dropped == 500 - len(result.value["a"]) - len(result.value["b"])


def test_path_spelling_for_odd_keys() -> None:
    value = {"odd key": {"é-list": list(range(5000))}}
    result = trim_json(value, 1000)
    assert '$["odd key"]["é-list"]' in (result.note or "")


def test_input_is_not_mutated() -> None:
    value = {"data": [{"children": records(100)}], "other": records(100)}
    before = copy.deepcopy(value)
    trim_json(value, 2000)
    assert value == before


def test_huge_string_empties_the_arrays_and_says_it_still_does_not_fit() -> None:
    value = {"blob": "y" * 50_000, "items": records(100), "nested": {"more": [1, 2, 3]}}
    result = trim_json(value, 10_000)
    assert result.value == {"blob": "y" * 50_000, "items": [], "nested": {"more": []}}
    assert result.dropped == 103
    assert result.note is not None and "still does not fit in 10000 characters" in result.note
    assert str(size(result.value)) in result.note


def test_a_value_without_arrays_that_does_not_fit_is_returned_with_a_note() -> None:
    result = trim_json("z" * 500, 100)
    assert result.value == "z" * 500
    assert result.dropped == 0
    assert result.note is not None and "does not fit" in result.note


def nested(depth: int, inner: Any) -> Any:
    for _ in range(depth):
        inner = [inner]
    return inner


def test_deep_nesting_long_paths_are_elided_in_the_note() -> None:
    result = trim_json(nested(100, list(range(5000))), 1000)
    assert size(result.value) <= 1000
    assert result.note is not None and "…" in result.note and len(result.note) < 300


def test_nesting_too_deep_to_walk_is_returned_whole_with_a_note() -> None:
    value = nested(5000, list(range(5000)))
    result = trim_json(value, 1000)
    assert result.value is value and result.dropped == 0
    assert result.note is not None and "too deeply" in result.note


def test_strings_and_numbers_are_never_cut() -> None:
    value = [{"s": '"quoted" \\ ünïcødé 😀', "n": 12345.678901, "b": True, "z": None}] * 400
    for budget in (2, 3, 50, 100, 1000, 10_000):
        result = trim_json(value, budget)
        assert size(result.value) <= budget
        assert json.loads(json.dumps(result.value)) == value[: len(result.value)]


def random_json(rnd: random.Random, depth: int = 0) -> Any:
    roll = rnd.random()
    if depth > 4 or roll < 0.4:
        return rnd.choice([1, -2.5, True, None, 'a"b\\c', "é€😀", "\n", "x" * rnd.randint(0, 300), 10**20, ""])
    if roll < 0.7:
        return [random_json(rnd, depth + 1) for _ in range(rnd.randint(0, 12))]
    return {f"{rnd.choice(['k', 'a b', 'é', ''])}{i}": random_json(rnd, depth + 1) for i in range(rnd.randint(0, 8))}


def arrays_all_empty(value: Any) -> bool:
    if isinstance(value, list):
        return not value
    if isinstance(value, dict):
        return all(arrays_all_empty(member) for member in value.values())
    return True


def test_random_values_stay_valid_and_within_bounds() -> None:
    rnd = random.Random(7)
    for _ in range(300):
        value = random_json(rnd)
        full = size(value)
        for budget in {2, 50, full // 10, full // 2, full - 1, full}:
            result = trim_json(value, budget)
            length = size(result.value)
            if length > budget:  # only when even emptying every array is not enough
                assert arrays_all_empty(result.value)
                assert result.note is not None and "does not fit" in result.note
            elif result.dropped == 0:
                assert result.value is value and result.note is None


def test_fifty_megabytes_trimmed_fast() -> None:
    value = {"items": records(110_000, pad=400), "total": 110_000}
    assert size(value) > 50_000_000
    started = time.perf_counter()
    result = trim_json(value, 100_000)
    elapsed = time.perf_counter() - started
    print(f"trimmed {size(value) / 1e6:.1f} MB to {size(result.value)} characters in {elapsed * 1000:.1f} ms")
    assert size(result.value) <= 100_000
    assert_prefix(value["items"], result.value["items"])
    assert elapsed < 5
