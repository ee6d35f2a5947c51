"""Fuzz the MCP endpoints with hypothesis: /mcp (both protocol eras) and the legacy /messages/.

Malformed JSON-RPC against a real server process: wrong types and missing fields in the envelope,
huge and odd ids, invalid methods, params of the wrong shape, nested garbage, batch arrays, raw and
non-UTF-8 bytes, truncated JSON, deep nesting, over-long numbers, odd headers. Every answer must be
a JSON-RPC message (a result, or an error other than -32603 Internal error) or a 4xx with a JSON
body — never a 5xx, never a hang (every exchange has a deadline), and the server must still answer
a valid call afterwards, on a fresh connection and on the fuzzed SSE session itself.

`MCP_CONNECTORS_FUZZ_EXAMPLES` sets the examples per target (default 150, which keeps the module
well under a minute, derandomized); setting it makes a long randomized run. Counts are printed at
the end of the module (`pytest -s`).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._upstream import FakeUpstream
from tests._wire_client import (
    Hang,
    SseSession,
    WireResponse,
    exchange,
    is_jsonrpc_error,
    is_rest_error,
    port_of,
    sse_data,
    wire_server_env,
)
from tests.conftest import ServerProcess, start_http_server, stop_process

EXAMPLES = int(os.environ.get("MCP_CONNECTORS_FUZZ_EXAMPLES", "150"))
LONG_RUN = "MCP_CONNECTORS_FUZZ_EXAMPLES" in os.environ
INTERNAL_ERROR = -32603
MODERN = "2026-07-28"
LEGACY = "2025-11-25"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
FAST_TOOLS = ["echo_get_item", "echo_create_item", "echo_create_charge", "echo_text", "echo_empty", "noauth_whoami"]
METHODS = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "subscriptions/listen",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
]

COUNTS: Counter[str] = Counter()
STATUSES: Counter[str] = Counter()

# ------------------------------------------------------------------ strategies

MISSING = object()
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
ids = st.one_of(st.integers(), st.integers(min_value=10**18, max_value=10**30), st.text(max_size=12), json_values)
methods = st.one_of(st.sampled_from(METHODS), st.text(max_size=24), json_values)
arguments = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(["item_id", "title", "count", "amount", "metadata", "verbose", "tags", "limit", "X-Trace"]),
        json_values,
        max_size=4,
    ),
)
params = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.one_of(st.sampled_from(FAST_TOOLS), st.text(max_size=16), json_values),
            "arguments": arguments,
            "cursor": json_values,
            "_meta": st.one_of(st.just(META), json_values),
            "protocolVersion": st.one_of(st.sampled_from([MODERN, LEGACY, "2024-11-05", "1.0"]), json_values),
            "capabilities": json_values,
            "clientInfo": json_values,
            "level": json_values,
            "uri": json_values,
            "requestId": json_values,
        },
    ),
)


# Params of roughly the right shape per method, with fuzzed values: these get past the SDK's
# validation into our handlers (tools/call runs the pipeline against the fake upstream).
valid_arguments = st.fixed_dictionaries(
    {},
    optional={
        "item_id": st.text(max_size=12),
        "title": st.text(max_size=12),
        "count": st.integers(),
        "amount": st.integers(),
        "metadata": st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3),
        "verbose": st.booleans(),
        "tags": st.lists(st.text(max_size=6), max_size=3),
        "limit": st.integers(-5, 200),
        "X-Trace": st.text(max_size=12),
    },
)
PLAUSIBLE_PARAMS: dict[str, st.SearchStrategy[Any]] = {
    "tools/list": st.fixed_dictionaries({}, optional={"cursor": st.one_of(st.text(max_size=12), json_values)}),
    "tools/call": st.fixed_dictionaries(
        {"name": st.one_of(st.sampled_from(FAST_TOOLS), st.text(max_size=12))},
        optional={"arguments": st.one_of(valid_arguments, arguments)},
    ),
    "initialize": st.fixed_dictionaries(
        {
            "protocolVersion": st.sampled_from([LEGACY, "2025-06-18", "2024-11-05", MODERN, "bogus"]),
            "capabilities": st.one_of(st.just({}), json_values),
            "clientInfo": st.one_of(st.just({"name": "fuzz", "version": "1"}), json_values),
        }
    ),
    "ping": st.one_of(st.just({}), st.none()),
    "logging/setLevel": st.fixed_dictionaries(
        {"level": st.one_of(st.sampled_from(["debug", "error", "x"]), json_values)}
    ),
    "resources/read": st.fixed_dictionaries({"uri": st.one_of(st.text(max_size=20), json_values)}),
    "notifications/cancelled": st.fixed_dictionaries({"requestId": ids}, optional={"reason": st.text(max_size=8)}),
}


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON-RPC-shaped object with any field missing, of the wrong type, or odd."""
    fields: dict[str, Any] = {
        "jsonrpc": draw(st.one_of(st.just("2.0"), st.just(MISSING), json_values)),
        "id": draw(st.one_of(ids, st.just(MISSING))),
        "method": draw(st.one_of(methods, st.just(MISSING))),
        "params": draw(st.one_of(params, st.just(MISSING))),
    }
    if draw(st.integers(0, 9)) == 0:
        fields[draw(st.sampled_from(["result", "error", "extra"]))] = draw(json_values)
    return {key: value for key, value in fields.items() if value is not MISSING}


