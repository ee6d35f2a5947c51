"""`Pipeline` in process: real registry, real vault file, real HTTP to fake upstreams on loopback."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx2
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_server._catalog import load_catalog
from mcp_server._errors import ToolError, UnknownTool
from mcp_server._pipeline import Outcome, Pipeline, ToolSuccess
from mcp_server._registry import Registry
from mcp_server._vault import Vault
from mcp_server._version import server_version
from tests._upstream import FakeUpstream, UpstreamThread, serve_holding
from tests.conftest import ALL_SECRETS, API_KEY, ENV_SECRET, PASSPHRASE, PASSWORD, SECRET

# ------------------------------------------------------------------ an upstream with a few more behaviours

NESTING = 5000
# Padding that puts the echoed credential across the 2000-character cut of details.body.
BIG_ERROR_PAD = 1996 - len('{"message":"it broke","trace":"') - len("Bearer ")


@dataclass
class MoreUpstream(FakeUpstream):
    """The shared fake plus: a JSON array, an HTTP-date Retry-After, a 10 KB error body, Set-Cookie, raw headers."""

    raw_headers: list[list[tuple[bytes, bytes]]] = field(default_factory=list)

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        self.raw_headers.append(list(request.headers.raw))
        auth = request.headers.get("authorization", "")
        if path == "/idna-charset":
            return Response(b"\xff\xfe not idna", media_type="text/plain; charset=idna")
        if path == "/array":
            return JSONResponse([1, "two", {"three": 3}])
        if path == "/retry-date":
            when = email.utils.formatdate(time.time() + 120, usegmt=True)
            return JSONResponse({"message": "slow down"}, status_code=429, headers={"Retry-After": when})
        if path == "/retry-odd":
            # "²" is one latin-1 byte (0xB2); str.isdigit() says True, int() refuses it.
            return JSONResponse({"message": "slow down"}, status_code=429, headers={"Retry-After": "\u00b2"})
        if path == "/big-error":
            text = "e" * BIG_ERROR_PAD + auth + "z" * 10_000
            return JSONResponse({"message": "it broke", "trace": text}, status_code=500)
        if path == "/set-cookie":
            return JSONResponse(
                {"ok": True},
                headers={"Set-Cookie": "session=upstream-session-of-caller-one; Path=/; HttpOnly"},
            )
        if path == "/nested":
            return Response(b"[" * NESTING + b"]" * NESTING, media_type="application/json")
        return await super()._handle(request)


@pytest.fixture(scope="module")
def more_server() -> Iterator[MoreUpstream]:
    thread = UpstreamThread(MoreUpstream())
    started = thread.start()
    assert isinstance(started, MoreUpstream)
    yield started
    thread.stop()


@pytest.fixture
def more(more_server: MoreUpstream) -> MoreUpstream:
    more_server.requests.clear()
    more_server.raw_headers.clear()
    return more_server


def more_manifest(base_url: str) -> str:
    operations = ["array", "retry-date", "retry-odd", "big-error", "set-cookie", "nested", "idna-charset"]
    lines = [f"  - {{name: {op.replace('-', '_')}, method: GET, path: /{op}}}" for op in operations]
    return (
        f"name: more\nbase_url: {base_url}\nauth: {{type: bearer, token: {{secret: echo_token}}}}\ntimeout: 5\n"
        "operations:\n"
        "  - {name: whoami, method: GET, path: /echo/whoami}\n" + "\n".join(lines) + "\n"
    )


AGENT_MANIFEST = """
name: agent
base_url: {base_url}
headers: {{User-Agent: custom-agent/2.1}}
operations: [{{name: whoami, method: GET, path: /echo/whoami}}]
"""


# ------------------------------------------------------------------ building the pipeline as _app.py does


def make_pipeline(tools_dir: Path, vault_path: Path, environ: Mapping[str, str] | None = None) -> Pipeline:
    catalog = load_catalog([tools_dir])
    assert not catalog.faults, catalog.faults
    registry = Registry.from_catalog(catalog)
    vault = Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False)
    return Pipeline(registry, vault, environ={"ECHO_ENV_TOKEN": ENV_SECRET} if environ is None else environ)


@pytest.fixture
def all_tools(tools_dir: Path, more_server: MoreUpstream, upstream_server: FakeUpstream) -> Path:
    (tools_dir / "more.yaml").write_text(more_manifest(more_server.url))
    (tools_dir / "agent.yaml").write_text(AGENT_MANIFEST.format(base_url=upstream_server.url))
    return tools_dir


@pytest.fixture
async def pipeline(all_tools: Path, vault_path: Path) -> AsyncIterator[Pipeline]:
    async with make_pipeline(all_tools, vault_path) as running:
        yield running


# ------------------------------------------------------------------ helpers


def secret_forms() -> list[str]:
    forms: list[str] = []
    for secret in (*ALL_SECRETS, f"alice:{PASSWORD}"):
        forms += [secret, quote(secret, safe=""), quote_plus(secret), base64.b64encode(secret.encode()).decode()]
    return forms


def outcome_text(outcome: Outcome) -> str:
    """Everything a client could see of an outcome."""
    if isinstance(outcome, ToolError):
        return json.dumps(outcome.to_body(), ensure_ascii=False) + outcome.message + repr(outcome.details)
    return json.dumps(outcome.value, ensure_ascii=False) + outcome.text


def assert_clean(outcome: Outcome) -> None:
    seen = outcome_text(outcome)
    for form in secret_forms():
        assert form not in seen, f"a secret leaked in {seen[:300]!r}"


def ok(outcome: Outcome) -> ToolSuccess:
    assert isinstance(outcome, ToolSuccess), outcome_text(outcome)
    assert_clean(outcome)
    return outcome


def failed(outcome: Outcome, code: str) -> ToolError:
    assert isinstance(outcome, ToolError), f"expected {code}, got a success: {outcome_text(outcome)[:300]}"
    assert outcome.error_code == code, outcome.to_body()
    assert outcome.message and "Traceback" not in outcome.message
    json.dumps(outcome.to_body())  # the wire shape is plain JSON
    assert_clean(outcome)
    return outcome


# ------------------------------------------------------------------ success shapes


async def test_json_object(pipeline: Pipeline, upstream: FakeUpstream) -> None:
    result = ok(await pipeline.invoke("echo_get_item", {"item_id": "a/b", "verbose": False}))
    assert result.status == 200 and result.is_json
    assert isinstance(result.value, dict)
    assert result.value["path"] == "/echo/items/a%2Fb"
    assert result.value["query"] == "verbose=false"
    # The credential went out, and its echo came back redacted.
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    assert result.value["headers"]["authorization"] == "Bearer [REDACTED]"
    assert json.loads(result.text) == result.value


async def test_json_array_is_the_value(pipeline: Pipeline, more: MoreUpstream) -> None:
    result = ok(await pipeline.invoke("more_array", {}))
    assert result.is_json
    assert result.value == [1, "two", {"three": 3}]
    assert json.loads(result.text) == result.value


async def test_empty_204(pipeline: Pipeline, upstream: FakeUpstream) -> None:
    result = ok(await pipeline.invoke("echo_empty", None))
    assert result.status == 204
    assert result.value is None and result.is_json


@pytest.mark.parametrize(
    ("tool", "arguments", "path"),
    [
        ("echo_get_item", {"item_id": "a\ud800b"}, "$.item_id"),
        ("echo_get_item", {"item_id": "1", "tags": ["ok", "\udfff"]}, "$.tags[1]"),
        ("echo_create_item", {"title": "fine \ud83d"}, "$.title"),
        ("echo_get_item", {"item_id": "1", "X-Trace": "\ud800"}, "$.X-Trace"),
    ],
)
async def test_a_lone_surrogate_in_an_argument_is_an_invalid_argument(
    pipeline: Pipeline, upstream: FakeUpstream, tool: str, arguments: dict[str, Any], path: str
) -> None:
    error = failed(await pipeline.invoke(tool, arguments), "INVALID_ARGUMENTS")
    assert error.details["path"] == path
    assert "lone surrogate" in error.message or "must be ASCII" in error.message  # headers: ASCII only
    assert upstream.requests == []


async def test_unusable_charset_falls_back_to_utf8(pipeline: Pipeline) -> None:
    success = ok(await pipeline.invoke("more_idna_charset", {}))
    assert success.text.endswith(" not idna")


async def test_text_plain(pipeline: Pipeline, upstream: FakeUpstream) -> None:
    result = ok(await pipeline.invoke("echo_text", {}))
    assert not result.is_json and result.value is None
    assert result.text.startswith("headers were: ")
    assert "Bearer [REDACTED]" in result.text


async def test_every_auth_echo_is_redacted(pipeline: Pipeline, upstream: FakeUpstream) -> None:
    for tool in ("keyhdr_whoami", "keyquery_whoami", "keycookie_whoami", "basicauth_whoami", "hdrs_whoami"):
        result = ok(await pipeline.invoke(tool, {}))
        assert "[REDACTED]" in result.text, tool
    assert upstream.requests[-4].query == f"api_key={API_KEY}"
    envauth = ok(await pipeline.invoke("envauth_whoami", {}))
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {ENV_SECRET}"
    assert envauth.value["headers"]["authorization"] == "Bearer [REDACTED]"


# ------------------------------------------------------------------ error codes


async def test_invalid_arguments_never_reach_upstream(pipeline: Pipeline, upstream: FakeUpstream) -> None:
    cases: list[tuple[dict[str, Any] | None, str]] = [
        (None, "$"),
        ({}, "$"),
        ({"item_id": 5}, "$.item_id"),
        ({"item_id": "1", "limit": 0}, "$.limit"),
        ({"item_id": "1", "unexpected": True}, "$"),
        ({"item_id": ".."}, "$.item_id"),
        ({"item_id": "1", "X-Trace": "a\r\nInjected: yes"}, "$.X-Trace"),
    ]
    for arguments, path in cases:
        error = failed(await pipeline.invoke("echo_get_item", arguments), "INVALID_ARGUMENTS")
        assert error.details["path"] == path, (arguments, error.details)
    assert upstream.requests == []


async def test_auth_missing_unset_secret(pipeline: Pipeline, upstream: FakeUpstream) -> None:
    error = failed(await pipeline.invoke("missing_whoami", {}), "AUTH_MISSING")
    assert "mcp-connectors vault set never_stored" in error.message
    assert error.details["missing"] == "never_stored" and error.details["source"] == "secret"
    assert upstream.requests == []


async def test_auth_missing_empty_secret(all_tools: Path, vault_path: Path, upstream: FakeUpstream) -> None:
    Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).set("api_key", "")
    async with make_pipeline(all_tools, vault_path) as pipeline:
        error = failed(await pipeline.invoke("keyhdr_whoami", {}), "AUTH_MISSING")
    assert "is empty" in error.message and error.details["missing"] == "api_key"
    assert upstream.requests == []


async def test_auth_missing_unset_env(all_tools: Path, vault_path: Path, upstream: FakeUpstream) -> None:
    async with make_pipeline(all_tools, vault_path, environ={}) as pipeline:
        error = failed(await pipeline.invoke("envauth_whoami", {}), "AUTH_MISSING")
        assert "is not set" in error.message and "ECHO_ENV_TOKEN" in error.message
        assert error.details["source"] == "env"
        assert upstream.requests == []
        ok(await pipeline.invoke("echo_get_item", {"item_id": "1"}))  # other connectors are unaffected


async def test_auth_failed_401(pipeline: Pipeline, upstream: FakeUpstream) -> None:
    error = failed(await pipeline.invoke("echo_fail", {"code": 401}), "AUTH_FAILED")
    assert error.details["status"] == 401
    assert error.details["body"] == {"message": "failure 401", "echo_auth": "Bearer [REDACTED]"}
    assert "failure 401" in error.message


async def test_rate_limited_seconds(pipeline: Pipeline, upstream: FakeUpstream) -> None:
    error = failed(await pipeline.invoke("echo_throttled", {}), "RATE_LIMITED")
    assert error.details["retry_after"] == 7
    assert error.details["status"] == 429
    assert "slow down" in error.message


async def test_rate_limited_http_date(pipeline: Pipeline, more: MoreUpstream) -> None:
    error = failed(await pipeline.invoke("more_retry_date", {}), "RATE_LIMITED")
    assert 110 <= error.details["retry_after"] <= 121


async def test_rate_limited_unusable_retry_after(pipeline: Pipeline, more: MoreUpstream) -> None:
    error = failed(await pipeline.invoke("more_retry_odd", {}), "RATE_LIMITED")
    assert error.details["retry_after"] is None


async def test_upstream_error_with_status_and_body(pipeline: Pipeline, upstream: FakeUpstream) -> None:
    for code in (404, 500, 503):
        error = failed(await pipeline.invoke("echo_fail", {"code": code}), "UPSTREAM_ERROR")
        assert error.details["status"] == code
        assert error.details["body"]["echo_auth"] == "Bearer [REDACTED]"
        assert f"HTTP {code}" in error.message and f"failure {code}" in error.message


async def test_large_error_body_is_trimmed_after_redaction(pipeline: Pipeline, more: MoreUpstream) -> None:
    error = failed(await pipeline.invoke("more_big_error", {}), "UPSTREAM_ERROR")
    body = error.details["body"]
    assert isinstance(body, str)
    assert 1900 <= len(body) <= 2010
    assert body.endswith("…")
    assert body.endswith("Bearer [RED…")  # the marker is what got cut
    assert SECRET[:8] not in body  # trimming first would have cut the secret in half and kept its start
    assert error.message.endswith("it broke")


async def test_upstream_unreachable(pipeline: Pipeline) -> None:
    error = failed(await pipeline.invoke("down_whoami", {}), "UPSTREAM_UNREACHABLE")
    assert error.details["url"] == "http://127.0.0.1:9/echo/whoami"


async def test_unreachable_url_drops_query_key(all_tools: Path, vault_path: Path) -> None:
    (all_tools / "downkey.yaml").write_text(
        "name: downkey\nbase_url: http://127.0.0.1:9\n"
        "auth: {type: api_key, in: query, name: api_key, value: {secret: api_key}}\n"
        "operations: [{name: whoami, method: GET, path: /echo/whoami}]\n"
    )
    async with make_pipeline(all_tools, vault_path) as pipeline:
        error = failed(await pipeline.invoke("downkey_whoami", {}), "UPSTREAM_UNREACHABLE")
    assert error.details["url"] == "http://127.0.0.1:9/echo/whoami"


async def test_timeout(pipeline: Pipeline, upstream: FakeUpstream) -> None:
    started = time.monotonic()
    error = failed(await pipeline.invoke("echo_slow", {}), "TIMEOUT")
    assert time.monotonic() - started < 2.5
    assert error.details["timeout_seconds"] == 0.5
    assert "0.5 s" in error.message


async def test_response_too_large(pipeline: Pipeline, upstream: FakeUpstream) -> None:
    error = failed(await pipeline.invoke("echo_big", {}), "RESPONSE_TOO_LARGE")
    assert error.details["limit_bytes"] == 5 * 1024 * 1024
    assert error.details["status"] == 200


async def test_unknown_tool_raises(pipeline: Pipeline) -> None:
    with pytest.raises(UnknownTool):
        await pipeline.invoke("nope_nothing", {})


async def test_json_nested_too_deeply_is_a_clear_upstream_error(pipeline: Pipeline, more: MoreUpstream) -> None:
    # JSON nested deeper than the parser's recursion limit: the upstream's answer is unusable, not our bug.
    error = failed(await pipeline.invoke("more_nested", {}), "UPSTREAM_ERROR")
    assert "nested too deeply" in error.message
    assert error.details == {"status": 200}
    ok(await pipeline.invoke("more_array", {}))


# ------------------------------------------------------------------ secrets that cannot go into a header


@pytest.mark.parametrize(
    ("value", "fault"),
    [
        ("tök-non-ascii-välue-1234", "ASCII"),
        ("tok-\u20ac-euro-sign-5678", "ASCII"),
        ("tok-line\r\nX-Injected: yes", "line break"),
        ("tok-nul-\x00-byte", "control"),
    ],
)
async def test_unsendable_secret_is_a_clean_error(
    all_tools: Path, vault_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture, value: str, fault: str
) -> None:
    Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).set("echo_token", value)
    with caplog.at_level(logging.DEBUG):
        async with make_pipeline(all_tools, vault_path) as pipeline:
            outcome = await pipeline.invoke("echo_get_item", {"item_id": "1"})
    assert isinstance(outcome, ToolError)
    assert outcome.error_code == "AUTH_MISSING", outcome.to_body()
    assert fault in outcome.message and "echo_token" in outcome.message
    body = json.dumps(outcome.to_body(), ensure_ascii=False)
    assert value not in body and json.dumps(value)[1:-1] not in body
    assert "Traceback" not in body
    assert upstream.requests == []
    assert not [r for r in caplog.records if r.exc_info is not None]
    assert value not in caplog.text


async def test_non_ascii_secret_in_query_is_sent_and_redacted(
    all_tools: Path, vault_path: Path, upstream: FakeUpstream
) -> None:
    value = "kéy-ünïcode-€-secret"
    Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).set("api_key", value)
    async with make_pipeline(all_tools, vault_path) as pipeline:
        result = ok(await pipeline.invoke("keyquery_whoami", {}))
    assert upstream.requests[-1].query == f"api_key={quote(value, safe='')}"
    assert result.value["query"] == "api_key=[REDACTED]"
    assert value not in result.text and quote(value, safe="") not in result.text


# ------------------------------------------------------------------ cookies, concurrency, User-Agent


async def test_upstream_cookies_are_not_replayed(pipeline: Pipeline, more: MoreUpstream) -> None:
    # The fake's cookie is one an ordinary client would keep and send back...
    async with httpx2.AsyncClient() as plain:
        await plain.get(f"{more.url}/set-cookie")
        echoed = (await plain.get(f"{more.url}/echo/whoami")).json()
    assert echoed["cookies"] == {"session": "upstream-session-of-caller-one"}
    # ...but one caller's upstream session never rides along on the next call.
    ok(await pipeline.invoke("more_set_cookie", {}))
    result = ok(await pipeline.invoke("more_whoami", {}))
    assert result.value["cookies"] == {}
    assert "cookie" not in more.requests[-1].headers


async def test_fifty_concurrent_calls(pipeline: Pipeline, upstream: FakeUpstream) -> None:
    outcomes = await asyncio.gather(
        *(pipeline.invoke("echo_get_item", {"item_id": f"item-{i}", "limit": i + 1}) for i in range(50))
    )
    for i, outcome in enumerate(outcomes):
        result = ok(outcome)
        assert result.value["path"] == f"/echo/items/item-{i}"
        assert result.value["query"] == f"limit={i + 1}"
        assert result.value["headers"]["authorization"] == "Bearer [REDACTED]"
    assert len(upstream.requests) == 50


HOLD_MANIFEST = """
name: hold
base_url: {base_url}
operations:
  - name: wait
    method: GET
    path: "/hold/{{n}}"
    parameters: [{{name: n, in: path, required: true, schema: {{type: string}}}}]
