"""Observability of a real server process: /metrics, /ready, /v1/status, JSON logs with request ids."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families

from tests._scenario import assert_no_secret
from tests._upstream import FakeUpstream
from tests.conftest import ALL_SECRETS, PASSPHRASE, ServerProcess, run_cli, start_http_server, stop_process

ARGUMENT_CANARY = "arg-value-canary-5b7e"


def ops_manifests(base_url: str) -> dict[str, str]:
    return {
        # Two failed calls open the breaker; no retries, so each call is one upstream 503.
        "flaky": f"name: flaky\nbase_url: {base_url}\nretry: {{attempts: 1}}\n"
        "circuit_breaker: {consecutive_failures: 2, cooldown: 60}\n"
        "operations: [{name: fail, method: GET, path: /status/503}]\n",
        # One retry after a 502, backing off for at most 20 ms.
        "retrying": f"name: retrying\nbase_url: {base_url}\n"
        "retry: {attempts: 2, backoff_base: 0.01, backoff_max: 0.02}\n"
        "circuit_breaker: {consecutive_failures: 100}\n"
        "operations: [{name: bad_gateway, method: GET, path: /status/502}]\n",
        # One call a minute, and nobody waits: the second call is refused.
        "limited": f"name: limited\nbase_url: {base_url}\n"
        "rate_limit: {requests: 1, per_seconds: 60, burst: 1, max_wait: 0}\n"
        "operations: [{name: ping, method: GET, path: /echo/limited}]\n",
        # Ten a second in bursts of one: a second call right away waits ~0.1 s.
        "paced": f"name: paced\nbase_url: {base_url}\n"
        "rate_limit: {requests: 10, per_seconds: 1, burst: 1, max_wait: 5}\n"
        "operations: [{name: ping, method: GET, path: /echo/paced}]\n",
    }


@pytest.fixture
def ops_tools_dir(tools_dir: Path, upstream_server: FakeUpstream) -> Path:
    for name, text in ops_manifests(upstream_server.url).items():
        (tools_dir / f"{name}.yaml").write_text(text)
    return tools_dir


@pytest.fixture
def ops_server(server_env: dict[str, str], ops_tools_dir: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_http_server(server_env, tmp_path / "server.log")
    yield server
    stop_process(server.process)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def metrics(server: ServerProcess) -> str:
    response = httpx2.get(f"{server.url}/metrics")
    assert response.status_code == 200
    return response.text


def invoke(
    server: ServerProcess, tool: str, parameters: dict[str, Any] | None = None, *, headers: Any = None
) -> httpx2.Response:
    return httpx2.post(
        f"{server.url}/v1/invoke", json={"tool": tool, "parameters": parameters or {}}, headers=headers, timeout=30
    )


def test_metrics_after_calls(ops_server: ServerProcess, upstream: FakeUpstream) -> None:
    assert invoke(ops_server, "echo_get_item", {"item_id": "1"}).status_code == 200
    assert invoke(ops_server, "echo_fail", {"code": 404}).status_code == 502
    for _ in range(2):
        assert invoke(ops_server, "flaky_fail").json()["error_code"] == "UPSTREAM_ERROR"
    refused = invoke(ops_server, "flaky_fail")
    assert refused.status_code == 503 and refused.json()["error_code"] == "CIRCUIT_OPEN"
    assert invoke(ops_server, "retrying_bad_gateway").json()["error_code"] == "UPSTREAM_ERROR"
    assert invoke(ops_server, "limited_ping").status_code == 200
    assert invoke(ops_server, "limited_ping").json()["error_code"] == "RATE_LIMITED"
    assert invoke(ops_server, "paced_ping").status_code == 200
    assert invoke(ops_server, "paced_ping").status_code == 200  # waited for the bucket
    assert invoke(ops_server, "no_such_tool_anywhere").status_code == 404

    text = metrics(ops_server)
    # Latency histogram per tool, with every bucket and the count.
    assert value(text, "mcp_connectors_tool_call_duration_seconds_count", tool="echo_get_item") == 1
    for bound in ("0.005", "0.1", "1.0", "10.0", "60.0", "+Inf"):
        bucket = value(text, "mcp_connectors_tool_call_duration_seconds_bucket", tool="echo_get_item", le=bound)
        assert bucket is not None, bound
    assert value(text, "mcp_connectors_tool_call_duration_seconds_bucket", tool="echo_get_item", le="+Inf") == 1
    # Upstream statuses by connector, as sent (404 by code, retried 502s counted per attempt).
    assert value(text, "mcp_connectors_upstream_responses_total", connector="echo", code="200") == 1
    assert value(text, "mcp_connectors_upstream_responses_total", connector="echo", code="404") == 1
    assert value(text, "mcp_connectors_upstream_responses_total", connector="flaky", code="503") == 2
    assert value(text, "mcp_connectors_upstream_responses_total", connector="retrying", code="502") == 2
    assert value(text, "mcp_connectors_upstream_retries_total", connector="retrying", reason="502") == 1
    # The breaker opened after two failures and refused the third call without sending it.
    assert value(text, "mcp_connectors_circuit_breaker_transitions_total", connector="flaky", state="open") == 1
    assert value(text, "mcp_connectors_circuit_breaker_refusals_total", connector="flaky") == 1
    assert value(text, "mcp_connectors_circuit_breakers", connector="flaky", state="open") == 1
    assert value(text, "mcp_connectors_circuit_breakers", connector="echo", state="closed") == 1
    assert value(text, "mcp_connectors_tool_calls_total", tool="flaky_fail", outcome="CIRCUIT_OPEN") == 1
    # The rate limiter: one refusal, one wait.
    assert value(text, "mcp_connectors_rate_limit_refusals_total", connector="limited") == 1
    assert value(text, "mcp_connectors_rate_limit_wait_seconds_count", connector="paced") == 1
    # A tool name nobody defined is one `unknown` series; the name sent never becomes a label.
    assert value(text, "mcp_connectors_tool_calls_total", tool="unknown", outcome="UNKNOWN_TOOL") == 1
    assert "no_such_tool_anywhere" not in text
    assert value(text, "mcp_connectors_tool_calls_in_flight") == 0
    assert value(text, "mcp_connectors_catalog", item="manifest_faults") == 0
    assert_no_secret(text)


def test_label_values_come_from_the_catalog_only(ops_server: ServerProcess) -> None:
    for index in range(20):
        invoke(ops_server, f"made_up_tool_{index}")
    with httpx2.Client(base_url=ops_server.url) as http:
        http.post("/v1/invoke", content=b"{", headers={"Content-Type": "application/json"})
    text = metrics(ops_server)
    tools = {labels["tool"] for (_, labels) in _labelled(text, "tool")}
    connectors = {labels["connector"] for (_, labels) in _labelled(text, "connector")}
    assert tools <= {"unknown"} | {f"{n}_{op}" for n, op in _catalog_tools()}
    assert connectors <= {"echo", "flaky", "retrying", "limited", "paced", *(n for n, _ in _catalog_tools())}
    assert value(text, "mcp_connectors_tool_calls_total", tool="unknown", outcome="UNKNOWN_TOOL") == 20


def _labelled(text: str, label: str) -> list[tuple[str, dict[str, str]]]:
    return [(name, dict(labels)) for (name, labels) in samples(text) if label in dict(labels)]


def _catalog_tools() -> list[tuple[str, str]]:
    ops = ["get_item", "create_item", "create_charge", "delete_item", "fail", "text", "empty", "slow", "big"]
    tools = [("echo", op) for op in [*ops, "throttled"]]
    tools += [(name, "whoami") for name in ("keyhdr", "keyquery", "keycookie", "basicauth", "hdrs")]
    tools += [(name, "whoami") for name in ("envauth", "noauth", "missing", "down")]
    return tools


async def _wait_for(server: ServerProcess, name: str, expected: float, **labels: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        async with httpx2.AsyncClient() as http:
            text = (await http.get(f"{server.url}/metrics")).text
        if value(text, name, **labels) == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}{labels} never reached {expected}: {value(text, name, **labels)}")
        await anyio.sleep(0.05)


async def test_active_sessions_go_up_and_down(ops_server: ServerProcess) -> None:
    gauge = "mcp_connectors_active_sessions"
    await _wait_for(ops_server, gauge, 0, transport="streamable_http")
    async with Client(f"{ops_server.url}/mcp", mode="legacy") as legacy:
        await legacy.list_tools()
        await _wait_for(ops_server, gauge, 1, transport="streamable_http")
        async with Client(sse_client(f"{ops_server.url}/sse"), mode="legacy") as sse:
            await sse.list_tools()
            await _wait_for(ops_server, gauge, 1, transport="sse")
            async with Client(f"{ops_server.url}/mcp") as modern, modern.listen(tools_list_changed=True):
                await _wait_for(ops_server, gauge, 1, transport="subscriptions")
            await _wait_for(ops_server, gauge, 0, transport="subscriptions")
        await _wait_for(ops_server, gauge, 0, transport="sse")
    await _wait_for(ops_server, gauge, 0, transport="streamable_http")


def test_ready_follows_the_vault(server_env: dict[str, str], vault_path: Path, tmp_path: Path) -> None:
    good = vault_path.read_bytes()
    vault_path.write_text('{"format": 2, "records": "this is not a vault"')
    server = start_http_server(server_env, tmp_path / "server.log")
    try:
        response = httpx2.get(f"{server.url}/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable" and "vault" in body["reasons"]
        assert str(vault_path) in body["reasons"]["vault"]
        assert httpx2.get(f"{server.url}/health").status_code == 200  # alive all the same
        status = httpx2.get(f"{server.url}/v1/status").json()
        assert status["vault"]["ok"] is False and status["vault"]["error"]

        vault_path.write_bytes(good)
        deadline = time.monotonic() + 10
        while (response := httpx2.get(f"{server.url}/ready")).status_code != 200:
            assert time.monotonic() < deadline, response.text
            time.sleep(0.2)
        assert response.json()["status"] == "ready"
        assert httpx2.get(f"{server.url}/v1/status").json()["vault"]["ok"] is True
    finally:
        stop_process(server.process)
    assert_no_secret(server.log())
    assert PASSPHRASE not in server.log()


def test_ready_is_503_when_every_manifest_was_refused(
    server_env: dict[str, str], tmp_path: Path, upstream_server: FakeUpstream
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.yaml").write_text("name: Bad Name\nbase_url: 12\n")
    server = start_http_server({**server_env, "MCP_CONNECTORS_TOOLS": str(broken)}, tmp_path / "server.log")
    try:
        response = httpx2.get(f"{server.url}/ready")
        assert response.status_code == 503
        assert "catalog" in response.json()["reasons"]
    finally:
        stop_process(server.process)


def test_status_lists_connectors_faults_vault_and_audit(
    server_env: dict[str, str], ops_tools_dir: Path, tmp_path: Path
) -> None:
    (ops_tools_dir / "broken.yaml").write_text("name: broken\nbase_url: http://x\noperations: [{name: 1}]\n")
    server = start_http_server(server_env, tmp_path / "server.log")
    try:
        response = httpx2.get(f"{server.url}/v1/status")
    finally:
        stop_process(server.process)
    assert response.status_code == 200
    status = response.json()
    connectors = {entry["name"]: entry for entry in status["connectors"]}
    assert connectors["echo"]["state"] == "loaded" and connectors["echo"]["tools"] == 10
    assert connectors["echo"]["file"] == str(ops_tools_dir / "echo.yaml")
    assert connectors["flaky"]["tools"] == 1
    assert "broken" not in connectors
    [fault] = status["manifest_faults"]
    assert fault["file"] == str(ops_tools_dir / "broken.yaml")
    assert fault["json_path"].startswith("$.operations[0]")
    assert fault["reason"] and fault["serving_previous_version"] is False
    assert status["vault"]["ok"] is True and status["vault"]["store"].startswith("vault file ")
    assert status["audit"]["enabled"] is True and status["audit"]["writable"] is True
    text = response.text
    assert_no_secret(text)
    assert PASSPHRASE not in text


def _log_entries(server: ServerProcess) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for line in server.log().splitlines():
        if line.strip():
            entries.append(json.loads(line))  # every line is one JSON object
    return entries


async def test_json_logs_carry_the_request_id_and_no_secret_or_argument(
    server_env: dict[str, str], tmp_path: Path, upstream: FakeUpstream
) -> None:
    server = start_http_server(server_env, tmp_path / "server.log", "--log-format", "json")
    try:
        mine = invoke(server, "echo_get_item", {"item_id": ARGUMENT_CANARY}, headers={"X-Request-ID": "client-req-42"})
        assert mine.status_code == 200 and mine.headers["X-Request-ID"] == "client-req-42"
        generated = invoke(server, "echo_fail", {"code": 500})
        generated_id = generated.headers["X-Request-ID"]
        assert len(generated_id) == 32
        for bad in ("has space", "x" * 129, "semi;colon", 'quote"', "ünïcode"):
            response = invoke(server, "noauth_whoami", headers={b"X-Request-ID": bad.encode()})
            assert len(response.headers["X-Request-ID"]) == 32 and response.headers["X-Request-ID"] != bad
        # Over MCP the id of the POST that carried tools/call reaches the pipeline's log line too.
        async with (
            httpx2.AsyncClient(headers={"X-Request-ID": "mcp-req-7"}) as http,
            Client(streamable_http_client(f"{server.url}/mcp", http_client=http)) as client,
        ):
            result = await client.call_tool("noauth_whoami", {})
            assert not result.is_error
    finally:
        stop_process(server.process)
    entries = _log_entries(server)
    calls = [e for e in entries if e.get("event") == "tool_call"]
    by_id = {e.get("request_id"): e for e in calls}
    call = by_id["client-req-42"]
    assert call["tool"] == "echo_get_item" and call["outcome"] == "ok" and call["upstream_status"] == 200
    assert call["client"] == "rest" and call["level"] == "INFO" and isinstance(call["duration_ms"], float)
    assert by_id[generated_id]["outcome"] == "UPSTREAM_ERROR"
    assert by_id["mcp-req-7"]["tool"] == "noauth_whoami" and by_id["mcp-req-7"]["client"] == "mcp-http"
    access = [e for e in entries if e.get("event") == "http_request"]
    assert any(e["request_id"] == "client-req-42" and e["status"] == 200 for e in access)
    assert all(e["route"] in {"/v1/invoke", "/mcp", "/health"} for e in access)
    log = server.log()
    assert ARGUMENT_CANARY not in log
    assert_no_secret(log)


def test_arguments_are_logged_only_with_debug_and_the_flag(
    server_env: dict[str, str], tmp_path: Path, upstream: FakeUpstream
) -> None:
    refused = run_cli(server_env, "serve", "--transport", "http", "--log-arguments")
    assert refused.returncode == 2 and "--log-arguments needs --log-level DEBUG" in refused.stderr

    quiet = start_http_server(server_env, tmp_path / "quiet.log", "--log-level", "DEBUG", "--log-format", "json")
    try:
        invoke(quiet, "echo_get_item", {"item_id": ARGUMENT_CANARY})
    finally:
        stop_process(quiet.process)
    assert ARGUMENT_CANARY not in quiet.log()

    loud = start_http_server(
        server_env, tmp_path / "loud.log", "--log-level", "DEBUG", "--log-arguments", "--log-format", "json"
    )
    try:
        invoke(loud, "echo_get_item", {"item_id": ARGUMENT_CANARY}, headers={"X-Request-ID": "loud-1"})
    finally:
        stop_process(loud.process)
    [line] = [e for e in _log_entries(loud) if ARGUMENT_CANARY in e["message"]]
    assert line["level"] == "DEBUG" and line["request_id"] == "loud-1"
    for secret in ALL_SECRETS:
        assert secret not in loud.log()


def test_text_logs_carry_the_request_id(server_env: dict[str, str], tmp_path: Path) -> None:
    server = start_http_server(server_env, tmp_path / "server.log", "--log-format", "text")
    try:
        invoke(server, "noauth_whoami", headers={"X-Request-ID": "text-req-1"})
    finally:
        stop_process(server.process)
    assert any("call noauth_whoami ok" in line and "[text-req-1]" in line for line in server.log().splitlines())
