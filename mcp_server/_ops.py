"""Operating the HTTP server: readiness, status, session accounting and a graceful drain.

- `GET /ready`: 200 only when the catalog loaded (at least one tool, or no refused manifest) and
  the vault opens with its key (`check()`, run off the event loop, cached for 2 s); 503 with the
  reasons otherwise, and while draining.
- `GET /v1/status`: connectors (loaded with tool counts, or refused with the fault, or serving
  the previous version of a manifest that became invalid), the vault and the audit log — where
  they are and whether they work, never a secret.
- Drain (SIGTERM): uvicorn stops accepting and waits for open connections; `Drain` waits for the
  tool calls in flight (up to the drain timeout), then ends every long-lived stream — SSE
  sessions, Streamable HTTP sessions (their GET streams), `subscriptions/listen` streams — so an
  idle client cannot hold the process open until the timeout. sse-starlette's own reaction to
  SIGTERM (ending every SSE response at once, the answers of running tool calls included) is
  switched off and replaced by this order.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import uvicorn
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from sse_starlette.sse import AppStatus
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from mcp_server._audit import AuditLog
from mcp_server._changes import ToolListChanges
from mcp_server._config import DEFAULT_DRAIN_TIMEOUT, Settings
from mcp_server._errors import VaultError
from mcp_server._metrics import CallMetrics
from mcp_server._model import Catalog, ManifestFault
from mcp_server._pipeline import Pipeline
from mcp_server._reload import CatalogReloader, CatalogState
from mcp_server._secrets import SecretStore
from mcp_server._vault_store import open_vault

logger = logging.getLogger("mcp_server.ops")

_VAULT_CHECK_TTL = 2.0


class SessionManager(StreamableHTTPSessionManager):
    """The SDK's Streamable HTTP session manager, with its open sessions counted and closable at shutdown.

    The one place that reads the manager's session table and a transport's request count (the SDK 2.3 has
    no public accessor for them).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._calls: dict[str, set[anyio.CancelScope]] = {}

    @property
    def running(self) -> bool:
        """Between `run()` and its end: the SDK refuses requests outside it."""
        return self._task_group is not None

    @property
    def open_sessions(self) -> int:
        return len(self._server_instances)

    @contextmanager
    def serving(
        self, session_id: str, transport: StreamableHTTPServerTransport, cancel: anyio.CancelScope
    ) -> Generator[None]:
        """Around a call answered outside the transport (`_http_session_fastpath`), what the SDK does around the
        requests its transport serves: `cancel` is cancelled if the session ends meanwhile (`_discard_session`),
        and the session's idle countdown waits for the call (`_idle_held`)."""
        calls = self._calls.setdefault(session_id, set())
        calls.add(cancel)
        try:
            with _idle_held(transport):
                yield
        finally:
            calls.discard(cancel)
            if not calls and self._calls.get(session_id) is calls:
                del self._calls[session_id]

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        # Every way a session ends (DELETE, idle timeout, a crash, `close_sessions`) passes here.
        for cancel in self._calls.pop(session_id, ()):
            cancel.cancel()
        await super()._discard_session(session_id, transport)

    def session_for(self, session_id: str, scope: Scope) -> StreamableHTTPServerTransport | None:
        """The session's transport when this request may use it: the SDK's own test (`_handle_stateful_request`),
        a session is served only to the credential that created it."""
        transport = self._server_instances.get(session_id)
        if transport is None:
            return None
        user = scope.get("user")
        requestor = authorization_context(user) if isinstance(user, AuthenticatedUser) else None
        return transport if requestor == self._session_owners.get(session_id) else None

    async def close_sessions(self) -> None:
        """End every stateful session (and with it its GET stream); their ids answer 404 afterwards."""
        for session_id, transport in list(self._server_instances.items()):
            await self._discard_session(session_id, transport)


@contextmanager
def _idle_held(transport: StreamableHTTPServerTransport) -> Generator[None]:
    """What the transport's `handle_request` does around each request: no idle countdown while one runs,
    a fresh one from when the last ends."""
    scope = transport.idle_scope
    timeout: float | None = transport._idle_timeout  # pyright: ignore[reportPrivateUsage]
    if scope is None or timeout is None:
        yield
        return
    transport._requests_in_flight += 1  # pyright: ignore[reportPrivateUsage]
    scope.deadline = math.inf
    try:
        yield
    finally:
        transport._requests_in_flight -= 1  # pyright: ignore[reportPrivateUsage]
        if not transport._requests_in_flight:  # pyright: ignore[reportPrivateUsage]
            scope.deadline = anyio.current_time() + timeout


