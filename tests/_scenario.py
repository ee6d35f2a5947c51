"""One scenario every MCP transport must pass, driven by the SDK's real `mcp.Client`."""

from __future__ import annotations

import json
import re

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent

from tests._upstream import FakeUpstream
from tests.conftest import ALL_SECRETS, API_KEY, SECRET

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def text_of(result: CallToolResult) -> str:
    content = result.content
    return "".join(block.text for block in content if isinstance(block, TextContent))


def assert_no_secret(text: str) -> None:
    for secret in ALL_SECRETS:
        assert secret not in text, "a secret leaked"


async def run_scenario(client: Client, upstream: FakeUpstream) -> None:
    # Listing: every tool, valid names, the flat schema, annotations from the method.
    listing = await client.list_tools()
    tools = {tool.name: tool for tool in listing.tools}
    assert {"echo_get_item", "echo_create_item", "keyhdr_whoami", "noauth_whoami"} <= tools.keys()
    assert all(TOOL_NAME.match(name) for name in tools)
    get_item = tools["echo_get_item"]
    assert get_item.input_schema["required"] == ["item_id"]
    assert get_item.input_schema["properties"]["limit"] == {"type": "integer", "minimum": 1, "maximum": 100}
    assert get_item.annotations is not None and get_item.annotations.read_only_hint is True
    delete = tools["echo_delete_item"]
    assert delete.annotations is not None and delete.annotations.destructive_hint is True

    # A call: the credential reaches the upstream, the echoed secret never reaches the client.
    result = await client.call_tool("echo_get_item", {"item_id": "a/b", "verbose": True, "tags": ["x", "y"]})
    assert not result.is_error, text_of(result)
    received = upstream.requests[-1]
    assert received.headers["authorization"] == f"Bearer {SECRET}"
    assert received.raw_path == "/echo/items/a%2Fb"
    assert received.query == "verbose=true&tags=x&tags=y"
    assert result.structured_content is not None
    assert result.structured_content["headers"]["authorization"] == "Bearer [REDACTED]"
    assert json.loads(text_of(result)) == result.structured_content
    assert_no_secret(text_of(result) + json.dumps(result.structured_content))

    # A JSON body built from top-level properties.
    result = await client.call_tool("echo_create_item", {"title": "hello", "count": 2})
    assert not result.is_error
    assert upstream.requests[-1].json == {"title": "hello", "count": 2}

    # Bad arguments never reach the upstream.
    before = len(upstream.requests)
    result = await client.call_tool("echo_get_item", {"item_id": "1", "limit": 0})
    assert result.is_error
    assert result.structured_content is not None
    assert result.structured_content["error_code"] == "INVALID_ARGUMENTS"
    assert result.structured_content["details"]["path"] == "$.limit"
    assert result.structured_content["success"] is False
    assert len(upstream.requests) == before

    # Unknown tool: a protocol error, not a tool result.
    with pytest.raises(MCPError) as caught:
        await client.call_tool("no_such_tool", {})
    assert caught.value.code == -32602

    # Upstream failure, with the echoed credential redacted from the error body.
    result = await client.call_tool("echo_fail", {"code": 500})
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["error_code"] == "UPSTREAM_ERROR"
    assert result.structured_content["details"]["status"] == 500
    assert_no_secret(text_of(result))

    # Missing secret: names the command to run.
    result = await client.call_tool("missing_whoami", {})
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["error_code"] == "AUTH_MISSING"
    assert "mcp-connectors vault set never_stored" in result.structured_content["error"]

    # Another auth type, echoed back in the body.
    result = await client.call_tool("keyhdr_whoami", {})
    assert upstream.requests[-1].headers["x-api-key"] == API_KEY
    assert_no_secret(text_of(result))
