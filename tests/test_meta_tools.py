"""Discovery mode (`serve --discovery`) and served subsets (`--include-tools`/`--exclude-tools`) on real servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from mcp_server._app import build_application
from mcp_server._config import Settings
from mcp_server._server import to_call_tool_result
from tests._scenario import assert_no_secret, text_of
from tests._upstream import FakeUpstream
from tests.conftest import SECRET, server_command, start_http_server, stop_process

META_TOOLS = ["search_tools", "describe_tool", "call_tool"]
ECHO_TOOLS = [
    "echo_get_item",
    "echo_create_item",
    "echo_create_charge",
    "echo_delete_item",
    "echo_fail",
    "echo_text",
    "echo_empty",
    "echo_slow",
    "echo_big",
    "echo_throttled",
]


def structured(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, text_of(result)
    assert json.loads(text_of(result)) == result.structured_content  # the same JSON as a text block
    return result.structured_content


def invalid(result: CallToolResult) -> dict[str, Any]:
    """The INVALID_ARGUMENTS error body of a failed call."""
    assert result.is_error, text_of(result)
    body = structured(result)
    assert body["success"] is False
    assert body["error_code"] == "INVALID_ARGUMENTS", body
    return body


async def direct_call(env: dict[str, str], name: str, arguments: dict[str, Any]) -> CallToolResult:
    """The same call as a server without discovery makes it (the real pipeline, in this process)."""
    app = build_application(Settings.resolve(environ=env))
    async with app.pipeline:
        return to_call_tool_result(await app.pipeline.invoke(name, arguments))


async def test_discovery_mode_over_stdio(server_env: dict[str, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    command, args = server_command()
    params = StdioServerParameters(
        command=command, args=[*args, "--discovery", "--exclude-tools", "down_*"], env=server_env
    )
    log_path = tmp_path / "stderr.log"
    with log_path.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            # Three meta-tools instead of the catalog.
            listing = await client.list_tools()
            assert [tool.name for tool in listing.tools] == META_TOOLS
            assert listing.next_cursor is None

            # search_tools: ranked, limited, over the served subset only (down_* excluded).
            found = structured(await client.call_tool("search_tools", {"query": "create item"}))
            assert found["tools"][0]["name"] == "echo_create_item"
            assert found["total_tools"] == 18
            scores = [hit["score"] for hit in found["tools"]]
            assert scores == sorted(scores, reverse=True)
            assert set(found["tools"][0]) == {"name", "title", "description", "score"}
            limited = structured(await client.call_tool("search_tools", {"query": "whoami", "limit": 3}))
            assert len(limited["tools"]) == 3
            assert all(hit["name"].endswith("_whoami") for hit in limited["tools"])
            whoami = structured(await client.call_tool("search_tools", {"query": "whoami", "limit": 50}))
            assert len(whoami["tools"]) == 8 and "down_whoami" not in {hit["name"] for hit in whoami["tools"]}
            # A JSON number like 2.0 is an integer to JSON Schema, so it must work as a limit too.
            two = await client.call_tool("search_tools", {"query": "item", "limit": 2.0})
            assert not two.is_error, text_of(two)
            assert len(structured(two)["tools"]) == 2
            assert structured(await client.call_tool("search_tools", {"query": "zzzqqq"}))["tools"] == []

            # describe_tool: the full definition, exactly as a plain server lists it.
            described = structured(await client.call_tool("describe_tool", {"name": "echo_get_item"}))
            app = build_application(Settings.resolve(environ=server_env))
            expected = app.pipeline.registry.get("echo_get_item").mcp_tool.model_dump(
                by_alias=True, mode="json", exclude_none=True
            )
            assert described == expected
            assert described["inputSchema"]["required"] == ["item_id"]
            assert described["inputSchema"]["properties"]["limit"] == {"type": "integer", "minimum": 1, "maximum": 100}

            # call_tool: through the pipeline, credential injected, same result as a direct call.
            arguments = {"item_id": "a/b", "verbose": True, "tags": ["x", "y"]}
            result = await client.call_tool("call_tool", {"name": "echo_get_item", "arguments": arguments})
            assert not result.is_error, text_of(result)
            received = upstream.requests[-1]
            assert received.headers["authorization"] == f"Bearer {SECRET}"
            assert received.raw_path == "/echo/items/a%2Fb"
            assert received.query == "verbose=true&tags=x&tags=y"
            body = structured(result)
            assert body["headers"]["authorization"] == "Bearer [REDACTED]"
            direct = await direct_call(server_env, "echo_get_item", arguments)
            assert body == direct.structured_content
            assert text_of(result) == text_of(direct)
            assert_no_secret(text_of(result))

            # A body-taking tool; `arguments` may be omitted for a tool without required ones.
            created = await client.call_tool("call_tool", {"name": "echo_create_item", "arguments": {"title": "t"}})
            assert not created.is_error and upstream.requests[-1].json == {"title": "t"}
            assert not (await client.call_tool("call_tool", {"name": "noauth_whoami"})).is_error

            # The tool's own errors come back as they would from a direct call.
            before = len(upstream.requests)
            bad = invalid(
                await client.call_tool(
                    "call_tool", {"name": "echo_get_item", "arguments": {"item_id": "1", "limit": 0}}
                )
            )
            assert bad["details"]["path"] == "$.limit"
            assert bad["error"].startswith("Invalid arguments for echo_get_item at $.limit")
            missing = invalid(await client.call_tool("call_tool", {"name": "echo_get_item", "arguments": {}}))
            assert missing["details"]["path"] == "$"
            assert len(upstream.requests) == before  # never sent
            auth = structured(await client.call_tool("call_tool", {"name": "missing_whoami"}))
            assert auth["error_code"] == "AUTH_MISSING"
            assert "mcp-connectors vault set never_stored" in auth["error"]
            failed = await client.call_tool("call_tool", {"name": "echo_fail", "arguments": {"code": 500}})
            assert failed.is_error and structured(failed)["error_code"] == "UPSTREAM_ERROR"
            assert structured(failed)["details"]["status"] == 500
            assert_no_secret(text_of(failed))

            # An unknown tool name is the caller's mistake, answered with where to look.
            before = len(upstream.requests)
            for call in ("call_tool", "describe_tool"):
                unknown = invalid(await client.call_tool(call, {"name": "echo_no_such_tool"}))
                assert "echo_no_such_tool" in unknown["error"] and "search_tools" in unknown["error"]
                assert unknown["details"]["path"] == "$.name"
            excluded = invalid(await client.call_tool("call_tool", {"name": "down_whoami"}))
            assert "search_tools" in excluded["error"]

            # The meta-tools' own arguments are checked against their schemas.
            cases: list[tuple[str, dict[str, Any], str, str]] = [
                ("search_tools", {}, "$", "'query' is a required property"),
                ("search_tools", {"query": ""}, "$.query", "non-empty"),
                ("search_tools", {"query": "x", "limit": 0}, "$.limit", "minimum"),
                ("search_tools", {"query": "x", "limit": 51}, "$.limit", "maximum"),
                ("search_tools", {"query": "x", "limit": "5"}, "$.limit", "not of type 'integer'"),
                ("search_tools", {"query": "x", "extra": 1}, "$", "'extra'"),
                ("describe_tool", {"name": 5}, "$.name", "not of type 'string'"),
                ("call_tool", {}, "$", "'name' is a required property"),
                ("call_tool", {"name": "echo_get_item", "arguments": "item_id=1"}, "$.arguments", "'object'"),
            ]
            for tool, tool_arguments, path, words in cases:
                error = invalid(await client.call_tool(tool, tool_arguments))
                assert error["details"]["path"] == path, (tool, tool_arguments, error)
                assert words in error["error"], (tool, tool_arguments, error)
                assert error["error"].startswith(f"Invalid arguments for {tool} at {path}: ")
            assert len(upstream.requests) == before
    log = log_path.read_text()
    assert "Traceback" not in log
    assert_no_secret(log)


async def test_include_and_exclude_tools_over_http(server_env: dict[str, str], tmp_path: Path) -> None:
    server = start_http_server(
        server_env, tmp_path / "server.log", "--include-tools", "echo_*", "--exclude-tools", "*delete*"
    )
    try:
        wanted = [name for name in ECHO_TOOLS if name != "echo_delete_item"]
        async with Client(f"{server.url}/mcp") as client:
            assert [tool.name for tool in (await client.list_tools()).tools] == wanted
            with pytest.raises(MCPError) as caught:  # an unlisted tool is unknown: a protocol error
                await client.call_tool("keyhdr_whoami", {})
            assert caught.value.code == -32602
            with pytest.raises(MCPError):
                await client.call_tool("echo_delete_item", {"item_id": "1"})
        async with httpx2.AsyncClient() as http:
            rest = (await http.get(f"{server.url}/v1/tools")).json()
            assert [tool["name"] for tool in rest["tools"]] == wanted
            assert (await http.get(f"{server.url}/health")).json()["tools"] == len(wanted)
    finally:
        stop_process(server.process)
