"""Who is calling over HTTP, what they may see and call, and how much: the gate in front of the pipeline.

The inbound authentication middleware (`_inbound`) puts a `ClientUser` on the ASGI scope (the SDK's
`AuthenticatedUser`, so its transports bind each MCP session to the principal that opened it). The MCP
handlers (through `ServerRequestContext.request`), the REST façade and discovery mode all ask `Access`
for the principal's `ToolView` and run calls through `Access.invoke`, so every transport applies the
same scopes and limits. stdio has no request and is served as the local, unrestricted principal.

Per-client limits count tool calls only (never listings, never search/describe in discovery mode):
a token bucket (`RateSpec`) and a bound on calls running at once. Over either, the call is refused at
once — over MCP as a `RATE_LIMITED` tool error with `retry_after`, over REST as 429
`rate_limit_exceeded` with `Retry-After` — and nothing is sent upstream. State is per process.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.responses import JSONResponse

from mcp_server._config import RateSpec, Settings
from mcp_server._errors import Forbidden, RateLimited, UnknownTool
from mcp_server._pipeline import Caller, Outcome, Pipeline, ProgressFn
from mcp_server._scopes import EVERYTHING, NOTHING, Scopes, ToolView, ToolViews

__all__ = [
    "ANONYMOUS",
    "CURRENT_PRINCIPAL",
    "Access",
    "ClientLimiter",
    "ClientUser",
    "Principal",
    "RateState",
    "principal_of",
]

MAX_TRACKED_CLIENTS = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller (or the local one), as the transport established it."""

    id: str
    """`alice` (a static client), `oauth:<sub>` (an OAuth token), `local` (no authentication)."""
    scopes: Scopes
    accounts: Mapping[str, str] = field(default_factory=dict[str, str])
    """Connector (or `*`) → vault account of this principal's calls, over the server's accounts."""
    rate_limit: RateSpec | None = None
    """None: the server's default (unless `rate_limit_off`)."""
    rate_limit_off: bool = False
    max_concurrent: int | None = None
    """None: the server's default; 0: unbounded."""
    authenticated: bool = False
    issuer: str | None = None
    subject: str | None = None

    def caller(self, transport: str) -> Caller:
        """The pipeline's `Caller`: the client's identity for an authenticated principal, else the transport."""
        return Caller(client=self.id if self.authenticated else transport, accounts=self.accounts)


ANONYMOUS = Principal("local", EVERYTHING)
"""No authentication configured (loopback, or --allow-unauthenticated): everything, unlimited."""

NOBODY = Principal("nobody", NOTHING)
"""Authentication is required but none reached the handler: nothing (defence in depth)."""


class ClientUser(AuthenticatedUser):
    """The SDK's authenticated user, carrying our `Principal`.

    The SDK compares (client id, issuer, subject) of the user that opened an MCP session with every later
    request of that session; a session opened by one client cannot be used with another client's token.
    """

    def __init__(self, principal: Principal, fingerprint: str) -> None:
        claims = {"iss": principal.issuer} if principal.issuer else None
        token = AccessToken(
            token=fingerprint,  # a digest, never the bearer token itself
            client_id=principal.id,
            scopes=[],
            subject=principal.subject,
            claims=claims,
        )
        super().__init__(token)
        self.principal = principal


CURRENT_PRINCIPAL: ContextVar[Principal | None] = ContextVar("mcp_connectors_principal", default=None)
"""The principal of the HTTP request being handled in this task (set by the inbound middleware).

MCP handlers read the principal from `ctx.request` (a session's handlers run in another task); this is
for hooks the SDK calls with no request, such as `get_tool_input_schema`."""


def principal_of(request: object, *, required: bool = False) -> Principal:
    """The principal of a Starlette request (or None from stdio); NOBODY when one was required and is absent."""
    scope: Any = getattr(request, "scope", None)
    user: object = cast(dict[str, Any], scope).get("user") if isinstance(scope, dict) else None
    if isinstance(user, ClientUser):
        return user.principal
    return NOBODY if required else ANONYMOUS


