"""Lightweight JSON-RPC load clients: just enough MCP to drive a server hard without costing much CPU.

One class per wire, all with the same surface (`start`, `request`, `close`):
- `StdioClient`: newline-delimited JSON-RPC over the server's pipes (2025-11-25 handshake);
- `HttpClient`: Streamable HTTP over `RawHttp`, either the 2026-07-28 per-request envelope (no handshake;
  `_meta` plus `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` headers) or the 2025-11-25
  handshake (`Mcp-Session-Id` and `MCP-Protocol-Version` headers; JSON or SSE answers);
- `SseClient`: legacy HTTP+SSE (GET /sse for the answers, POST /messages/?session_id=... for requests).
Requests may be in flight concurrently: answers are matched by id.

HTTP requests go through `RawHttp`, a minimal HTTP/1.1 keep-alive client on asyncio streams (one
connection per request in flight, Content-Length or chunked answers): about a tenth of httpx2's CPU
per request. With two shared cores, a client costing 0.5 ms a call (httpx2 did) takes a core's worth
of time from the server it measures, and its connection pool's per-request walk grew with 64
connections; the server's CPU counters are read separately either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from typing import Any
from urllib.parse import urlsplit

import httpx2

HANDSHAKE_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"
CLIENT_INFO = {"name": "bench", "version": "1"}
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
    "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
    "io.modelcontextprotocol/clientCapabilities": {},
}


class RpcError(RuntimeError):
    pass


def _result(reply: dict[str, Any], method: str) -> dict[str, Any]:
    if "error" in reply:
        raise RpcError(f"{method}: {reply['error']}")
    return reply["result"]


def _initialize_params() -> dict[str, Any]:
    return {"protocolVersion": HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}


class _Demux:
    """Futures by request id, resolved by whatever reads the answers."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[tuple[dict[str, Any], int]]] = {}

    def open(self) -> tuple[int, asyncio.Future[tuple[dict[str, Any], int]]]:
        request_id = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        return request_id, future

    def deliver(self, message: dict[str, Any], size: int) -> None:
        future = self.pending.pop(message.get("id"), None) if "method" not in message else None  # type: ignore[arg-type]
        if future is not None and not future.done():
            future.set_result((message, size))

    def fail(self, exc: BaseException) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(exc)
        self.pending.clear()


class StdioClient:
    last_bytes = 0

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.demux = _Demux()
        self.reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            while line := await self.process.stdout.readline():
                if line.startswith(b"{"):  # anything else (a profiler's banner) is not protocol
                    self.demux.deliver(json.loads(line), len(line))
        finally:
            self.demux.fail(RpcError("server closed stdout"))

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")

    async def start(self) -> None:
        self.reader = asyncio.create_task(self._read())
        await self.request("initialize", _initialize_params())
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id, future = self.demux.open()
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}})
        assert self.process.stdin is not None
        await self.process.stdin.drain()
        reply, self.last_bytes = await future
        return _result(reply, method)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()


def _parse_sse(text: str) -> list[dict[str, Any]]:
    messages = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in block.split("\n") if line.startswith("data:"))
        if data.strip():
            messages.append(json.loads(data))
    return messages


class RawResponse:
    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers  # lower-cased names
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RpcError(f"HTTP {self.status_code}: {self.text[:200]}")


