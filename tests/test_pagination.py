"""Pagination through the real pipeline against a fake API that pages every way the manifest can describe (cursor,
offset, Link header, keyset, a cursor in the body), plus the pure parts: JSON pointers, error formats, Link headers,
keyset cursors, variants and the output schema check."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from jsonschema import Draft202012Validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_server._catalog import load_catalog
from mcp_server._errors import ToolError
from mcp_server._model import ErrorFormat
from mcp_server._pagination import decode_cursor, encode_cursor, fill
from mcp_server._pipeline import Outcome, Pipeline, ToolSuccess
from mcp_server._registry import Registry
from mcp_server._server import to_call_tool_result
from mcp_server._shape import _MISSING, _formatted_error, next_link, resolve_pointer
from mcp_server._vault import Vault
from tests._upstream import FakeUpstream, Recorded, UpstreamThread
from tests.conftest import PASSPHRASE

# ------------------------------------------------------------------ a fake API that pages every way


def item(index: int) -> dict[str, Any]:
    # Keyset ties on purpose: three items share each `m`, and ids are not in `m` order within a tie.
    return {"id": f"it_{index:03d}", "n": index, "m": f"2024-05-01 10:00:{index // 3:02d}", "name": f"r{100 - index}"}


@dataclass
class FakePages(FakeUpstream):
    """Routes: /cursor (Stripe-like), /offset, /link (GitHub-like), /keyset, /token (cursor in the body),
    /slow (later pages sleep), /flaky (page 3 is rate limited), /big (large items), /wrong (not the promised shape)."""

    sleep: float = 2.0
    calls: list[dict[str, str]] = field(default_factory=list[dict[str, str]])

    async def _handle(self, request: Request) -> Response:
        query = dict(parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True))
        body = await request.body()
        self.requests.append(
            Recorded(
                request.method, request.scope["raw_path"].decode(), request.scope["query_string"].decode(), {}, body
            )
        )
        self.calls.append(query)
        total = int(query.get("total", "25"))
        items = [item(i) for i in range(1, total + 1)]
        path = request.url.path
        if path == "/cursor":
            limit = int(query.get("limit", "10"))
            after = query.get("starting_after")
            start = 0 if after is None else next(i for i, it in enumerate(items) if it["id"] == after) + 1
            page = items[start : start + limit]
            return JSONResponse({"object": "list", "url": "/cursor", "has_more": start + limit < total, "data": page})
        if path == "/offset":
            start, size = int(query.get("start", "0")), int(query.get("size", "20"))
            return JSONResponse({"data": items[start : start + size]})
        if path in ("/link", "/slow", "/flaky", "/big"):
            page, per_page = int(query.get("page", "1")), int(query.get("per_page", "10"))
            if path == "/slow" and page > 1:
                await asyncio.sleep(self.sleep)
            if path == "/flaky" and page == 3:
                return JSONResponse({"message": "slow down"}, status_code=429, headers={"retry-after": "100"})
            chosen = items[(page - 1) * per_page : page * per_page]
            if path == "/big":
                chosen = [{**it, "blob": "x" * 300} for it in chosen]
            last = (total + per_page - 1) // per_page
            base = f"{self.url}{path}?per_page={per_page}&total={total}"
            links = [f'<{base}&page={page + 1}>; rel="next"'] if page < last else []
            links.append(f'<{base}&page={last}>; rel="last"')
            return JSONResponse(chosen, headers={"link": ", ".join(links)})
        if path == "/keyset":
            after = json.loads(query["after"])
            limit = int(query["limit"])
            ordered = sorted(items, key=lambda it: (it["m"], it["name"]))
            chosen = [it for it in ordered if (it["m"], it["name"]) > (after[0], after[1])][:limit]
            return JSONResponse({"data": chosen})
        if path == "/token":
            start = int(query.get("cursor", "0"))
            nxt = start + 10
            return JSONResponse({"items": items[start:nxt], "meta": {"next": str(nxt) if nxt < total else None}})
        if path == "/wrong":
            return JSONResponse({"id": 7})  # the output schema wants a string id
        if path == "/cancel/sub_1":
            return JSONResponse({"method": request.method, "body": body.decode(), "query": query})
        return JSONResponse({"message": "no such route"}, status_code=404)


@pytest.fixture(scope="module")
def pages_server() -> Iterator[FakePages]:
    thread = UpstreamThread(FakePages())
    started = thread.start()
    assert isinstance(started, FakePages)
    yield started
    thread.stop()


@pytest.fixture
def pages(pages_server: FakePages) -> FakePages:
    pages_server.requests.clear()
    pages_server.calls.clear()
    return pages_server


TOTAL = {"name": "total", "in": "query", "schema": {"type": "integer"}, "description": "How many items exist."}
ITEM = {
    "type": "object",
    "required": ["id", "n"],
    "properties": {"id": {"type": "string"}, "n": {"type": "integer"}},
}


def manifest(base_url: str) -> dict[str, Any]:
    limit = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}
    after = {"name": "starting_after", "in": "query", "schema": {"type": "string"}}
    link_params = [
        TOTAL,
        {"name": "per_page", "in": "query", "schema": {"type": "integer"}},
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    ]
    cursor = {"style": "cursor", "items": "/data", "cursor_param": "starting_after", "cursor_field": "/id"}
    link = {"style": "link", "cursor_param": "page"}
    return {
        "name": "pg",
        "title": "Pages",
        "base_url": base_url,
        "timeout": 5,
        "operations": [
            {
                "name": "cursor",
                "method": "GET",
                "path": "/cursor",
                "parameters": [TOTAL, limit, after],
                "pagination": {**cursor, "has_more": "/has_more", "limit_param": "limit", "default_limit": 10},
                "output_schema": ITEM,
            },
            {
                "name": "cursor_capped",
                "method": "GET",
                "path": "/cursor",
                "parameters": [TOTAL, limit, after],
                "pagination": {**cursor, "has_more": "/has_more", "max_pages": 2},
            },
            {
                "name": "cursor_items",
                "method": "GET",
                "path": "/cursor",
                "parameters": [TOTAL, limit, after],
                "pagination": {**cursor, "has_more": "/has_more", "max_items": 15},
            },
            {
                "name": "offset",
                "method": "GET",
                "path": "/offset",
                "parameters": [
                    TOTAL,
                    {"name": "start", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "size", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                ],
                "pagination": {
                    "style": "offset",
                    "items": "/data",
                    "offset_param": "start",
                    "limit_param": "size",
                    "default_limit": 20,
                    "lookahead": True,
                },
            },
            {"name": "link", "method": "GET", "path": "/link", "parameters": link_params, "pagination": link},
            {
                "name": "link_capped",
                "method": "GET",
                "path": "/link",
                "parameters": link_params,
                "pagination": {**link, "max_items": 15},
            },
            {
                "name": "slow",
                "method": "GET",
                "path": "/slow",
                "timeout": 1,
                "parameters": link_params,
                "pagination": link,
            },
            {"name": "flaky", "method": "GET", "path": "/flaky", "parameters": link_params, "pagination": link},
            {
                "name": "big",
                "method": "GET",
                "path": "/big",
                "max_result_chars": 3000,
                "parameters": link_params,
                "pagination": link,
            },
            {
                "name": "keyset",
                "method": "GET",
                "path": "/keyset",
                "parameters": [
                    TOTAL,
                    {"name": "after", "in": "query", "content_type": "application/json", "schema": {"type": "array"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                ],
                "arguments": [{"name": "since", "description": "Start after this m.", "schema": {"type": "string"}}],
                "pagination": {
                    "style": "keyset",
                    "items": "/data",
                    "keys": ["/m", "/name"],
                    "start": [{"argument": "since"}, ""],
                    "set": {"after": [{"key": 0}, {"key": 1}]},
                    "limit_param": "limit",
                    "default_limit": 2,
                    "lookahead": True,
                    "max_items": 100,
                    "max_pages": 100,
                },
            },
            {
                "name": "token",
                "method": "GET",
                "path": "/token",
                "parameters": [TOTAL, {"name": "cursor", "in": "query", "schema": {"type": "string"}}],
                "pagination": {
                    "style": "cursor",
                    "items": "/items",
                    "cursor_param": "cursor",
                    "next_cursor": "/meta/next",
                },
            },
            {
                "name": "wrong",
                "method": "GET",
                "path": "/wrong",
                "output_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
            },
            {
                "name": "cancel",
                "method": "DELETE",
                "path": "/cancel/{id}",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "invoice_now", "in": "query", "schema": {"type": "boolean"}},
                ],
                "arguments": [{"name": "later", "schema": {"type": "boolean", "default": False}}],
                "variants": [
                    {
                        "when": {"later": True},
                        "method": "POST",
                        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                        "body": {
                            "content_type": "application/x-www-form-urlencoded",
                            "schema": {"type": "object", "properties": {"cancel_at_period_end": {"type": "boolean"}}},
                        },
                        "set": {"cancel_at_period_end": True},
                    }
                ],
            },
        ],
    }


@pytest.fixture
async def pipeline(tmp_path: Path, pages_server: FakePages) -> AsyncIterator[Pipeline]:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "pg.json").write_text(json.dumps(manifest(pages_server.url)))
    catalog = load_catalog([tools])
    assert not catalog.faults, [str(f) for f in catalog.faults]
    vault = Vault(tmp_path / "vault.json", passphrase=PASSPHRASE, use_keyring=False)
    async with Pipeline(Registry.from_catalog(catalog), vault, environ={}) as running:
        yield running


def page(outcome: Outcome) -> dict[str, Any]:
    assert isinstance(outcome, ToolSuccess), outcome.to_body()
    assert isinstance(outcome.value, dict)
    return outcome.value


def ids(result: dict[str, Any]) -> list[str]:
    return [it["id"] for it in result["items"]]


def expected(first: int, last: int) -> list[str]:
    return [f"it_{i:03d}" for i in range(first, last + 1)]


# ------------------------------------------------------------------ cursor (Stripe's way)


async def test_cursor_page_and_following_next_page(pipeline: Pipeline, pages: FakePages) -> None:
    first = page(await pipeline.invoke("pg_cursor", {"limit": 10}))
    assert list(first) == ["has_more", "next_page", "object", "url", "items"]  # paging facts before the items
    assert first["has_more"] is True and first["next_page"] == {"starting_after": "it_010"}
    assert ids(first) == expected(1, 10)
    second = page(await pipeline.invoke("pg_cursor", {"limit": 10, **first["next_page"]}))
    third = page(await pipeline.invoke("pg_cursor", {"limit": 10, **second["next_page"]}))
    assert ids(second) + ids(third) == expected(11, 25)
    assert third["has_more"] is False and third["next_page"] is None
    assert "truncated" not in third and "pages" not in third


async def test_all_pages_follows_to_the_end(pipeline: Pipeline, pages: FakePages) -> None:
    result = page(await pipeline.invoke("pg_cursor", {"limit": 10, "all_pages": True}))
    assert ids(result) == expected(1, 25)
    assert result["pages"] == 3 and result["truncated"] is False
    assert result["has_more"] is False and result["next_page"] is None
    assert [call.get("starting_after") for call in pages.calls] == [None, "it_010", "it_020"]
    assert all("all_pages" not in call for call in pages.calls)  # the server's own argument is never sent


async def test_all_pages_stops_at_max_pages_and_says_so(pipeline: Pipeline, pages: FakePages) -> None:
    outcome = await pipeline.invoke("pg_cursor_capped", {"limit": 10, "all_pages": True})
    result = page(outcome)
    assert ids(result) == expected(1, 20)
    assert result["truncated"] is True and result["pages"] == 2 and result["has_more"] is True
    assert "all_pages stops after 2 pages" in result["note"] and "next_page continues" in result["note"]
    assert isinstance(outcome, ToolSuccess) and outcome.note is not None and "Stopped early" in outcome.note
    rest = page(await pipeline.invoke("pg_cursor_capped", {"limit": 10, "all_pages": True, **result["next_page"]}))
    assert ids(rest) == expected(21, 25) and rest["truncated"] is False


async def test_max_items_cuts_inside_a_page_and_resumes_exactly(pipeline: Pipeline, pages: FakePages) -> None:
    result = page(await pipeline.invoke("pg_cursor_items", {"limit": 10, "all_pages": True}))
    assert ids(result) == expected(1, 15)
    assert result["truncated"] is True and result["next_page"] == {"starting_after": "it_015"}
    assert "15 items" in result["note"]
    rest = page(await pipeline.invoke("pg_cursor_items", {"limit": 10, "all_pages": True, **result["next_page"]}))
    assert ids(rest) == expected(16, 25)


async def test_the_cursor_can_come_from_the_body(pipeline: Pipeline, pages: FakePages) -> None:
    first = page(await pipeline.invoke("pg_token", {}))
    assert first["next_page"] == {"cursor": "10"} and first["has_more"] is True
    everything = page(await pipeline.invoke("pg_token", {"all_pages": True}))
    assert ids(everything) == expected(1, 25) and everything["next_page"] is None
    assert "meta" not in everything  # the member the cursor came from is the pagination's, not an extra


# ------------------------------------------------------------------ offset with lookahead (Frappe's way)


async def test_offset_asks_for_one_more_to_know_for_sure(pipeline: Pipeline, pages: FakePages) -> None:
    result = page(await pipeline.invoke("pg_offset", {"size": 10}))
    assert pages.calls[-1]["size"] == "11" and pages.calls[-1].get("start") == "0"
    assert ids(result) == expected(1, 10)  # the look-ahead item is not returned
    assert result == {**result, "has_more": True, "next_page": {"start": 10}}
    # Exactly a full page left: a plain "full page means more" rule would say has_more here.
    last = page(await pipeline.invoke("pg_offset", {"size": 5, "start": 20}))
    assert ids(last) == expected(21, 25) and last["has_more"] is False and last["next_page"] is None


async def test_offset_all_pages_default_page_size(pipeline: Pipeline, pages: FakePages) -> None:
    result = page(await pipeline.invoke("pg_offset", {"total": 45, "all_pages": True}))
    assert len(result["items"]) == 45 and result["pages"] == 3
    assert [(c.get("start"), c["size"]) for c in pages.calls] == [("0", "21"), ("20", "21"), ("40", "21")]


# ------------------------------------------------------------------ the Link header (GitHub's way)


async def test_link_header_next_page(pipeline: Pipeline, pages: FakePages) -> None:
    first = page(await pipeline.invoke("pg_link", {"per_page": 10}))
    assert first["next_page"] == {"page": 2}  # a number again, as the `page` parameter wants
    everything = page(await pipeline.invoke("pg_link", {"per_page": 10, "all_pages": True}))
    assert ids(everything) == expected(1, 25) and everything["pages"] == 3


async def test_link_pages_are_never_split_by_the_cap(pipeline: Pipeline, pages: FakePages) -> None:
    # Page numbers cannot resume mid-page: the partial page is left for next_page to fetch whole.
    result = page(await pipeline.invoke("pg_link_capped", {"per_page": 10, "all_pages": True}))
    assert ids(result) == expected(1, 10)
    assert result["truncated"] is True and result["next_page"] == {"page": 2}


# ------------------------------------------------------------------ keyset with ties


async def test_keyset_pages_through_ties_without_skips_or_repeats(pipeline: Pipeline, pages: FakePages) -> None:
    everything = sorted((item(i) for i in range(1, 26)), key=lambda it: (it["m"], it["name"]))
    seen: list[str] = []
    arguments: dict[str, Any] = {"since": ""}
    for _ in range(20):
        result = page(await pipeline.invoke("pg_keyset", arguments))
        assert len(result["items"]) <= 2
        seen += ids(result)
        if not result["has_more"]:
            break
        arguments = {**result["next_page"]}  # the cursor alone continues
    assert seen == [it["id"] for it in everything]
    assert all("cursor" not in call and "since" not in call for call in pages.calls)
    assert pages.calls[0]["after"] == '["",""]' and pages.calls[0]["limit"] == "3"


async def test_keyset_all_pages_and_since(pipeline: Pipeline, pages: FakePages) -> None:
    result = page(await pipeline.invoke("pg_keyset", {"since": "2024-05-01 10:00:05", "all_pages": True}))
    wanted = sorted(
        (it for it in (item(i) for i in range(1, 26)) if (it["m"], it["name"]) > ("2024-05-01 10:00:05", "")),
        key=lambda it: (it["m"], it["name"]),
    )
    assert ids(result) == [it["id"] for it in wanted]
    assert result["has_more"] is False and result["truncated"] is False


async def test_keyset_needs_a_start_or_a_cursor(pipeline: Pipeline, pages: FakePages) -> None:
    for arguments, path in (({}, "$"), ({"cursor": "bm90LWEtY3Vyc29y"}, "$.cursor"), ({"cursor": "%%%"}, "$.cursor")):
        error = await pipeline.invoke("pg_keyset", arguments)
        assert isinstance(error, ToolError) and error.error_code == "INVALID_ARGUMENTS", arguments
        assert error.details["path"] == path
    assert pages.calls == []


def test_keyset_cursor_round_trip() -> None:
    key = ("2024-05-01 10:00:00.000001", "CUST/ü 1")
    cursor = encode_cursor(key)
    assert cursor.isascii() and "=" not in cursor and "/" not in cursor
    assert decode_cursor(cursor, 2) == key
    assert decode_cursor(cursor, 3) is None
    assert decode_cursor(encode_cursor(({"a": 1}, "x")), 2) is None  # keys are scalars
    assert fill({"f": [["m", ">", {"key": 0}], {"argument": "x"}]}, ("v",), {"x": 5}) == {"f": [["m", ">", "v"], 5]}


# ------------------------------------------------------------------ stopping early: deadline, failures, size


async def test_all_pages_stops_at_the_deadline_with_what_it_has(pipeline: Pipeline, pages: FakePages) -> None:
    pages.sleep = 3.0  # every page after the first outlasts the 1 s deadline
    started = asyncio.get_running_loop().time()
    result = page(await pipeline.invoke("pg_slow", {"per_page": 10, "all_pages": True}))
    assert asyncio.get_running_loop().time() - started < 2.5
    assert ids(result) == expected(1, 10)
    assert result["truncated"] is True and "time limit" in result["note"]
    assert result["next_page"] == {"page": 2}


async def test_a_failing_later_page_keeps_the_earlier_ones(pipeline: Pipeline, pages: FakePages) -> None:
    result = page(await pipeline.invoke("pg_flaky", {"per_page": 10, "total": 50, "all_pages": True}))
    assert ids(result) == expected(1, 20)
    assert result["truncated"] is True and "page 3 failed (RATE_LIMITED" in result["note"]
    assert result["next_page"] == {"page": 3}


async def test_a_failing_first_page_is_the_calls_failure(pipeline: Pipeline, pages: FakePages) -> None:
    outcome = await pipeline.invoke("pg_flaky", {"per_page": 10, "page": 3, "all_pages": True})
    assert isinstance(outcome, ToolError) and outcome.error_code == "RATE_LIMITED"


async def test_items_are_cut_to_the_result_limit_and_next_page_follows_them(
    pipeline: Pipeline, pages: FakePages
) -> None:
    outcome = await pipeline.invoke("pg_big", {"per_page": 10, "all_pages": True})
    result = page(outcome)
    assert isinstance(outcome, ToolSuccess) and len(outcome.text) <= 3000
    assert 1 <= len(result["items"]) < 10
    assert result["truncated"] is True
    # Page numbers cannot resume mid-page; what the first page could not show is said plainly.
    assert "left out" in result["note"] and "smaller page size" in result["note"]
    assert result["next_page"] == {"page": 2}


# ------------------------------------------------------------------ output schemas


async def test_page_object_matches_the_published_output_schema(pipeline: Pipeline, pages: FakePages) -> None:
    tool = pipeline.registry.get("pg_cursor")
    served = tool.mcp_tool.output_schema
    assert served is not None
    schema = served["anyOf"][0]  # the page; the other branch is the error body of a failed call
    assert schema["required"] == ["has_more", "next_page", "items"]
    assert schema["properties"]["items"]["items"] == ITEM
    assert schema["properties"]["next_page"]["properties"] == {"starting_after": {"type": "string"}}
    validator = Draft202012Validator(served)
    for arguments in ({"limit": 3}, {"all_pages": True}, {"total": 0}):
        structured = to_call_tool_result(await pipeline.invoke("pg_cursor", arguments)).structured_content
        assert list(validator.iter_errors(structured)) == [], arguments
    link_served = pipeline.registry.get("pg_link").mcp_tool.output_schema
    assert link_served is not None
    link_schema = link_served["anyOf"][0]
    assert link_schema["properties"]["items"]["items"] == {}
    assert link_schema["properties"]["next_page"]["properties"] == {"page": {"type": "integer", "minimum": 1}}


async def test_an_answer_that_breaks_the_output_schema_is_an_upstream_error(
    pipeline: Pipeline, pages: FakePages
) -> None:
    outcome = await pipeline.invoke("pg_wrong", {})
    assert isinstance(outcome, ToolError) and outcome.error_code == "UPSTREAM_ERROR"
    assert "does not match the output schema of pg_wrong at $.id" in outcome.message
    assert outcome.details["path"] == "$.id"


def test_input_schema_gains_all_pages_and_keyset_arguments(tmp_path: Path) -> None:
    (tmp_path / "pg.json").write_text(json.dumps(manifest("https://api.example.com")))
    registry = Registry.from_catalog(load_catalog([tmp_path]))
    keyset = registry.get("pg_keyset").input_schema
    assert list(keyset["properties"]) == ["total", "limit", "since", "cursor", "all_pages"]  # `after` is hidden
    assert keyset["properties"]["all_pages"]["default"] is False
    assert "100 items or 100 pages" in keyset["properties"]["all_pages"]["description"]
    assert "required" not in keyset and keyset["additionalProperties"] is False
    assert registry.get("pg_keyset").local == {"since", "cursor", "all_pages"}
    assert "all_pages" not in registry.get("pg_wrong").input_schema["properties"]


# ------------------------------------------------------------------ variants


async def test_variants_pick_the_request(pipeline: Pipeline, pages: FakePages) -> None:
    now = page(await pipeline.invoke("pg_cancel", {"id": "sub_1", "invoice_now": True}))
    assert now["method"] == "DELETE" and now["query"] == {"invoice_now": "true"} and now["body"] == ""
    later = page(await pipeline.invoke("pg_cancel", {"id": "sub_1", "later": True}))
    assert later == {"method": "POST", "body": "cancel_at_period_end=true", "query": {}}
    assert page(await pipeline.invoke("pg_cancel", {"id": "sub_1", "later": False}))["method"] == "DELETE"
    refused = await pipeline.invoke("pg_cancel", {"id": "sub_1", "later": True, "invoice_now": True})
    assert isinstance(refused, ToolError) and refused.error_code == "INVALID_ARGUMENTS"
    assert refused.details["path"] == "$.invoice_now" and "later=true" in refused.message
    schema = pipeline.registry.get("pg_cancel").input_schema
    assert list(schema["properties"]) == ["id", "invoice_now", "later"]  # the fixed body property stays hidden


# ------------------------------------------------------------------ pure parts: pointers, error formats, Link


def test_resolve_pointer() -> None:
    document = {"a": [{"b/c": 1, "~": 2}], "s": '[{"message": "inside"}]', "": 3}
    assert resolve_pointer(document, "") is document
    assert resolve_pointer(document, "/a/0/b~1c") == 1
    assert resolve_pointer(document, "/a/0/~0") == 2
    assert resolve_pointer(document, "/") == 3
    assert resolve_pointer(document, "/s/0/message") == "inside"  # JSON text inside a string is descended into
    for missing in ("/a/1", "/a/01", "/a/x", "/nope", "/a/0/b~1c/d", "/s/1"):
        assert resolve_pointer(document, missing) is _MISSING, missing


def test_error_format_message_and_details() -> None:
    stripe = ErrorFormat(
        message=("/error/message",),
        code=("/error/code",),
        type=("/error/type",),
        details={"decline_code": ("/error/decline_code",), "param": ("/error/param",)},
    )
    body = {
        "error": {
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": "Your card was declined.",
            "type": "card_error",
        }
    }
    said, fields = _formatted_error(body, stripe) or ("", {})
    assert said == "card_declined (card_error): Your card was declined."
    assert fields == {"code": "card_declined", "type": "card_error", "decline_code": "generic_decline"}
    assert _formatted_error({"error": {"message": "Only words."}}, stripe) == ("Only words.", {})
    assert _formatted_error({"message": "other format"}, stripe) is None
    frappe = ErrorFormat(message=("/_server_messages/0/message", "/exception"), type=("/exc_type",))
    server_messages = json.dumps([json.dumps({"message": "Customer X not found", "indicator": "red"})])
    frappe_body = {"exc_type": "DoesNotExistError", "_server_messages": server_messages}
    assert _formatted_error(frappe_body, frappe) == (
        "DoesNotExistError: Customer X not found",
        {"type": "DoesNotExistError"},
    )
    fallback = {"exc_type": "ValidationError", "exception": "frappe.exceptions.ValidationError: bad"}
    assert _formatted_error(fallback, frappe) == (
        "ValidationError: frappe.exceptions.ValidationError: bad",
        {"type": "ValidationError"},
    )


def test_next_link() -> None:
    header = (
        '<https://api.github.com/repositories/1/issues?page=1>; rel="prev", '
        '<https://api.github.com/repositories/1/issues?q=a,b&page=3>; rel="next", '
        '<https://api.github.com/repositories/1/issues?page=9>; rel="last"'
    )
    assert next_link(header) == "https://api.github.com/repositories/1/issues?q=a,b&page=3"
    assert next_link('<https://x.test/?p=2>; rel="prev next"') == "https://x.test/?p=2"
    assert next_link("<https://x.test/?p=2>; rel=next") == "https://x.test/?p=2"
    assert next_link('<https://x.test/?p=9>; rel="last"') is None
    assert next_link("") is None
