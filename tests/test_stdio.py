"""The real `mcp-connectors serve` command as a subprocess, as desktop clients launch it."""

from __future__ import annotations

from pathlib import Path

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests._scenario import assert_no_secret, run_scenario
from tests._upstream import FakeUpstream
from tests.conftest import server_command


async def test_stdio(server_env: dict[str, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    command, args = server_command()
    params = StdioServerParameters(command=command, args=args, env=server_env)
    log_path = tmp_path / "stderr.log"
    with log_path.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            await run_scenario(client, upstream)
    log = log_path.read_text()
    assert "loaded 10 connectors" in log  # logs go to stderr, never into the protocol stream
    assert_no_secret(log)


async def test_stdio_modern_protocol(server_env: dict[str, str], upstream: FakeUpstream) -> None:
    command, args = server_command()
    params = StdioServerParameters(command=command, args=args, env=server_env)
    async with Client(params) as client:
        assert client.protocol_version == "2026-07-28"
        result = await client.call_tool("noauth_whoami", {})
        assert not result.is_error
