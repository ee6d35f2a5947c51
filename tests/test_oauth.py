"""OAuth 2.0 token providers against a fake authorization server: caching, single flight, client authentication
on the wire, error mapping, and refresh-token rotation through the vault."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest

from mcp_server import _oauth
from mcp_server._errors import (
    AuthFailed,
    AuthMissing,
    ToolError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    VaultError,
)
from mcp_server._model import OAuth2AuthorizationCode, OAuth2ClientCredentials
from mcp_server._oauth import (
    AuthorizationCodeProvider,
    ClientCredentialsProvider,
    TokenSet,
    authorization_url,
    make_pkce_pair,
)
from mcp_server._secrets import Secret, ValueRef
from mcp_server._vault import Vault
from tests._fake_oauth import CLIENT_ID, CLIENT_SECRET, FakeAuthServer
from tests._upstream import free_port

PASSPHRASE = "oauth test passphrase"
RECORD = "demo_tokens"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class MemoryStore:
    """A `SecretStore` in a dict, recording writes; `fail_writes` makes `set` fail like an unwritable vault."""

    remote: ClassVar[bool] = False

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.writes: list[str] = []
        self.fail_writes = False

    def get(self, name: str) -> Secret | None:
        value = self.data.get(name)
        return Secret(value) if value is not None else None

    def set(self, name: str, value: str) -> None:
        if self.fail_writes:
            raise VaultError("vault file /x/vault.json is read-only")
        self.writes.append(name)
        self.data[name] = value

    def delete(self, name: str) -> bool:
        return self.data.pop(name, None) is not None

    def names(self) -> list[str]:
        return sorted(self.data)

    def check(self) -> None:
        return None

    def describe(self) -> str:
        return "memory store"


def resolver(values: dict[str, str] | None = None) -> Callable[[ValueRef], str]:
    values = {"client_secret": CLIENT_SECRET, **(values or {})}

    def resolve(ref: ValueRef) -> str:
        if ref.kind == "literal":
            return ref.value
        if ref.value not in values:
            raise AuthMissing(f"{ref.describe()} is not set", missing=ref.value)
        return values[ref.value]

    return resolve


def cc_auth(server: FakeAuthServer, **overrides: Any) -> OAuth2ClientCredentials:
    fields: dict[str, Any] = {
        "token_url": server.token_url,
        "client_id": ValueRef("literal", CLIENT_ID),
        "client_secret": ValueRef("secret", "client_secret"),
        "client_auth": "body",
    }
    return OAuth2ClientCredentials(**(fields | overrides))


def code_auth(server: FakeAuthServer, **overrides: Any) -> OAuth2AuthorizationCode:
    fields: dict[str, Any] = {
        "authorization_url": server.authorize_url,
        "token_url": server.token_url,
        "client_id": ValueRef("literal", CLIENT_ID),
        "client_secret": ValueRef("secret", "client_secret"),
        "token_secret": RECORD,
        "scopes": ("read", "write"),
    }
    return OAuth2AuthorizationCode(**(fields | overrides))


async def gather(count: int, fn: Callable[[], Any]) -> list[Any]:
    results: list[Any] = [None] * count

    async def one(index: int) -> None:
        try:
            results[index] = await fn()
        except ToolError as error:
            results[index] = error

    async with anyio.create_task_group() as group:
        for index in range(count):
            group.start_soon(one, index)
    return results


def assert_no_secrets(error: BaseException, server: FakeAuthServer, *extra: str) -> None:
    text = str(error) + json.dumps(getattr(error, "details", {}), default=str)
    for value in (*server.issued_access_tokens, *server.live_refresh_tokens, CLIENT_SECRET, *extra):
        assert value not in text


# -- TokenSet and PKCE -----------------------------------------------------------------------------------------


def test_token_set_round_trips_through_json() -> None:
    tokens = TokenSet("at-1", "Bearer", 1234.5, "rt-1", "read write")
    assert TokenSet.from_json(tokens.to_json()) == tokens
    minimal = TokenSet("at-2", "bearer", None, None, None)
    assert TokenSet.from_json(minimal.to_json()) == minimal
    assert "at-1" not in repr(tokens) and "rt-1" not in repr(tokens)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1, 2]",
        "null",
        '{"token_type": "Bearer"}',
        '{"access_token": ""}',
        '{"access_token": 7}',
        '{"access_token": "a", "expires_at": "soon"}',
        '{"access_token": "a", "expires_at": true}',
        '{"access_token": "a", "expires_at": NaN}',
        '{"access_token": "a", "refresh_token": 5}',
        '{"access_token": "a", "scope": ["read"]}',
        '{"access_token": "a", "token_type": null}',
    ],
)
def test_token_set_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        TokenSet.from_json(text)
    assert text == "" or text not in str(caught.value)


def test_token_response_lifetime_and_previous_values() -> None:
    previous = TokenSet("old", "Bearer", 1.0, "rt-old", "read")
    fresh = TokenSet.from_response({"access_token": "new", "expires_in": "120"}, now=1000.0, previous=previous)
    assert (fresh.expires_at, fresh.refresh_token, fresh.scope) == (1120.0, "rt-old", "read")
    rotated = TokenSet.from_response(
        {"access_token": "new", "refresh_token": "rt-new", "expires_in": 0, "token_type": "bearer"}, now=1000.0
    )
    assert (rotated.expires_at, rotated.refresh_token, rotated.token_type) == (None, "rt-new", "bearer")


def test_pkce_pair_is_s256() -> None:
    verifier, challenge = make_pkce_pair()
    assert 43 <= len(verifier) <= 128
    assert re.fullmatch(r"[A-Za-z0-9._~-]+", verifier)
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == expected and len(challenge) == 43
    assert make_pkce_pair()[0] != verifier


def test_authorization_url_carries_the_protocol_parameters(oauth_server: FakeAuthServer) -> None:
    auth = code_auth(
        oauth_server,
        authorization_url="https://id.example.com/oauth/authorize?tenant=acme&prompt=login",
        extra_params={"access_type": "offline", "prompt": "consent", "redirect_uri": "https://evil.example"},
    )
    url = authorization_url(
        auth, client_id="cid", redirect_uri="http://127.0.0.1:5555/callback", state="st", challenge="ch"
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "id.example.com", "/oauth/authorize")
    query = parse_qs(parts.query)
    assert query == {
        "tenant": ["acme"],
        "access_type": ["offline"],
        "prompt": ["consent"],  # extra_params override the URL's own query...
        "response_type": ["code"],
        "client_id": ["cid"],
        "redirect_uri": ["http://127.0.0.1:5555/callback"],  # ...but never a protocol parameter
        "state": ["st"],
        "code_challenge": ["ch"],
        "code_challenge_method": ["S256"],
        "scope": ["read write"],
    }
    assert "scope=read%20write" in url


# -- client credentials ----------------------------------------------------------------------------------------


async def test_fifty_concurrent_callers_share_one_token_request(oauth: FakeAuthServer) -> None:
    async with httpx2.AsyncClient() as client:
        provider = ClientCredentialsProvider(cc_auth(oauth), connector="demo", client=client, resolve=resolver())
        tokens = await gather(50, provider.token)
    assert oauth.token_requests == 1
    assert set(tokens) == {oauth.issued_access_tokens[0]}


async def test_token_is_cached_until_shortly_before_expiry(oauth: FakeAuthServer) -> None:
    clock = Clock()
    async with httpx2.AsyncClient() as client:
        provider = ClientCredentialsProvider(
            cc_auth(oauth), connector="demo", client=client, resolve=resolver(), clock=clock, skew=60
        )
        first = await provider.token()
        clock.now += 3600 - 61
        assert await provider.token() == first
        assert oauth.token_requests == 1
        clock.now += 2  # now inside the 60 s skew before expiry
        second, *rest = await gather(10, provider.token)
    assert second != first and set(rest) == {second}
    assert oauth.token_requests == 2


async def test_short_lifetimes_are_still_reused(oauth: FakeAuthServer) -> None:
    """A 60 s token with a 60 s skew would otherwise be fetched anew for every call."""
    oauth.expires_in = 60
    clock = Clock()
    async with httpx2.AsyncClient() as client:
        provider = ClientCredentialsProvider(
            cc_auth(oauth), connector="demo", client=client, resolve=resolver(), clock=clock
        )
        first = await provider.token()
        clock.now += 29
        assert await provider.token() == first
        clock.now += 2
        assert await provider.token() != first
    assert oauth.token_requests == 2


async def test_token_without_lifetime_is_cached_until_invalidated(oauth: FakeAuthServer) -> None:
    oauth.expires_in = None
    clock = Clock()
    async with httpx2.AsyncClient() as client:
        provider = ClientCredentialsProvider(
            cc_auth(oauth), connector="demo", client=client, resolve=resolver(), clock=clock
        )
        first = await provider.token()
        clock.now += 10 * 365 * 86400
        assert await provider.token() == first
        assert oauth.token_requests == 1
        provider.invalidate(first)
        assert await provider.token() != first
    assert oauth.token_requests == 2


async def test_invalidate_after_401_refetches_once(oauth: FakeAuthServer) -> None:
    async with httpx2.AsyncClient() as client:
        provider = ClientCredentialsProvider(cc_auth(oauth), connector="demo", client=client, resolve=resolver())
        first = await provider.token()
        assert provider.sensitive() == [first, CLIENT_SECRET]
        # Several calls that all got 401 with the same token report it; only one new token is fetched.
        for _ in range(5):
            provider.invalidate(first)
        second, *rest = await gather(20, provider.token)
        assert second != first and set(rest) == {second}
        assert oauth.token_requests == 2
        provider.invalidate(first)  # a late 401 for the old token must not drop the new one
        assert await provider.token() == second
        assert provider.sensitive() == [first, second, CLIENT_SECRET]
    assert oauth.token_requests == 2


async def test_sensitive_keeps_a_few_recent_tokens(oauth: FakeAuthServer) -> None:
    async with httpx2.AsyncClient() as client:
        provider = ClientCredentialsProvider(cc_auth(oauth), connector="demo", client=client, resolve=resolver())
        for _ in range(10):
            provider.invalidate(await provider.token())
        current = await provider.token()
    assert provider.sensitive() == [*oauth.issued_access_tokens[-_oauth.RECENT_TOKENS :], CLIENT_SECRET]
    assert provider.sensitive()[-2] == current


@pytest.mark.parametrize("client_auth", ["basic", "body"])
async def test_client_authentication_on_the_wire(oauth: FakeAuthServer, client_auth: str) -> None:
    oauth.client_auth = client_auth
    auth = cc_auth(
        oauth,
        client_auth=client_auth,
        scopes=("read:all", "write"),
        audience="https://api.example.com",
        extra_params={"resource": "urn:demo"},
    )
    async with httpx2.AsyncClient() as client:
        provider = ClientCredentialsProvider(auth, connector="demo", client=client, resolve=resolver())
        assert await provider.token() == oauth.issued_access_tokens[0]
    (request,) = oauth.requests
    (form,) = oauth.token_forms()
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["accept"] == "application/json"
    common = {
        "grant_type": "client_credentials",
        "scope": "read:all write",
        "audience": "https://api.example.com",
        "resource": "urn:demo",
    }
    if client_auth == "basic":
        assert form == common
        # RFC 6749 §2.3.1: both parts form-urlencoded before base64, so the ':' in the id stays unambiguous.
        raw = base64.b64decode(request.headers["authorization"].removeprefix("Basic ")).decode()
        assert raw == "demo-client%3Aid:s3cr3t%2F%2B%C3%B6%3Ademo-CLIENT-secret"
    else:
        assert form == {**common, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        assert "authorization" not in request.headers


async def test_wrong_client_auth_method_is_invalid_client(oauth: FakeAuthServer) -> None:
    oauth.client_auth = "basic"
    async with httpx2.AsyncClient() as client:
        provider = ClientCredentialsProvider(cc_auth(oauth), connector="demo", client=client, resolve=resolver())
        with pytest.raises(AuthFailed) as caught:
            await provider.token()
    assert "invalid_client" in caught.value.message
    assert caught.value.details["oauth_error"] == "invalid_client"
    assert_no_secrets(caught.value, oauth)


@pytest.mark.parametrize(
    ("failure", "error_type", "fragment"),
    [
        ("invalid_client", AuthFailed, "refused the request (invalid_client: Client authentication failed)"),
        ("500", UpstreamError, "HTTP 500"),
        ("not_json", AuthFailed, "answered without an access_token"),
        ("no_access_token", AuthFailed, "answered without an access_token"),
        ("redirect", UpstreamError, "redirect (HTTP 307), which is not followed"),
    ],
)
async def test_token_endpoint_errors(
    oauth: FakeAuthServer, failure: str, error_type: type[ToolError], fragment: str
) -> None:
    oauth.failure = failure
    async with httpx2.AsyncClient(follow_redirects=True) as client:
        provider = ClientCredentialsProvider(cc_auth(oauth), connector="demo", client=client, resolve=resolver())
        with pytest.raises(error_type) as caught:
            await provider.token()
    assert type(caught.value) is error_type
    assert fragment in caught.value.message
    assert caught.value.message.startswith("demo: ")
    assert caught.value.details["token_url"] == oauth.token_url
    assert len(oauth.requests) == 1  # the redirect was not followed
    assert_no_secrets(caught.value, oauth)


async def test_error_description_is_trimmed_and_scrubbed(oauth: FakeAuthServer) -> None:
    oauth.failure = "huge_description"  # echoes the client secret and refresh token we sent, then 5000 characters
    clock = Clock()
    old = stored_set(oauth, expires_at=clock.now - 1)
    store = MemoryStore()
    store.data[RECORD] = old.to_json()
    async with httpx2.AsyncClient() as client:
        provider = ClientCredentialsProvider(cc_auth(oauth), connector="demo", client=client, resolve=resolver())
        with pytest.raises(AuthFailed) as caught:
            await provider.token()
        with pytest.raises(AuthFailed) as refresh:
            await code_provider(oauth, store, client, clock).token()
    for error in (caught.value, refresh.value):
        assert "(invalid_client: rejected [REDACTED] " in error.message
        assert "x" * 200 in error.message and "x" * 300 not in error.message
        assert_no_secrets(error, oauth, old.refresh_token or "")


async def test_timeout_and_unreachable(oauth: FakeAuthServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_oauth, "TOKEN_TOTAL_TIMEOUT", 0.3)
    oauth.failure = "slow"
    async with httpx2.AsyncClient() as client:
        provider = ClientCredentialsProvider(cc_auth(oauth), connector="demo", client=client, resolve=resolver())
        with pytest.raises(UpstreamTimeout) as caught:
            await provider.token()
        assert "did not answer within 0.3 s" in caught.value.message
        closed = cc_auth(oauth, token_url=f"http://127.0.0.1:{free_port()}/token")
        provider = ClientCredentialsProvider(closed, connector="demo", client=client, resolve=resolver())
        with pytest.raises(UpstreamUnreachable) as unreachable:
            await provider.token()
    assert "cannot reach the token endpoint" in unreachable.value.message


async def test_waiters_share_a_failure_instead_of_retrying_in_turn(oauth: FakeAuthServer) -> None:
    oauth.failure = "invalid_client"
    async with httpx2.AsyncClient() as client:
        provider = ClientCredentialsProvider(cc_auth(oauth), connector="demo", client=client, resolve=resolver())
        errors = await gather(20, provider.token)
        assert all(isinstance(error, AuthFailed) for error in errors)
        assert len({id(error) for error in errors}) == 20  # copies: the pipeline rewrites an error's message
        assert oauth.token_requests == 1
        oauth.failure = None
        assert await provider.token()  # a later call tries again
    assert oauth.token_requests == 2


async def test_unset_client_secret_propagates_auth_missing(oauth: FakeAuthServer) -> None:
    auth = cc_auth(oauth, client_secret=ValueRef("secret", "never_stored"))
    async with httpx2.AsyncClient() as client:
        provider = ClientCredentialsProvider(auth, connector="demo", client=client, resolve=resolver())
        with pytest.raises(AuthMissing, match="never_stored"):
            await provider.token()
    assert oauth.token_requests == 0


# -- authorization code: refresh and rotation ------------------------------------------------------------------


def stored_set(server: FakeAuthServer, *, expires_at: float | None, refresh: bool = True) -> TokenSet:
    return TokenSet(
        access_token="at-stored-0123456789",
        token_type="Bearer",
        expires_at=expires_at,
        refresh_token=server.issue_refresh_token() if refresh else None,
        scope="read write",
    )


def code_provider(
    server: FakeAuthServer, store: Any, client: httpx2.AsyncClient, clock: Clock, *, record: str = RECORD, **kw: Any
) -> AuthorizationCodeProvider:
    return AuthorizationCodeProvider(
        code_auth(server, **kw),
        connector="demo",
        record=record,
        store=store,
        client=client,
        resolve=resolver(),
        clock=clock,
    )


async def test_missing_record_is_auth_missing_naming_login(oauth: FakeAuthServer) -> None:
    store = MemoryStore()
    async with httpx2.AsyncClient() as client:
        with pytest.raises(AuthMissing) as plain:
            await code_provider(oauth, store, client, Clock()).token()
        with pytest.raises(AuthMissing) as account:
            await code_provider(oauth, store, client, Clock(), record=f"{RECORD}@work").token()
    assert plain.value.message.endswith("run: mcp-connectors auth login demo")
    assert plain.value.details["fix"] == "mcp-connectors auth login demo"
    assert account.value.message.endswith("run: mcp-connectors auth login demo --account work")
    assert oauth.token_requests == 0


@pytest.mark.parametrize("record", ["a plain API key", '{"token_type": "Bearer"}'])
async def test_record_that_is_not_a_token_set_fails_naming_login(oauth: FakeAuthServer, record: str) -> None:
    store = MemoryStore()
    store.data[RECORD] = record
    async with httpx2.AsyncClient() as client:
        with pytest.raises(AuthFailed) as caught:
            await code_provider(oauth, store, client, Clock()).token()
    assert "does not hold OAuth tokens" in caught.value.message
    assert "run: mcp-connectors auth login demo" in caught.value.message
    assert record not in caught.value.message


async def test_valid_stored_token_is_used_without_a_request(oauth: FakeAuthServer) -> None:
    clock = Clock()
    tokens = stored_set(oauth, expires_at=clock.now + 3600)
    store = MemoryStore()
    store.data[RECORD] = tokens.to_json()
    async with httpx2.AsyncClient() as client:
        provider = code_provider(oauth, store, client, clock)
        assert set(await gather(50, provider.token)) == {tokens.access_token}
        assert provider.sensitive() == [
            tokens.access_token,
            tokens.refresh_token,
        ]
    assert oauth.token_requests == 0


async def test_expired_token_is_refreshed_once_with_rotation_through_the_vault(
    oauth: FakeAuthServer, tmp_path: Path
) -> None:
    clock = Clock()
    path = tmp_path / "vault.json"
    old = stored_set(oauth, expires_at=clock.now - 1)
    Vault(path, passphrase=PASSPHRASE, use_keyring=False).set(RECORD, old.to_json())
    vault = Vault(path, passphrase=PASSPHRASE, use_keyring=False)
    async with httpx2.AsyncClient() as client:
        provider = code_provider(oauth, vault, client, clock)
        tokens = await gather(50, provider.token)
        assert oauth.token_requests == 1
        assert set(tokens) == {oauth.issued_access_tokens[0]}
        (form,) = oauth.token_forms()
        assert form == {
            "grant_type": "refresh_token",
            "refresh_token": old.refresh_token,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }

        # The vault holds the rotated set; a second process opening the file sees it.
        secret = Vault(path, passphrase=PASSPHRASE, use_keyring=False).get(RECORD)
        assert secret is not None
        saved = TokenSet.from_json(secret.reveal())
        assert saved.access_token == tokens[0]
        assert saved.refresh_token is not None and saved.refresh_token != old.refresh_token
        assert saved.refresh_token in oauth.live_refresh_tokens
        assert saved.expires_at == clock.now + 3600
        assert saved.scope == "read write"  # kept: the refresh answer named no scope

        # The old refresh token is dead at the server.
        reuse = await client.post(
            oauth.token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": old.refresh_token,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        )
        assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"

        # A second process whose access token has expired refreshes with the rotated token from the vault.
        clock.now += 3600
        other = code_provider(oauth, Vault(path, passphrase=PASSPHRASE, use_keyring=False), client, clock)
        assert await other.token() == oauth.issued_access_tokens[1]
        assert oauth.token_forms()[-1]["refresh_token"] == saved.refresh_token


async def test_refresh_without_a_new_refresh_token_keeps_the_old_one(oauth: FakeAuthServer) -> None:
    oauth.rotate = False
    clock = Clock()
    old = stored_set(oauth, expires_at=clock.now + 30)  # inside the skew: due for a refresh
    store = MemoryStore()
    store.data[RECORD] = old.to_json()
    async with httpx2.AsyncClient() as client:
        provider = code_provider(oauth, store, client, clock)
        assert await provider.token() == oauth.issued_access_tokens[0]
    saved = TokenSet.from_json(store.data[RECORD])
    assert saved.refresh_token == old.refresh_token
    assert saved.access_token == oauth.issued_access_tokens[0]


async def test_stale_process_adopts_a_newer_set_from_the_store(oauth: FakeAuthServer) -> None:
    """Two processes loaded the same set; after one refreshed (rotating), the other reads the store first
    instead of refreshing with the now-dead refresh token."""
    clock = Clock()
    store = MemoryStore()
    store.data[RECORD] = stored_set(oauth, expires_at=clock.now + 3600).to_json()
    async with httpx2.AsyncClient() as client:
        first = code_provider(oauth, store, client, clock)
        second = code_provider(oauth, store, client, clock)
        assert await first.token() == await second.token()
        clock.now += 3600
        fresh = await first.token()
        assert await second.token() == fresh
    assert oauth.token_requests == 1


async def test_refresh_racing_another_process_retries_with_the_rotated_token(oauth: FakeAuthServer) -> None:
    """The other process rotated between our read and our request: the refusal is not the user's problem."""
    clock = Clock()
    old = stored_set(oauth, expires_at=clock.now - 1)
    store = MemoryStore()
    store.data[RECORD] = old.to_json()

    class RacingStore(MemoryStore):
        reads = 0

        def get(self, name: str) -> Secret | None:
            self.reads += 1
            secret = store.get(name)
            if self.reads == 1:  # after our read, "another process" refreshes and rotates
                oauth.live_refresh_tokens.discard(old.refresh_token or "")
                rotated = TokenSet("at-other", "Bearer", clock.now - 1, oauth.issue_refresh_token(), None)
                store.data[name] = rotated.to_json()
            return secret

        def set(self, name: str, value: str) -> None:
            store.set(name, value)

    async with httpx2.AsyncClient() as client:
        provider = code_provider(oauth, RacingStore(), client, clock)
        assert await provider.token() == oauth.issued_access_tokens[0]
    assert oauth.token_requests == 2
    assert TokenSet.from_json(store.data[RECORD]).access_token == oauth.issued_access_tokens[0]


