"""Inbound authentication of the HTTP transports: static client tokens and OAuth 2.1 JWT access tokens.

Authentication is required once the clients file exists (even with no client left in it) or the OAuth
resource-server mode is on, and from then on for the life of the process: revoking the last client
locks everyone out rather than opening the server. Otherwise a loopback bind is open as before, and a
non-loopback bind refuses to start unless `--allow-unauthenticated` (`exposure_problem`).

Paths:
  /health, /ready, /.well-known/*     always open
  /webhooks/*                         open: senders prove themselves with a signature (`_webhooks`)
  /metrics, /v1/status                a token with the `operator` scope
  everything else (/mcp, /sse, /messages/, /v1/...)   a token with at least one tools scope

A request without a token is 401 with `WWW-Authenticate: Bearer realm="mcp-connectors"` (plus
`resource_metadata="…"` in OAuth mode, RFC 9728); a bad, expired or revoked token adds
`error="invalid_token"`; a good token without a needed scope is 403 `error="insufficient_scope"`. The
body is the REST façade's error shape. The bearer token is only ever hashed or verified here; it is not
kept on the request, logged, or forwarded anywhere (the pipeline builds upstream requests from the
manifest and the vault alone).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from mcp.server.auth.routes import build_resource_metadata_url, cors_middleware
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl
from starlette.authentication import AuthCredentials
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server._access import CURRENT_PRINCIPAL, ClientUser, Principal
from mcp_server._clients import ClientsFile, hash_token
from mcp_server._config import Settings
from mcp_server._oauth_resource import AuthRefused, JwksCache, OAuthResource, default_resource
from mcp_server._pipeline import Pipeline
from mcp_server._scopes import OPERATOR_SCOPE, Scopes

__all__ = ["Authenticator", "InboundAuth", "exposure_problem", "is_loopback"]

logger = logging.getLogger("mcp_server.inbound")

REALM = "mcp-connectors"
OPEN_PATHS = frozenset({"/health", "/ready"})
OPERATOR_PATHS = frozenset({"/metrics", "/v1/status"})
WELL_KNOWN = "/.well-known/"
WEBHOOKS = "/webhooks/"
PROTECTED_RESOURCE = "/.well-known/oauth-protected-resource"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_problem(settings: Settings) -> str | None:
    """Why `serve --transport http` must not start as configured, or None."""
    access = settings.access
    if access.oauth and access.oauth_audience is None:
        try:
            default_resource(settings.host, settings.port)
        except ValueError as exc:
            return str(exc)
    if is_loopback(settings.host) or access.allow_unauthenticated or access.oauth:
        return None
    if access.clients_file(settings.vault_path).exists():
        return None
    return (
        f"refusing to serve {settings.host}:{settings.port} without authentication: add a client "
        "(`mcp-connectors clients add NAME --scope tools:*`), turn on OAuth (--oauth-issuer and --oauth-jwks-url), "
        "or pass --allow-unauthenticated to serve every tool to anyone who can reach the port"
    )


def _fingerprint(token: str) -> str:
    return "sha256:" + hash_token(token)[:16]


class Authenticator:
    """Turns a bearer token into a `Principal`: the clients file first, then (OAuth mode) a JWT."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        access = settings.access
        self.clients = ClientsFile(access.clients_file(settings.vault_path))
        self._clock = clock
        self.oauth: OAuthResource | None = None
        if access.oauth_issuer is not None and access.oauth_jwks_url is not None:
            resource = access.oauth_audience or default_resource(settings.host, settings.port)
            self.oauth = OAuthResource(
                issuer=access.oauth_issuer,
                jwks=JwksCache(access.oauth_jwks_url, cooldown=access.oauth_jwks_cooldown),
                resource=resource,
                tenant_claim=access.oauth_tenant_claim,
            )
        self._required = self.oauth is not None or self.clients.exists()

    def required(self) -> bool:
        """Whether requests need a token; once true, true until the process ends (see module docstring)."""
        if not self._required and self.clients.exists():
            logger.warning("the clients file %s appeared: every request now needs a token", self.clients.path)
            self._required = True
        return self._required

    @property
    def resource_metadata_url(self) -> str | None:
        if self.oauth is None:
            return None
        return str(build_resource_metadata_url(AnyHttpUrl(self.oauth.resource)))

    async def authenticate(self, token: str) -> Principal:
        record = self.clients.lookup(token)
        if record is not None:
            if record.expired(self._clock()):
                raise AuthRefused.invalid(f"The token of client {record.name!r} has expired")
            return Principal(
                id=record.name,
                scopes=Scopes.parse(record.scopes),
                accounts=record.accounts,
                rate_limit=record.rate_limit,
                rate_limit_off=record.rate_limit_off,
                max_concurrent=record.max_concurrent,
                authenticated=True,
                subject=record.name,
            )
        if self.oauth is not None and token.count(".") == 2:
            return await self.oauth.verify(token)
        raise AuthRefused.invalid("Unknown, revoked or malformed token")

    def challenge(self, refused: AuthRefused | None) -> str:
        """The `WWW-Authenticate` value for a 401/403."""
        parts = [f'realm="{REALM}"']
        if refused is not None and refused.error is not None:
            parts.append(f'error="{refused.error}"')
            parts.append(f'error_description="{_quoted(refused.description)}"')
        if refused is not None and refused.scope is not None:
            parts.append(f'scope="{refused.scope}"')
        metadata = self.resource_metadata_url
        if metadata is not None:
            parts.append(f'resource_metadata="{metadata}"')
        return "Bearer " + ", ".join(parts)

    def refusal(self, refused: AuthRefused | None) -> Response:
        status = refused.status if refused is not None else 401
        message = refused.description if refused is not None else "Authentication required: send Authorization: Bearer"
        return JSONResponse(
            {"error": "unauthorized" if status == 401 else "forbidden", "message": message, "details": {}},
            status_code=status,
            headers={"WWW-Authenticate": self.challenge(refused)},
        )

    def metadata_routes(self, pipeline: Pipeline) -> list[Route]:
        """RFC 9728 protected resource metadata at the root and at the resource's path (`…/mcp`), OAuth only."""
        oauth = self.oauth
        if oauth is None:
            return []

        async def metadata(request: Request) -> Response:
            connectors = sorted({tool.connector.name for tool in pipeline.registry})
            scopes = ["tools:*", "tools:*:read"]
            for name in connectors:
                scopes += [f"tools:{name}:*", f"tools:{name}:read"]
            document = ProtectedResourceMetadata(
                resource=AnyHttpUrl(oauth.resource),
                authorization_servers=[AnyHttpUrl(oauth.issuer)],
                scopes_supported=[*scopes, OPERATOR_SCOPE],
                bearer_methods_supported=["header"],
                resource_name="mcp-connectors",
            )
            return JSONResponse(
                document.model_dump(mode="json", exclude_none=True),
                headers={"Cache-Control": "public, max-age=300"},
            )

        endpoint = cors_middleware(metadata, ["GET", "OPTIONS"])
        paths = dict.fromkeys(
            [PROTECTED_RESOURCE, PROTECTED_RESOURCE + "/mcp", _path_of(self.resource_metadata_url or "")]
        )
        return [Route(path, endpoint=endpoint, methods=["GET", "OPTIONS"]) for path in paths if path]


