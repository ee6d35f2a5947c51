"""OAuth 2.0 access tokens for connectors: client credentials (RFC 6749 §4.4) and authorization code with PKCE
(RFC 6749 §4.1, RFC 7636).

A provider hands the pipeline a current access token per attempt (`token()`), hears about a 401 from the API
(`invalidate()`), and names the values to scrub from results and logs (`sensitive()`). Concurrent callers that find
no usable token share one token request: an `anyio.Lock` plus a re-check under it, and waiters that queued behind a
failed request get that failure instead of each hammering the token endpoint in turn.

Authorization-code tokens live in a vault record as a `TokenSet` (JSON). A refresh that rotates the refresh token
writes the new set to the store *before* the new access token is used: once the authorization server has issued
a new refresh token it has usually revoked the old one, so a new set that exists only in memory would be lost with
the process and force a new interactive login.

No token, secret, code or verifier ever appears in an exception message: messages name the connector, the token
endpoint (without its query) and the server's own `error`/`error_description`, scrubbed of the values we sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import anyio
import anyio.to_thread
import httpx2

from mcp_server._errors import (
    AuthFailed,
    AuthMissing,
    RateLimited,
    ToolError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    VaultError,
)
from mcp_server._model import OAuth2AuthorizationCode, OAuth2ClientCredentials
from mcp_server._redact import Redactor
from mcp_server._secrets import SecretStore, ValueRef

__all__ = [
    "AuthorizationCodeProvider",
    "ClientCredentialsProvider",
    "TokenSet",
    "authorization_url",
    "exchange_code",
    "login_command",
    "make_pkce_pair",
]

TOKEN_CONNECT_TIMEOUT = 10.0
"""Seconds to connect to a token endpoint."""
TOKEN_TOTAL_TIMEOUT = 30.0
"""Seconds for a whole token request, connect to last byte."""
MAX_TOKEN_RESPONSE_BYTES = 256 * 1024
"""A token response is a few hundred bytes; a larger one is not read to the end."""
MAX_DESCRIPTION_CHARS = 300

Resolve = Callable[[ValueRef], str]
Clock = Callable[[], float]


# -- the token set ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenSet:
    """What a token endpoint granted, as stored in the vault record (JSON). `expires_at` is epoch seconds
    (wall clock, because the record outlives the process); None means the server gave no lifetime."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a credential
    expires_at: float | None = None
    refresh_token: str | None = None
    scope: str | None = None

    def __repr__(self) -> str:
        # The dataclass repr would print both tokens into any traceback or debug log that shows this object.
        return f"TokenSet(token_type={self.token_type!r}, expires_at={self.expires_at!r}, scope={self.scope!r})"

    def to_json(self) -> str:
        return json.dumps(
            {
                "access_token": self.access_token,
                "token_type": self.token_type,
                "expires_at": self.expires_at,
                "refresh_token": self.refresh_token,
                "scope": self.scope,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> TokenSet:
        """Parse a stored record; `ValueError` (whose message never quotes the record) when it is not a token set."""
        try:
            raw: object = json.loads(text)
        except (ValueError, TypeError):
            raise ValueError("not JSON") from None
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        data: dict[str, object] = raw  # pyright: ignore[reportUnknownVariableType]
        access = data.get("access_token")
        if not isinstance(access, str) or not access:
            raise ValueError("no access_token")
        token_type = data.get("token_type", "Bearer")
        if not isinstance(token_type, str) or not token_type:
            raise ValueError("token_type is not a string")
        expires_at = data.get("expires_at")
        if expires_at is not None and (
            isinstance(expires_at, bool) or not isinstance(expires_at, int | float) or not math.isfinite(expires_at)
        ):
            raise ValueError("expires_at is not a number")
        refresh = data.get("refresh_token")
        if refresh is not None and (not isinstance(refresh, str) or not refresh):
            raise ValueError("refresh_token is not a string")
        scope = data.get("scope")
        if scope is not None and not isinstance(scope, str):
            raise ValueError("scope is not a string")
        return cls(
            access_token=access,
            token_type=token_type,
            expires_at=float(expires_at) if expires_at is not None else None,
            refresh_token=refresh,
            scope=scope,
        )

    @classmethod
    def from_response(cls, payload: Mapping[str, Any], *, now: float, previous: TokenSet | None = None) -> TokenSet:
        """A token endpoint's JSON answer (RFC 6749 §5.1). A refresh answer without `refresh_token` or `scope`
        keeps the previous ones (§6: the old refresh token stays valid when no new one is issued)."""
        access = payload.get("access_token")
        if not isinstance(access, str) or not access:
            raise ValueError("no access_token")
        token_type = payload.get("token_type")
        expires_in = _seconds(payload.get("expires_in"))
        refresh = payload.get("refresh_token")
        if not isinstance(refresh, str) or not refresh:
            refresh = previous.refresh_token if previous is not None else None
        scope = payload.get("scope")
        if not isinstance(scope, str):
            scope = previous.scope if previous is not None else None
        return cls(
            access_token=access,
            token_type=token_type if isinstance(token_type, str) and token_type else "Bearer",
            expires_at=now + expires_in if expires_in is not None else None,
            refresh_token=refresh,
            scope=scope,
        )


def _seconds(value: object) -> float | None:
    """`expires_in` as a positive number of seconds; some servers send it as a string. Anything else (or 0, which
    would make every call fetch a new token) counts as "no lifetime given"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def _renew_at(tokens: TokenSet, *, now: float | None, skew: float) -> float | None:
    """When to stop using `tokens`: `skew` seconds before expiry, but for a lifetime shorter than twice the skew
    (known only for a set just obtained, `now` given) at half of it, so short-lived tokens are still reused."""
    if tokens.expires_at is None:
        return None
    margin = skew
    if now is not None:
        margin = min(skew, max(tokens.expires_at - now, 0.0) / 2)
    return tokens.expires_at - margin


# -- PKCE and the authorization URL ----------------------------------------------------------------------------


def make_pkce_pair() -> tuple[str, str]:
    """`(code_verifier, code_challenge)` for the S256 method (RFC 7636 §4.1-4.2): 86 unreserved characters from
    512 random bits, and the unpadded base64url SHA-256 of them."""
    verifier = secrets.token_urlsafe(64)
    return verifier, pkce_challenge(verifier)


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_url(
    auth: OAuth2AuthorizationCode, *, client_id: str, redirect_uri: str, state: str, challenge: str
) -> str:
    """The URL the user opens: `auth.authorization_url` with its own query kept, `extra_params` added, and the
    protocol parameters last. `extra_params` cannot replace a protocol parameter: a manifest that could swap
    `redirect_uri` or drop the PKCE challenge would defeat the checks they exist for."""
    core: dict[str, str] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if auth.scopes:
        core["scope"] = " ".join(auth.scopes)
    parts = urlsplit(auth.authorization_url)
    pairs = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in core and k not in auth.extra_params
    ]
    pairs += [(k, v) for k, v in auth.extra_params.items() if k not in core]
    pairs += list(core.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pairs, quote_via=quote), ""))


async def exchange_code(
    auth: OAuth2AuthorizationCode,
    *,
    client: httpx2.AsyncClient,
    client_id: str,
    client_secret: str | None,
    code: str,
    verifier: str,
    redirect_uri: str,
    clock: Clock = time.time,
    connector: str | None = None,
) -> TokenSet:
    """Trade an authorization code for tokens (RFC 6749 §4.1.3 with the PKCE `code_verifier`)."""
    payload = await _token_request(
        client,
        auth.token_url,
        {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier},
        client_id=client_id,
        client_secret=client_secret,
        client_auth=auth.client_auth,
        label=connector or "OAuth",
        scrub=(code, verifier),
    )
    return _token_set(payload, now=clock(), label=connector or "OAuth", url=auth.token_url)


# -- one token request -----------------------------------------------------------------------------------------


def _basic_credentials(client_id: str, client_secret: str) -> str:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded *before* the Basic encoding, so a `:` in the id or a
    non-ASCII secret survives (servers decode both parts)."""
    pair = f"{quote_plus(client_id, safe='')}:{quote_plus(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")


def _public(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _clean(text: str, redactor: Redactor) -> str:
    """A server-supplied string made fit for a message: our own values scrubbed, one line, bounded."""
    text = " ".join(redactor.text(text).split())
    text = "".join(ch for ch in text if ch.isprintable())
    return text if len(text) <= MAX_DESCRIPTION_CHARS else text[: MAX_DESCRIPTION_CHARS - 1] + "…"


async def _token_request(
    client: httpx2.AsyncClient,
    token_url: str,
    form: Mapping[str, str],
    *,
    client_id: str,
    client_secret: str | None,
    client_auth: Literal["basic", "body"],
    label: str,
    scrub: tuple[str, ...] = (),
) -> dict[str, Any]:
    """POST one form to the token endpoint and return its JSON object; every failure is a `ToolError`."""
    fields = dict(form)
    headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
    if client_secret is None:
        # A public client (RFC 6749 §4.1.3): it identifies itself, with nothing to authenticate.
        fields["client_id"] = client_id
    elif client_auth == "basic":
        headers["Authorization"] = _basic_credentials(client_id, client_secret)
    else:
        fields["client_id"] = client_id
        fields["client_secret"] = client_secret
    # Only what is secret: scrubbing every form value would also blank words like `refresh_token` or a scope.
    redactor = Redactor([v for v in (client_secret, *scrub) if v])
    url = _public(token_url)
    context: dict[str, Any] = {"connector": label, "token_url": url}
    timeout = httpx2.Timeout(TOKEN_TOTAL_TIMEOUT, connect=TOKEN_CONNECT_TIMEOUT)
    try:
        with anyio.fail_after(TOKEN_TOTAL_TIMEOUT):
            async with client.stream(
                "POST",
                token_url,
                content=urlencode(fields).encode("ascii"),
                headers=headers,
                timeout=timeout,
                follow_redirects=False,  # a redirect could carry the client secret to another host
            ) as response:
                status = response.status_code
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_TOKEN_RESPONSE_BYTES:
                        raise UpstreamError(
                            f"{label}: the token endpoint's answer is larger than {MAX_TOKEN_RESPONSE_BYTES} bytes",
                            status=status,
                            **context,
                        )
    except (TimeoutError, httpx2.TimeoutException):
        raise UpstreamTimeout(
            f"{label}: the token endpoint {url} did not answer within {TOKEN_TOTAL_TIMEOUT:g} s",
            timeout_seconds=TOKEN_TOTAL_TIMEOUT,
            **context,
        ) from None
    except httpx2.TransportError as exc:
        reason = _clean(str(exc) or type(exc).__name__, redactor)
        raise UpstreamUnreachable(f"{label}: cannot reach the token endpoint {url}: {reason}", **context) from None

    payload = _json_object(bytes(body))
    if 200 <= status < 300:
        if payload is None:
            raise AuthFailed(f"{label}: the token endpoint answered without an access_token", status=status, **context)
        return payload
    error = payload.get("error") if payload else None
    if isinstance(error, str) and error and status < 500:
        code = _clean(error, redactor)
        description = payload.get("error_description") if payload else None
        text = f"{code}: {_clean(description, redactor)}" if isinstance(description, str) and description else code
        raise AuthFailed(
            f"{label}: the token endpoint refused the request ({text})", status=status, oauth_error=code, **context
        )
    if status == 429:
        raise RateLimited(f"{label}: the token endpoint is rate limiting (HTTP 429)", status=status, **context)
    if 300 <= status < 400:
        raise UpstreamError(
            f"{label}: the token endpoint answered with a redirect (HTTP {status}), which is not followed; "
            "check token_url",
            status=status,
            **context,
        )
    if status >= 500:
        raise UpstreamError(f"{label}: the token endpoint failed (HTTP {status})", status=status, **context)
    raise AuthFailed(f"{label}: the token endpoint refused the request (HTTP {status})", status=status, **context)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value: object = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None  # pyright: ignore[reportUnknownVariableType]


def _token_set(
    payload: Mapping[str, Any], *, now: float, label: str, url: str, previous: TokenSet | None = None
) -> TokenSet:
    try:
        return TokenSet.from_response(payload, now=now, previous=previous)
    except ValueError:
        raise AuthFailed(
            f"{label}: the token endpoint answered without an access_token", connector=label, token_url=_public(url)
        ) from None


RECENT_TOKENS = 6
"""Token values `sensitive()` still names after they were replaced: a call that was sent with the previous token
may still be reading its answer (which can echo it) when another call's refresh replaces it."""


def _remember(recent: list[str], *values: str | None) -> list[str]:
    for value in values:
        if value and value not in recent:
            recent.append(value)
    return recent[-RECENT_TOKENS:]


def _shared(error: ToolError) -> ToolError:
    """A fresh copy of a failure for another waiter: the pipeline rewrites an error's args while redacting."""
    return type(error)(error.message, **error.details)


class _SingleFlightProvider:
    """What both providers share: one token request at a time, its failure handed to every caller that waited on
    it (20 waiters cost one request, not 20), and the values `sensitive()` names for redaction.

    Subclasses say when the held token is usable (`_current`) and how to get a new one (`_obtain`)."""

    def __init__(
        self, *, connector: str, client: httpx2.AsyncClient, resolve: Resolve, clock: Clock, skew: float
    ) -> None:
        self._connector = connector
        self._client = client
        self._resolve = resolve
        self._clock = clock
        self._skew = skew
        self._lock = anyio.Lock()
        self._tokens: TokenSet | None = None
        self._renew_at: float | None = None
        self._attempts = 0
        self._failure: ToolError | None = None
        self._secret: str | None = None
        self._recent: list[str] = []

    def _current(self) -> TokenSet | None:
        raise NotImplementedError

    async def _obtain(self) -> TokenSet:
        raise NotImplementedError

    async def token(self) -> str:
        tokens = self._current()
        if tokens is not None:
            return tokens.access_token
        seen = self._attempts
        async with self._lock:
            tokens = self._current()
            if tokens is not None:
                return tokens.access_token
            if self._attempts != seen and self._failure is not None:
                raise _shared(self._failure)
            try:
                tokens = await self._obtain()
            except ToolError as error:
                self._failure = error
                self._attempts += 1
                raise
            self._failure = None
            self._attempts += 1
            return tokens.access_token

    def sensitive(self) -> list[str]:
        """The tokens held lately (the current ones last) and the client secret last resolved, for redaction."""
        return [*self._recent, *([self._secret] if self._secret else [])]


# -- client credentials ----------------------------------------------------------------------------------------


class ClientCredentialsProvider(_SingleFlightProvider):
    """Access tokens for `OAuth2ClientCredentials`, cached in memory until `skew` seconds before they expire."""

    def __init__(
        self,
        auth: OAuth2ClientCredentials,
        *,
        connector: str,
        client: httpx2.AsyncClient,
        resolve: Resolve,
        clock: Clock = time.time,
        skew: float = 60.0,
    ) -> None:
        super().__init__(connector=connector, client=client, resolve=resolve, clock=clock, skew=skew)
        self._auth = auth

    def _current(self) -> TokenSet | None:
        tokens = self._tokens
        if tokens is None or (self._renew_at is not None and self._clock() >= self._renew_at):
            return None
        return tokens

    async def _obtain(self) -> TokenSet:
        auth = self._auth
        client_id = self._resolve(auth.client_id)
        self._secret = client_secret = self._resolve(auth.client_secret)
        form = {"grant_type": "client_credentials", **auth.extra_params}
        if auth.scopes:
            form["scope"] = " ".join(auth.scopes)
        if auth.audience is not None:
            form["audience"] = auth.audience
        payload = await _token_request(
            self._client,
            auth.token_url,
            form,
            client_id=client_id,
            client_secret=client_secret,
            client_auth=auth.client_auth,
            label=self._connector,
        )
        now = self._clock()
        tokens = _token_set(payload, now=now, label=self._connector, url=auth.token_url)
        self._tokens = tokens
        self._recent = _remember(self._recent, tokens.access_token)
        self._renew_at = _renew_at(tokens, now=now, skew=self._skew)
        return tokens

    def invalidate(self, token: str) -> None:
        """The API answered 401 to `token`: drop it, unless a newer one has replaced it meanwhile."""
        if self._tokens is not None and self._tokens.access_token == token:
            self._tokens = None
            self._renew_at = None


# -- authorization code ----------------------------------------------------------------------------------------


def login_command(connector: str, account: str | None = None) -> str:
    return f"mcp-connectors auth login {connector}" + (f" --account {account}" if account else "")


class AuthorizationCodeProvider(_SingleFlightProvider):
    """Access tokens from the token set `mcp-connectors auth login` stored in the vault record `record`,
    refreshed with its refresh token as they expire."""

    def __init__(
        self,
        auth: OAuth2AuthorizationCode,
        *,
        connector: str,
        record: str,
        store: SecretStore,
        client: httpx2.AsyncClient,
        resolve: Resolve,
        clock: Clock = time.time,
        skew: float = 60.0,
    ) -> None:
        super().__init__(connector=connector, client=client, resolve=resolve, clock=clock, skew=skew)
        self._auth = auth
        self._record = record
        self._store = store
        prefix = auth.token_secret + "@"
        self._fix = login_command(connector, record[len(prefix) :] if record.startswith(prefix) else None)
        self._rejected: str | None = None
        """An access token the API answered 401 to: never handed out again."""
        self._unsaved = False
        """`_tokens` came from a refresh the store did not accept: it is written before it is used."""

    def _current(self) -> TokenSet | None:
        tokens = self._tokens
        if tokens is None or self._unsaved or tokens.access_token == self._rejected:
            return None
        if self._renew_at is not None and self._clock() >= self._renew_at:
            return None
        return tokens

    async def _obtain(self) -> TokenSet:
        if self._unsaved and self._tokens is not None:
            await self._save(self._tokens)
            if (tokens := self._current()) is not None:
                return tokens
        # The store, not the memory, is the truth: another process may have refreshed (and rotated) meanwhile.
        stored = await self._load()
        self._adopt(stored)
        if (tokens := self._current()) is not None:
            return tokens
        return await self._refresh(stored, retry=True)

    def _adopt(self, stored: TokenSet) -> None:
        if stored != self._tokens:
            self._tokens = stored
            self._recent = _remember(self._recent, stored.access_token, stored.refresh_token)
            self._renew_at = _renew_at(stored, now=None, skew=self._skew)

    async def _refresh(self, stored: TokenSet, *, retry: bool) -> TokenSet:
        if stored.refresh_token is None:
            why = "was refused by the API" if stored.access_token == self._rejected else "has expired"
            raise AuthFailed(
                f"{self._connector}: the OAuth access token {why} and there is no refresh token; run: {self._fix}",
                connector=self._connector,
                fix=self._fix,
            )
        auth = self._auth
        client_id = self._resolve(auth.client_id)
        client_secret = self._resolve(auth.client_secret) if auth.client_secret is not None else None
        self._secret = client_secret
        try:
            payload = await _token_request(
                self._client,
                auth.token_url,
                {"grant_type": "refresh_token", "refresh_token": stored.refresh_token},
                client_id=client_id,
                client_secret=client_secret,
                client_auth=auth.client_auth,
                label=self._connector,
                scrub=(stored.refresh_token,),
            )
        except AuthFailed as error:
            # Another process may have rotated the refresh token between our read and our request; its
            # successor is then in the store, and the refusal says nothing about the login.
            latest = await self._load()
            if retry and latest.refresh_token != stored.refresh_token:
                self._adopt(latest)
                if (tokens := self._current()) is not None:
                    return tokens
                return await self._refresh(latest, retry=False)
            # invalid_grant: the refresh token expired or was revoked. Anything else (invalid_client, ...) is more
            # likely the app's credentials, but a new login is still what gets the connector working again.
            why = (
                "the refresh token no longer works"
                if error.details.get("oauth_error") == "invalid_grant"
                else ("check the client id and secret")
            )
            raise AuthFailed(
                f"{error.message}; {why}, then run: {self._fix}", **{**error.details, "fix": self._fix}
            ) from None
        now = self._clock()
        tokens = _token_set(payload, now=now, label=self._connector, url=auth.token_url, previous=stored)
        self._tokens = tokens
        self._recent = _remember(self._recent, tokens.access_token, tokens.refresh_token)
        self._renew_at = _renew_at(tokens, now=now, skew=self._skew)
        self._rejected = None
        self._unsaved = True
        await self._save(tokens)
        return tokens

    async def _load(self) -> TokenSet:
        try:
            if self._store.remote:
                secret = await anyio.to_thread.run_sync(self._store.get, self._record)
            else:
                secret = self._store.get(self._record)
        except VaultError as exc:
            raise AuthMissing(
                f"{self._connector}: the vault cannot be read: {exc.message}",
                connector=self._connector,
                secret=self._record,
            ) from None
        if secret is None:
            raise AuthMissing(
                f"{self._connector}: not logged in (no OAuth tokens in vault record {self._record!r}); "
                f"run: {self._fix}",
                connector=self._connector,
                missing=self._record,
                source="secret",
                fix=self._fix,
            )
        try:
            return TokenSet.from_json(secret.reveal())
        except ValueError as exc:
            raise AuthFailed(
                f"{self._connector}: vault record {self._record!r} does not hold OAuth tokens ({exc}); "
                f"run: {self._fix}",
                connector=self._connector,
                secret=self._record,
                fix=self._fix,
            ) from None

    async def _save(self, tokens: TokenSet) -> None:
        """Persist a refreshed set; until this succeeds the set is not used (see the module docstring)."""
        text = tokens.to_json()
        try:
            if self._store.remote:
                await anyio.to_thread.run_sync(self._store.set, self._record, text)
            else:
                self._store.set(self._record, text)
        except VaultError as exc:
            raise AuthMissing(
                f"{self._connector}: the OAuth tokens were refreshed but cannot be saved to "
                f"{self._store.describe()}: {exc.message}; the call was not sent",
                connector=self._connector,
                secret=self._record,
            ) from None
        self._unsaved = False

    def invalidate(self, token: str) -> None:
        """The API answered 401 to `token`: the next `token()` refreshes (or fails naming `auth login`),
        unless a newer token has replaced it meanwhile."""
        if self._tokens is not None and self._tokens.access_token == token:
            self._rejected = token
