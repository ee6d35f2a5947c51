"""Credentials applied at send time, through the real `Pipeline` against fake upstreams on loopback.

Every scheme is checked by a verifier written here (hmac/hashlib, botocore for SigV4), on the request
the upstream recorded; results must never show what was sent.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_server._audit import AuditLog
from mcp_server._catalog import load_catalog
from mcp_server._errors import ToolError
from mcp_server._oauth import TokenSet
from mcp_server._pipeline import Caller, Outcome, Pipeline, ToolSuccess
from mcp_server._redact import REDACTED
from mcp_server._registry import Registry
from mcp_server._vault import Vault
from tests._fake_oauth import CLIENT_ID as OAUTH_CLIENT_ID
from tests._fake_oauth import CLIENT_SECRET as OAUTH_CLIENT_SECRET
from tests._fake_oauth import FakeAuthServer
from tests._upstream import AppThread, FakeUpstream, UpstreamThread
from tests.conftest import PASSPHRASE

CLIENT_ID = "client-7a7a7a"
CLIENT_SECRET = "cs-canary-5b5b5b5b5b5b"
JWT_KEY = "jwt-hs256-canary-key-0123456789abcdef"
HMAC_KEY_ID = "kid-canary-4242"
HMAC_SECRET = "hmac-canary-secret-9d9d9d9d"
AWS_KEY_ID = "AKIDCANARY000000"
AWS_SECRET = "aws/canary+secret/0000000000000000000000"


# ------------------------------------------------------------------ an upstream that is also a token endpoint


@dataclass
class OAuthUpstream(FakeUpstream):
    """`/oauth/token` issues client-credentials tokens; `/api/...` accepts only the current one, else 401."""

    token_requests: list[dict[str, str]] = field(default_factory=list)
    current: str | None = None
    expires_in: int = 3600
    token_delay: float = 0.05
    fail_token: str | None = None
    refuse_all: bool = False
    serial: int = 0

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        if path == "/oauth/token":
            form = dict((await request.form()).items())
            self.token_requests.append(
                {**{k: str(v) for k, v in form.items()}, "_auth": request.headers.get("authorization", "")}
            )
            await asyncio.sleep(self.token_delay)  # concurrent callers must be waiting on this one request
            if self.fail_token is not None:
                return JSONResponse({"error": self.fail_token, "error_description": "client unknown"}, status_code=401)
            expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if request.headers.get("authorization") != expected or form.get("grant_type") != "client_credentials":
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            self.serial += 1
            self.current = f"at-canary-{self.serial}-{time.monotonic_ns()}"
            return JSONResponse({"access_token": self.current, "token_type": "Bearer", "expires_in": self.expires_in})
        accepted = (
            not self.refuse_all
            and self.current is not None
            and request.headers.get("authorization") == f"Bearer {self.current}"
        )
        if path.startswith("/api/"):
            self.requests.append(await self._record(request))
            if not accepted:
                return JSONResponse({"error": "invalid_token"}, status_code=401)
            return JSONResponse({"headers": {k.lower(): v for k, v in request.headers.items()}})
        return await super()._handle(request)

    async def _record(self, request: Request) -> Any:
        from tests._upstream import Recorded

        return Recorded(
            request.method,
            request.scope["raw_path"].decode(),
            "",
            {k.lower(): v for k, v in request.headers.items()},
            b"",
        )


@pytest.fixture(scope="module")
def oauth_server() -> Iterator[OAuthUpstream]:
    thread = UpstreamThread(OAuthUpstream())
    started = thread.start()
    assert isinstance(started, OAuthUpstream)
    yield started
    thread.stop()


@pytest.fixture
def oauth(oauth_server: OAuthUpstream) -> OAuthUpstream:
    oauth_server.requests.clear()
    oauth_server.token_requests.clear()
    oauth_server.current = None
    oauth_server.fail_token = None
    oauth_server.refuse_all = False
    oauth_server.expires_in = 3600
    return oauth_server


# ------------------------------------------------------------------ helpers


def make_vault(tmp_path: Path, **values: str) -> Vault:
    vault = Vault(tmp_path / "vault.json", passphrase=PASSPHRASE, use_keyring=False)
    for name, value in values.items():
        vault.set(name.replace("__", "@"), value)
    return vault


@pytest.fixture
def secrets_vault(tmp_path: Path) -> Vault:
    return make_vault(
        tmp_path,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        jwt_key=JWT_KEY,
        hmac_key_id=HMAC_KEY_ID,
        hmac_secret=HMAC_SECRET,
        aws_key_id=AWS_KEY_ID,
        aws_secret=AWS_SECRET,
        tok__work="work-token-canary-1111",
        tok__personal="personal-token-canary-2222",
        tok="plain-token-canary-3333",
    )


def pipeline_for(
    tmp_path: Path, manifest: str, vault: Vault, *, audit: AuditLog | None = None, **options: Any
) -> Pipeline:
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    (tools / "svc.yaml").write_text(manifest)
    catalog = load_catalog([tools])
    assert not catalog.faults, catalog.faults
    return Pipeline(Registry.from_catalog(catalog), vault, environ={}, audit=audit, **options)


def ok(outcome: Outcome) -> ToolSuccess:
    assert isinstance(outcome, ToolSuccess), outcome.to_body() if isinstance(outcome, ToolError) else outcome
    return outcome


def manifest(base_url: str, auth: str, path: str = "/echo/it", method: str = "GET", extra: str = "") -> str:
    body = "\n    body: {schema: {type: object, properties: {n: {type: integer}}}}" if method == "POST" else ""
    return (
        f"name: svc\nbase_url: {base_url}\nauth: {auth}\n{extra}timeout: 10\n"
        f"operations:\n  - name: call\n    method: {method}\n    path: {path}\n"
        "    parameters: [{name: q, in: query, schema: {type: string}}]" + body + "\n"
    )


# ------------------------------------------------------------------ OAuth2 client credentials

CC_AUTH = (
    "{type: oauth2_client_credentials, token_url: '%s/oauth/token', client_id: {secret: client_id}, "
    "client_secret: {secret: client_secret}, scopes: [read, write]}"
)


async def test_fifty_concurrent_calls_cause_exactly_one_token_request(
    tmp_path: Path, oauth: OAuthUpstream, secrets_vault: Vault
) -> None:
    async with pipeline_for(tmp_path, manifest(oauth.url, CC_AUTH % oauth.url, "/api/x"), secrets_vault) as pipeline:
        outcomes = await asyncio.gather(*(pipeline.invoke("svc_call", {"q": str(i)}) for i in range(50)))
    for outcome in outcomes:
        result = ok(outcome)
        assert result.value["headers"]["authorization"] == f"Bearer {REDACTED}"
    assert len(oauth.token_requests) == 1
    sent = oauth.token_requests[0]
    assert sent["grant_type"] == "client_credentials" and sent["scope"] == "read write"


async def test_a_401_causes_one_new_token_and_one_retry(
    tmp_path: Path, oauth: OAuthUpstream, secrets_vault: Vault
) -> None:
    async with pipeline_for(tmp_path, manifest(oauth.url, CC_AUTH % oauth.url, "/api/x"), secrets_vault) as pipeline:
        ok(await pipeline.invoke("svc_call", {}))
        oauth.current = "revoked-elsewhere"  # the API no longer accepts the cached token
        ok(await pipeline.invoke("svc_call", {}))
        assert len(oauth.token_requests) == 2
        assert len(oauth.requests) == 3  # first call, the refused attempt, the retry

        # A token that keeps being refused: one re-authentication, then AUTH_FAILED (no loop).
        oauth.refuse_all = True
        outcome = await pipeline.invoke("svc_call", {})
    assert isinstance(outcome, ToolError) and outcome.error_code == "AUTH_FAILED"
    assert len(oauth.token_requests) == 3


async def test_the_token_is_cached_until_shortly_before_it_expires(
    tmp_path: Path, oauth: OAuthUpstream, secrets_vault: Vault
) -> None:
    now = [1_000_000.0]
    oauth.expires_in = 600
    text = manifest(oauth.url, CC_AUTH % oauth.url, "/api/x")
    async with pipeline_for(tmp_path, text, secrets_vault, clock=lambda: now[0]) as pipeline:
        ok(await pipeline.invoke("svc_call", {}))
        now[0] += 500  # well inside the lifetime
        ok(await pipeline.invoke("svc_call", {}))
        assert len(oauth.token_requests) == 1
        now[0] += 90  # 590 s: inside the refresh margin before expiry
        ok(await pipeline.invoke("svc_call", {}))
        assert len(oauth.token_requests) == 2


async def test_a_refused_client_is_auth_failed_and_nothing_reaches_the_api(
    tmp_path: Path, oauth: OAuthUpstream, secrets_vault: Vault
) -> None:
    oauth.fail_token = "invalid_client"
    async with pipeline_for(tmp_path, manifest(oauth.url, CC_AUTH % oauth.url, "/api/x"), secrets_vault) as pipeline:
        outcome = await pipeline.invoke("svc_call", {})
    assert isinstance(outcome, ToolError) and outcome.error_code == "AUTH_FAILED"
    assert "invalid_client" in outcome.message
    assert CLIENT_SECRET not in json.dumps(outcome.to_body())
    assert oauth.requests == []


async def test_a_missing_client_secret_is_auth_missing_before_any_request(tmp_path: Path, oauth: OAuthUpstream) -> None:
    vault = make_vault(tmp_path, client_id=CLIENT_ID)
    async with pipeline_for(tmp_path, manifest(oauth.url, CC_AUTH % oauth.url, "/api/x"), vault) as pipeline:
        outcome = await pipeline.invoke("svc_call", {})
    assert isinstance(outcome, ToolError) and outcome.error_code == "AUTH_MISSING"
    assert "mcp-connectors vault set client_secret" in outcome.message
    assert oauth.token_requests == [] and oauth.requests == []


# ------------------------------------------------------------------ JWT, HMAC, SigV4 verified by hand


def _b64url_json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


async def test_jwt_is_signed_per_request_and_verifies(
    tmp_path: Path, upstream: FakeUpstream, secrets_vault: Vault
) -> None:
    auth = (
        "{type: jwt, algorithm: HS256, key: {secret: jwt_key}, claims: {iss: mcp, aud: api}, lifetime: 120, key_id: k1}"
    )
    async with pipeline_for(tmp_path, manifest(upstream.url, auth), secrets_vault) as pipeline:
        first = ok(await pipeline.invoke("svc_call", {}))
        ok(await pipeline.invoke("svc_call", {}))
    tokens = [r.headers["authorization"].removeprefix("Bearer ") for r in upstream.requests]
    assert len(set(tokens)) == 2, "a fresh JWT per request"
    for token in tokens:
        header, payload, signature = token.split(".")
        expected = hmac.new(JWT_KEY.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
        assert _b64url_json(header) == {"alg": "HS256", "typ": "JWT", "kid": "k1"}
        claims = _b64url_json(payload)
        assert claims["iss"] == "mcp" and claims["aud"] == "api" and claims["exp"] - claims["iat"] == 120
        assert abs(claims["iat"] - time.time()) < 60 and claims["jti"]
    assert tokens[0] not in json.dumps(first.value) and first.value["headers"]["authorization"] == f"Bearer {REDACTED}"


HMAC_AUTH = (
    "{type: hmac, key_id: {secret: hmac_key_id}, secret: {secret: hmac_secret}, algorithm: sha256, "
    "timestamp_format: unix}"
)


async def test_hmac_signature_covers_method_path_timestamp_and_body(
    tmp_path: Path, upstream: FakeUpstream, secrets_vault: Vault
) -> None:
    text = manifest(upstream.url, HMAC_AUTH, "/echo/orders", method="POST")
    async with pipeline_for(tmp_path, text, secrets_vault) as pipeline:
        result = ok(await pipeline.invoke("svc_call", {"q": "a b", "n": 7}))
    sent = upstream.requests[-1]
    timestamp = sent.headers["x-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    canonical = f"POST\n{sent.raw_path}?{sent.query}\n{timestamp}\n{hashlib.sha256(sent.body).hexdigest()}"
    expected = hmac.new(HMAC_SECRET.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    assert sent.headers["x-signature"] == expected
    assert sent.headers["x-api-key"] == HMAC_KEY_ID
    assert json.loads(sent.body) == {"n": 7}
    assert HMAC_KEY_ID not in json.dumps(result.value) and HMAC_SECRET not in json.dumps(result.value)


async def test_sigv4_signature_matches_botocore(
    tmp_path: Path, upstream: FakeUpstream, secrets_vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    import botocore.auth
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auth = (
        "{type: aws_sigv4, access_key_id: {secret: aws_key_id}, secret_access_key: {secret: aws_secret}, "
        "region: eu-west-1, service: execute-api}"
    )
    text = manifest(upstream.url, auth, "/echo/items", method="POST")
    async with pipeline_for(tmp_path, text, secrets_vault) as pipeline:
        ok(await pipeline.invoke("svc_call", {"q": "x y/z", "n": 3}))
    sent = upstream.requests[-1]
    authorization = sent.headers["authorization"]
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    amz_date = sent.headers["x-amz-date"]
    headers = {name: sent.headers[name] for name in signed}
    request = AWSRequest(
        method="POST", url=f"{upstream.url}{sent.raw_path}?{sent.query}", data=sent.body, headers=headers
    )
    # botocore signs at its own "now": at ours instead, or a second ticking over between the two fails the test.
    signed_at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")  # naive UTC, as botocore's own
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: signed_at)
    signer = SigV4Auth(Credentials(AWS_KEY_ID, AWS_SECRET), "execute-api", "eu-west-1")
    for name in list(request.headers.keys()):
        if name.lower() not in signed:
            del request.headers[name]
    signer.add_auth(request)
    assert request.headers["Authorization"] == authorization


# ------------------------------------------------------------------ accounts and the audit log


async def test_accounts_pick_credentials_by_configuration_and_caller(
    tmp_path: Path, upstream: FakeUpstream, secrets_vault: Vault
) -> None:
    auth = "{type: bearer, token: {secret: tok}}"
    text = manifest(upstream.url, auth)
    async with pipeline_for(tmp_path, text, secrets_vault, accounts={"svc": "work"}) as pipeline:
        ok(await pipeline.invoke("svc_call", {}))
        ok(await pipeline.invoke("svc_call", {}, caller=Caller(client="rest:bob", accounts={"svc": "personal"})))
        ok(await pipeline.invoke("svc_call", {"q": "personal"}))  # an argument never selects an account
        missing = await pipeline.invoke("svc_call", {}, caller=Caller(accounts={"*": "other"}))
    sent = [r.headers["authorization"] for r in upstream.requests]
    assert sent == [
        "Bearer work-token-canary-1111",
        "Bearer personal-token-canary-2222",
        "Bearer work-token-canary-1111",
    ]
    assert isinstance(missing, ToolError) and missing.error_code == "AUTH_MISSING"
    assert "mcp-connectors vault set tok@other" in missing.message and missing.details["account"] == "other"
    assert len(upstream.requests) == 3, "no fallback to the plain secret, no request without a credential"


async def test_the_audit_log_records_every_credential_use_without_values(
    tmp_path: Path, upstream: FakeUpstream, secrets_vault: Vault
) -> None:
    audit = AuditLog(tmp_path / "audit" / "audit.jsonl")
    audit.open()
    text = manifest(upstream.url, "{type: bearer, token: {secret: tok}}", path="/status/403")
    async with pipeline_for(tmp_path, text, secrets_vault, audit=audit, accounts={"svc": "work"}) as pipeline:
        await pipeline.invoke("svc_call", {}, caller=Caller(client="rest:alice"))
        await pipeline.invoke("svc_call", {}, caller=Caller(client="stdio", accounts={"svc": "nobody"}))
    raw = audit.path.read_text()
    lines = [json.loads(line) for line in raw.splitlines()]
    assert [(e["client"], e["account"], e["outcome"], e["status"]) for e in lines] == [
        ("rest:alice", "work", "UPSTREAM_ERROR", 403),
        ("stdio", "nobody", "AUTH_MISSING", None),  # attempts are audited too
    ]
    assert lines[1]["credentials"] == [{"name": "tok@nobody", "source": "secret"}]
    entry = lines[0]
    assert entry["tool"] == "svc_call" and entry["connector"] == "svc"
    assert entry["credentials"] == [
        {"name": "tok@work", "source": "secret", "hmac": audit.fingerprint("work-token-canary-1111")}
    ]
    for value in ("work-token-canary-1111", base64.b64encode(b"work-token-canary-1111").decode()):
        assert value not in raw
    assert (audit.path.stat().st_mode & 0o777) == 0o600


# ------------------------------------------------------------------ mTLS with a private CA


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str, issuer_key: ec.EllipticCurvePrivateKey, issuer: str, key: ec.EllipticCurvePrivateKey, *, ca: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca and subject == "127.0.0.1":
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@dataclass
class Pki:
    ca_pem: str
    client_cert_pem: str
    client_key_pem: str
    url: str
    seen_client_certs: list[Any]
    server_only_url: str
    """The same server certificate on a port that asks for no client certificate."""


@pytest.fixture(scope="module")
def mtls_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    directory = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("test-ca", ca_key, "test-ca", ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue("127.0.0.1", ca_key, "test-ca", server_key, ca=False)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue("mcp-client", ca_key, "test-ca", client_key, ca=False)
    (directory / "ca.pem").write_text(_pem(ca))
    (directory / "server.pem").write_text(_pem(server))
    (directory / "server.key").write_text(_key_pem(server_key))
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        tls = scope.get("extensions", {}).get("tls", {})
        seen.append(tls.get("client_cert_name"))
        body = json.dumps({"hello": "mtls"}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    server = AppThread(
        app,
        log_level="critical",
        ssl_certfile=str(directory / "server.pem"),
        ssl_keyfile=str(directory / "server.key"),
        ssl_ca_certs=str(directory / "ca.pem"),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    )
    server_only = AppThread(
        app, log_level="critical", ssl_certfile=str(directory / "server.pem"), ssl_keyfile=str(directory / "server.key")
    )
    server.start()
    server_only.start()
    yield Pki(
        _pem(ca),
        _pem(client),
        _key_pem(client_key),
        f"https://127.0.0.1:{server.port}",
        seen,
        f"https://127.0.0.1:{server_only.port}",
    )
    server.stop()
    server_only.stop()


def _mtls_manifest(pki: Pki, *, with_certificate: bool) -> str:
    ca = json.dumps(pki.ca_pem)
    certificate = "client_certificate: {certificate: {secret: client_cert}, private_key: {secret: client_key}}\n"
    return manifest(
        pki.url,
        "{type: bearer, token: {secret: tok}}",
        "/hello",
        extra=f"ca_certificate: {ca}\n" + (certificate if with_certificate else ""),
    )


async def test_mtls_presents_the_vault_certificate(tmp_path: Path, mtls_upstream: Pki) -> None:
    vault = make_vault(
        tmp_path, client_cert=mtls_upstream.client_cert_pem, client_key=mtls_upstream.client_key_pem, tok="t-0000"
    )
    async with pipeline_for(tmp_path, _mtls_manifest(mtls_upstream, with_certificate=True), vault) as pipeline:
        result = ok(await pipeline.invoke("svc_call", {}))
    assert result.value == {"hello": "mtls"}


async def test_without_the_certificate_the_handshake_fails_clearly(tmp_path: Path, mtls_upstream: Pki) -> None:
    vault = make_vault(tmp_path, tok="t-0000")
    async with pipeline_for(tmp_path, _mtls_manifest(mtls_upstream, with_certificate=False), vault) as pipeline:
        outcome = await pipeline.invoke("svc_call", {})
    assert isinstance(outcome, ToolError) and outcome.error_code == "UPSTREAM_UNREACHABLE"


async def test_the_environment_does_not_choose_which_cas_are_trusted(
    tmp_path: Path, mtls_upstream: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SSL_CERT_FILE naming the upstream's private CA does not make it trusted: only the manifest's
    ca_certificate does (no proxy, .netrc or CA settings are taken from the environment)."""
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(mtls_upstream.ca_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    vault = make_vault(tmp_path, tok="t-0000")
    plain = manifest(mtls_upstream.server_only_url, "{type: bearer, token: {secret: tok}}", "/hello")
    async with pipeline_for(tmp_path, plain, vault) as pipeline:
        outcome = await pipeline.invoke("svc_call", {})
    assert isinstance(outcome, ToolError) and outcome.error_code == "UPSTREAM_UNREACHABLE"
    trusting = manifest(
        mtls_upstream.server_only_url,
        "{type: bearer, token: {secret: tok}}",
        "/hello",
        extra=f"ca_certificate: {json.dumps(mtls_upstream.ca_pem)}\n",
    )
    async with pipeline_for(tmp_path, trusting, vault) as pipeline:
        assert ok(await pipeline.invoke("svc_call", {})).value == {"hello": "mtls"}
    # A manifest naming some other CA adds that one to the system's, not the environment's.
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = _pem(_issue("other-ca", other_key, "other-ca", other_key, ca=True))
    elsewhere = manifest(
        mtls_upstream.server_only_url,
        "{type: bearer, token: {secret: tok}}",
        "/hello",
        extra=f"ca_certificate: {json.dumps(other_ca)}\n",
    )
    async with pipeline_for(tmp_path, elsewhere, vault) as pipeline:
        outcome = await pipeline.invoke("svc_call", {})
    assert isinstance(outcome, ToolError) and outcome.error_code == "UPSTREAM_UNREACHABLE"


async def test_a_certificate_that_does_not_load_is_auth_missing(tmp_path: Path, mtls_upstream: Pki) -> None:
    vault = make_vault(tmp_path, client_cert="not a pem", client_key=mtls_upstream.client_key_pem, tok="t-0000")
    async with pipeline_for(tmp_path, _mtls_manifest(mtls_upstream, with_certificate=True), vault) as pipeline:
        outcome = await pipeline.invoke("svc_call", {})
    assert isinstance(outcome, ToolError) and outcome.error_code == "AUTH_MISSING"
    assert "client_cert" in outcome.message and "BEGIN" not in outcome.message


# ------------------------------------------------------------------ OAuth2 authorization code: the stored token set


@pytest.fixture(scope="module")
def auth_server() -> Iterator[FakeAuthServer]:
    thread = UpstreamThread(FakeAuthServer())
    started = thread.start()
    assert isinstance(started, FakeAuthServer)
    yield started
    thread.stop()


def _code_manifest(server: FakeAuthServer) -> str:
    auth = (
        f"{{type: oauth2_authorization_code, authorization_url: '{server.authorize_url}', "
        f"token_url: '{server.token_url}', client_id: {{secret: oc_id}}, client_secret: {{secret: oc_secret}}}}"
    )
    return manifest(server.url, auth)


async def test_an_expired_stored_token_is_refreshed_rotated_and_used(
    tmp_path: Path, auth_server: FakeAuthServer
) -> None:
    auth_server.reset()
    old_refresh = auth_server.issue_refresh_token()
    stored = TokenSet("expired-access-canary", expires_at=time.time() - 10, refresh_token=old_refresh)
    vault = make_vault(tmp_path, oc_id=OAUTH_CLIENT_ID, oc_secret=OAUTH_CLIENT_SECRET, svc_oauth__work=stored.to_json())
    async with pipeline_for(tmp_path, _code_manifest(auth_server), vault, accounts={"svc": "work"}) as pipeline:
        result = ok(await pipeline.invoke("svc_call", {}))
        ok(await pipeline.invoke("svc_call", {}))
    assert auth_server.token_requests == 1, "refreshed once, then reused"
    fresh = TokenSet.from_json(vault.get("svc_oauth@work").reveal())  # type: ignore[union-attr]
    assert fresh.refresh_token not in (None, old_refresh) and old_refresh not in auth_server.live_refresh_tokens
    api_calls = [r for r in auth_server.requests if r.raw_path.startswith("/echo")]
    assert [r.headers["authorization"] for r in api_calls] == [f"Bearer {fresh.access_token}"] * 2
    assert fresh.access_token not in json.dumps(result.value)


async def test_without_a_login_the_call_names_the_login_command(tmp_path: Path, auth_server: FakeAuthServer) -> None:
    auth_server.reset()
    vault = make_vault(tmp_path, oc_id=OAUTH_CLIENT_ID, oc_secret=OAUTH_CLIENT_SECRET)
    async with pipeline_for(tmp_path, _code_manifest(auth_server), vault) as pipeline:
        missing = await pipeline.invoke("svc_call", {})
    assert isinstance(missing, ToolError) and missing.error_code == "AUTH_MISSING"
    assert "mcp-connectors auth login svc" in missing.message
    assert auth_server.requests == [], "nothing was sent without a credential"
