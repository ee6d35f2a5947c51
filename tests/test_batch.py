"""`batch_invoke` end to end: real server processes, MCP and REST, a fake upstream that counts calls in flight."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_server._clients import ClientsFile
from tests._scenario import assert_no_secret, text_of
from tests._upstream import FakeUpstream, UpstreamThread
from tests.conftest import SECRET, ServerProcess, start_http_server, stop_process


class CountingUpstream(FakeUpstream):
    """`/hold`: counts requests in flight; each waits until `bound` are in flight at once (or 5 s), then answers.

    Timing-free: a batch that keeps its bound makes the upstream see exactly `bound` at once, never more.
    """

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.max_in_flight = 0
        self.held = 0
        self.bound = 4
        self._crowd = asyncio.Event()

    def reset(self, bound: int) -> None:
        self.in_flight = self.max_in_flight = self.held = 0
        self.bound = bound
        self._crowd = asyncio.Event()
        self.requests.clear()

    async def _handle(self, request: Request) -> Response:
        if request.url.path != "/hold":
            return await super()._handle(request)
        self.held += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.in_flight >= self.bound:
            self._crowd.set()
        with contextlib.suppress(TimeoutError):  # fewer calls than the bound (the last round): go on
            await asyncio.wait_for(self._crowd.wait(), 5)
        await asyncio.sleep(0.2)  # still in flight while the next ones arrive: a broken bound would show
        self.in_flight -= 1
        if self.in_flight == 0:
            self._crowd = asyncio.Event()
        return JSONResponse({"n": request.query_params.get("n")})


@pytest.fixture(scope="module")
def counting() -> Iterator[CountingUpstream]:
    thread = UpstreamThread(CountingUpstream())
    upstream = thread.start()
    assert isinstance(upstream, CountingUpstream)
    yield upstream
    thread.stop()


@pytest.fixture
def batch_env(server_env: dict[str, str], tools_dir: Path, counting: CountingUpstream) -> dict[str, str]:
    (tools_dir / "holder.yaml").write_text(
        f"name: holder\nbase_url: {counting.url}\ntimeout: 20\nretry: {{attempts: 1}}\n"
        "operations: [{name: hold, method: GET, path: /hold, "
        "parameters: [{name: n, in: query, schema: {type: integer}}]}]\n"
    )
    return server_env


@pytest.fixture
def batch_server(batch_env: dict[str, str], tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_http_server(batch_env, tmp_path / "server.log")
    yield server
    stop_process(server.process)


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"tool": tool, "arguments": arguments}


async def test_results_in_order_with_per_call_errors(batch_server: ServerProcess, upstream: FakeUpstream) -> None:
    calls = [
        call("echo_get_item", item_id="1"),
        call("no_such_tool"),
        call("echo_get_item", item_id="2", limit=0),  # breaks the schema
        call("echo_fail", code=500),
        call("echo_create_item", title="made in a batch"),
        call("echo_text"),
    ]
    async with Client(f"{batch_server.url}/mcp") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        batch_tool = tools["batch_invoke"]
        assert batch_tool.input_schema["properties"]["calls"]["maxItems"] == 20
        result = await client.call_tool("batch_invoke", {"calls": calls})
        assert not result.is_error, text_of(result)
        assert result.structured_content is not None
        body = result.structured_content
        single = await client.call_tool("echo_fail", {"code": 500})  # the same call alone, for comparison
    results = body["results"]
    assert [r["tool"] for r in results] == [c["tool"] for c in calls]
    assert [r["success"] for r in results] == [True, False, False, False, True, True]
    assert (body["succeeded"], body["failed"]) == (3, 3)
    assert results[0]["result"]["path"] == "/echo/items/1"
    assert results[0]["result"]["headers"]["authorization"] == "Bearer [REDACTED]"  # scrubbed as a single call's
    sent = next(r for r in upstream.requests if r.raw_path == "/echo/items/1")
    assert sent.headers["authorization"] == f"Bearer {SECRET}"  # the credential went upstream, as for a single call
    assert results[1]["error_code"] == "UNKNOWN_TOOL" and results[1]["details"] == {"tool": "no_such_tool"}
    assert results[2]["error_code"] == "INVALID_ARGUMENTS" and results[2]["details"]["path"] == "$.limit"
    assert single.structured_content is not None
    assert {k: v for k, v in results[3].items() if k != "tool"} == single.structured_content  # same error body
    assert json.loads(results[4]["result"]["body"]) == {"title": "made in a batch"}
    assert results[5]["result"].startswith("headers were:")  # a text result stays text
    assert_no_secret(json.dumps([results[1:4], single.structured_content]))
    assert "no_such_tool" not in {r.raw_path for r in upstream.requests}


async def test_concurrency_is_bounded(batch_server: ServerProcess, counting: CountingUpstream) -> None:
    counting.reset(bound=4)
    calls = [call("holder_hold", n=n) for n in range(12)]
    async with Client(f"{batch_server.url}/mcp") as client:
        result = await client.call_tool("batch_invoke", {"calls": calls})
    assert result.structured_content is not None, text_of(result)
    assert [r["result"]["n"] for r in result.structured_content["results"]] == [str(n) for n in range(12)]
    assert counting.max_in_flight == 4  # the default bound, reached and never passed
    assert counting.held == 12


def test_limits_nesting_and_rest(
    batch_server: ServerProcess, upstream: FakeUpstream, counting: CountingUpstream
) -> None:
    def invoke(calls: list[dict[str, Any]]) -> httpx2.Response:
        return httpx2.post(
            f"{batch_server.url}/v1/invoke",
            json={"tool": "batch_invoke", "parameters": {"calls": calls}},
            timeout=30,
        )

    ok = invoke([call("echo_get_item", item_id="a"), call("echo_get_item", item_id="b")])
    assert ok.status_code == 200
    assert [r["result"]["path"] for r in ok.json()["result"]["results"]] == ["/echo/items/a", "/echo/items/b"]

    upstream.requests.clear()
    too_many = invoke([call("echo_get_item", item_id=str(n)) for n in range(21)])
    assert too_many.status_code == 422 and too_many.json()["error_code"] == "INVALID_ARGUMENTS"
    assert too_many.json()["details"]["path"] == "$.calls"
    nested = invoke([call("echo_get_item", item_id="x"), call("batch_invoke", calls=[call("echo_text")])])
    assert nested.status_code == 422 and nested.json()["details"]["path"] == "$.calls[1].tool"
    assert "cannot be nested" in nested.json()["error"]
    empty = invoke([])
    assert empty.status_code == 422
    assert upstream.requests == []  # a refused batch runs nothing

    listed = httpx2.get(f"{batch_server.url}/v1/tools", params={"format": "openai"}).json()["tools"]
    [batch] = [t for t in listed if t["function"]["name"] == "batch_invoke"]
    assert batch["function"]["parameters"]["required"] == ["calls"]


def test_batch_settings_from_the_environment(
    batch_env: dict[str, str], tmp_path: Path, counting: CountingUpstream
) -> None:
    env = {**batch_env, "MCP_CONNECTORS_BATCH_MAX_CALLS": "3", "MCP_CONNECTORS_BATCH_CONCURRENCY": "2"}
    server = start_http_server(env, tmp_path / "server.log")
    try:
        counting.reset(bound=2)
        hold = [call("holder_hold", n=n) for n in range(3)]
        answer = httpx2.post(
            f"{server.url}/v1/invoke", json={"tool": "batch_invoke", "parameters": {"calls": hold}}, timeout=30
        )
        assert answer.status_code == 200 and answer.json()["result"]["succeeded"] == 3
        assert counting.max_in_flight == 2
        four = httpx2.post(
            f"{server.url}/v1/invoke", json={"tool": "batch_invoke", "parameters": {"calls": hold + hold[:1]}}
        )
        assert four.status_code == 422
    finally:
        stop_process(server.process)


# -- the same gate as single calls: scopes and per-client limits apply to every call of a batch ---------------


@pytest.fixture
def team_server(
    batch_env: dict[str, str], vault_path: Path, tmp_path: Path
) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    clients = ClientsFile(vault_path.with_name("clients.json"))
    tokens = {
        "admin": clients.add("admin", scopes=["tools:*"], rate_limit="off", max_concurrent=2),
        "batcher": clients.add("batcher", scopes=["tools:echo:read", "tools:batch_invoke"], rate_limit="off"),
        "reader": clients.add("reader", scopes=["tools:echo:read"]),
    }
    server = start_http_server(batch_env, tmp_path / "server.log")
    yield server, tokens
    stop_process(server.process)


def test_scopes_and_client_limits_apply_per_call(
    team_server: tuple[ServerProcess, dict[str, str]], counting: CountingUpstream, vault_path: Path
) -> None:
    server, tokens = team_server

    def invoke(client: str, calls: list[dict[str, Any]]) -> httpx2.Response:
        return httpx2.post(
            f"{server.url}/v1/invoke",
            json={"tool": "batch_invoke", "parameters": {"calls": calls}},
            headers={"Authorization": f"Bearer {tokens[client]}"},
            timeout=30,
        )

    def names(client: str) -> set[str]:
        listing = httpx2.get(f"{server.url}/v1/tools", headers={"Authorization": f"Bearer {tokens[client]}"})
        return {tool["name"] for tool in listing.json()["tools"]}

    assert "batch_invoke" in names("admin") and "batch_invoke" in names("batcher")
    assert "batch_invoke" not in names("reader")  # a connector scope does not grant batches
    assert invoke("reader", [call("echo_get_item", item_id="1")]).status_code == 403

    mixed = invoke("batcher", [call("echo_get_item", item_id="1"), call("echo_create_item", title="t")])
    assert mixed.status_code == 200
    first, second = mixed.json()["result"]["results"]
    assert first["success"] is True
    assert second["error_code"] == "FORBIDDEN"  # outside its scopes, as the single call would be

    # A client allowed 2 calls at once gets a batch that runs 2 at once, never refused by its own limit.
    counting.reset(bound=2)
    held = invoke("admin", [call("holder_hold", n=n) for n in range(5)])
    assert held.status_code == 200 and held.json()["result"]["succeeded"] == 5
    assert counting.max_in_flight == 2
    # Every call is audited as the client's own (the same Caller as a single call).
    audit = [json.loads(line) for line in vault_path.with_name("audit.jsonl").read_text().splitlines()]
    batched = [entry for entry in audit if entry["tool"] == "echo_get_item"]
    assert batched and batched[-1]["client"] == "batcher"
