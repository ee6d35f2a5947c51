"""Canary secrets for every send-time scheme, through a real server process, against an upstream that echoes
headers, query strings and bodies: no form of any secret, nor any token made from one, may reach a result, an
error, the server log (at DEBUG), `/metrics` or the audit log."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx2
import pytest
from mcp import Client

from mcp_server._vault import Vault
from tests._fake_oauth import CLIENT_ID, CLIENT_SECRET, FakeAuthServer
from tests._upstream import FakeUpstream, UpstreamThread
from tests.conftest import PASSPHRASE, start_http_server, stop_process

JWT_KEY = "jwt-canary-key/with+odd=chars-0123456789"
HMAC_SECRET = "hmac-canary-secret-ö-5f5f5f5f"
HMAC_KEY_ID = "hmac-canary-key-id-6a6a"
AWS_SECRET = "aws-canary/secret+key=0000000000000000"
BASIC_PASSWORD = "basic-canary-pw:with:colons"
QUERY_KEY = "query-canary-key&=?/ 7b7b"
CANARIES = (CLIENT_SECRET, JWT_KEY, HMAC_SECRET, HMAC_KEY_ID, AWS_SECRET, BASIC_PASSWORD, QUERY_KEY)


@pytest.fixture(scope="module")
def auth_server() -> Iterator[FakeAuthServer]:
    thread = UpstreamThread(FakeAuthServer())
    started = thread.start()
    assert isinstance(started, FakeAuthServer)
    started.client_auth = "basic"
    yield started
    thread.stop()


def _manifests(api: str, token_url: str) -> dict[str, str]:
    ops = (
        "operations:\n"
        "  - {name: echo, method: POST, path: /echo/x, parameters: [{name: q, in: query, schema: {type: string}}],"
        " body: {schema: {type: object, properties: {note: {type: string}}}}}\n"
        "  - {name: fail, method: GET, path: /status/401}\n"
        "  - {name: text, method: GET, path: /text/x}\n"
    )
    auths = {
        "cc": f"{{type: oauth2_client_credentials, token_url: '{token_url}', client_id: {json.dumps(CLIENT_ID)}, "
        "client_secret: {secret: cc_secret}}",
        "jwt": "{type: jwt, algorithm: HS256, key: {secret: jwt_key}, claims: {sub: canary}}",
        "hmac": "{type: hmac, key_id: {secret: hmac_key_id}, secret: {secret: hmac_secret}}",
        "aws": "{type: aws_sigv4, access_key_id: AKIDCANARY, secret_access_key: {secret: aws_secret}, "
        "region: us-east-1, service: execute-api}",
        "basic": "{type: basic, username: bot, password: {secret: basic_pw}}",
        "query": "{type: api_key, in: query, name: key, value: {secret: query_key}}",
    }
    return {name: f"name: {name}\nbase_url: {api}\nauth: {auth}\ntimeout: 10\n{ops}" for name, auth in auths.items()}


def _forms(secret: str) -> set[str]:
    raw = secret.encode()
    quoted = quote(secret, safe="")
    return {
        secret,
        quoted,
        quoted.lower(),
        quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        base64.b64encode(b"bot:" + raw).decode(),  # inside a Basic header
    }


def test_no_canary_leaves_the_server(
    tmp_path: Path, upstream: FakeUpstream, auth_server: FakeAuthServer, server_env: dict[str, str]
) -> None:
    auth_server.reset()
    auth_server.client_auth = "basic"
    tools = tmp_path / "canary-tools"
    tools.mkdir()
    for name, text in _manifests(upstream.url, auth_server.token_url).items():
        (tools / f"{name}.yaml").write_text(text)
    vault_file = tmp_path / "canary-vault" / "vault.json"
    vault = Vault(vault_file, passphrase=PASSPHRASE, use_keyring=False)
    for name, value in {
        "cc_secret": CLIENT_SECRET,
        "jwt_key": JWT_KEY,
        "hmac_key_id": HMAC_KEY_ID,
        "hmac_secret": HMAC_SECRET,
        "aws_secret": AWS_SECRET,
        "basic_pw": BASIC_PASSWORD,
        "query_key": QUERY_KEY,
    }.items():
        vault.set(name, value)
    audit = tmp_path / "audit.jsonl"
    env = {
        **server_env,
        "MCP_CONNECTORS_TOOLS": str(tools),
        "MCP_CONNECTORS_VAULT": str(vault_file),
        "MCP_CONNECTORS_AUDIT_LOG": str(audit),
    }
    server = start_http_server(env, tmp_path / "server.log", "--log-level", "DEBUG", "--log-format", "text")
    seen: list[str] = []
    try:
        with httpx2.Client(base_url=server.url, timeout=30) as http:
            for connector in ("cc", "jwt", "hmac", "aws", "basic", "query"):
                for tool, parameters in ((f"{connector}_echo", {"q": "hi", "note": "n"}), (f"{connector}_fail", {}),
                                         (f"{connector}_text", {})):  # fmt: skip
                    response = http.post("/v1/invoke", json={"tool": tool, "parameters": parameters})
                    assert response.status_code in (200, 424), (tool, response.text)
                    seen.append(response.text)
            seen.append(http.get("/metrics").text)

        async def over_mcp() -> None:
            async with Client(f"{server.url}/mcp") as client:
                for connector in ("cc", "jwt", "basic", "query"):
                    result = await client.call_tool(f"{connector}_echo", {"q": "hi"})
                    seen.append(result.model_dump_json())
                    failed = await client.call_tool(f"{connector}_fail", {})
                    assert failed.is_error
                    seen.append(failed.model_dump_json())

        import anyio

        anyio.run(over_mcp)
    finally:
        stop_process(server.process)

    # What actually went out: tokens minted from the canaries, to look for as well.
    minted = set(auth_server.issued_access_tokens)
    for recorded in upstream.requests:
        authorization = recorded.headers.get("authorization", "")
        if authorization.startswith("Bearer "):
            minted.add(authorization.removeprefix("Bearer "))
        assert authorization.strip() not in ("Bearer", "Basic"), "an empty credential was sent"
    assert len(minted) >= 2, "the OAuth and JWT connectors really sent tokens"
    assert any(quote(QUERY_KEY, safe="") in r.query for r in upstream.requests), "the query key was really sent"

    places = {"results": "\n".join(seen), "server log": server.log(), "audit log": audit.read_text()}
    assert " DEBUG " in places["server log"]
    for place, text in places.items():
        for secret in (*CANARIES, *minted):
            for form in _forms(secret):
                assert form not in text, f"a form of a canary reached the {place}"
    entries = [json.loads(line) for line in places["audit log"].splitlines()]
    assert {e["connector"] for e in entries} == {"cc", "jwt", "hmac", "aws", "basic", "query"}
