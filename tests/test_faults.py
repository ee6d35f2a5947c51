"""Resilience against a misbehaving upstream: timeouts, retries, budget, rate limit, breaker, caps, SSRF.

Deadlines are asserted with generous margins: they check that a call ends near its deadline instead
of hanging, not how fast this machine is.
"""

from __future__ import annotations

import socket
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import pytest
from mcp import Client
from mcp_types import TextContent

from mcp_server._catalog import load_catalog
from mcp_server._errors import ToolError
from mcp_server._pipeline import Outcome, Pipeline, ToolSuccess
from mcp_server._registry import Registry
from mcp_server._vault import Vault
from tests._faults import FaultServer
from tests._upstream import FakeUpstream
from tests.conftest import PASSPHRASE, SECRET, start_http_server, stop_process

MARGIN = 2.5  # seconds of slack on every deadline check: a busy 2-core machine, not a speed claim

PARAMETERS = """
    parameters:
      - {name: case, in: query, required: true, schema: {type: string}}
      - {name: n, in: query, schema: {type: integer}}
      - {name: key, in: query, schema: {type: string}}
      - {name: to, in: query, schema: {type: string}}
      - {name: status, in: query, schema: {type: integer}}
"""


def manifest(name: str, base_url: str, extra: str = "") -> str:
    return f"""
name: {name}
base_url: {base_url}
auth: {{type: bearer, token: {{secret: echo_token}}}}
timeouts: {{connect: 2, read: 2, total: 6}}
retry: {{attempts: 3, backoff_base: 0.05, backoff_max: 0.2, retry_after_cap: 5}}
circuit_breaker: {{consecutive_failures: 1000, min_calls: 1000}}
{extra}
operations:
  - name: get
    method: GET
    path: /fault
{PARAMETERS}
  - name: quick
    method: GET
    path: /fault
    timeouts: {{total: 2}}
{PARAMETERS}
  - name: small
    method: GET
    path: /fault
    max_result_chars: 2000
{PARAMETERS}
  - name: post
    method: POST
    path: /fault
{PARAMETERS}
    body: {{schema: {{type: object, properties: {{x: {{type: string}}}}}}}}
"""


@pytest.fixture(scope="module")
def faults() -> Iterator[FaultServer]:
    server = FaultServer().start()
    yield server
    server.stop()


@pytest.fixture
def fault_tools(tmp_path: Path, faults: FaultServer) -> Path:
    directory = tmp_path / "fault_tools"
    directory.mkdir()
    url = faults.url
    (directory / "faults.yaml").write_text(manifest("faults", url))
    (directory / "idem.yaml").write_text(
        manifest("idem", url).replace("retry_after_cap: 5}", "retry_after_cap: 5, idempotency_header: Idempotency-Key}")
    )
    (directory / "storm.yaml").write_text(manifest("storm", url))
    (directory / "limited.yaml").write_text(
        manifest("limited", url, "rate_limit: {requests: 2, per_seconds: 1, burst: 2, max_wait: 0.6}")
    )
    (directory / "breaker.yaml").write_text(
        manifest("breaker", url)
        .replace("attempts: 3", "attempts: 1")
        .replace("consecutive_failures: 1000, min_calls: 1000", "consecutive_failures: 3, cooldown: 1")
    )
    return directory


@pytest.fixture
async def pipeline(fault_tools: Path, vault_path: Path, faults: FaultServer) -> AsyncIterator[Pipeline]:
    faults.reset()
    catalog = load_catalog([fault_tools])
    assert not catalog.faults, catalog.faults
    vault = Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False)
    async with Pipeline(Registry.from_catalog(catalog), vault, environ={}) as running:
        yield running


async def timed(pipeline: Pipeline, tool: str, arguments: dict[str, Any]) -> tuple[Outcome, float]:
    started = time.monotonic()
    outcome = await pipeline.invoke(tool, arguments)
    return outcome, time.monotonic() - started


async def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    with anyio.fail_after(seconds):
        # The fault server counts on its own thread and loop, so there is no event to await here.
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.05)


def error(outcome: Outcome, code: str) -> ToolError:
    assert isinstance(outcome, ToolError), f"expected {code}, got success {outcome}"
    assert outcome.error_code == code, outcome.to_body()
    return outcome


def success(outcome: Outcome) -> ToolSuccess:
    assert isinstance(outcome, ToolSuccess), outcome.to_body() if isinstance(outcome, ToolError) else outcome
    return outcome


