"""The HTTP fast paths' tests share this: the app served in-process, switching a fast path (`ModernToolCalls`,
`SessionToolCalls`, `SseToolCalls`) off and on around a request, and the calls each must answer as the SDK does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
from starlette.applications import Starlette

from mcp_server._app import build_application
from mcp_server._config import Settings
from mcp_server._http import build_http_app
from mcp_server._pipeline import Pipeline
from tests._upstream import AppThread
from tests.conftest import PASSPHRASE

T = TypeVar("T")


@contextmanager
def served_app(tools_dir: Path, vault_path: Path, tmp_path: Path) -> Iterator[tuple[Starlette, Pipeline, str]]:
    """The HTTP app `serve --transport http` builds over `tools_dir`, run by uvicorn on a loopback port for the
    block: the app (to find an endpoint in), its pipeline and its URL."""
    environ = {"MCP_CONNECTORS_VAULT_KEY": PASSPHRASE, "MCP_CONNECTORS_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    settings = Settings.resolve(environ=environ, tools_dirs=[tools_dir], vault_path=vault_path, watch_tools=False)
    application = build_application(settings)
    app = build_http_app(application.pipeline, application.catalog, settings)
    server = AppThread(app)
    server.start(timeout=20)
    try:
        yield app, application.pipeline, f"http://127.0.0.1:{server.port}"
    finally:
        server.stop(timeout=10)


class FastPath(Protocol):
    enabled: bool
    answered: int


@contextmanager
def fast_path(endpoint: FastPath, enabled: bool) -> Iterator[None]:
    """The fast path on or off for the block; on again after it."""
    endpoint.enabled = enabled
    try:
        yield
    finally:
        endpoint.enabled = True


def both_ways(endpoint: FastPath, ask: Callable[[], T]) -> tuple[T, int]:
    """`ask()` with the fast path on, checked equal to the SDK's answer (fast path off); and calls it answered."""
    before = endpoint.answered
    fast = ask()
    taken = endpoint.answered - before
    with fast_path(endpoint, False):
        sdk = ask()
    assert endpoint.answered - before == taken, "the SDK run went through the fast path"
    assert fast == sdk, f"fast path {fast!r}\n      SDK {sdk!r}"
    return fast, taken


def call(name: str, arguments: Any = None, request_id: Any = 1, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name}
    if arguments is not None:
        params["arguments"] = arguments
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params, **extra}


def cancellation(request_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}


# What a 2026-07-28 request carries in `_meta`; a handshake-era session's SDK loop refuses it.
MODERN_ENVELOPE = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}


def answered_calls(call: Callable[..., dict[str, Any]]) -> list[Any]:
    """The calls every fast path answers, each of which must be the SDK's answer byte for byte; `call` spells a
    `tools/call` in the fast path's protocol era."""
    return [
        pytest.param(call("echo_get_item", {"item_id": "42", "verbose": True, "tags": ["a", "b"]}), id="json-result"),
        pytest.param(call("echo_get_item", {"item_id": "ünïcødé ✓ 日本"}, request_id="str-id"), id="unicode-string-id"),
        pytest.param(call("echo_create_item", {"title": "x", "count": 3}, request_id=2**53 + 1), id="post-big-id"),
        pytest.param(call("echo_text"), id="text-result"),
        pytest.param(call("echo_empty", {}), id="empty-result"),
        pytest.param(call("echo_fail", {"code": 404}), id="upstream-404-tool-error"),
        pytest.param(call("echo_fail", {"code": 500}), id="upstream-500-tool-error"),
        pytest.param(call("echo_get_item", {"item_id": "1", "limit": 1000}), id="invalid-argument-tool-error"),
        pytest.param(call("echo_get_item", {}), id="missing-argument-tool-error"),
        pytest.param(call("echo_get_item", {"item_id": "1", "limit": "ünï ✓"}), id="non-ascii-in-error"),
        pytest.param(call("echo_create_item", {"title": "日本 ✓", "count": 1}), id="non-ascii-upstream-body"),
        pytest.param(call("missing_whoami"), id="missing-secret-tool-error"),
        pytest.param(call("no_such_tool", {"a": 1}), id="unknown-tool-jsonrpc-error"),
        pytest.param(call("keyhdr_whoami", {}), id="secret-in-header"),
        pytest.param(call("echo_get_item", {"item_id": "1"}, request_id=0), id="id-zero"),
    ]


# The handshake-era fast paths' (sessions, legacy SSE).
ANSWERED = answered_calls(call)
