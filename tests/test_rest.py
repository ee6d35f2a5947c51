"""The REST façade on a real server process: meta, handshake, tools in every format, invoke and its errors."""

from __future__ import annotations

import re

import httpx2
import pytest
from jsonschema import Draft202012Validator

from tests._scenario import assert_no_secret
from tests._upstream import FakeUpstream
from tests.conftest import API_KEY, ENV_SECRET, PASSWORD, SECRET, ServerProcess

OPENAI_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def invoke(server: ServerProcess, tool: str, parameters: object = None) -> httpx2.Response:
    body: dict[str, object] = {"tool": tool}
    if parameters is not None:
        body["parameters"] = parameters
    return httpx2.post(f"{server.url}/v1/invoke", json=body, timeout=30)


def test_meta_and_handshake(http_server: ServerProcess) -> None:
    meta = httpx2.get(f"{http_server.url}/v1/meta").json()
    assert meta["server"] == "mcp-connectors"
    assert meta["capabilities"] == ["handshake", "list_tools", "invoke", "schema", "sse"]
    hello = httpx2.post(f"{http_server.url}/v1/handshake", json={"client": {"name": "agent", "version": "1"}})
    assert hello.status_code == 200
    assert hello.json()["server"]["name"] == "mcp-connectors"
    assert len(hello.json()["session_id"]) >= 16
    bad = httpx2.post(f"{http_server.url}/v1/handshake", json={"client": "agent"})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"


def test_tools_in_every_format(http_server: ServerProcess) -> None:
    default = httpx2.get(f"{http_server.url}/v1/tools").json()["tools"]
    names = [tool["name"] for tool in default]
    assert "echo_get_item" in names and names == sorted(names, key=names.index)
    assert set(default[0]) == {"name", "description", "parameters"}

    openai = httpx2.get(f"{http_server.url}/v1/tools?format=openai").json()["tools"]
    for tool in openai:
        assert tool["type"] == "function"
        function = tool["function"]
        assert OPENAI_NAME.match(function["name"])
        assert len(function["description"]) <= 1024
        assert function["parameters"]["type"] == "object"
        Draft202012Validator.check_schema(function["parameters"])
        for keyword in ("oneOf", "anyOf", "allOf", "enum", "not"):
            assert keyword not in function["parameters"]

    anthropic = httpx2.get(f"{http_server.url}/v1/tools?format=anthropic").json()["tools"]
    assert set(anthropic[0]) == {"name", "description", "input_schema"}

    mcp = httpx2.get(f"{http_server.url}/v1/tools?format=mcp").json()["tools"]
    by_name = {tool["name"]: tool for tool in mcp}
    assert by_name["echo_get_item"]["inputSchema"]["required"] == ["item_id"]
    assert by_name["echo_get_item"]["annotations"]["readOnlyHint"] is True

    bad = httpx2.get(f"{http_server.url}/v1/tools?format=xml")
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"