# ------------------------------------------------------------------ timeouts


async def test_slow_drip_body_ends_at_the_total_deadline(pipeline: Pipeline) -> None:
    outcome, elapsed = await timed(pipeline, "faults_quick", {"case": "drip"})
    failure = error(outcome, "TIMEOUT")
    assert failure.details["phase"] == "total"
    assert elapsed < 2 + MARGIN


async def test_hang_ends_within_the_deadline(pipeline: Pipeline, faults: FaultServer) -> None:
    outcome, elapsed = await timed(pipeline, "faults_get", {"case": "hang"})
    assert error(outcome, "TIMEOUT").details["phase"] in ("read", "total")
    assert elapsed < 6 + MARGIN
    assert faults.requests_for("hang") >= 1


# ------------------------------------------------------------------ retries


async def test_connection_reset_is_retried_for_get(pipeline: Pipeline, faults: FaultServer) -> None:
    error(await pipeline.invoke("faults_get", {"case": "reset"}), "UPSTREAM_UNREACHABLE")
    assert faults.requests_for("reset") == 3


async def test_unsafe_post_is_never_retried(pipeline: Pipeline, faults: FaultServer) -> None:
    error(await pipeline.invoke("faults_post", {"case": "reset", "key": "r"}), "UPSTREAM_UNREACHABLE")
    assert faults.requests_for("reset", "r") == 1
    failure = error(await pipeline.invoke("faults_post", {"case": "flaky", "n": 5, "key": "f"}), "UPSTREAM_ERROR")
    assert failure.details["status"] == 503
    assert faults.requests_for("flaky", "f") == 1


async def test_post_with_idempotency_header_is_retried_with_one_key(pipeline: Pipeline, faults: FaultServer) -> None:
    success(await pipeline.invoke("idem_post", {"case": "flaky", "n": 2, "key": "i"}))
    keys = [seen.headers.get("idempotency-key") for seen in faults.seen if seen.key == "i"]
    assert len(keys) == 3
    assert keys[0] and len(set(keys)) == 1
    success(await pipeline.invoke("idem_post", {"case": "ok", "key": "j"}))
    next_key = next(seen.headers.get("idempotency-key") for seen in faults.seen if seen.key == "j")
    assert next_key and next_key != keys[0]  # a fresh key per tool call


@pytest.mark.parametrize("status", [408, 429, 502, 503, 504])
async def test_retryable_statuses(pipeline: Pipeline, faults: FaultServer, status: int) -> None:
    key = f"s{status}"
    body = success(await pipeline.invoke("faults_get", {"case": "flaky", "n": 2, "status": status, "key": key}))
    assert body.value == {"ok": True, "attempt": 3}
    assert faults.requests_for("flaky", key) == 3


@pytest.mark.parametrize("status", [400, 404, 500, 501])
async def test_other_statuses_are_not_retried(pipeline: Pipeline, faults: FaultServer, status: int) -> None:
    key = f"n{status}"
    error(
        await pipeline.invoke("faults_get", {"case": "flaky", "n": 5, "status": status, "key": key}), "UPSTREAM_ERROR"
    )
    assert faults.requests_for("flaky", key) == 1


@pytest.mark.parametrize("case", ["retry_seconds", "retry_date", "ratelimit_reset"])
async def test_server_asked_delay_is_honoured(pipeline: Pipeline, faults: FaultServer, case: str) -> None:
    outcome, elapsed = await timed(pipeline, "faults_get", {"case": case, "n": 2, "key": "d"})
    assert success(outcome).value == {"ok": True, "attempt": 2}
    assert elapsed >= 0.9  # waited (an HTTP date has one-second resolution)
    assert elapsed < 3 + MARGIN


async def test_delay_over_the_cap_is_not_waited_for(pipeline: Pipeline, faults: FaultServer) -> None:
    outcome, elapsed = await timed(pipeline, "faults_get", {"case": "retry_seconds", "n": 120, "key": "cap"})
    failure = error(outcome, "RATE_LIMITED")
    assert failure.details["retry_after"] == 120
    assert faults.requests_for("retry_seconds", "cap") == 1
    assert elapsed < MARGIN


