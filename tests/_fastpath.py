"""Switching an HTTP fast path (`ModernToolCalls`, `SessionToolCalls`) off and on around a request."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

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