async def test_failed_refresh_names_the_login_command(oauth: FakeAuthServer) -> None:
    clock = Clock()
    old = stored_set(oauth, expires_at=clock.now - 1)
    oauth.live_refresh_tokens.clear()  # revoked at the server
    store = MemoryStore()
    store.data[f"{RECORD}@work"] = old.to_json()
    async with httpx2.AsyncClient() as client:
        provider = code_provider(oauth, store, client, clock, record=f"{RECORD}@work")
        with pytest.raises(AuthFailed) as caught:
            await provider.token()
    message = caught.value.message
    assert "(invalid_grant: refresh token is invalid, expired or revoked); the refresh token no longer works" in message
    assert message.endswith("then run: mcp-connectors auth login demo --account work")
    assert caught.value.details["fix"] == "mcp-connectors auth login demo --account work"
    assert_no_secrets(caught.value, oauth, old.refresh_token or "", old.access_token)
    assert store.writes == []


async def test_expired_without_refresh_token_names_the_login_command(oauth: FakeAuthServer) -> None:
    clock = Clock()
    store = MemoryStore()
    store.data[RECORD] = stored_set(oauth, expires_at=clock.now - 1, refresh=False).to_json()
    async with httpx2.AsyncClient() as client:
        with pytest.raises(AuthFailed, match=r"has expired and there is no refresh token; run: mcp-connectors auth"):
            await code_provider(oauth, store, client, clock).token()
    assert oauth.token_requests == 0


