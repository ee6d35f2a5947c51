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

import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Literal, Protocol

import anyio
import httpx2

from mcp_server._audit import AuditLog, CredentialUse
from mcp_server._credentials import Authenticator, authenticator_for, client_certificate_refs, client_ssl_context
from mcp_server._errors import (
    AuthFailed,
    AuthMissing,
    CircuitOpen,
    InternalToolError,
    InvalidArguments,
    RateLimited,
    ToolError,
    UnknownTool,
    UpstreamTimeout,
    UpstreamUnreachable,
    VaultError,
)
from mcp_server._exchange import Exchange, RawResponse, TransportFailure, public_url
from mcp_server._metrics import CallMetrics
from mcp_server._model import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    CallPolicy,
    Connector,
    HeadersAuth,
    HmacAuth,
    JwtAuth,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    Operation,
    SigV4Auth,
)
from mcp_server._netguard import CachingResolver, DestinationPolicy, system_resolver
from mcp_server._observe import REQUEST_ID, new_request_id
from mcp_server._pagination import run_tool
from mcp_server._redact import IN_FLIGHT, Redactor
from mcp_server._registry import Registry, ToolSpec
from mcp_server._request import Binding, PreparedRequest, build_request, referenced_values
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
from mcp_server._serialize import LONE_SURROGATE, unencodable_path
from mcp_server._shape import ToolSuccess
from mcp_server._shards import ShardedTransport
from mcp_server._version import server_version

__all__ = ["Caller", "Outcome", "Pipeline", "ProgressFn", "SecretSource", "ToolSuccess"]

logger = logging.getLogger("mcp_server.calls")
USER_AGENT = f"mcp-connectors/{server_version()}"
UPSTREAM_POOL = httpx2.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=5.0)
"""Each connector's (and account's) pool. Idle connections are kept up to the same bound as open ones, for
`keepalive_expiry` seconds: with httpx2's default of 20 kept alive, a steady 64 calls in flight closed and
reopened about one upstream connection in ten, as each response returned its connection to a pool already
holding its share of idle ones (docs/benchmarks/changes.md, step 18)."""

Outcome = ToolSuccess | ToolError
ProgressFn = Callable[[float, "float | None", str], Awaitable[None]]
"""`(progress, total, message)`: called while a call waits on the rate limiter or before a retry."""


class SecretSource(Protocol):
    """What the pipeline reads `{secret: NAME}` values from; a `SecretStore` (`_secrets`) is one.

    A source with `remote = True` is read off the event loop; one with `set` can also hold the token sets of
    the OAuth2 authorization-code flow, which are rewritten when they are refreshed.
    """

    def get(self, name: str) -> Secret | None: ...


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, as the transport established it — never anything the model controls."""

    client: str = "local"
    """Client identity for the audit log (`stdio`, a REST client id, ...)."""
    accounts: Mapping[str, str] = field(default_factory=dict[str, str])
    """Connector name (or `*`) → account whose credentials this caller uses, over the server's defaults."""


_LOCAL = Caller()


async def _no_progress(progress: float, total: float | None, message: str) -> None:
    return None


def credential_header_names(connector: Connector) -> set[str]:
    """Headers that carry credentials; a redirect to another origin must not receive them."""
    names = {name for name, ref in connector.headers.items() if ref.is_sensitive}
    # An operation's own `{secret:}`/`{env:}` headers are credentials too (one client serves every operation).
    names.update(name for op in connector.operations for name, ref in op.headers.items() if ref.is_sensitive)
    auth = connector.auth
    if isinstance(auth, BearerAuth | BasicAuth | OAuth2ClientCredentials | OAuth2AuthorizationCode | SigV4Auth):
        names.update(("authorization", "x-amz-security-token"))
    elif isinstance(auth, JwtAuth):
        names.add(auth.header)
    elif isinstance(auth, HmacAuth):
        names.update(h for h in (auth.key_header, auth.signature_header) if h)
    elif isinstance(auth, ApiKeyAuth) and auth.location == "header":
        names.add(auth.name)
    elif isinstance(auth, HeadersAuth):
        names.update(auth.headers)
    return names