"""


async def test_a_second_burst_of_calls_reuses_the_connections_of_the_first(tmp_path: Path, vault_path: Path) -> None:
    # 64 calls held open at once need 64 connections; when they end, all 64 stay in the pool (idle ones are kept
    # up to the same bound as open ones), so the next 64 open none. With 20 kept idle, the second burst opened 44.
    tools = tmp_path / "hold_tools"
    tools.mkdir()
    async with serve_holding() as holding:
        (tools / "hold.yaml").write_text(HOLD_MANIFEST.format(base_url=holding.url("")))
        async with make_pipeline(tools, vault_path) as running:
            for _ in range(2):
                holding.release = asyncio.Event()
                calls = [asyncio.create_task(running.invoke("hold_wait", {"n": str(i)})) for i in range(64)]
                async with asyncio.timeout(10):
                    await holding.wait_held(64)
                holding.release.set()
                values = [ok(outcome).text for outcome in await asyncio.gather(*calls)]
                assert values == ["ok"] * 64, values[:2]
                assert holding.connections == 64
        assert holding.peak_connections == 64


async def test_user_agent(pipeline: Pipeline, upstream: FakeUpstream, more: MoreUpstream) -> None:
    ok(await pipeline.invoke("echo_get_item", {"item_id": "1"}))
    assert upstream.requests[-1].headers["user-agent"] == f"mcp-connectors/{server_version()}"
    ok(await pipeline.invoke("agent_whoami", {}))
    assert upstream.requests[-1].headers["user-agent"] == "custom-agent/2.1"
    # Exactly one User-Agent on the wire, not ours plus the manifest's.
    ok(await pipeline.invoke("more_whoami", {}))
    agents = [v for k, v in more.raw_headers[-1] if k.lower() == b"user-agent"]
    assert agents == [f"mcp-connectors/{server_version()}".encode()]


async def test_no_secret_in_any_outcome(pipeline: Pipeline, upstream: FakeUpstream, more: MoreUpstream) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("echo_get_item", {"item_id": "1"}),
        ("echo_create_item", {"title": SECRET[:3]}),
        ("echo_text", {}),
        ("echo_fail", {"code": 401}),
        ("echo_fail", {"code": 418}),
        ("echo_throttled", {}),
        ("basicauth_whoami", {}),
        ("keyquery_whoami", {}),
        ("keycookie_whoami", {}),
        ("hdrs_whoami", {}),
        ("envauth_whoami", {}),
        ("more_big_error", {}),
        ("down_whoami", {}),
    ]
    for name, arguments in calls:
        outcome = await pipeline.invoke(name, arguments)
        assert_clean(outcome)