async def test_retry_budget_holds_in_a_5xx_storm(pipeline: Pipeline, faults: FaultServer) -> None:
    calls = 40
    async with anyio.create_task_group() as group:
        for index in range(calls):
            group.start_soon(pipeline.invoke, "storm_get", {"case": "flaky", "n": 10_000, "key": "storm"})
            if index % 10 == 9:
                await anyio.lowlevel.checkpoint()
    sent = faults.requests_for("flaky", "storm")
    # Without a budget: 3 attempts each = 120. With it: at most 20 % extra plus the floor of 3.
    assert calls < sent <= calls + int(0.2 * calls) + 3


# ------------------------------------------------------------------ client-side rate limit and breaker


async def test_rate_limit_waits_then_refuses_without_traffic(pipeline: Pipeline, faults: FaultServer) -> None:
    results: list[Outcome] = []

    async def one() -> None:
        results.append(await pipeline.invoke("limited_get", {"case": "ok", "key": "rl"}))

    async with anyio.create_task_group() as group:
        for _ in range(6):
            group.start_soon(one)
    ok = [r for r in results if isinstance(r, ToolSuccess)]
    refused = [r for r in results if isinstance(r, ToolError)]
    assert len(ok) == 3  # two from the burst, one after a 0.5 s wait; the next would wait 1 s > max_wait 0.6 s
    assert all(r.error_code == "RATE_LIMITED" and r.details["retry_after"] >= 1 for r in refused)
    assert faults.requests_for("ok", "rl") == 3


async def test_breaker_opens_fails_fast_and_probes(pipeline: Pipeline, faults: FaultServer) -> None:
    for _ in range(3):
        error(await pipeline.invoke("breaker_get", {"case": "flaky", "n": 10_000, "key": "b"}), "UPSTREAM_ERROR")
    assert faults.requests_for("flaky", "b") == 3
    failure = error(await pipeline.invoke("breaker_get", {"case": "ok", "key": "b2"}), "CIRCUIT_OPEN")
    assert failure.details["retry_after"] >= 1
    assert faults.requests_for("ok", "b2") == 0  # no upstream traffic while open
    await anyio.sleep(1.1)
    success(await pipeline.invoke("breaker_get", {"case": "ok", "key": "b2"}))  # the probe closes it
    success(await pipeline.invoke("breaker_get", {"case": "ok", "key": "b2"}))
    assert faults.requests_for("ok", "b2") == 2


# ------------------------------------------------------------------ bounded responses


@pytest.mark.parametrize("case", ["huge", "endless", "bomb"])
async def test_oversized_bodies_cost_bounded_memory(pipeline: Pipeline, case: str) -> None:
    tracemalloc.start()
    try:
        outcome, elapsed = await timed(pipeline, "faults_get", {"case": case})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    failure = error(outcome, "RESPONSE_TOO_LARGE")
    assert failure.details["limit_bytes"] == 5 * 1024 * 1024
    assert peak < 24 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    assert elapsed < 6 + MARGIN


async def test_large_json_loses_whole_items_with_a_note(pipeline: Pipeline) -> None:
    body = success(await pipeline.invoke("faults_small", {"case": "bigjson", "n": 500}))
    assert body.value["total"] == 500
    kept = body.value["items"]
    assert 0 < len(kept) < 500
    assert kept == [{"id": index, "name": f"item number {index}"} for index in range(len(kept))]
    assert len(body.text) <= 2000
    assert body.note is not None and "$.items" in body.note and str(500 - len(kept)) in body.note


# ------------------------------------------------------------------ SSRF


def _private_hostname() -> str | None:
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        return None
    return name if address.startswith(("127.", "10.", "172.", "192.168.")) else None


SSRF_TARGETS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://0xA9FEA9FE/",
    "http://2852039166/",
    "http://169.254.43518/",
    "http://10.0.0.1/",
    "http://192.168.1.1:8080/admin",
    "http://[fd00:ec2::254]/",
    "http://localhost/",
    "http://0.0.0.0/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:25/",
]


@pytest.mark.parametrize("target", SSRF_TARGETS)
async def test_redirects_to_internal_addresses_are_refused(pipeline: Pipeline, target: str) -> None:
    failure = error(await pipeline.invoke("faults_get", {"case": "redirect", "to": target}), "BLOCKED_DESTINATION")
    if target.startswith("http"):
        assert "network" in failure.message  # says how to allow the address on purpose
    assert "?" not in failure.message


