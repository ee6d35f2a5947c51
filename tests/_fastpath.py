"""Switching an HTTP fast path (`ModernToolCalls`, `SessionToolCalls`, `SseToolCalls`) off and on around a request;
the handshake-era calls the session and SSE fast paths must answer as the SDK does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import pytest

T = TypeVar("T")


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

# The calls the handshake-era fast paths answer: each must be the SDK's answer, byte for byte.
ANSWERED = [
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
