"""A connector's upstream connection pool, split into a few smaller pools.

httpcore2's pool walks every connection it holds each time a request joins or leaves it (closed?
expired? idle? reusable?), so its cost per request grows with the number of requests in flight. At 64
calls in flight to one upstream that walk was the largest single cost that 8 in flight does not have
(`_assign_requests_to_connections`, in-process: 555 µs of CPU per call at 8 in flight, 706 µs at 64;
split eight ways, 557 and 624 µs; docs/benchmarks/changes.md). Each shard walks an eighth of the
connections.

A request goes to the shard with the fewest responses open, so the load spreads as it would over one
pool and a slow request ties up only its own connection. The limits are divided between the shards so
that they add up to the connector's: it never holds more connections, open or idle, than one pool would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Final

import httpx2

SHARDS: Final = 8


def split_limits(limits: httpx2.Limits, shards: int = SHARDS) -> list[httpx2.Limits]:
    """`limits` divided between at most `shards` pools, with the same totals (fewer pools than `shards`
    when the connector allows fewer connections)."""
    if limits.max_connections is not None:
        shards = max(1, min(shards, limits.max_connections))
    return [
        httpx2.Limits(
            max_connections=_part(limits.max_connections, shards, index),
            max_keepalive_connections=_part(limits.max_keepalive_connections, shards, index),
            keepalive_expiry=limits.keepalive_expiry,
        )
        for index in range(shards)
    ]


def _part(total: int | None, shards: int, index: int) -> int | None:
    if total is None:
        return None
    return total // shards + (1 if index < total % shards else 0)


class ShardedTransport(httpx2.AsyncBaseTransport):
    """One transport per share of `limits`, made by `make`; see the module docstring."""

    def __init__(self, limits: httpx2.Limits, make: Callable[[httpx2.Limits], httpx2.AsyncBaseTransport]) -> None:
        self._shards = [make(share) for share in split_limits(limits)]
        self._open = [0] * len(self._shards)

    @property
    def open_responses(self) -> tuple[int, ...]:
        """Responses handed out and not yet closed, per shard."""
        return tuple(self._open)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        index = self._open.index(min(self._open))
        self._open[index] += 1
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            self._open[index] -= 1
            raise
        response.stream = _Counted(response.stream, lambda: self._closed(index))
        return response

    def _closed(self, index: int) -> None:
        self._open[index] -= 1

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


class _Counted(httpx2.AsyncByteStream):
    """A response body that reports, once, when it is closed (its connection back in its shard's pool)."""

    def __init__(self, stream: httpx2.SyncByteStream | httpx2.AsyncByteStream, closed: Callable[[], None]) -> None:
        self._stream = stream
        self._closed: Callable[[], None] | None = closed

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if not isinstance(self._stream, httpx2.AsyncByteStream):
            raise TypeError("an async transport answered with a sync body")
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            if isinstance(self._stream, httpx2.AsyncByteStream):
                await self._stream.aclose()
        finally:
            closed, self._closed = self._closed, None
            if closed is not None:
                closed()