class Drain:
    """Graceful shutdown of the long-lived parts: waits for tool calls, then ends the streams."""

    def __init__(self, metrics: CallMetrics, timeout: float = DEFAULT_DRAIN_TIMEOUT) -> None:
        self.timeout = timeout
        self._metrics = metrics
        self.started = anyio.Event()
        self._streams: set[anyio.CancelScope] = set()
        self.closers: list[Callable[[], Awaitable[None]]] = []

    @property
    def draining(self) -> bool:
        return self.started.is_set()

    def begin(self) -> None:
        if not self.started.is_set():
            logger.info(
                "draining: %d tool calls in flight, up to %.0f s",
                self._metrics.in_flight,
                self.timeout,
                extra={"event": "drain", "in_flight": self._metrics.in_flight},
            )
            self.started.set()

    async def sse_session(self, serve: Callable[[], Awaitable[None]]) -> None:
        """Run one SSE session, counted, and ended by the drain once the calls in flight are done."""
        if self.draining:
            return
        self._metrics.session_opened("sse")
        with anyio.CancelScope() as scope:
            self._streams.add(scope)
            try:
                await serve()
            finally:
                self._streams.discard(scope)
                self._metrics.session_closed("sse")

    async def run(self) -> None:
        """Waits for `begin()`, then for the calls in flight (bounded), then closes every stream."""
        await self.started.wait()
        started = time.monotonic()
        with anyio.move_on_after(self.timeout):
            while self._metrics.in_flight > 0:  # noqa: ASYNC110 - a counter the pipeline owns; polled only while draining
                await anyio.sleep(0.05)
        if self._metrics.in_flight:
            logger.warning("drain timeout: %d tool calls still running will be cancelled", self._metrics.in_flight)
        AppStatus.should_exit = True  # now sse-starlette may end every SSE response still open
        for scope in list(self._streams):
            scope.cancel()
        for close in self.closers:
            try:
                await close()
            except Exception:
                logger.exception("closing sessions during the drain failed")
        logger.info("drained in %.1f s; closing", time.monotonic() - started)


class DrainingServer(uvicorn.Server):
    """uvicorn, telling the app's `Drain` the moment shutdown starts (uvicorn has no hook of its own for it)."""

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self._drain = drain
        # sse-starlette ends every SSE response the moment uvicorn sees SIGTERM — the Streamable HTTP answers of
        # tool calls still running included. The drain tells it when instead (`AppStatus.should_exit` above).
        AppStatus.disable_automatic_graceful_drain()

    async def shutdown(self, sockets: Any = None) -> None:
        self._drain.begin()
        await super().shutdown(sockets)