@dataclass(slots=True)
class _ConnectorRuntime:
    """State shared by all calls of one connector with one account's credentials."""

    client: httpx2.AsyncClient
    exchange: Exchange
    breaker: CircuitBreaker
    budget: RetryBudget
    bucket: TokenBucket | None
    authenticator: Authenticator | None = None
    values: Mapping[ValueRef, str] = field(default_factory=dict[ValueRef, str])
    """The latest call's resolved manifest values, which token providers read when they need a new token."""
    name: str = ""
    """The connector's name: the `connector` label of its metrics."""


@dataclass(slots=True)
class _CallTrace:
    """What one call did with credentials, for the audit log; filled in as the call proceeds."""

    account: str | None = None
    credentials: list[CredentialUse] = field(default_factory=list[CredentialUse])
    status: int | None = None


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
        accounts: Mapping[str, str] | None = None,
        audit: AuditLog | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self._secrets = secrets
        self._environ = environ
        self.metrics = metrics or CallMetrics()
        self._allow_networks = tuple(allow_networks)
        self._accounts = dict(accounts or {})
        self.audit = audit
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._clock = clock
        self._runtimes: dict[tuple[str, str | None], _ConnectorRuntime] = {}
        self._refs: dict[str, tuple[ValueRef, ...]] = {}
        self._retired: list[_ConnectorRuntime] = []
        self.log_arguments = False
        """Log each call's argument values at DEBUG (`serve --log-level DEBUG --log-arguments`); off by default."""
        self.metrics.watch_breakers(lambda: [(key[0], rt.breaker.state) for key, rt in list(self._runtimes.items())])

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        runtimes, self._runtimes = self._runtimes, {}
        retired, self._retired = self._retired, []
        for runtime in (*runtimes.values(), *retired):
            await runtime.client.aclose()

    def swap_registry(self, registry: Registry) -> None:
        """Serve `registry` from now on (a catalog reload); calls in flight finish with the tools they started with.

        A connector whose definition changed gets a fresh runtime (HTTP client, breaker, rate limit) on its next
        call; the old one's client is closed with the pipeline, since a call may still be using it.
        """
        previous = {tool.connector.name: tool.connector for tool in self.registry}
        current = {tool.connector.name: tool.connector for tool in registry}
        for key in list(self._runtimes):
            if current.get(key[0]) != previous.get(key[0]) or key[0] not in current:
                self._retired.append(self._runtimes.pop(key))
        self._refs.clear()
        self.registry = registry

    def _runtime(
        self, connector: Connector, account: str | None, resolved: Mapping[ValueRef, str]
    ) -> _ConnectorRuntime:
        key = (connector.name, account)
        runtime = self._runtimes.get(key)
        if runtime is None:
            # One connection pool per connector and account: the exchange sends on it directly, the token
            # requests of the OAuth providers through a client around it.
            # No proxy, .netrc credentials or SSL_CERT_* CAs from the environment: only the manifest decides what
            # is sent and whom it trusts. One TLS context for all the shards: building one loads the CA bundle.
            tls = client_ssl_context(connector.client_certificate, connector.ca_certificate, resolved)
            tls = tls or httpx2.create_ssl_context(trust_env=False)
            transport = ShardedTransport(
                UPSTREAM_POOL,
                lambda limits: httpx2.AsyncHTTPTransport(trust_env=False, limits=limits, verify=tls),
            )
            client = httpx2.AsyncClient(
                transport=transport,
                # Upstream cookies must not carry over from one caller's call to another's.
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
                trust_env=False,
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
            )
            guard = DestinationPolicy(
                base_url=connector.base_url,
                operation_base_urls=[op.base_url for op in connector.operations if op.base_url is not None],
                allow=(*connector.allow_networks, *self._allow_networks),
                resolver=CachingResolver(system_resolver),
            )
            runtime = _ConnectorRuntime(
                client=client,
                exchange=Exchange(transport, guard, credential_header_names(connector), user_agent=USER_AGENT),
                breaker=CircuitBreaker(connector.breaker, connector=connector.name),
                budget=RetryBudget(connector.policy.retry.budget_ratio),
                bucket=TokenBucket(connector.rate_limit, connector=connector.name) if connector.rate_limit else None,
                name=connector.name,
            )
            runtime.authenticator = authenticator_for(
                connector,
                account=account,
                store=self._secrets,  # pyright: ignore[reportArgumentType] - only the token provider writes to it
                client=client,
                resolve=lambda ref: _resolved_value(runtime, ref),
                clock=self._clock,
            )
            self._runtimes[key] = runtime
        runtime.values = resolved
        return runtime

    def account_for(self, connector: str, caller: Caller) -> str | None:
        """The caller's account for `connector`, else the server's; None means the plain secret names."""
        for accounts in (caller.accounts, self._accounts):
            account = accounts.get(connector) or accounts.get("*")
            if account:
                return account
        return None

    async def invoke(
        self,
        name: str,
        arguments: Mapping[str, Any] | None,
        *,
        progress: ProgressFn | None = None,
        caller: Caller | None = None,
    ) -> Outcome:
        """Run one call; raises only `UnknownTool` (and cancellation, which aborts the upstream request)."""
        try:
            tool = self.registry.get(name)
        except UnknownTool:
            self.metrics.observe_unknown_tool()
            raise
        caller = caller or _LOCAL
        trace = _CallTrace(account=self.account_for(tool.connector.name, caller))
        # Calls outside an HTTP request (stdio, the `call` command) get a request id of their own.
        token = REQUEST_ID.set(new_request_id()) if REQUEST_ID.get() is None else None
        try:
            outcome, elapsed = await self._observed(tool, arguments or {}, progress or _no_progress, trace, caller)
        finally:
            if token is not None:
                REQUEST_ID.reset(token)
        if self.audit is not None and trace.credentials:
            self.audit.record(
                tool=name,
                connector=tool.connector.name,
                account=trace.account,
                client=caller.client,
                outcome="ok" if isinstance(outcome, ToolSuccess) else outcome.error_code,
                status=trace.status,
                credentials=trace.credentials,
                duration_ms=elapsed * 1000,
            )
        return outcome

    async def _observed(
        self, tool: ToolSpec, arguments: Mapping[str, Any], progress: ProgressFn, trace: _CallTrace, caller: Caller
    ) -> tuple[Outcome, float]:
        """`_run` with the in-flight gauge, the latency histogram and the per-call log line."""
        name = tool.name
        if self.log_arguments and logger.isEnabledFor(logging.DEBUG):
            logger.debug("call %s arguments %s", name, _json_text(arguments))
        self.metrics.call_started()
        started = time.perf_counter()
        try:
            try:
                outcome: Outcome = await self._run(tool, arguments, progress, trace)
            except ToolError as error:
                outcome = error
        finally:
            self.metrics.call_finished()
        elapsed = time.perf_counter() - started
        fields: dict[str, Any] = {
            "event": "tool_call",
            "tool": name,
            "connector": tool.connector.name,
            "client": caller.client,
            "duration_ms": round(elapsed * 1000, 1),
            "upstream_status": trace.status,
        }
        if isinstance(outcome, ToolSuccess):
            self.metrics.observe(name, "ok", elapsed)
            logger.info(
                "call %s ok status=%d %.1fms", name, outcome.status, elapsed * 1000, extra={**fields, "outcome": "ok"}
            )
        else:
            self.metrics.observe(name, outcome.error_code, elapsed)
            logger.info(
                "call %s failed code=%s %.1fms",
                name,
                outcome.error_code,
                elapsed * 1000,
                extra={**fields, "outcome": outcome.error_code},
            )
        return outcome, elapsed

    async def _run(
        self, tool: ToolSpec, arguments: Mapping[str, Any], progress: ProgressFn, trace: _CallTrace
    ) -> ToolSuccess:
        tool.validate(arguments)
        connector = tool.connector
        resolved = await self._resolve(tool, trace)
        sensitive = self._sensitive_values(connector, resolved)
        produced: list[str] = []
        # Everything after resolution runs with the secrets registered, so even the traceback
        # of an unexpected failure is scrubbed before it reaches a log handler.
        with IN_FLIGHT.holding(sensitive), contextlib.ExitStack() as scope:
            try:
                runtime = self._runtime(connector, trace.account, resolved)

                def register(values: list[str]) -> None:
                    fresh = [v for v in values if v not in produced]
                    produced.extend(fresh)
                    scope.enter_context(IN_FLIGHT.holding(fresh))

                async def send(
                    operation: Operation, bindings: Mapping[str, Binding], sent: Mapping[str, Any]
                ) -> RawResponse:
                    # One request of the call: the one its arguments pick (a variant), or one page of all_pages.
                    try:
                        request = build_request(connector, operation, bindings, sent, resolved)
                    except ValueError as exc:
                        # JSON lets a client send a lone surrogate ("\ud800"), which no request can carry;
                        # otherwise the value that could not be placed is a credential.
                        path = unencodable_path(sent)
                        if path is not None:
                            raise InvalidArguments(
                                f"Invalid arguments for {tool.name} at {path}: the {LONE_SURROGATE}",
                                path=path,
                            ) from None
                        raise AuthMissing(Redactor(sensitive).text(str(exc))) from None
                    response = await self._call(tool, runtime, request, progress, register)
                    trace.status = response.status
                    return response

                return await run_tool(tool, arguments, send, lambda: Redactor([*sensitive, *produced]))
            except ToolError as error:
                redactor = Redactor([*sensitive, *produced])
                error.args = (redactor.text(error.message),)
                error.details = redactor.value(error.details)
                if trace.status is None and isinstance(error.details.get("status"), int):
                    trace.status = error.details["status"]
                raise
            except Exception:
                logger.exception("tool %s failed unexpectedly", tool.name)
                raise InternalToolError(
                    "Internal error while running the tool; the server log has the details."
                ) from None

    async def _resolve(self, tool: ToolSpec, trace: _CallTrace) -> dict[ValueRef, str]:
        refs = self._refs.get(tool.name)
        if refs is None:
            connector = tool.connector
            refs = referenced_values(connector, tool.operation)
            certificate = tuple(r for r in client_certificate_refs(connector.client_certificate) if r.is_sensitive)
            refs = self._refs[tool.name] = tuple(dict.fromkeys((*refs, *certificate)))
        if getattr(self._secrets, "remote", False) and any(ref.kind == "secret" for ref in refs):
            # A network secret store must not stall every other call on the event loop.
            return await anyio.to_thread.run_sync(self._resolve_refs, tool, refs, trace)
        return self._resolve_refs(tool, refs, trace)

    def _resolve_refs(self, tool: ToolSpec, refs: tuple[ValueRef, ...], trace: _CallTrace) -> dict[ValueRef, str]:
        resolved: dict[ValueRef, str] = {}
        shared = _app_credentials(tool.connector)
        for ref in refs:
            if ref.kind == "secret":
                name = ref.value if trace.account is None else f"{ref.value}@{trace.account}"
                try:
                    secret = self._secrets.get(name)
                    if secret is None and ref in shared and trace.account is not None:
                        # One OAuth app usually serves every account; only the user's tokens are per account.
                        secret = self._secrets.get(ref.value)
                        name = ref.value if secret is not None else name
                except VaultError as exc:
                    raise AuthMissing(f"The vault cannot be read: {exc.message}", secret=name) from None
                value = secret.reveal() if secret is not None else None
                fix = f"mcp-connectors vault set {name}"
                shown = f"vault secret {name!r}"
            else:
                name = ref.value
                value = self._environ.get(ref.value)
                fix = f"export {ref.value}=... before starting the server"
                shown = ref.describe()
            if not value:
                if self.audit is not None:
                    trace.credentials.append(CredentialUse(name=name, source=ref.kind, fingerprint=None))
                state = "is empty" if value == "" else "is not set"
                raise AuthMissing(
                    f"{tool.connector.name}: {shown} {state}; run: {fix}",
                    connector=tool.connector.name,
                    missing=name,
                    source=ref.kind,
                    fix=fix,
                    **({"account": trace.account} if trace.account is not None and ref.kind == "secret" else {}),
                )
            resolved[ref] = value
            if self.audit is not None:
                trace.credentials.append(self.audit.credential_use(name, ref.kind, value))
        if self.audit is not None and isinstance(tool.connector.auth, OAuth2AuthorizationCode):
            from mcp_server._credentials import token_record

            record = token_record(tool.connector.auth, trace.account)
            trace.credentials.append(CredentialUse(name=record, source="secret", fingerprint=None))
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
        elif isinstance(auth, OAuth2ClientCredentials):
            client_id = resolved.get(auth.client_id, auth.client_id.value)
            secret = resolved.get(auth.client_secret, auth.client_secret.value)
            values.append(f"{client_id}:{secret}")  # the token endpoint's Basic credentials
        return values

    async def _call(
        self,
        tool: ToolSpec,
        runtime: _ConnectorRuntime,
        request: PreparedRequest,
        progress: ProgressFn,
        register: Callable[[list[str]], None],
    ) -> RawResponse:
        """Breaker, rate limit and retries under the call's total deadline; returns the final answer."""
        connector = tool.connector
        policy = tool.operation.policy
        label = connector.title or connector.name
        breaker = runtime.breaker
        state = breaker.state
        try:
            breaker.before_call()
        except CircuitOpen:
            self.metrics.breaker_refused(runtime.name)
            raise
        if state == "half_open":
            self.metrics.breaker_transition(runtime.name, "half_open")  # this call is the probe
        health: Health = "neutral"
        try:
            with anyio.fail_after(policy.timeouts.total):
                await self._wait_for_rate_limit(runtime, policy, progress)
                response = await self._send_with_retries(runtime, request, policy, progress, register)
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
            before = breaker.state
            if health == "success":
                breaker.record_success()
            elif health == "failure":
                breaker.record_failure()
            else:
                breaker.record_neutral()
            if breaker.state != before:
                self.metrics.breaker_transition(runtime.name, breaker.state)

    async def _wait_for_rate_limit(self, runtime: _ConnectorRuntime, policy: CallPolicy, progress: ProgressFn) -> None:
        if runtime.bucket is None:
            return
        remaining = anyio.current_effective_deadline() - anyio.current_time()
        try:
            wait = runtime.bucket.reserve(max_wait=remaining)
        except RateLimited:
            self.metrics.rate_limit_refused(runtime.name)
            raise
        if wait > 0:
            self.metrics.rate_limit_wait(runtime.name, wait)
            await progress(0, None, f"waiting {wait:.1f} s for the client-side rate limit")
            await anyio.sleep(wait)

    async def _send_with_retries(
        self,
        runtime: _ConnectorRuntime,
        request: PreparedRequest,
        policy: CallPolicy,
        progress: ProgressFn,
        register: Callable[[list[str]], None],
    ) -> RawResponse:
        retry = policy.retry
        retry_allowed = may_retry_method(request.method, retry)
        if retry_allowed and retry.idempotency_header and request.method in ("POST", "PATCH"):
            request = _with_idempotency_key(request, retry.idempotency_header)
        runtime.budget.record_request()
        authenticator = runtime.authenticator
        reauthenticated = False
        attempt = 0
        while True:
            failure: TransportFailure | None = None
            sent = request
            if authenticator is not None:
                # Per attempt: a retry gets a fresh signature timestamp, or the token refreshed after a 401.
                sent = await authenticator.apply(request)
                register(authenticator.sensitive())
            try:
                response = await runtime.exchange.send(
                    sent, timeouts=policy.timeouts, max_bytes=policy.max_response_bytes
                )
            except TransportFailure as exc:
                failure, response = exc, None
            if response is not None:
                self.metrics.upstream_response(runtime.name, response.status)
            elif failure is not None:
                self.metrics.upstream_failure(runtime.name, failure.kind)
            renewable = authenticator is not None and authenticator.retries_unauthorized and not reauthenticated
            if response is not None and response.status == 401 and authenticator is not None and renewable:
                # The token may have been revoked or rotated early: one new token, one more try (a 401 means
                # the request was refused before it was acted on, so even a POST is safe to repeat).
                authenticator.unauthorized(sent)
                reauthenticated = True
                self.metrics.retry(runtime.name, "401")
                continue
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
            status = str(response.status) if response is not None else "?"
            reason = failure.kind if failure is not None else f"HTTP {status}"
            self.metrics.retry(runtime.name, failure.kind if failure is not None else status)
            attempt += 1
            await progress(attempt, retry.attempts, f"retrying after {reason} in {delay:.1f} s")
            await anyio.sleep(delay)


def _json_text(arguments: Mapping[str, Any]) -> str:
    return json.dumps(arguments, ensure_ascii=False, default=str)[:4000]


def _app_credentials(connector: Connector) -> frozenset[ValueRef]:
    """Values that identify the OAuth application rather than a user: an account may share the plain ones."""
    auth = connector.auth
    if isinstance(auth, OAuth2AuthorizationCode):
        return frozenset(ref for ref in (auth.client_id, auth.client_secret) if ref is not None)
    return frozenset()


def _resolved_value(runtime: _ConnectorRuntime, ref: ValueRef) -> str:
    if not ref.is_sensitive:
        return ref.value
    try:
        return runtime.values[ref]
    except KeyError:
        raise AuthFailed(f"{ref.describe()} was not resolved for this call") from None


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
