"""Credentials applied when a request is sent, not when it is built.

Static auth (bearer, API key, basic, headers) is part of the pure request builder. The schemes here
need something the builder must not have: a token endpoint (OAuth2), the clock (JWT, HMAC, SigV4
timestamps) or the final bytes of the request (signatures). An `Authenticator` turns a built
`PreparedRequest` into the one to send, once per attempt, so a retry carries a fresh timestamp
and a token refreshed after a 401 is used by the retry that follows it.

Client certificates (mTLS) live below HTTP: `client_ssl_context` builds the TLS context the
connector's HTTP client presents them with.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import httpx2

from mcp_server._errors import AuthMissing
from mcp_server._model import (
    ClientCertificate,
    Connector,
    HmacAuth,
    JwtAuth,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    SigV4Auth,
)
from mcp_server._request import PreparedRequest
from mcp_server._secrets import SecretStore, ValueRef

__all__ = ["Authenticator", "authenticator_for", "client_certificate_refs", "client_ssl_context", "token_record"]

Resolve = Callable[[ValueRef], str]


class Authenticator(Protocol):
    retries_unauthorized: bool
    """Whether a 401 can be cured by fresh credentials (a new token), so the call is retried once."""

    async def apply(self, request: PreparedRequest) -> PreparedRequest: ...

    def unauthorized(self, request: PreparedRequest) -> None:
        """The upstream answered 401 to `request`: drop whatever credential it carried."""
        ...

    def sensitive(self) -> list[str]:
        """Credential values produced here (tokens, JWTs) that results, errors and logs must not show."""
        ...


def _with_header(request: PreparedRequest, name: str, value: str) -> PreparedRequest:
    """Credentials win over a same-named header, whatever its case."""
    headers = tuple((k, v) for k, v in request.headers if k.lower() != name.lower())
    return replace(request, headers=(*headers, (name, value)))


def _bearer_of(request: PreparedRequest) -> str | None:
    for name, value in request.headers:
        if name.lower() == "authorization" and value.startswith("Bearer "):
            return value.removeprefix("Bearer ")
    return None


class _TokenProvider(Protocol):
    async def token(self) -> str: ...

    def invalidate(self, token: str) -> None: ...

    def sensitive(self) -> list[str]: ...


class _OAuthAuthenticator:
    retries_unauthorized = True

    def __init__(self, provider: _TokenProvider) -> None:
        self._provider = provider

    async def apply(self, request: PreparedRequest) -> PreparedRequest:
        return _with_header(request, "Authorization", f"Bearer {await self._provider.token()}")

    def unauthorized(self, request: PreparedRequest) -> None:
        token = _bearer_of(request)
        if token is not None:
            self._provider.invalidate(token)

    def sensitive(self) -> list[str]:
        return self._provider.sensitive()


class _JwtAuthenticator:
    retries_unauthorized = False

    def __init__(self, auth: JwtAuth, resolve: Resolve, clock: Callable[[], float]) -> None:
        self._auth = auth
        self._resolve = resolve
        self._clock = clock
        self._issued: list[str] = []

    async def apply(self, request: PreparedRequest) -> PreparedRequest:
        from mcp_server._jwt import jwt_header_value, make_jwt

        try:
            token = make_jwt(self._auth, key=self._resolve(self._auth.key), now=self._clock(), jti=uuid.uuid4().hex)
        except ValueError as exc:
            raise AuthMissing(f"JWT signing key {self._auth.key.describe()} is unusable: {exc}") from None
        # Only the latest few matter for redaction: a result can only echo the token its own request carried.
        self._issued = [*self._issued[-7:], token]
        return _with_header(request, *jwt_header_value(self._auth, token))

    def unauthorized(self, request: PreparedRequest) -> None:
        return None

    def sensitive(self) -> list[str]:
        return list(self._issued)


class _HmacAuthenticator:
    retries_unauthorized = False

    def __init__(self, auth: HmacAuth, resolve: Resolve, clock: Callable[[], float]) -> None:
        self._auth = auth
        self._resolve = resolve
        self._clock = clock

    async def apply(self, request: PreparedRequest) -> PreparedRequest:
        from mcp_server._signing import sign_hmac

        return sign_hmac(
            request,
            self._auth,
            key_id=self._resolve(self._auth.key_id),
            secret=self._resolve(self._auth.secret),
            now=self._clock(),
            nonce=uuid.uuid4().hex,
        )

    def unauthorized(self, request: PreparedRequest) -> None:
        return None

    def sensitive(self) -> list[str]:
        return []


class _SigV4Authenticator:
    retries_unauthorized = False

    def __init__(self, auth: SigV4Auth, resolve: Resolve, clock: Callable[[], float]) -> None:
        self._auth = auth
        self._resolve = resolve
        self._clock = clock

    async def apply(self, request: PreparedRequest) -> PreparedRequest:
        from mcp_server._signing import sign_sigv4

        auth = self._auth
        return sign_sigv4(
            request,
            auth,
            access_key_id=self._resolve(auth.access_key_id),
            secret_access_key=self._resolve(auth.secret_access_key),
            session_token=self._resolve(auth.session_token) if auth.session_token is not None else None,
            now=self._clock(),
        )

    def unauthorized(self, request: PreparedRequest) -> None:
        return None

    def sensitive(self) -> list[str]:
        return []


def token_record(auth: OAuth2AuthorizationCode, account: str | None) -> str:
    """The vault record of an authorization-code token set; each account has its own."""
    return auth.token_secret if account is None else f"{auth.token_secret}@{account}"


def authenticator_for(
    connector: Connector,
    *,
    account: str | None,
    store: SecretStore,
    client: httpx2.AsyncClient,
    resolve: Resolve,
    clock: Callable[[], float] = time.time,
) -> Authenticator | None:
    """The authenticator a connector's auth needs, or None when the request builder applied it already."""
    auth = connector.auth
    if isinstance(auth, OAuth2ClientCredentials):
        from mcp_server._oauth import ClientCredentialsProvider

        provider = ClientCredentialsProvider(
            auth, connector=connector.name, client=client, resolve=resolve, clock=clock
        )
        return _OAuthAuthenticator(provider)
    if isinstance(auth, OAuth2AuthorizationCode):
        from mcp_server._oauth import AuthorizationCodeProvider

        provider = AuthorizationCodeProvider(
            auth,
            connector=connector.name,
            record=token_record(auth, account),
            store=store,
            client=client,
            resolve=resolve,
            clock=clock,
        )
        return _OAuthAuthenticator(provider)
    if isinstance(auth, JwtAuth):
        return _JwtAuthenticator(auth, resolve, clock)
    if isinstance(auth, HmacAuth):
        return _HmacAuthenticator(auth, resolve, clock)
    if isinstance(auth, SigV4Auth):
        return _SigV4Authenticator(auth, resolve, clock)
    return None