def test_invoke_success_injects_and_redacts(http_server: ServerProcess, upstream: FakeUpstream) -> None:
    response = invoke(http_server, "echo_get_item", {"item_id": "42", "X-Trace": "abc", "session": "s1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["result"]["headers"]["authorization"] == "Bearer [REDACTED]"
    received = upstream.requests[-1]
    assert received.headers["authorization"] == f"Bearer {SECRET}"
    assert received.headers["x-trace"] == "abc"
    assert received.headers["cookie"] == "session=s1"
    assert received.headers["x-static"] == "static-value"
    assert_no_secret(response.text)


@pytest.mark.parametrize(
    ("tool", "check"),
    [
        ("keyhdr_whoami", lambda r: r.headers["x-api-key"] == API_KEY),
        ("keyquery_whoami", lambda r: r.query == f"api_key={API_KEY}"),
        ("keycookie_whoami", lambda r: r.headers["cookie"] == f"sid={API_KEY}"),
        ("basicauth_whoami", lambda r: r.headers["authorization"].startswith("Basic ")),
        ("hdrs_whoami", lambda r: r.headers["x-auth"] == API_KEY and r.headers["x-tenant"] == "acme"),
        ("envauth_whoami", lambda r: r.headers["authorization"] == f"Bearer {ENV_SECRET}"),
        ("noauth_whoami", lambda r: "authorization" not in r.headers),
    ],
)
def test_every_auth_type(http_server: ServerProcess, upstream: FakeUpstream, tool: str, check: object) -> None:
    response = invoke(http_server, tool)
    assert response.status_code == 200, response.text
    assert callable(check) and check(upstream.requests[-1])
    assert_no_secret(response.text)


def test_basic_credentials_are_exact(http_server: ServerProcess, upstream: FakeUpstream) -> None:
    import base64

    invoke(http_server, "basicauth_whoami")
    expected = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert upstream.requests[-1].headers["authorization"] == f"Basic {expected}"


@pytest.mark.parametrize(
    ("tool", "parameters", "status", "code"),
    [
        ("echo_get_item", {"item_id": 5}, 422, "INVALID_ARGUMENTS"),
        ("echo_get_item", {"item_id": "1", "unknown": True}, 422, "INVALID_ARGUMENTS"),
        ("missing_whoami", {}, 424, "AUTH_MISSING"),
        ("echo_fail", {"code": 401}, 424, "AUTH_FAILED"),
        ("echo_fail", {"code": 404}, 502, "UPSTREAM_ERROR"),
        ("echo_fail", {"code": 503}, 502, "UPSTREAM_ERROR"),
        ("echo_throttled", {}, 429, "RATE_LIMITED"),
        ("down_whoami", {}, 502, "UPSTREAM_UNREACHABLE"),
        ("echo_slow", {}, 504, "TIMEOUT"),
    ],
)
def test_invoke_errors(
    http_server: ServerProcess, upstream: FakeUpstream, tool: str, parameters: dict[str, object], status: int, code: str
) -> None:
    before = len(upstream.requests)
    response = invoke(http_server, tool, parameters)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error_code"] == code
    assert isinstance(body["error"], str) and body["error"]
    assert_no_secret(response.text)
    if code == "INVALID_ARGUMENTS":
        assert len(upstream.requests) == before
    if code == "RATE_LIMITED":
        assert response.headers["retry-after"] == "7"
        assert body["details"]["retry_after"] == 7


def test_unknown_tool_is_404(http_server: ServerProcess) -> None:
    response = invoke(http_server, "nope_nothing", {})
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'{"tool": 5}', "application/json", 400),
        (b'{"tool": "echo_empty", "parameters": [1]}', "application/json", 400),
        (b'{"tool": "echo_empty"}', "text/plain", 415),
        (b'{"tool": "' + b"x" * (2 * 1024 * 1024) + b'"}', "application/json", 413),
    ],
)
def test_malformed_invoke_requests(http_server: ServerProcess, content: bytes, content_type: str, status: int) -> None:
    response = httpx2.post(f"{http_server.url}/v1/invoke", content=content, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert response.json()["error"] == "bad_request"


def test_wrong_method_is_json(http_server: ServerProcess) -> None:
    response = httpx2.get(f"{http_server.url}/v1/invoke")
    assert response.status_code == 405
    assert "error" in response.json()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (rb'{"tool": "echo_get_item", "parameters": {"item_id": "a\ud800"}}', 422, "INVALID_ARGUMENTS"),
        (rb'{"tool": "echo_get_item", "parameters": {"item_id": "1", "limit": "\ud800"}}', 422, "INVALID_ARGUMENTS"),
        (rb'{"tool": "echo_get_item", "parameters": {"item_id": "1", "\udc80": 1}}', 422, "INVALID_ARGUMENTS"),
        (rb'{"tool": "echo_create_item", "parameters": {"title": "x\udfff"}}', 422, "INVALID_ARGUMENTS"),
        (
            rb'{"tool": "echo_create_charge", "parameters": {"amount": 1, "metadata": {"\ud800": "x"}}}',
            422,
            "INVALID_ARGUMENTS",
        ),
        (rb'{"tool": "echo_\ud800"}', 404, None),
    ],
)
def test_lone_surrogates_are_answered_not_crashed_on(
    http_server: ServerProcess, upstream: FakeUpstream, body: bytes, status: int, code: str | None
) -> None:
    response = httpx2.post(f"{http_server.url}/v1/invoke", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    answer = response.json()
    if code is not None:
        assert answer["error_code"] == code
    assert "\\ud" in response.text or "\\udc80" in response.text or "\\udfff" in response.text
    assert upstream.requests == []
    assert "Traceback" not in http_server.log()
