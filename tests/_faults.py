"""A fault-injecting upstream on 127.0.0.1, written on raw asyncio sockets so it can misbehave at any byte.

`GET|POST /fault?case=NAME[&n=N][&key=K][&to=URL]` — every request is counted per (case, key):

  ok            200 {"ok": true, "attempt": k}
  reset         closes the connection with an RST before answering
  flaky         the first n requests answer `status` (default 503), then 200
  drip          200 with Content-Length 1000, then one byte per second
  hang          reads the request and never answers; counts in `aborted` when the client hangs up
  huge          200, a 100 MB body sent as fast as the socket takes it
  endless       200, chunked, never ends
  bomb          200, Content-Encoding: gzip, ~200 KB that inflates to 200 MB of zeros
  retry_seconds 429 with Retry-After: n (seconds) the first time, then 200
  retry_date    503 with Retry-After as an HTTP date n seconds ahead the first time, then 200
  ratelimit_reset  429 with X-RateLimit-Reset (epoch) n seconds ahead the first time, then 200
  bigjson       200 {"total": n, "items": [n small objects]}
  redirect      302 to the URL in `to`
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import parse_qs, urlsplit

from tests._upstream import free_port


@cache
def gzip_bomb() -> bytes:
    """200 MB of zeros, gzip-compressed (~200 KB), built in pieces so the test itself stays small."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    parts = [compressor.compress(block) for _ in range(200)]
    parts.append(compressor.flush())
    return b"".join(parts)


@dataclass
class Seen:
    method: str
    case: str
    key: str
    headers: dict[str, str]


@dataclass
class FaultServer:
    port: int = 0
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    seen: list[Seen] = field(default_factory=list)
    aborted: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Hung requests whose client closed the connection (the caller gave up and aborted)."""
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests_for(self, case: str, key: str = "") -> int:
        return self.counts[(case, key)]

    def reset(self) -> None:
        self.counts.clear()
        self.seen.clear()
        self.aborted.clear()

    # ------------------------------------------------------------------ running in a thread

    def start(self) -> FaultServer:
        self.port = free_port()
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()

            async def main() -> None:
                self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
                ready.set()
                async with self._server:
                    await self._server.serve_forever()

            with contextlib.suppress(asyncio.CancelledError):
                self._loop.run_until_complete(main())

        threading.Thread(target=run, daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("fault server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)

    # ------------------------------------------------------------------ one connection

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                method, target, _ = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                if length:
                    await reader.readexactly(length)
                keep_going = await self._answer(method, target, headers, reader, writer)
                if not keep_going:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            if not writer.is_closing():
                writer.close()

    async def _until_closed(self, reader: asyncio.StreamReader, case: str, key: str) -> None:
        try:
            while await reader.read(1024):
                pass
        except ConnectionError:
            pass
        self.aborted[(case, key)] += 1

    async def _answer(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        query = {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
        case, key = query.get("case", "ok"), query.get("key", "")
        self.counts[(case, key)] += 1
        attempt = self.counts[(case, key)]
        self.seen.append(Seen(method, case, key, headers))
        n = int(query.get("n", "1"))

        async def send(status: int, body: bytes = b"", extra: dict[str, str] | None = None) -> None:
            head = {"Content-Type": "application/json", "Content-Length": str(len(body)), **(extra or {})}
            lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in head.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()

        ok_body = json.dumps({"ok": True, "attempt": attempt}).encode()
        if case == "ok":
            await send(200, ok_body)
        elif case == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        elif case == "flaky":
            status = int(query.get("status", "503"))
            await (send(status, b'{"message": "try again"}') if attempt <= n else send(200, ok_body))
        elif case == "drip":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(1000):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(1)
        elif case == "hang":
            await self._until_closed(reader, case, key)
            return False
        elif case == "huge":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n")
            chunk = b"x" * 65536
            for _ in range(1600):
                writer.write(chunk)
                await writer.drain()
        elif case == "endless":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"y" * 65536
            while True:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
        elif case == "bomb":
            await send(200, gzip_bomb(), {"Content-Encoding": "gzip"})
        elif case == "retry_seconds":
            await (send(429, b"{}", {"Retry-After": str(n)}) if attempt == 1 else send(200, ok_body))
        elif case == "retry_date":
            when = email.utils.formatdate(time.time() + n, usegmt=True)
            await (send(503, b"{}", {"Retry-After": when}) if attempt == 1 else send(200, ok_body))
        elif case == "ratelimit_reset":
            reset_at = str(int(time.time()) + n)
            await (send(429, b"{}", {"X-RateLimit-Reset": reset_at}) if attempt == 1 else send(200, ok_body))
        elif case == "bigjson":
            items = [{"id": index, "name": f"item number {index}"} for index in range(n)]
            await send(200, json.dumps({"total": n, "items": items}).encode())
        elif case == "redirect":
            await send(302, b"", {"Location": query["to"]})
        else:
            await send(404, b'{"message": "unknown case"}')
        return True
