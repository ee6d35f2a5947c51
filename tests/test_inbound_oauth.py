"""OAuth 2.1 resource-server mode against a real server process and a fake authorization server (JWKS).

Tokens are JWTs signed with RSA and EC keys generated per run; the server fetches the fake issuer's JWKS
over loopback. Static client tokens keep working beside it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from mcp.shared.auth import ProtectedResourceMetadata

from mcp_server._clients import ClientsFile
from tests._fake_idp import FakeIdP, SigningKey
from tests._scenario import text_of
from tests._upstream import FakeUpstream, UpstreamThread
from tests.conftest import SECRET, ServerProcess, start_http_server, stop_process
from tests.test_inbound import ECHO_READ, connect, listed, make_env


@dataclass
class OAuthServer:
    server: ServerProcess
    idp: FakeIdP
    key: SigningKey
    static_token: str
    vault_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def audience(self) -> str:
        return f"{self.server.url}/mcp"

    def token(self, **kwargs: object) -> str:
        kwargs.setdefault("audience", self.audience)
        key = kwargs.pop("key", self.key)
        assert isinstance(key, SigningKey)
        return self.idp.sign(key, **kwargs)  # pyright: ignore[reportArgumentType]

    def get(self, path: str, token: str | None = None) -> httpx2.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx2.get(f"{self.url}{path}", headers=headers, timeout=30)


@pytest.fixture(scope="module")
def oauth(tmp_path_factory: pytest.TempPathFactory, upstream_server: FakeUpstream) -> Iterator[OAuthServer]:
    key = SigningKey.rsa("rsa-1")
    idp = FakeIdP(keys=[key])
    thread = UpstreamThread(idp)
    thread.start()
    base = tmp_path_factory.mktemp("oauth")
    env = make_env(base, upstream_server)
    static = ClientsFile(base / "vault" / "clients.json").add("ci", scopes=["tools:noauth:*"])
    server = start_http_server(
        env,
        base / "server.log",
        "--oauth-issuer",
        idp.issuer,
        "--oauth-jwks-url",
        idp.jwks_url,
        "--oauth-jwks-cooldown",
        "1",
    )
    yield OAuthServer(server, idp, key, static, base / "vault")
    stop_process(server.process)
    thread.stop()


def test_protected_resource_metadata(oauth: OAuthServer) -> None:
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        response = oauth.get(path)
        assert response.status_code == 200, path
        metadata = ProtectedResourceMetadata.model_validate(response.json())  # as the SDK's client reads it
        assert str(metadata.resource) == oauth.audience
        assert [str(s).rstrip("/") for s in metadata.authorization_servers] == [oauth.idp.issuer]
        assert metadata.scopes_supported is not None
        assert {"tools:*", "tools:*:read", "tools:echo:*", "tools:echo:read", "operator"} <= set(
            metadata.scopes_supported
        )
        assert metadata.bearer_methods_supported == ["header"]


def test_no_token_points_at_the_metadata(oauth: OAuthServer) -> None:
    for path in ("/mcp", "/v1/tools", "/sse"):
        response = oauth.get(path)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == (
            f'Bearer realm="mcp-connectors", resource_metadata="{oauth.url}/.well-known/oauth-protected-resource/mcp"'
        )


async def test_a_good_token_works_over_every_transport(oauth: OAuthServer, upstream: FakeUpstream) -> None:
    token = oauth.token()
    response = oauth.get("/v1/tools", token)
    assert response.status_code == 200
    assert {"echo_create_item", "noauth_whoami"} <= {t["name"] for t in response.json()["tools"]}
    for kind in ("modern", "legacy", "sse"):
        async with connect(oauth.url, token, kind) as client:
            result = await client.call_tool("echo_get_item", {"item_id": "7"})
            assert not result.is_error, text_of(result)
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    for request in upstream.requests:
        assert token not in json.dumps(request.headers)  # the access token is never forwarded
    audit = [json.loads(line) for line in (oauth.vault_dir / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["client"] == "oauth:user-123"


def test_static_client_tokens_work_beside_oauth(oauth: OAuthServer) -> None:
    response = oauth.get("/v1/tools", oauth.static_token)
    assert response.status_code == 200
    assert {t["name"] for t in response.json()["tools"]} == {"noauth_whoami"}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("expired", "has expired"),
        ("wrong_issuer", "not issued by the accepted issuer"),
        ("wrong_audience", "was not issued for"),
        ("bad_signature", "signature is not valid"),
        ("not_yet_valid", "not valid"),
        ("garbage", "not a valid JWT"),
    ],
)
def test_bad_tokens_are_refused(oauth: OAuthServer, case: str, expected: str) -> None:
    tokens = {
        "expired": lambda: oauth.token(lifetime=-120),  # beyond the 30 s leeway
        "wrong_issuer": lambda: oauth.token(issuer="https://evil.example"),
        "wrong_audience": lambda: oauth.token(audience="https://other.example/mcp"),
        "bad_signature": lambda: oauth.token(key=SigningKey.rsa("rsa-1")),  # same kid, a key the issuer never had
        "not_yet_valid": lambda: oauth.token(nbf=2**31),
        "garbage": lambda: "not-base64!.garbage.garbage",
    }
    response = oauth.get("/v1/tools", tokens[case]())
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge
    assert f'resource_metadata="{oauth.url}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert expected in response.json()["message"]


def test_a_token_without_a_tools_scope_is_insufficient_scope(oauth: OAuthServer) -> None:
    token = oauth.token(scope="openid profile")
    for path in ("/v1/tools", "/mcp"):
        response = oauth.get(path, token)
        assert response.status_code == 403
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge and 'scope="tools:*:read"' in challenge
    assert oauth.get("/metrics", oauth.token(scope="tools:*")).status_code == 403  # operator scope needed
    assert oauth.get("/metrics", oauth.token(scope="operator")).status_code == 200


async def test_scopes_from_scp_filter_the_listing(oauth: OAuthServer) -> None:
    token = oauth.token(scope=None, scp=["tools:echo:read"])
    assert await listed(oauth.url, token) == ECHO_READ
    refused = httpx2.post(
        f"{oauth.url}/v1/invoke",
        json={"tool": "echo_create_item", "parameters": {"title": "x"}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"


def test_key_rotation_and_unknown_kids(oauth: OAuthServer) -> None:
    idp = oauth.idp
    assert oauth.get("/v1/tools", oauth.token()).status_code == 200  # keys cached
    time.sleep(1.1)  # past the cooldown of the last fetch
    before = idp.jwks_requests
    # Made-up kids: at most one refresh per cooldown, however many arrive.
    for i in range(10):
        forged = oauth.token(key=SigningKey(f"made-up-{i}", oauth.key.private, "RS256"))
        assert oauth.get("/v1/tools", forged).status_code == 401
    assert idp.jwks_requests - before <= 1
    time.sleep(1.1)
    # The issuer rotates to a new key: a token with the new kid makes the server fetch the JWKS again.
    new = SigningKey.ec("ec-rotated")
    old_token = oauth.token()
    idp.rotate(new)
    try:
        before = idp.jwks_requests
        assert oauth.get("/v1/tools", oauth.token(key=new)).status_code == 200
        assert idp.jwks_requests == before + 1
        assert oauth.get("/v1/tools", oauth.token(key=new)).status_code == 200
        assert idp.jwks_requests == before + 1  # cached now
        assert oauth.get("/v1/tools", old_token).status_code == 401  # the retired key no longer verifies
    finally:
        idp.rotate(oauth.key)
        time.sleep(1.1)
    assert oauth.get("/v1/tools", oauth.token()).status_code == 200
