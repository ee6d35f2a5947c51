"""`--account` and `audit tail|hash` as a user runs them: real subprocesses, a real vault, a fake upstream."""

from __future__ import annotations

import json
from pathlib import Path

from tests._upstream import FakeUpstream
from tests.conftest import SECRET, run_cli

WORK_TOKEN = "work-token-canary-4c4c4c4c"


def test_an_account_picks_the_credentials_and_every_use_is_audited(
    server_env: dict[str, str], upstream: FakeUpstream, tmp_path: Path
) -> None:
    audit = tmp_path / "audit" / "log.jsonl"
    env = {**server_env, "MCP_CONNECTORS_AUDIT_LOG": str(audit)}
    assert run_cli(env, "vault", "set", "echo_token@work", stdin=WORK_TOKEN).returncode == 0

    plain = run_cli(env, "call", "echo_get_item", "--args", '{"item_id": "1"}')
    work = run_cli(env, "call", "echo_get_item", "--args", '{"item_id": "2"}', "--account", "echo=work")
    missing = run_cli(
        {**env, "MCP_CONNECTORS_ACCOUNTS": "*=nobody"}, "call", "echo_get_item", "--args", '{"item_id": "3"}'
    )
    assert plain.returncode == 0 and work.returncode == 0, (plain.stderr, work.stderr)
    assert [r.headers["authorization"] for r in upstream.requests] == [f"Bearer {SECRET}", f"Bearer {WORK_TOKEN}"]
    assert missing.returncode == 1 and "mcp-connectors vault set echo_token@nobody" in missing.stdout

    tail = run_cli(env, "audit", "tail", "--json")
    assert tail.returncode == 0, tail.stderr
    entries = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [(e["account"], e["outcome"], e["status"], e["client"]) for e in entries] == [
        (None, "ok", 200, "local"),
        ("work", "ok", 200, "local"),
        ("nobody", "AUTH_MISSING", None, "local"),
    ]
    assert [c["name"] for e in entries for c in e["credentials"]] == [
        "echo_token",
        "echo_token@work",
        "echo_token@nobody",
    ]

    digest = run_cli(env, "audit", "hash", "echo_token@work")
    assert digest.returncode == 0 and digest.stdout.strip() == entries[1]["credentials"][0]["hmac"]
    assert entries[0]["credentials"][0]["hmac"] != entries[1]["credentials"][0]["hmac"]

    readable = run_cli(env, "audit", "tail", "-n", "1")
    assert "echo_get_item" in readable.stdout and "AUTH_MISSING" in readable.stdout and "{" not in readable.stdout
    text = audit.read_text()
    assert SECRET not in text and WORK_TOKEN not in text


def test_malformed_account_choices_are_one_line_errors(server_env: dict[str, str]) -> None:
    for args, env in (
        (["--account", "echo"], server_env),
        (["--account", "echo=has space"], server_env),
        ([], {**server_env, "MCP_CONNECTORS_ACCOUNTS": "Echo=work"}),
    ):
        result = run_cli(env, "call", "echo_get_item", "--args", '{"item_id": "1"}', *args)
        assert result.returncode == 2, result
        assert result.stderr.startswith("error: invalid account choice") and "Traceback" not in result.stderr


def test_audit_can_be_switched_off_and_says_so(server_env: dict[str, str], tmp_path: Path) -> None:
    env = {**server_env, "MCP_CONNECTORS_AUDIT_LOG": "off"}
    assert run_cli(env, "call", "echo_get_item", "--args", '{"item_id": "1"}').returncode == 0
    result = run_cli(env, "audit", "tail")
    assert result.returncode == 1 and "switched off" in result.stderr
    assert not (Path(server_env["MCP_CONNECTORS_VAULT"]).parent / "audit.jsonl").exists()
