"""OAuth 2.1 resource-server mode: JWT access tokens verified against the issuer's JWKS.

A token is accepted when it is a JWS signed with an asymmetric algorithm (RS*, PS*, ES*, EdDSA; never
HS* or `none`) by a key of the issuer's JWKS, its `iss` equals the configured issuer exactly, its `aud`
names this server's resource URL (RFC 8707; a trailing slash aside), it has not expired (`exp`
required, 30 s leeway; `nbf`/`iat` checked when present). Scopes come from `scope` (a space-separated
string, RFC 9068) and `scp` (a list or string, as Okta and Entra ID write it).

Keys are fetched with PyJWT's `PyJWKClient` in a worker thread under a timeout, so the event loop never
waits on the network; they are cached for an hour and kept when a refresh fails. A token whose `kid`
is not cached triggers one refresh (key rotation), at most once per cooldown, so a flood of made-up
`kid`s cannot turn into a flood of JWKS requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import anyio
import anyio.to_thread
import jwt

from mcp_server._access import Principal
from mcp_server._config import LOOPBACK_HOSTS
from mcp_server._scopes import Scopes

__all__ = ["ASYMMETRIC_ALGORITHMS", "AuthRefused", "JwksCache", "OAuthResource", "token_scopes"]

logger = logging.getLogger("mcp_server.inbound")

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES256K", "ES384", "ES512", "EdDSA"}
)
LEEWAY_S = 30.0
JWKS_TIMEOUT_S = 5.0
JWKS_MAX_AGE_S = 3600.0
_ACCOUNT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


class AuthRefused(Exception):
    """A request refused by inbound authentication: 401 `invalid_token` or 403 `insufficient_scope`."""

    def __init__(self, status: int, description: str, *, error: str | None = None, scope: str | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.error = error
        self.scope = scope

    @classmethod
    def invalid(cls, description: str) -> AuthRefused:
        return cls(401, description, error="invalid_token")


@dataclass(frozen=True, slots=True)
class _Key:
    jwk: jwt.PyJWK
    declared_alg: str | None
    """The JWK's own `alg`, when it names one: a token must then use exactly that algorithm."""


def _fetch_jwks(url: str, timeout: float) -> Any:
    return jwt.PyJWKClient(url, cache_jwk_set=False, timeout=timeout).fetch_data()


def _parse_jwks(doc: Any) -> dict[str | None, _Key]:
    if not isinstance(doc, dict) or not isinstance(cast(dict[str, Any], doc).get("keys"), list):
        raise ValueError("not a JWK set")
    keys: dict[str | None, _Key] = {}
    for entry in cast(list[Any], cast(dict[str, Any], doc)["keys"]):
        if not isinstance(entry, dict):
            continue
        data = cast(dict[str, Any], entry)
        if data.get("use", "sig") != "sig" or data.get("kty") == "oct":
            continue  # encryption keys, and shared secrets, never verify an access token here
        try:
            jwk = jwt.PyJWK(data)
        except jwt.PyJWTError:
            continue  # an algorithm this PyJWT cannot use: skip it, keep the others
        alg = data.get("alg")
        kid = data.get("kid")
        keys[kid if isinstance(kid, str) else None] = _Key(jwk, alg if isinstance(alg, str) else None)
    return keys


class JwksCache:
    """The issuer's signing keys by `kid`; see the module docstring for when it fetches."""

    def __init__(
        self,
        url: str,
        *,
        cooldown: float = 10.0,
        max_age: float = JWKS_MAX_AGE_S,
        timeout: float = JWKS_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        fetch: Callable[[], Any] | None = None,
    ) -> None:
        self.url = url
        self._cooldown = cooldown
        self._max_age = max_age
        self._timeout = timeout
        self._clock = clock
        self._fetch = fetch or (lambda: _fetch_jwks(url, timeout))
        self._keys: dict[str | None, _Key] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = anyio.Lock()
        self.fetches = 0
        """How many fetches were started (for tests and the log)."""

    def _may_attempt(self) -> bool:
        return self._attempted_at is None or self._clock() - self._attempted_at >= self._cooldown

    def _find(self, kid: str | None) -> _Key | None:
        if kid is not None:
            return self._keys.get(kid)
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    async def get(self, kid: str | None) -> _Key | None:
        """The key a token names (or the only key, for a token without `kid`); None if the issuer has none."""
        stale = self._fetched_at is None or self._clock() - self._fetched_at >= self._max_age
        if stale and self._may_attempt():
            await self._refresh()
        key = self._find(kid)
        if key is None and self._may_attempt():
            await self._refresh()  # a new kid: the issuer may have rotated its keys
            key = self._find(kid)
        return key

    async def _refresh(self) -> None:
        asked = self._clock()
        async with self._lock:
            if self._attempted_at is not None and self._attempted_at >= asked:
                return  # another request refreshed while this one waited
            self._attempted_at = self._clock()
            self.fetches += 1
            try:
                with anyio.fail_after(self._timeout + 1):
                    doc = await anyio.to_thread.run_sync(self._fetch, abandon_on_cancel=True)
                keys = _parse_jwks(doc)
            except Exception as exc:  # the IdP is down or answered garbage: keep the keys we have
                logger.warning("cannot refresh the JWKS from %s: %s", self.url, exc or type(exc).__name__)
                return
            self._keys = keys
            self._fetched_at = self._clock()
            logger.info("JWKS from %s: %d signing keys", self.url, len(keys))