def client_certificate_refs(certificate: ClientCertificate | None) -> list[ValueRef]:
    if certificate is None:
        return []
    return [certificate.certificate, certificate.private_key, *([certificate.password] if certificate.password else [])]


def client_ssl_context(
    certificate: ClientCertificate | None, ca_certificate: str | None, values: Mapping[ValueRef, str]
) -> ssl.SSLContext | None:
    """A TLS context presenting the client certificate and trusting `ca_certificate` (PEM) besides the system's.

    None when neither is configured: the HTTP client's default verification applies. As there, the CAs that
    SSL_CERT_FILE / SSL_CERT_DIR name are not trusted: only the manifest adds to the system's.
    """
    if certificate is None and ca_certificate is None:
        return None
    context = httpx2.create_ssl_context(trust_env=False)
    if ca_certificate is not None:
        try:
            context.load_verify_locations(cadata=ca_certificate)
        except (ssl.SSLError, ValueError) as exc:
            raise AuthMissing(f"ca_certificate is not a PEM certificate: {exc.__class__.__name__}") from None
    if certificate is not None:
        cert_pem = _value(values, certificate.certificate)
        key_pem = _value(values, certificate.private_key)
        password = _value(values, certificate.password) if certificate.password is not None else None
        # The ssl module loads certificates only from files: hand it a private in-memory file where the
        # platform has one, else a 0600 file in a private directory, removed as soon as it is loaded.
        with _private_file(cert_pem) as cert_path, _private_file(key_pem) as key_path:
            try:
                context.load_cert_chain(cert_path, key_path, password=password)
            except (ssl.SSLError, ValueError, OSError):
                raise AuthMissing(
                    f"The client certificate {certificate.certificate.describe()} and key "
                    f"{certificate.private_key.describe()} do not load as a PEM certificate and matching key"
                    + (" with the given password" if password is not None else "")
                    + "."
                ) from None
    return context


def _value(values: Mapping[ValueRef, str], ref: ValueRef) -> str:
    return ref.value if not ref.is_sensitive else values[ref]


@contextlib.contextmanager
def _private_file(content: str) -> Generator[str]:
    data = content.encode("utf-8")
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("mcp-connectors-pem", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="mcp-connectors-") as directory:
        path = Path(directory) / "pem"
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        yield str(path)
