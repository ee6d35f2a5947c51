"""One tool call, the same for every transport.

validate → resolve credentials → build the request (pure) → send → shape the result.
Every anticipated failure comes back as a `ToolError` outcome; a bug becomes an
`InternalToolError` whose details stay in the log. Only `UnknownTool` is raised,
because each transport reports it differently (JSON-RPC error / HTTP 404).
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Protocol, cast

import httpx2

from mcp_server._errors import (
    AuthFailed,
    AuthMissing,
    InternalToolError,
    RateLimited,
    ResponseTooLarge,
    ToolError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    VaultError,
)
from mcp_server._metrics import CallMetrics
from mcp_server._model import BasicAuth, Connector
from mcp_server._redact import IN_FLIGHT, Redactor
from mcp_server._registry import Registry, ToolSpec
from mcp_server._request import PreparedRequest, build_request, referenced_values
from mcp_server._secrets import Secret, ValueRef
from mcp_server._version import server_version

logger = logging.getLogger("mcp_server.calls")
USER_AGENT = f"mcp-connectors/{server_version()}"


class SecretSource(Protocol):
    def get(self, name: str) -> Secret | None: ...


@dataclass(frozen=True, slots=True)
class PipelineLimits:
    max_response_bytes: int = 10 * 1024 * 1024
    """Bodies are read as a stream and abandoned past this size (after decompression)."""
    max_error_body_chars: int = 2000
    """How much of a failed upstream answer is quoted back in `details.body`."""
    max_text_chars: int = 200_000
    """Non-JSON results longer than this are cut, with a note saying so."""


@dataclass(frozen=True, slots=True)
class ToolSuccess:
    status: int
    value: Any
    """The parsed JSON body when `is_json`; otherwise None and the body is `text`."""
    text: str
    is_json: bool


Outcome = ToolSuccess | ToolError


def _retry_after_seconds(value: str | None) -> int | None:
    if not value:
        return None
    if value.strip().isascii() and value.strip().isdigit():  # isdigit() alone accepts "²", which int() refuses
        return int(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0, round(when.timestamp() - time.time()))


def _looks_like_json(content_type: str, body: bytes) -> bool:
    if content_type:
        return "json" in content_type.lower()
    return body.lstrip()[:1] in (b"{", b"[")


def _upstream_message(parsed: Any) -> str | None:
    """The human sentence most APIs put in their error body (`message`, `error.message`, `error`)."""
    if not isinstance(parsed, dict):
        return None
    body = cast(dict[str, Any], parsed)
    for candidate in (body.get("message"), body.get("error_description"), body.get("error")):
        if isinstance(candidate, dict):
            candidate = cast(dict[str, Any], candidate).get("message")
        if isinstance(candidate, str) and candidate:
            return candidate[:300]
    return None


class Pipeline:
    """Runs tool calls; owns one pooled HTTP client per connector."""

    def __init__(
        self,
        registry: Registry,
        secrets: SecretSource,
        *,
        environ: Mapping[str, str],
        limits: PipelineLimits | None = None,
        metrics: CallMetrics | None = None,
    ) -> None:
        self.registry = registry
        self._secrets = secrets
        self._environ = environ
        self._limits = limits or PipelineLimits()
        self.metrics = metrics or CallMetrics()
        self._clients: dict[str, httpx2.AsyncClient] = {}
        self._refs: dict[str, tuple[ValueRef, ...]] = {}

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    def _client(self, connector: Connector) -> httpx2.AsyncClient:
        client = self._clients.get(connector.name)
        if client is None:
            client = httpx2.AsyncClient(
                # Upstream cookies must not carry over from one caller's call to another's.
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
                # No proxy or .netrc credentials from the environment: only the manifest decides what is sent.
                trust_env=False,
                follow_redirects=False,
                limits=httpx2.Limits(max_connections=100, max_keepalive_connections=20),
                headers={"User-Agent": USER_AGENT},
            )
            self._clients[connector.name] = client
        return client

    async def invoke(self, name: str, arguments: Mapping[str, Any] | None) -> Outcome:
        """Run one call; raises only `UnknownTool`."""
        tool = self.registry.get(name)
        started = time.perf_counter()
        try:
            outcome: Outcome = await self._run(tool, arguments or {})
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

    async def _run(self, tool: ToolSpec, arguments: Mapping[str, Any]) -> ToolSuccess:
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
                return await self._send(tool, request, redactor)
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

    async def _send(self, tool: ToolSpec, request: PreparedRequest, redactor: Redactor) -> ToolSuccess:
        connector = tool.connector
        timeout = tool.operation.policy.timeouts.total
        label = connector.title or connector.name
        try:
            async with self._client(connector).stream(
                request.method,
                request.url,
                headers=list(request.headers),
                content=request.content,
                timeout=timeout,
            ) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self._limits.max_response_bytes:
                        raise ResponseTooLarge(
                            f"{label} sent more than {self._limits.max_response_bytes} bytes; the response was dropped",
                            limit_bytes=self._limits.max_response_bytes,
                            status=response.status_code,
                        )
                status = response.status_code
                content_type = response.headers.get("content-type", "")
                encoding = response.encoding or "utf-8"
                retry_after = _retry_after_seconds(response.headers.get("retry-after"))
        except httpx2.TimeoutException:
            raise UpstreamTimeout(
                f"{label} did not answer within {timeout:g} s", timeout_seconds=timeout, url=_public_url(request)
            ) from None
        except httpx2.TransportError as exc:
            raise UpstreamUnreachable(
                f"Cannot reach {label}: {redactor.text(str(exc)) or type(exc).__name__}", url=_public_url(request)
            ) from None
        return self._shape(label, status, content_type, encoding, bytes(body), retry_after, redactor)

    def _shape(
        self,
        label: str,
        status: int,
        content_type: str,
        encoding: str,
        body: bytes,
        retry_after: int | None,
        redactor: Redactor,
    ) -> ToolSuccess:
        try:
            text = body.decode(encoding, errors="replace")
        except (LookupError, UnicodeError):  # unknown charset, or a codec such as idna that cannot replace
            text = body.decode("utf-8", errors="replace")
        parsed: Any = None
        is_json = False
        if not body.strip():
            is_json = True
        elif _looks_like_json(content_type, body):
            try:
                parsed = json.loads(text)
                is_json = True
            except ValueError:
                pass
        if is_json:
            parsed = redactor.value(parsed)
        text = redactor.text(text)

        if 200 <= status < 300:
            if is_json:
                return ToolSuccess(status, parsed, json.dumps(parsed, ensure_ascii=False), True)
            if len(text) > self._limits.max_text_chars:
                cut = len(text) - self._limits.max_text_chars
                text = f"{text[: self._limits.max_text_chars]}\n[truncated: {cut} more characters not shown]"
            return ToolSuccess(status, None, text, False)

        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "error"
        summary = f"{label} answered HTTP {status} {reason}"
        upstream_message = _upstream_message(parsed) if is_json else None
        message = f"{summary}: {upstream_message}" if upstream_message else summary
        details: dict[str, Any] = {"status": status, "body": self._trimmed_body(parsed, text, is_json)}
        if status == 401:
            raise AuthFailed(f"{message}. The stored credential was rejected; check it and store it again.", **details)
        if status == 429:
            raise RateLimited(
                f"{message}. Retry after {retry_after or 'a while'} s.", retry_after=retry_after, **details
            )
        raise UpstreamError(message, **details)

    def _trimmed_body(self, parsed: Any, text: str, is_json: bool) -> Any:
        limit = self._limits.max_error_body_chars
        if is_json and len(json.dumps(parsed, ensure_ascii=False)) <= limit:
            return parsed
        return text if len(text) <= limit else text[:limit] + "…"


def _public_url(request: PreparedRequest) -> str:
    """The request URL without its query string, which may carry an API key."""
    return request.url.split("?", 1)[0]