def token_scopes(claims: Mapping[str, Any]) -> list[str]:
    """`scope` (space-separated) and `scp` (list or space-separated string), in order, once each."""
    found: list[str] = []
    for claim in ("scope", "scp"):
        value = claims.get(claim)
        if isinstance(value, str):
            found += value.split()
        elif isinstance(value, list):
            found += [s for s in cast(list[Any], value) if isinstance(s, str)]
    return list(dict.fromkeys(found))


def default_resource(host: str, port: int) -> str:
    """`http://HOST:PORT/mcp` for a concrete bind address; ValueError for a wildcard bind."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - recognising a wildcard bind, not binding one
        raise ValueError(
            "the OAuth resource-server mode needs --oauth-audience (this server's public URL, e.g. "
            "https://mcp.example.com/mcp) when binding a wildcard address"
        )
    shown = f"[{host}]" if ":" in host else host
    if host in LOOPBACK_HOSTS:
        shown = "127.0.0.1" if host == "localhost" else shown
    return f"http://{shown}:{port}/mcp"


class OAuthResource:
    """Verifies JWT access tokens for one resource URL (the audience) from one issuer."""

    def __init__(
        self,
        *,
        issuer: str,
        jwks: JwksCache,
        resource: str,
        tenant_claim: str | None = None,
    ) -> None:
        self.issuer = issuer
        self.resource = resource
        self._jwks = jwks
        self._tenant_claim = tenant_claim
        bare = resource.rstrip("/")
        self._audiences = [bare, bare + "/"]

    async def verify(self, token: str) -> Principal:
        """The token's principal; raises `AuthRefused` (401 invalid_token) for anything wrong with it."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthRefused.invalid("The access token is not a valid JWT") from None
        alg = header.get("alg")
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise AuthRefused.invalid("The access token's signing algorithm is not accepted")
        kid = header.get("kid")
        key = await self._jwks.get(kid if isinstance(kid, str) else None)
        if key is None:
            raise AuthRefused.invalid("The access token is signed with a key the issuer does not publish")
        if key.declared_alg is not None and key.declared_alg != alg:
            raise AuthRefused.invalid("The access token's algorithm does not match its key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.jwk.key,
                algorithms=[str(alg)],
                audience=self._audiences,
                issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthRefused.invalid("The access token has expired") from None
        except jwt.InvalidAudienceError:
            raise AuthRefused.invalid(f"The access token was not issued for {self.resource}") from None
        except jwt.InvalidIssuerError:
            raise AuthRefused.invalid("The access token was not issued by the accepted issuer") from None
        except jwt.InvalidSignatureError:
            raise AuthRefused.invalid("The access token's signature is not valid") from None
        except jwt.PyJWTError as exc:
            raise AuthRefused.invalid(f"The access token is not valid: {_plain(str(exc))}") from None
        except (TypeError, ValueError):  # PyJWT's answer to an algorithm of another key family (ES256 vs an RSA key)
            raise AuthRefused.invalid("The access token's algorithm does not match its key") from None
        subject = claims.get("sub")
        client_id = claims.get("client_id") or claims.get("azp")
        who = subject if isinstance(subject, str) and subject else client_id
        if not isinstance(who, str) or not who:
            raise AuthRefused.invalid("The access token names no subject (sub) or client (client_id)")
        accounts: dict[str, str] = {}
        if self._tenant_claim is not None:
            tenant = claims.get(self._tenant_claim)
            if not isinstance(tenant, str) or not 0 < len(tenant) <= 64 or not set(tenant) <= _ACCOUNT_CHARS:
                raise AuthRefused.invalid(f"The access token has no usable {self._tenant_claim!r} claim")
            accounts["*"] = tenant
        return Principal(
            id=f"oauth:{_plain(who)[:128]}",
            scopes=Scopes.parse(token_scopes(claims)),
            accounts=accounts,
            authenticated=True,
            issuer=self.issuer,
            subject=subject if isinstance(subject, str) else None,
        )


def _plain(text: str) -> str:
    """Safe inside a quoted WWW-Authenticate parameter and a log line: printable ASCII, no quotes."""
    return "".join(c for c in text if 32 <= ord(c) < 127 and c not in '"\\')
