"""Repeated `tools/list` answers are the SDK's own first answer, byte for byte; the pre-init gate still holds."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx2
from mcp import Client

from tests.conftest import ServerProcess


class _Stdio:
    """Raw JSON-RPC lines over a server subprocess's pipes: exactly what goes over the wire."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mcp_server", "serve", "--page-size", "3"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._next = 0

    def send(self, method: str, params: dict[str, Any] | None = None, *, notify: bool = False) -> str | None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        if not notify:
            self._next += 1
            message["id"] = self._next
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()
        if notify:
            return None
        while True:
            line = self.process.stdout.readline().decode()
            assert line, "the server closed its output"
            if json.loads(line).get("id") == self._next:
                return line.replace(f'"id":{self._next}', '"id":0')


def test_repeated_listings_are_identical_and_the_gate_still_holds(server_env: dict[str, str]) -> None:
    server = _Stdio(server_env)
    try:
        early = json.loads(server.send("tools/list") or "{}")
        assert "error" in early, "tools/list before initialize must be refused, cached or not"
        server.send(
            "initialize",
            {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        )
        server.send("notifications/initialized", notify=True)
        first = server.send("tools/list")
        again = [server.send("tools/list") for _ in range(3)]
        assert first is not None and all(line == first for line in again)
        cursor = json.loads(first)["result"]["nextCursor"]
        second_page = server.send("tools/list", {"cursor": cursor})
        assert (
            second_page is not None
            and json.loads(second_page)["result"]["tools"] != json.loads(first)["result"]["tools"]
        )
        assert server.send("tools/list", {"cursor": cursor}) == second_page
        bad = json.loads(server.send("tools/list", {"cursor": 7}) or "{}")
        assert bad["error"]["code"] == -32602, "an invalid cursor is still the SDK's to refuse"
    finally:
        server.process.kill()
        server.process.wait()


async def test_listings_over_http_match_in_both_protocol_eras(http_server: ServerProcess) -> None:
    for mode in ("legacy", "2026-07-28"):
        async with Client(f"{http_server.url}/mcp", mode=mode) as client:  # type: ignore[arg-type]
            first = await client.list_tools()
            second = await client.list_tools()
        assert first.model_dump() == second.model_dump() and first.tools
    rest = httpx2.get(f"{http_server.url}/v1/tools", timeout=10).json()["tools"]
    assert {tool.name for tool in first.tools} == {tool["name"] for tool in rest}


async def test_concurrent_misses_of_one_page_keep_one_copy() -> None:
    """Every session asks at once after a reload: one cached page (and one text of it) must remain, not one each."""
    import asyncio
    from types import SimpleNamespace

    from mcp_server._listing_cache import ListingCache

    cache = ListingCache(lambda ctx: "view")
    connection = SimpleNamespace(initialize_accepted=True)  # what the SDK's gate reads after the handshake
    answers = 0

    async def sdk_answer(ctx: Any) -> dict[str, Any]:
        nonlocal answers
        answers += 1
        await asyncio.sleep(0)  # all twenty are in here before the first returns
        return {"tools": [{"name": "t", "inputSchema": {"type": "object"}}]}

    def request(n: int) -> Any:
        return SimpleNamespace(
            method="tools/list",
            request_id=n,
            params=None,
            protocol_version="2025-11-25",
            session=SimpleNamespace(_connection=connection),
        )

    pages = await asyncio.gather(*(cache(request(n), sdk_answer) for n in range(20)))
    assert answers == 20 and all(isinstance(page, dict) and page["tools"] for page in pages)
    assert len(cache._entries) == 1 and len(cache._wire) == 1
    kept = cache._entries[next(iter(cache._entries))]
    assert cache.wire_json(dict(kept)) is not None  # the page that stayed is the one with text
    assert await cache(request(99), sdk_answer) is kept and answers == 20