def _path_of(url: str) -> str:
    return urlsplit(url).path


def _quoted(text: str) -> str:
    return "".join(c for c in text if 32 <= ord(c) < 127 and c not in '"\\')


class InboundAuth:
    """ASGI middleware: authenticate every HTTP request outside the open paths (see module docstring)."""

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator) -> None:
        self.app = app
        self.auth = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in OPEN_PATHS or path.startswith((WELL_KNOWN, WEBHOOKS)) or not self.auth.required():
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            await self.auth.refusal(None)(scope, receive, send)
            return
        try:
            principal = await self.auth.authenticate(token)
            self._check_scopes(path, principal.scopes)
        except AuthRefused as refused:
            await self.auth.refusal(refused)(scope, receive, send)
            return
        scope["user"] = ClientUser(principal, _fingerprint(token))
        scope["auth"] = AuthCredentials(_granted(principal.scopes))
        current = CURRENT_PRINCIPAL.set(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            CURRENT_PRINCIPAL.reset(current)

    @staticmethod
    def _check_scopes(path: str, scopes: Scopes) -> None:
        if path in OPERATOR_PATHS:
            if not scopes.operator:
                raise AuthRefused(
                    403, "This endpoint needs the operator scope", error="insufficient_scope", scope=OPERATOR_SCOPE
                )
        elif not scopes.any_tool:
            raise AuthRefused(
                403, "The token grants no tools scope on this server", error="insufficient_scope", scope="tools:*:read"
            )


def _granted(scopes: Scopes) -> list[str]:
    granted: list[str] = []
    if scopes.every_tool:
        granted.append("tools:*")
    if scopes.every_read:
        granted.append("tools:*:read")
    granted += [f"tools:{c}:*" for c in sorted(scopes.connectors)]
    granted += [f"tools:{c}:read" for c in sorted(scopes.connectors_read)]
    granted += [f"tools:{t}" for t in sorted(scopes.tools)]
    if scopes.operator:
        granted.append(OPERATOR_SCOPE)
    return granted