async def test_invalidate_forces_one_refresh(oauth: FakeAuthServer) -> None:
    clock = Clock()
    old = stored_set(oauth, expires_at=clock.now + 3600)
    store = MemoryStore()
    store.data[RECORD] = old.to_json()
    async with httpx2.AsyncClient() as client:
        provider = code_provider(oauth, store, client, clock)
        assert await provider.token() == old.access_token
        provider.invalidate(old.access_token)
        fresh, *rest = await gather(20, provider.token)
        assert fresh == oauth.issued_access_tokens[0] and set(rest) == {fresh}
        provider.invalidate(old.access_token)  # late 401 for the old token: no effect
        assert await provider.token() == fresh
        saved = TokenSet.from_json(store.data[RECORD])
        assert provider.sensitive() == [
            old.access_token,
            old.refresh_token,
            fresh,
            saved.refresh_token,
            CLIENT_SECRET,
        ]
    assert oauth.token_requests == 1


async def test_invalidate_without_refresh_token_names_the_login_command(oauth: FakeAuthServer) -> None:
    clock = Clock()
    tokens = stored_set(oauth, expires_at=None, refresh=False)
    store = MemoryStore()
    store.data[RECORD] = tokens.to_json()
    async with httpx2.AsyncClient() as client:
        provider = code_provider(oauth, store, client, clock)
        assert await provider.token() == tokens.access_token
        provider.invalidate(tokens.access_token)
        with pytest.raises(AuthFailed, match="was refused by the API and there is no refresh token"):
            await provider.token()