@st.composite
def well_formed(draw: st.DrawFn, modern: bool = False) -> dict[str, Any]:
    """A correct envelope (jsonrpc, a string or integer id, a real method) around fuzzed params.

    Most malformed envelopes stop at the transport; these reach the session, the dispatcher and
    our handlers. For 2026-07-28 the params usually carry the required `_meta`.
    """
    message: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": draw(st.one_of(st.integers(), st.text(max_size=12))),
        "method": draw(st.sampled_from(METHODS)),
    }
    plausible = PLAUSIBLE_PARAMS.get(message["method"], params)
    fuzzed = draw(st.one_of(plausible, plausible, st.just(MISSING), params))
    if modern and draw(st.integers(0, 4)) < 4:  # the simplest draw (0) keeps the envelope valid
        fuzzed = {**(fuzzed if isinstance(fuzzed, dict) else {}), "_meta": META}
    if fuzzed is not MISSING:
        message["params"] = fuzzed
    if message["method"].startswith("notifications/") and draw(st.booleans()):
        del message["id"]
    return message


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


@st.composite
def bodies(draw: st.DrawFn, modern: bool = False) -> bytes:
    kind = draw(st.integers(0, 11))
    if kind <= 4:
        return _dumps(draw(well_formed(modern)))
    if kind in (9, 10):
        return _dumps(draw(messages()))
    if kind == 5:
        return _dumps(draw(st.lists(messages(), max_size=4)))  # a batch
    if kind == 6:
        return draw(st.binary(max_size=64))  # raw bytes, mostly not UTF-8
    if kind == 7:
        text = _dumps(draw(messages()))
        cut = draw(st.integers(0, max(0, len(text) - 1)))
        return text[:cut] + draw(st.sampled_from([b"", b"\xff", b"\xc3\x28", b"\x00", b"\xed\xa0\x80"]))
    if kind == 8:
        depth = draw(st.integers(50, 20_000))
        opener = draw(st.sampled_from([b"[", b'{"a":']))
        closer = b"]" if opener == b"[" else b"}"
        return opener * depth + b"1" + closer * depth
    digits = draw(st.integers(300, 20_000))
    field = draw(st.sampled_from([b"id", b"jsonrpc", b"params"]))
    rest = {b"id": b'"jsonrpc": "2.0", "method": "ping"', b"jsonrpc": b'"id": 1, "method": "ping"'}
    return b"{" + b'"' + field + b'": ' + b"9" * digits + b", " + rest.get(field, b'"id": 1, "method": "ping"') + b"}"


