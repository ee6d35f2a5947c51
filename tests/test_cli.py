"""The `mcp-connectors` command as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
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


def test_vault_set_list_delete(server_env: dict[str, str]) -> None:
    stored = run_cli(server_env, "vault", "set", "new_secret", stdin="value-with-newline\n\n")
    assert stored.returncode == 0, stored.stderr
    listed = run_cli(server_env, "vault", "list")
    assert listed.stdout.split() == ["api_key", "echo_token", "new_secret", "password"]
    assert "value-with" not in listed.stdout + listed.stderr + stored.stdout + stored.stderr

    from mcp_server._vault import Vault

    vault = Vault(Path(server_env["MCP_CONNECTORS_VAULT"]), passphrase=server_env["MCP_CONNECTORS_VAULT_KEY"])
    secret = vault.get("new_secret")
    # Exactly one trailing newline is stripped.
    assert secret is not None and secret.reveal() == "value-with-newline\n"

    assert run_cli(server_env, "vault", "delete", "new_secret").returncode == 0
    missing = run_cli(server_env, "vault", "delete", "new_secret")
    assert missing.returncode == 1 and "no secret named" in missing.stderr
    assert run_cli(server_env, "vault", "set", "bad name!", stdin="x").returncode == 2
    assert run_cli(server_env, "vault", "set", "empty", stdin="").returncode == 1


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


@pytest.mark.parametrize("damage", ["tamper", "truncate", "garbage"])
def test_damaged_vault_is_a_clear_error(server_env: dict[str, str], damage: str) -> None:
    vault_file = Path(server_env["MCP_CONNECTORS_VAULT"])
    data = vault_file.read_bytes()
    if damage == "tamper":
        document = json.loads(data)
        record = document["records"]["echo_token"]
        flipped = "A" if record["ciphertext"][5] != "A" else "B"
        record["ciphertext"] = record["ciphertext"][:5] + flipped + record["ciphertext"][6:]
        vault_file.write_text(json.dumps(document))
    elif damage == "truncate":
        vault_file.write_bytes(data[: len(data) // 2])
    else:
        vault_file.write_bytes(b"\x00\x01garbage")
    listed = run_cli(server_env, "vault", "list")
    called = run_cli(server_env, "call", "echo_get_item", "--args", '{"item_id": "1"}')
    if damage != "tamper":  # a tampered record is only found when it is decrypted
        assert listed.returncode == 1 and str(vault_file) in listed.stderr
        assert "Traceback" not in listed.stderr
    assert called.returncode == 1
    body = json.loads(called.stdout)
    assert body["error_code"] == "AUTH_MISSING"
    assert str(vault_file) in body["error"]
    assert vault_file.exists()  # never silently reset
    assert_no_secret(called.stdout + called.stderr)


def test_wrong_vault_key(server_env: dict[str, str]) -> None:
    env = {**server_env, "MCP_CONNECTORS_VAULT_KEY": "not the passphrase"}
    listed = run_cli(env, "vault", "list")
    assert listed.returncode == 1
    assert str(Path(server_env["MCP_CONNECTORS_VAULT"])) in listed.stderr
    assert "Traceback" not in listed.stderr
    called = run_cli(env, "call", "echo_get_item", "--args", '{"item_id": "1"}')
    assert json.loads(called.stdout)["error_code"] == "AUTH_MISSING"
    stored = run_cli(env, "vault", "set", "other", stdin="x-value")
    assert stored.returncode == 1  # a wrong key never overwrites the vault
