"""One tool call, the same for every transport.

validate → resolve credentials → build the request (pure) → send → shape the result.

Sending behaves like a careful API gateway, per connector: a circuit breaker that
fails fast while the upstream is down, a client-side token bucket, retries with
full-jitter backoff on connect failures and 408/429/502/503/504 (idempotent methods
only, or POST/PATCH when the connector declares an idempotency header) under a
retry budget, and one deadline (`timeouts.total`) over all of it, waits included.

Every anticipated failure comes back as a `ToolError` outcome; a bug becomes an
`InternalToolError` whose details stay in the log. Only `UnknownTool` is raised,
because each transport reports it differently (JSON-RPC error / HTTP 404).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Literal, Protocol

import anyio
import httpx2

from mcp_server._errors import (
    AuthMissing,
    InternalToolError,
    ToolError,
    UpstreamTimeout,
    UpstreamUnreachable,
    VaultError,
)
from mcp_server._exchange import Exchange, RawResponse, TransportFailure, public_url
from mcp_server._metrics import CallMetrics
from mcp_server._model import ApiKeyAuth, BasicAuth, BearerAuth, CallPolicy, Connector, HeadersAuth
from mcp_server._netguard import CachingResolver, DestinationPolicy, system_resolver
from mcp_server._redact import IN_FLIGHT, Redactor
from mcp_server._registry import Registry, ToolSpec
from mcp_server._request import PreparedRequest, build_request, referenced_values
from mcp_server._resilience import (
    RETRYABLE_STATUSES,
    CircuitBreaker,
    RetryBudget,
    TokenBucket,
    backoff_delay,
    may_retry_method,
    server_delay,
)
from mcp_server._secrets import Secret, ValueRef
from mcp_server._shape import ToolSuccess, shape_response
from mcp_server._version import server_version

__all__ = ["Outcome", "Pipeline", "ProgressFn", "SecretSource", "ToolSuccess"]

logger = logging.getLogger("mcp_server.calls")
USER_AGENT = f"mcp-connectors/{server_version()}"

Outcome = ToolSuccess | ToolError
ProgressFn = Callable[[float, "float | None", str], Awaitable[None]]
"""`(progress, total, message)`: called while a call waits on the rate limiter or before a retry."""


class SecretSource(Protocol):
    def get(self, name: str) -> Secret | None: ...


async def _no_progress(progress: float, total: float | None, message: str) -> None:
    return None


def credential_header_names(connector: Connector) -> set[str]:
    """Headers that carry credentials; a redirect to another origin must not receive them."""
    names = {name for name, ref in connector.headers.items() if ref.is_sensitive}
    auth = connector.auth
    if isinstance(auth, BearerAuth | BasicAuth):
        names.add("authorization")
    elif isinstance(auth, ApiKeyAuth) and auth.location == "header":
        names.add(auth.name)
    elif isinstance(auth, HeadersAuth):
        names.update(auth.headers)
    return names


@dataclass(slots=True)
class _ConnectorRuntime:
    """Per-connector state shared by all of its calls."""

    client: httpx2.AsyncClient
    exchange: Exchange
    breaker: CircuitBreaker
    budget: RetryBudget
    bucket: TokenBucket | None


Health = Literal["success", "failure", "neutral"]


class Pipeline:
    """Runs tool calls; owns one pooled HTTP client and one breaker, bucket and budget per connector."""

    def __init__(
        self,
        registry: Registry,
        secrets: SecretSource,
        *,
        environ: Mapping[str, str],
        metrics: CallMetrics | None = None,
        allow_networks: Sequence[str] = (),
        rng: random.Random | None = None,
    ) -> None:
        self.registry = registry
        self._secrets = secrets
        self._environ = environ
        self.metrics = metrics or CallMetrics()
        self._allow_networks = tuple(allow_networks)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._runtimes: dict[str, _ConnectorRuntime] = {}
        self._refs: dict[str, tuple[ValueRef, ...]] = {}

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        runtimes, self._runtimes = self._runtimes, {}
        for runtime in runtimes.values():
            await runtime.client.aclose()

    def _runtime(self, connector: Connector) -> _ConnectorRuntime:
        runtime = self._runtimes.get(connector.name)
        if runtime is None:
            client = httpx2.AsyncClient(
                # Upstream cookies must not carry over from one caller's call to another's.
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
                # No proxy or .netrc credentials from the environment: only the manifest decides what is sent.
                trust_env=False,
                follow_redirects=False,  # Exchange follows them itself, re-checking every hop
                limits=httpx2.Limits(max_connections=100, max_keepalive_connections=20),
                headers={"User-Agent": USER_AGENT},
            )
            guard = DestinationPolicy(
                base_url=connector.base_url,
                allow=(*connector.allow_networks, *self._allow_networks),
                resolver=CachingResolver(system_resolver),
            )
            runtime = _ConnectorRuntime(
                client=client,
                exchange=Exchange(client, guard, credential_header_names(connector)),
                breaker=CircuitBreaker(connector.breaker, connector=connector.name),
                budget=RetryBudget(connector.policy.retry.budget_ratio),
                bucket=TokenBucket(connector.rate_limit, connector=connector.name) if connector.rate_limit else None,
            )
            self._runtimes[connector.name] = runtime
        return runtime

    async def invoke(
        self, name: str, arguments: Mapping[str, Any] | None, *, progress: ProgressFn | None = None
    ) -> Outcome:
        """Run one call; raises only `UnknownTool` (and cancellation, which aborts the upstream request)."""
        tool = self.registry.get(name)
        started = time.perf_counter()
        try:
            outcome: Outcome = await self._run(tool, arguments or {}, progress or _no_progress)
        except ToolError as error:
            outcome = error
        elapsed = time.perf_counter() - started
        if isinstance(outcome, ToolSuccess):
            self.metrics.observe(name, "ok", elapsed)
            logger.info("call %s ok status=%d %.1fms", name, outcome.status, elapsed * 1000)
        else:
            self.metrics.observe(name, outcome.error_code, elapsed)
            logger.info("call %s failed code=%s %.1fms", name, outcome.error_code, elapsed * 1000)
        return outcome

    async def _run(self, tool: ToolSpec, arguments: Mapping[str, Any], progress: ProgressFn) -> ToolSuccess:
        tool.validate(arguments)
        resolved = self._resolve(tool)
        sensitive = self._sensitive_values(tool.connector, resolved)
        redactor = Redactor(sensitive)
        # Everything after resolution runs with the secrets registered, so even the traceback
        # of an unexpected failure is scrubbed before it reaches a log handler.
        with IN_FLIGHT.holding(sensitive):
            try:
                try:
                    request = build_request(tool.connector, tool.operation, tool.bindings, arguments, resolved)
                except ValueError as exc:
                    raise AuthMissing(redactor.text(str(exc))) from None
                response = await self._call(tool, request, progress)
                return shape_response(
                    tool.connector.title or tool.connector.name, response, tool.operation.policy, redactor
                )
            except ToolError as error:
                error.args = (redactor.text(error.message),)
                error.details = redactor.value(error.details)
                raise
            except Exception:
                logger.exception("tool %s failed unexpectedly", tool.name)
                raise InternalToolError(
                    "Internal error while running the tool; the server log has the details."
                ) from None

    def _resolve(self, tool: ToolSpec) -> dict[ValueRef, str]:
        refs = self._refs.get(tool.name)
        if refs is None:
            refs = self._refs[tool.name] = referenced_values(tool.connector, tool.operation)
        resolved: dict[ValueRef, str] = {}
        for ref in refs:
            if ref.kind == "secret":
                try:
                    secret = self._secrets.get(ref.value)
                except VaultError as exc:
                    raise AuthMissing(f"The vault cannot be read: {exc.message}", secret=ref.value) from None
                value = secret.reveal() if secret is not None else None
                fix = f"mcp-connectors vault set {ref.value}"
            else:
                value = self._environ.get(ref.value)
                fix = f"export {ref.value}=... before starting the server"
            if not value:
                state = "is empty" if value == "" else "is not set"
                raise AuthMissing(
                    f"{tool.connector.name}: {ref.describe()} {state}; run: {fix}",
                    connector=tool.connector.name,
                    missing=ref.value,
                    source=ref.kind,
                    fix=fix,
                )
            resolved[ref] = value
        return resolved

    @staticmethod
    def _sensitive_values(connector: Connector, resolved: Mapping[ValueRef, str]) -> list[str]:
        values = list(resolved.values())
        auth = connector.auth
        if isinstance(auth, BasicAuth):
            user = resolved.get(auth.username, auth.username.value)
            password = resolved.get(auth.password, auth.password.value)
            # The pair appears base64-encoded in the Authorization header an upstream may echo.
            values += [password, f"{user}:{password}"]
        return values

    async def _call(self, tool: ToolSpec, request: PreparedRequest, progress: ProgressFn) -> RawResponse:
        """Breaker, rate limit and retries under the call's total deadline; returns the final answer."""
        connector = tool.connector
        policy = tool.operation.policy
        runtime = self._runtime(connector)
        label = connector.title or connector.name
        runtime.breaker.before_call()
        health: Health = "neutral"
        try:
            with anyio.fail_after(policy.timeouts.total):
                await self._wait_for_rate_limit(runtime, policy, progress)
                response = await self._send_with_retries(runtime, request, policy, progress)
            if response.status >= 500:
                health = "failure"
            elif response.status != 429:
                health = "success"
            return response
        except TimeoutError:
            health = "failure"
            raise UpstreamTimeout(
                f"{label} did not complete within the call's {policy.timeouts.total:g} s deadline (retries included)",
                phase="total",
                timeout_seconds=policy.timeouts.total,
                url=public_url(request.url),
            ) from None
        except TransportFailure as failure:
            health = "failure"
            raise _failure_error(label, failure, policy, request) from None
        finally:
            # A cancelled call, a rate limit or a refused destination says nothing about upstream health.
            if health == "success":
                runtime.breaker.record_success()
            elif health == "failure":
                runtime.breaker.record_failure()
            else:
                runtime.breaker.record_neutral()

    async def _wait_for_rate_limit(self, runtime: _ConnectorRuntime, policy: CallPolicy, progress: ProgressFn) -> None:
        if runtime.bucket is None:
            return
        remaining = anyio.current_effective_deadline() - anyio.current_time()
        wait = runtime.bucket.reserve(max_wait=remaining)
        if wait > 0:
            await progress(0, None, f"waiting {wait:.1f} s for the client-side rate limit")
            await anyio.sleep(wait)

    async def _send_with_retries(
        self, runtime: _ConnectorRuntime, request: PreparedRequest, policy: CallPolicy, progress: ProgressFn
    ) -> RawResponse:
        retry = policy.retry
        retry_allowed = may_retry_method(request.method, retry)
        if retry_allowed and retry.idempotency_header and request.method in ("POST", "PATCH"):
            request = _with_idempotency_key(request, retry.idempotency_header)
        runtime.budget.record_request()
        attempt = 0
        while True:
            failure: TransportFailure | None = None
            try:
                response = await runtime.exchange.send(
                    request, timeouts=policy.timeouts, max_bytes=policy.max_response_bytes
                )
            except TransportFailure as exc:
                failure, response = exc, None
            if response is not None and response.status not in RETRYABLE_STATUSES:
                return response
            asked = server_delay(response.headers, time.time()) if response is not None else None
            delay = asked if asked is not None else backoff_delay(attempt, retry, self._rng)
            remaining = anyio.current_effective_deadline() - anyio.current_time()
            give_up = (
                not retry_allowed
                or attempt + 1 >= retry.attempts
                or (asked is not None and asked > retry.retry_after_cap)
                or delay >= remaining
                or not runtime.budget.try_withdraw()
            )
            if give_up:
                if failure is not None:
                    raise failure
                assert response is not None
                return response
            reason = failure.kind if failure is not None else f"HTTP {response.status if response else '?'}"
            attempt += 1
            await progress(attempt, retry.attempts, f"retrying after {reason} in {delay:.1f} s")
            await anyio.sleep(delay)


def _with_idempotency_key(request: PreparedRequest, header: str) -> PreparedRequest:
    """One key per tool call, reused by its retries; a key the caller supplied wins."""
    if any(name.lower() == header.lower() for name, _ in request.headers):
        return request
    return replace(request, headers=(*request.headers, (header, str(uuid.uuid4()))))


def _failure_error(label: str, failure: TransportFailure, policy: CallPolicy, request: PreparedRequest) -> ToolError:
    url = public_url(request.url)
    if failure.kind == "connect_timeout":
        return UpstreamTimeout(f"{label}: {failure}", phase="connect", timeout_seconds=policy.timeouts.connect, url=url)
    if failure.kind == "read_timeout":
        return UpstreamTimeout(f"{label}: {failure}", phase="read", timeout_seconds=policy.timeouts.read, url=url)
    return UpstreamUnreachable(f"Cannot reach {label}: {failure}", url=url)