@st.composite
def modern_requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """A 2026-07-28 POST: body and headers, the routing headers usually agreeing with the body."""
    body = draw(bodies(modern=True))
    headers = draw(modern_headers())
    try:
        decoded: Any = json.loads(body)
    except (ValueError, RecursionError):
        decoded = None
    if isinstance(decoded, dict) and draw(st.integers(0, 3)) < 3:
        message: dict[str, Any] = decoded
        headers.pop("Mcp-Name", None)
        if isinstance(message.get("method"), str) and message["method"].isprintable():
            headers["Mcp-Method"] = message["method"]
        name = message.get("params", {}).get("name") if isinstance(message.get("params"), dict) else None
        if isinstance(name, str) and name.isascii() and name.isprintable():
            headers["Mcp-Name"] = name
    return body, headers


@st.composite
def modern_headers(draw: st.DrawFn) -> dict[str, str]:
    headers = {
        "Content-Type": draw(
            st.sampled_from(["application/json"] * 8 + ["text/plain", "application/json; charset=utf-8"])
        ),
        "Accept": draw(
            st.sampled_from(["application/json, text/event-stream"] * 6 + ["application/json", "*/*", "text/html"])
        ),
        "MCP-Protocol-Version": draw(st.sampled_from([MODERN] * 8 + ["2099-01-01", "garbage"])),
    }
    method = draw(st.one_of(st.none(), st.sampled_from(METHODS), st.text(alphabet="abc/", max_size=8)))
    if method is not None:
        headers["Mcp-Method"] = method
    if draw(st.booleans()):
        headers["Mcp-Name"] = draw(st.sampled_from([*FAST_TOOLS, "nope"]))
    return headers


# ------------------------------------------------------------------ checks


def check_answer(response: WireResponse, target: str) -> list[Any]:
    """Assert the answer is well-formed; return the JSON-RPC messages it carried."""
    COUNTS[target] += 1
    STATUSES[f"{target} {response.status}"] += 1
    assert response.status < 500, (response.status, response.body[:500])
    if response.status == 202:
        assert response.body in (b"", b"Accepted"), response.body[:200]
        return []
    if response.status >= 400:
        assert response.content_type == "application/json", (response.status, response.headers, response.body[:300])
        body = json.loads(response.body)
        assert is_jsonrpc_error(body) or is_rest_error(body), body
        return [body]
    if response.streaming:
        events = [json.loads(data) for data in sse_data(response.body)]
    else:
        assert response.content_type == "application/json", (response.headers, response.body[:300])
        events = [json.loads(response.body)]
    for event in events:
        assert isinstance(event, dict) and event.get("jsonrpc") == "2.0", event
        error = event.get("error")
        assert error is None or error.get("code") != INTERNAL_ERROR, event
    return events


# ------------------------------------------------------------------ the server and its sessions


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, upstream_server: FakeUpstream) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("fuzz-mcp")
    server = start_http_server(wire_server_env(base, upstream_server.url), base / "server.log")
    yield server
    stop_process(server.process)
    log = server.log()
    assert "Traceback" not in log, log[-4000:]  # bad input is answered, not crashed on
    total = sum(COUNTS.values())
    print(f"\nhypothesis MCP fuzz: {total} requests; per target {dict(COUNTS)}")
    for key, count in sorted(STATUSES.items()):
        print(f"  {key}: {count}")


def open_legacy_session(port: int) -> str:
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}},
    }
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    opened = exchange(port, "POST", "/mcp", headers, _dumps(init), read_stream=True)
    assert opened.status == 200, opened.body[:300]
    session = opened.headers["mcp-session-id"]
    initialized = {**headers, "Mcp-Session-Id": session, "MCP-Protocol-Version": LEGACY}
    done = exchange(port, "POST", "/mcp", initialized, b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
    assert done.status == 202
    return session


def assert_serves_valid_calls(server: ServerProcess) -> None:
    port = port_of(server.url)
    body = _dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": META}})
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/list",
    }
    listing = exchange(port, "POST", "/mcp", headers, body, read_stream=True)
    assert listing.status == 200 and listing.json()["result"]["tools"]
    session = open_legacy_session(port)
    legacy = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "Mcp-Session-Id": session,
        "MCP-Protocol-Version": LEGACY,
    }
    answer = exchange(port, "POST", "/mcp", legacy, b'{"jsonrpc": "2.0", "id": 5, "method": "ping"}', read_stream=True)
    assert [json.loads(data) for data in sse_data(answer.body)] == [{"jsonrpc": "2.0", "id": 5, "result": {}}]


