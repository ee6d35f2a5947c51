"""The `mcp-connectors` command as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mcp import Client, StdioServerParameters

from tests._scenario import assert_no_secret
from tests._upstream import FakeUpstream
from tests.conftest import SECRET, run_cli


def test_help_explains_every_command(server_env: dict[str, str]) -> None:
    result = run_cli(server_env, "--help")
    assert result.returncode == 0
    for word in ("serve", "tools", "call", "validate", "vault", "MCP_CONNECTORS_VAULT_KEY"):
        assert word in result.stdout
    assert run_cli(server_env, "vault", "set", "--help").returncode == 0


def test_tools_json_matches_tools_list(server_env: dict[str, str]) -> None:
    result = run_cli(server_env, "tools", "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)

    async def listed() -> list[dict[str, object]]:
        params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_server", "serve"], env=server_env)
        async with Client(params, mode="legacy") as client:
            tools = (await client.list_tools()).tools
            return [tool.model_dump(by_alias=True, mode="json", exclude_none=True) for tool in tools]

    import anyio

    assert printed == anyio.run(listed)
    table = run_cli(server_env, "tools")
    assert "echo_get_item" in table.stdout and "read-only" in table.stdout


def test_call_prints_result(server_env: dict[str, str], upstream: FakeUpstream) -> None:
    result = run_cli(server_env, "call", "echo_get_item", "--args", '{"item_id": "7"}')
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["path"] == "/echo/items/7"
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    assert_no_secret(result.stdout + result.stderr)


def test_call_failures(server_env: dict[str, str]) -> None:
    failed = run_cli(server_env, "call", "echo_fail", "--args", '{"code": 500}')
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["error_code"] == "UPSTREAM_ERROR"
    unknown = run_cli(server_env, "call", "nope_tool")
    assert unknown.returncode == 2 and "Unknown tool" in unknown.stderr
    bad_json = run_cli(server_env, "call", "echo_empty", "--args", "{nope")
    assert bad_json.returncode == 2 and "not valid JSON" in bad_json.stderr


def test_validate_reports_faults_and_exit_code(server_env: dict[str, str], tools_dir: Path) -> None:
    assert run_cli(server_env, "validate").returncode == 0
    (tools_dir / "broken.yaml").write_text(
        "name: broken\nbase_url: ftp://x\noperations: [{name: a, method: GET, path: /a}]\n"
    )
    result = run_cli(server_env, "validate")
    assert result.returncode == 1
    assert "broken.yaml" in result.stdout and "$.base_url" in result.stdout
    assert "ok " in result.stdout  # the good manifests still load


def test_server_starts_despite_bad_manifest(server_env: dict[str, str], tools_dir: Path) -> None:
    (tools_dir / "broken.yaml").write_text("name: [unclosed\n")
    result = run_cli(server_env, "call", "noauth_whoami")
    assert result.returncode == 0
    assert "broken.yaml" in result.stderr and "invalid YAML" in result.stderr