class Readiness:
    """`/ready` and `/v1/status`."""

    def __init__(
        self,
        pipeline: Pipeline,
        state: CatalogState,
        vault: SecretStore | None,
        audit: AuditLog | None,
        drain: Drain | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._state = state
        self._vault = vault
        self._audit = audit
        self._drain = drain
        self._vault_checked: tuple[float, str | None] | None = None
        self._lock = anyio.Lock()

    async def vault_problem(self) -> str | None:
        """None when the vault opens with its key; else the reason (no secret in it). Cached for 2 s."""
        if self._vault is None:
            return None
        async with self._lock:
            cached = self._vault_checked
            if cached is not None and time.monotonic() - cached[0] < _VAULT_CHECK_TTL:
                return cached[1]
            problem = await anyio.to_thread.run_sync(_check, self._vault)
            self._vault_checked = (time.monotonic(), problem)
            return problem

    def catalog_problem(self) -> str | None:
        catalog = self._state.catalog
        if len(self._pipeline.registry) == 0 and catalog.faults:
            return f"no tools are served: all {len(catalog.faults)} manifests were refused"
        return None

    async def ready(self, request: Request) -> Response:
        reasons: dict[str, str] = {}
        if self._drain is not None and self._drain.draining:
            reasons["server"] = "shutting down"
        problem = self.catalog_problem()
        if problem:
            reasons["catalog"] = problem
        problem = await self.vault_problem()
        if problem:
            reasons["vault"] = problem
        if reasons:
            return JSONResponse({"status": "unavailable", "reasons": reasons}, status_code=503)
        return JSONResponse({"status": "ready", "tools": len(self._pipeline.registry)})

    async def status(self, request: Request) -> Response:
        return JSONResponse(await self.describe())

    async def describe(self) -> dict[str, Any]:
        state = self._state
        counts: dict[str, int] = {}
        for tool in self._pipeline.registry:
            counts[tool.connector.name] = counts.get(tool.connector.name, 0) + 1
        kept = {version.connector.source: version for version in state.kept}
        connectors: list[dict[str, Any]] = []
        for connector in sorted(state.catalog.connectors, key=lambda c: c.name):
            entry: dict[str, Any] = {
                "name": connector.name,
                "title": connector.title,
                "file": str(connector.source) if connector.source else None,
                "state": "loaded",
                "tools": counts.get(connector.name, 0),
                "operations": len(connector.operations),
            }
            version = kept.get(connector.source)
            if version is not None:
                entry["state"] = "stale"
                entry["fault"] = _fault(version.fault)
            connectors.append(entry)
        kept_files = set(kept)
        faults = [
            {**_fault(fault), "serving_previous_version": fault.file in kept_files} for fault in state.catalog.faults
        ]
        vault_problem = await self.vault_problem()
        vault: dict[str, Any] = {"ok": vault_problem is None}
        if self._vault is not None:
            vault["store"] = self._vault.describe()
        if vault_problem:
            vault["error"] = vault_problem
        audit: dict[str, Any] = {"enabled": self._audit is not None}
        if self._audit is not None:
            path = self._audit.path
            audit["path"] = str(path)
            audit["writable"] = os.access(path, os.W_OK) if path.exists() else os.access(path.parent, os.W_OK)
        return {
            "status": "draining" if self._drain is not None and self._drain.draining else "ok",
            "connectors": connectors,
            "manifest_faults": faults,
            "tools": len(self._pipeline.registry),
            "reloads": state.reloads,
            "last_reload_error": state.last_error,
            "vault": vault,
            "audit": audit,
        }


def _fault(fault: ManifestFault) -> dict[str, str]:
    return {"file": str(fault.file), "json_path": fault.json_path, "reason": fault.reason}


def _check(vault: SecretStore) -> str | None:
    try:
        vault.check()
    except VaultError as exc:
        return exc.message
    except Exception as exc:  # an unexpected failure still means "not ready", never a 500 from a probe
        logger.exception("vault check failed unexpectedly")
        return f"the vault check failed: {type(exc).__name__}"
    return None


class Operations:
    """The operational parts one served process shares between its transports: the served catalog,
    hot reload, tools/list_changed delivery, readiness and the drain."""

    def __init__(self, pipeline: Pipeline, catalog: Catalog, settings: Settings, *, drain: Drain | None = None) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.state = CatalogState(catalog)
        self.changes = ToolListChanges(pipeline.metrics)
        self.state.listeners.append(self.changes.publish)
        self.reloader = CatalogReloader(
            pipeline,
            self.state,
            tools_dirs=settings.tools_dirs,
            include=settings.include_tools,
            exclude=settings.exclude_tools,
        )
        self.drain = drain or Drain(pipeline.metrics, settings.drain_timeout)
        self.readiness = Readiness(pipeline, self.state, open_vault(settings), pipeline.audit, self.drain)

    def session_manager(self, server: Server[Any]) -> SessionManager:
        """The Streamable HTTP session manager (stateless with `--stateless`), counted and drained."""
        manager = SessionManager(app=server, stateless=self.settings.stateless)
        self.pipeline.metrics.watch_sessions("streamable_http", lambda: manager.open_sessions)
        self.drain.closers.append(manager.close_sessions)
        return manager

    @asynccontextmanager
    async def running(self, *, http: bool) -> AsyncGenerator[None]:
        """Hot reload (files and SIGHUP) and, for HTTP, the drain, for as long as the server runs."""
        async with anyio.create_task_group() as group:
            group.start_soon(
                functools.partial(
                    self.reloader.run, watch=self.settings.watch_tools, interval=self.settings.watch_interval
                )
            )
            if http:
                self.drain.closers.append(self._close_listen_streams)
                group.start_soon(self.drain.run)
            try:
                yield
            finally:
                self.changes.close()
                group.cancel_scope.cancel()

    async def _close_listen_streams(self) -> None:
        self.changes.close()