async def test_refreshed_tokens_are_saved_before_they_are_used(oauth: FakeAuthServer) -> None:
    clock = Clock()
    old = stored_set(oauth, expires_at=clock.now - 1)
    store = MemoryStore()
    store.data[RECORD] = old.to_json()
    store.fail_writes = True
    async with httpx2.AsyncClient() as client:
        provider = code_provider(oauth, store, client, clock)
        with pytest.raises(AuthMissing, match="refreshed but cannot be saved to memory store"):
            await provider.token()
        with pytest.raises(AuthMissing):
            await provider.token()  # still unsaved: still not used
        assert oauth.token_requests == 1  # the rotated set is kept in memory, not refreshed again
        store.fail_writes = False
        token = await provider.token()
    assert token == oauth.issued_access_tokens[0]
    assert TokenSet.from_json(store.data[RECORD]).access_token == token
    assert oauth.token_requests == 1


async def test_public_client_sends_only_its_id(oauth: FakeAuthServer) -> None:
    oauth.client_auth = "none"
    clock = Clock()
    store = MemoryStore()
    store.data[RECORD] = stored_set(oauth, expires_at=clock.now - 1).to_json()
    async with httpx2.AsyncClient() as client:
        provider = code_provider(oauth, store, client, clock, client_secret=None, client_auth="basic")
        assert await provider.token() == oauth.issued_access_tokens[0]
    (form,) = oauth.token_forms()
    assert form["client_id"] == CLIENT_ID and "client_secret" not in form