class RawHttp:
    """HTTP/1.1 with keep-alive on asyncio streams; idle connections are reused, new ones opened on demand."""

    def __init__(self, url: str) -> None:
        parsed = urlsplit(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self.authority = parsed.netloc
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> RawResponse:
        if "://" in target:
            parts = urlsplit(target)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.authority}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        reused = bool(self.idle)
        reader, writer = self.idle.pop() if reused else await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(head + body)
            response, keep = await self._read(reader)
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()
            if not reused:
                raise
            return await self.request(method, target, body, headers)  # the server closed an idle connection
        if keep:
            self.idle.append((reader, writer))
        else:
            writer.close()
        return response

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[RawResponse, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            content = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")  # the empty trailer
            content = b"".join(chunks)
        elif status in (204, 304) or status < 200:
            content = b""
        else:
            return RawResponse(status, headers, await reader.read()), False  # delimited by the close
        return RawResponse(status, headers, content), headers.get("connection", "").lower() != "close"

    async def aclose(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


class HttpClient:
    last_bytes = 0

    def __init__(self, url: str, *, modern: bool) -> None:
        self.url = url
        self.modern = modern
        self.ids = itertools.count(1)
        self.headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        self.http = RawHttp(url)

    async def _post(self, message: dict[str, Any], headers: dict[str, str]) -> RawResponse:
        body = json.dumps(message).encode()
        return await self.http.request("POST", self.url, body, {**self.headers, **headers})

    async def start(self) -> None:
        if self.modern:
            self.headers["MCP-Protocol-Version"] = MODERN_VERSION
            return
        message = {"jsonrpc": "2.0", "id": next(self.ids), "method": "initialize", "params": _initialize_params()}
        response = await self._post(message, {})
        response.raise_for_status()
        self._answer(response, message["id"], "initialize")
        self.headers["Mcp-Session-Id"] = response.headers["mcp-session-id"]
        self.headers["MCP-Protocol-Version"] = HANDSHAKE_VERSION
        (await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"}, {})).raise_for_status()

    def _answer(self, response: RawResponse, request_id: int, method: str) -> dict[str, Any]:
        self.last_bytes = len(response.content)
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            messages = _parse_sse(response.text)
        else:
            messages = [response.json()]
        for message in messages:
            if message.get("id") == request_id and "method" not in message:
                return _result(message, method)
        raise RpcError(f"{method}: HTTP {response.status_code}, no answer in {response.text[:200]!r}")

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = next(self.ids)
        params = dict(params or {})
        headers = {}
        if self.modern:
            params["_meta"] = MODERN_META
            headers["Mcp-Method"] = method
            if method == "tools/call":
                headers["Mcp-Name"] = params["name"]
        response = await self._post({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}, headers)
        return self._answer(response, request_id, method)

    async def close(self) -> None:
        if "Mcp-Session-Id" in self.headers:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                await self.http.request("DELETE", self.url, headers=self.headers)
        await self.http.aclose()


class SseClient:
    last_bytes = 0

    def __init__(self, url: str, connections: int = 100) -> None:
        self.url = url  # .../sse
        self.demux = _Demux()
        limits = httpx2.Limits(max_connections=connections + 1, max_keepalive_connections=connections + 1)
        self.http = httpx2.AsyncClient(timeout=httpx2.Timeout(60, read=None), limits=limits)  # the GET stream
        self.posts = RawHttp(url)
        self.reader: asyncio.Task[None] | None = None
        self.endpoint: asyncio.Future[str] | None = None

    async def _read(self) -> None:
        assert self.endpoint is not None
        try:
            async with self.http.stream("GET", self.url, headers={"Accept": "text/event-stream"}) as response:
                event, data = "message", []
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip())
                    elif not line and data:
                        payload = "\n".join(data)
                        if event == "endpoint":
                            self.endpoint.set_result(str(httpx2.URL(self.url).join(payload)))
                        elif event == "message":
                            self.demux.deliver(json.loads(payload), len(payload))
                        event, data = "message", []
        finally:
            if not self.endpoint.done():
                self.endpoint.set_exception(RpcError("SSE stream closed before the endpoint event"))
            self.demux.fail(RpcError("SSE stream closed"))

    async def _post(self, message: dict[str, Any]) -> None:
        assert self.endpoint is not None
        response = await self.posts.request(
            "POST", await self.endpoint, json.dumps(message).encode(), {"Content-Type": "application/json"}
        )
        if response.status_code >= 300:
            raise RpcError(f"POST {message.get('method')}: HTTP {response.status_code} {response.text[:200]}")

    async def start(self) -> None:
        self.endpoint = asyncio.get_running_loop().create_future()
        self.reader = asyncio.create_task(self._read())
        await self.request("initialize", _initialize_params())
        await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id, future = self.demux.open()
        await self._post({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}})
        reply, self.last_bytes = await future
        return _result(reply, method)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
        await self.posts.aclose()
        await self.http.aclose()


async def list_all_tools(client: Any) -> tuple[int, int, int]:
    """Walk every page: (tools, pages, bytes of the answers on the wire)."""
    count = pages = size = 0
    cursor = None
    while True:
        result = await client.request("tools/list", {"cursor": cursor} if cursor else {})
        count += len(result["tools"])
        pages += 1
        size += client.last_bytes
        cursor = result.get("nextCursor")
        if not cursor:
            return count, pages, size
