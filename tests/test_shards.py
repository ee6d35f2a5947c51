"""The sharded upstream pool: limits add up, load spreads, counts come back, connections stay bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx2
import pytest

from mcp_server._shards import SHARDS, ShardedTransport, split_limits
from tests._upstream import HoldingUpstream, serve_holding


@pytest.fixture
async def upstream() -> AsyncIterator[HoldingUpstream]:
    async with serve_holding() as fake:
        yield fake


def sharded(max_connections: int, keepalive: int) -> ShardedTransport:
    return ShardedTransport(
        httpx2.Limits(max_connections=max_connections, max_keepalive_connections=keepalive),
        lambda limits: httpx2.AsyncHTTPTransport(trust_env=False, limits=limits),
    )


@pytest.mark.parametrize(
    ("connections", "keepalive", "expected_pools"),
    [(100, 20, SHARDS), (SHARDS + 1, 0, SHARDS), (3, 2, 3), (1, 1, 1)],
)
def test_limits_split_with_the_same_totals(connections: int, keepalive: int, expected_pools: int) -> None:
    shares = split_limits(httpx2.Limits(max_connections=connections, max_keepalive_connections=keepalive))
    assert len(shares) == expected_pools
    assert sum(share.max_connections or 0 for share in shares) == connections
    assert sum(share.max_keepalive_connections or 0 for share in shares) == keepalive
    assert all(share.max_connections for share in shares)


def test_unlimited_stays_unlimited() -> None:
    shares = split_limits(httpx2.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=3))
    assert len(shares) == SHARDS
    assert {(s.max_connections, s.max_keepalive_connections, s.keepalive_expiry) for s in shares} == {(None, None, 3)}


async def test_requests_go_to_the_least_busy_pool_and_are_counted_back(upstream: HoldingUpstream) -> None:
    transport = sharded(100, 20)
    async with httpx2.AsyncClient(transport=transport) as client:
        held = [asyncio.create_task(client.get(upstream.url("/hold"))) for _ in range(SHARDS + 2)]
        for _ in range(200):
            if sum(transport.open_responses) == SHARDS + 2:
                break
            await asyncio.sleep(0.01)
        # Every pool took one before any took a second.
        assert sorted(transport.open_responses) == [1] * (SHARDS - 2) + [2, 2]
        upstream.release.set()
        responses = await asyncio.gather(*held)
        assert [r.text for r in responses] == ["ok"] * (SHARDS + 2)
        assert transport.open_responses == (0,) * SHARDS


async def test_a_response_closed_unread_is_counted_back(upstream: HoldingUpstream) -> None:
    transport = sharded(100, 20)
    async with httpx2.AsyncClient(transport=transport) as client:
        async with client.stream("GET", upstream.url("/x")) as response:
            assert response.status_code == 200
            assert sum(transport.open_responses) == 1
        assert transport.open_responses == (0,) * SHARDS
        assert (await client.get(upstream.url("/x"))).text == "ok"


async def test_a_failed_request_is_counted_back() -> None:
    closed = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    transport = sharded(100, 20)
    async with httpx2.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx2.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")
        assert transport.open_responses == (0,) * SHARDS


async def test_never_more_connections_than_the_limit(upstream: HoldingUpstream) -> None:
    transport = sharded(4, 4)
    async with httpx2.AsyncClient(transport=transport) as client:
        held = [asyncio.create_task(client.get(upstream.url("/hold"))) for _ in range(12)]
        await asyncio.sleep(0.3)
        assert upstream.open_connections == 4  # the other eight wait in their pools
        upstream.release.set()
        assert all(r.status_code == 200 for r in await asyncio.gather(*held))
    assert upstream.peak_connections == 4


async def test_idle_connections_are_reused(upstream: HoldingUpstream) -> None:
    transport = sharded(100, 20)
    async with httpx2.AsyncClient(transport=transport) as client:
        for _ in range(50):
            assert (await client.get(upstream.url("/x"))).text == "ok"
    assert upstream.connections == 1