def fuzz_settings() -> settings:
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        derandomize=not LONG_RUN,
    )


# ------------------------------------------------------------------ the fuzz tests


def test_fuzz_streamable_http_modern(fuzz_server: ServerProcess) -> None:
    port = port_of(fuzz_server.url)

    @fuzz_settings()
    @given(request=modern_requests())
    def fuzz(request: tuple[bytes, dict[str, str]]) -> None:
        body, headers = request
        check_answer(exchange(port, "POST", "/mcp", headers, body, read_stream=True), "mcp-modern")

    fuzz()
    assert_serves_valid_calls(fuzz_server)


def test_fuzz_streamable_http_legacy_without_session(fuzz_server: ServerProcess) -> None:
    port = port_of(fuzz_server.url)

    @fuzz_settings()
    @given(body=bodies(), version=st.sampled_from([None, LEGACY, "2025-06-18", "2025-03-26", "2024-11-05"]))
    def fuzz(body: bytes, version: str | None) -> None:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if version is not None:
            headers["MCP-Protocol-Version"] = version
        check_answer(exchange(port, "POST", "/mcp", headers, body, read_stream=True), "mcp-legacy-new")

    fuzz()
    assert_serves_valid_calls(fuzz_server)


def test_fuzz_streamable_http_legacy_in_a_session(fuzz_server: ServerProcess) -> None:
    port = port_of(fuzz_server.url)
    state = {"session": open_legacy_session(port)}

    @fuzz_settings()
    @given(body=bodies())
    def fuzz(body: bytes) -> None:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "Mcp-Session-Id": state["session"],
            "MCP-Protocol-Version": LEGACY,
        }
        response = exchange(port, "POST", "/mcp", headers, body, read_stream=True)
        check_answer(response, "mcp-legacy-session")
        if response.status == 404:  # the fuzz ended the session (it may): carry on in a new one
            state["session"] = open_legacy_session(port)

    fuzz()
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "Mcp-Session-Id": state["session"],
        "MCP-Protocol-Version": LEGACY,
    }
    ping = exchange(
        port, "POST", "/mcp", headers, b'{"jsonrpc": "2.0", "id": "last", "method": "ping"}', read_stream=True
    )
    assert [json.loads(data) for data in sse_data(ping.body)] == [{"jsonrpc": "2.0", "id": "last", "result": {}}]
    assert_serves_valid_calls(fuzz_server)


def test_fuzz_legacy_sse_messages(fuzz_server: ServerProcess) -> None:
    port = port_of(fuzz_server.url)
    session = SseSession(port)
    try:
        session.initialize()

        @fuzz_settings()
        @given(body=bodies())
        def fuzz(body: bytes) -> None:
            response = session.post(body)
            check_answer(response, "sse-messages")
            if response.status != 202:
                return
            message = json.loads(body)
            if not (isinstance(message, dict) and "method" in message and "id" in message):
                return  # a notification or a response: nothing comes back
            while True:  # the answer arrives on the stream, in time
                try:
                    event, data = session.next_event(deadline=5)
                except Hang:
                    raise Hang(f"no answer on the SSE stream to {body[:300]!r}") from None
                if event != "message":
                    continue
                answer = json.loads(data)
                assert answer.get("jsonrpc") == "2.0", answer
                error = answer.get("error")
                assert error is None or error.get("code") != INTERNAL_ERROR, answer
                if answer.get("id") == message["id"] and ("result" in answer or "error" in answer):
                    return

        fuzz()
        assert session.call("ping", request_id="after-fuzz") == {"jsonrpc": "2.0", "id": "after-fuzz", "result": {}}
    finally:
        session.close()
    assert_serves_valid_calls(fuzz_server)