async def test_a_redirect_to_an_unusable_port_is_an_upstream_error(pipeline: Pipeline, faults: FaultServer) -> None:
    failure = error(
        await pipeline.invoke("faults_get", {"case": "redirect", "to": f"http://127.0.0.1:+{faults.port}/x"}),
        "UPSTREAM_ERROR",
    )
    assert "port" in failure.message


async def test_redirect_to_a_name_resolving_privately_is_refused(pipeline: Pipeline, faults: FaultServer) -> None:
    name = _private_hostname()
    if name is None:
        pytest.skip("this machine's host name does not resolve to a private address")
    target = f"http://{name}:{faults.port}/fault?case=ok"
    error(await pipeline.invoke("faults_get", {"case": "redirect", "to": target}), "BLOCKED_DESTINATION")


async def test_same_origin_redirect_keeps_credentials(pipeline: Pipeline, faults: FaultServer) -> None:
    target = f"{faults.url}/fault?case=ok&key=same"
    success(await pipeline.invoke("faults_get", {"case": "redirect", "to": target}))
    landed = [seen for seen in faults.seen if seen.key == "same"]
    assert landed and landed[0].headers["authorization"] == f"Bearer {SECRET}"


async def test_cross_origin_redirect_drops_credentials(pipeline: Pipeline, upstream: FakeUpstream) -> None:
    target = f"{upstream.url}/echo/landed"  # another port: another origin
    body = success(await pipeline.invoke("faults_get", {"case": "redirect", "to": target}))
    assert body.value["path"] == "/echo/landed"
    assert "authorization" not in upstream.requests[-1].headers


# ------------------------------------------------------------------ cancellation and progress, over MCP and REST


@pytest.fixture
def fault_server_process(
    server_env: dict[str, str], fault_tools: Path, tmp_path: Path, faults: FaultServer
) -> Iterator[str]:
    faults.reset()
    env = {**server_env, "MCP_CONNECTORS_TOOLS": str(fault_tools)}
    server = start_http_server(env, tmp_path / "faults-server.log")
    yield server.url
    stop_process(server.process)


async def test_progress_while_waiting_to_retry(fault_server_process: str, faults: FaultServer) -> None:
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with Client(f"{fault_server_process}/mcp", mode="legacy") as client:
        result = await client.call_tool(
            "faults_get", {"case": "retry_seconds", "n": 1, "key": "p"}, progress_callback=on_progress
        )
    assert not result.is_error
    assert any("retrying" in message for message in messages), messages


async def test_mcp_cancellation_aborts_the_upstream_request(fault_server_process: str, faults: FaultServer) -> None:
    async with Client(f"{fault_server_process}/mcp", mode="legacy") as client:
        with anyio.move_on_after(1):
            await client.call_tool("faults_get", {"case": "hang", "key": "cancel"})
        # The server is still usable afterwards, and the hung upstream connection was closed by it.
        assert not (await client.call_tool("faults_get", {"case": "ok"})).is_error
    await eventually(lambda: faults.aborted["hang", "cancel"] >= 1)


async def test_trimming_note_and_blocked_destination_over_the_wire(
    fault_server_process: str, faults: FaultServer
) -> None:
    async with Client(f"{fault_server_process}/mcp") as client:
        result = await client.call_tool("faults_small", {"case": "bigjson", "n": 500})
    assert result.structured_content is not None and len(result.structured_content["items"]) < 500
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    assert len(texts) == 2 and texts[1].startswith("Note: Result trimmed")
    rest = httpx2.post(
        f"{fault_server_process}/v1/invoke",
        json={"tool": "faults_small", "parameters": {"case": "bigjson", "n": 500}},
    ).json()
    assert rest["success"] is True and "$.items" in rest["note"]
    blocked = httpx2.post(
        f"{fault_server_process}/v1/invoke",
        json={"tool": "faults_get", "parameters": {"case": "redirect", "to": "http://169.254.169.254/"}},
    )
    assert blocked.status_code == 502
    assert blocked.json()["error_code"] == "BLOCKED_DESTINATION"


async def test_rest_client_disconnect_aborts_the_upstream_request(
    fault_server_process: str, faults: FaultServer
) -> None:
    with pytest.raises(httpx2.ReadTimeout):
        httpx2.post(
            f"{fault_server_process}/v1/invoke",
            json={"tool": "faults_get", "parameters": {"case": "hang", "key": "rest"}},
            timeout=1,
        )
    await eventually(lambda: faults.aborted["hang", "rest"] >= 1)