# ---------------------------------------------------------------------------------------------- limits


@dataclass(frozen=True, slots=True)
class RateState:
    """What the X-RateLimit-* headers say after a call was admitted (or refused)."""

    limit: int
    remaining: int
    reset: int
    """Seconds until the bucket is full again."""

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


class OverClientLimit(RateLimited):
    """This client is over its own rate limit or concurrency bound (not the upstream's limit)."""

    def __init__(self, message: str, *, retry_after: int, reason: str, state: RateState | None) -> None:
        super().__init__(message, retry_after=retry_after, limit="client", reason=reason)
        self.state = state


@dataclass(slots=True)
class _ClientState:
    tokens: float
    updated: float
    spec: RateSpec | None
    running: int = 0


class ClientLimiter:
    """Token bucket and concurrency bound per principal id; state lives in this process only."""

    def __init__(
        self,
        *,
        default_rate: RateSpec | None,
        default_concurrency: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._default_rate = default_rate
        self._default_concurrency = default_concurrency
        self._clock = clock
        self._states: OrderedDict[str, _ClientState] = OrderedDict()

    def limits(self, principal: Principal) -> tuple[RateSpec | None, int | None]:
        """The principal's own limits where its record sets them, else the server's defaults (0 = none)."""
        rate = None if principal.rate_limit_off else (principal.rate_limit or self._default_rate)
        concurrency = principal.max_concurrent if principal.max_concurrent is not None else self._default_concurrency
        return rate, (concurrency or None)

    def _state(self, principal: Principal, rate: RateSpec | None) -> _ClientState:
        state = self._states.get(principal.id)
        now = self._clock()
        if state is None:
            state = _ClientState(float(rate.requests) if rate else 0.0, now, rate)
            self._states[principal.id] = state
            if len(self._states) > MAX_TRACKED_CLIENTS:
                for key, old in list(self._states.items()):
                    if old.running == 0 and key != principal.id:
                        del self._states[key]
                        break
        else:
            self._states.move_to_end(principal.id)
        if state.spec != rate:  # the clients file changed this client's limit: start it afresh
            state.spec, state.tokens, state.updated = rate, float(rate.requests) if rate else 0.0, now
        if rate is not None:
            per_second = rate.requests / rate.per_seconds
            state.tokens = min(float(rate.requests), state.tokens + max(now - state.updated, 0.0) * per_second)
        state.updated = now
        return state

    @staticmethod
    def _rate_state(state: _ClientState) -> RateState | None:
        rate = state.spec
        if rate is None:
            return None
        per_second = rate.requests / rate.per_seconds
        return RateState(
            limit=rate.requests,
            remaining=max(math.floor(state.tokens), 0),
            reset=math.ceil(max(rate.requests - state.tokens, 0.0) / per_second),
        )

    @contextlib.contextmanager
    def admit(self, principal: Principal) -> Generator[RateState | None]:
        """Hold one call's slot; raises `OverClientLimit` (taking nothing) when the client is over a limit."""
        if not principal.authenticated:
            yield None
            return
        rate, concurrency = self.limits(principal)
        state = self._state(principal, rate)
        if concurrency is not None and state.running >= concurrency:
            raise OverClientLimit(
                f"This client already has {state.running} tool calls running, its limit; retry when one finishes.",
                retry_after=1,
                reason="concurrency",
                state=self._rate_state(state),
            )
        if rate is not None:
            if state.tokens < 1.0:
                wait = max(math.ceil((1.0 - state.tokens) * rate.per_seconds / rate.requests), 1)
                raise OverClientLimit(
                    f"This client is over its rate limit of {rate.requests} tool calls per {rate.per_seconds:g} s; "
                    f"retry after {wait} s.",
                    retry_after=wait,
                    reason="rate",
                    state=self._rate_state(state),
                )
            state.tokens -= 1.0
        state.running += 1
        try:
            yield self._rate_state(state)
        finally:
            state.running -= 1


# ---------------------------------------------------------------------------------------------- gate


class Access:
    """Per-principal views of the registry, and tool calls admitted through scopes and limits."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        limiter: ClientLimiter | None = None,
        required: Callable[[], bool] = lambda: False,
        read_only: bool = False,
    ) -> None:
        """`required` says whether HTTP requests must carry a principal; `read_only` is `serve --read-only`."""
        self.pipeline = pipeline
        self.limiter = limiter or ClientLimiter(default_rate=None, default_concurrency=None)
        self._required = required
        self._views = ToolViews(read_only_mode=read_only)

    def principal(self, request: object) -> Principal:
        """The principal of an MCP handler's `ctx.request` (None from stdio: the local principal)."""
        return principal_of(request, required=request is not None and self._required())

    def current(self) -> Principal:
        """The principal of the HTTP request this task serves (`CURRENT_PRINCIPAL`)."""
        principal = CURRENT_PRINCIPAL.get()
        if principal is not None:
            return principal
        return NOBODY if self._required() else ANONYMOUS

    def view(self, principal: Principal) -> ToolView:
        return self._views.get(self.pipeline.registry, principal.scopes)

    def check(self, principal: Principal, name: str) -> Forbidden | None:
        """None if `principal` may call `name`; a `Forbidden` outcome if not; raises `UnknownTool` (see _scopes)."""
        verdict = self.view(principal).verdict(name)
        if verdict == "unknown":
            raise UnknownTool(name)
        if verdict == "forbidden":
            return forbidden(name)
        return None

    async def invoke(
        self,
        principal: Principal,
        name: str,
        arguments: Mapping[str, Any] | None,
        *,
        transport: str,
        progress: ProgressFn | None = None,
    ) -> Outcome:
        """`Pipeline.invoke` behind the scope check and the client's limits; raises only `UnknownTool`."""
        refusal = self.check(principal, name)
        if refusal is not None:
            return refusal
        try:
            with self.limiter.admit(principal):
                return await self.pipeline.invoke(
                    name, arguments, progress=progress, caller=principal.caller(transport)
                )
        except OverClientLimit as exc:
            return exc


def build_access(pipeline: Pipeline, settings: Settings, *, required: Callable[[], bool]) -> Access:
    """The HTTP transports' gate: scopes, `--read-only`, and the server's default per-client limits."""
    limiter = ClientLimiter(
        default_rate=settings.access.client_rate_limit, default_concurrency=settings.access.client_concurrency
    )
    return Access(pipeline, limiter=limiter, required=required, read_only=settings.access.read_only)


def forbidden(name: str) -> Forbidden:
    return Forbidden(
        f"Tool {name!r} is not available to this client (its scopes do not grant it).",
        tool=name,
        required_scope=f"tools:{name}",
    )


# ---------------------------------------------------------------------------------------------- REST answers


def forbidden_response(refusal: Forbidden) -> JSONResponse:
    """REST 403 `forbidden` for a tool outside the client's scopes, with the scope that would grant it."""
    scope = str(refusal.details.get("required_scope", ""))
    return JSONResponse(
        {"error": "forbidden", "message": refusal.message, "details": refusal.details},
        status_code=403,
        headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
    )


def over_limit_response(over: OverClientLimit) -> JSONResponse:
    """REST 429 `rate_limit_exceeded` with `Retry-After` and the X-RateLimit-* headers."""
    headers = {"Retry-After": str(over.details["retry_after"])}
    if over.state is not None:
        headers.update(over.state.headers())
    return JSONResponse(
        {"error": "rate_limit_exceeded", "message": over.message, "details": over.details},
        status_code=429,
        headers=headers,
    )
