"""The fake upstream: a minimal HTTP/1.1 keep-alive server on 127.0.0.1 returning a small JSON body.

    python bench/upstream.py TOKEN        # prints the port on stdout, serves until stdin closes

Every request gets `{"id": ..., "name": ..., "price": ..., "tags": [...]}` (~120 bytes) if it carries
`Authorization: Bearer TOKEN`, else 401. `GET /stats` answers `{"ok": n, "unauthorized": n}` so the
bench can prove the credential reached the upstream on every call. Written on raw asyncio so it costs
a few tens of microseconds per request and never becomes the bottleneck being measured.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx2


class _Upstream(asyncio.Protocol):
    stats = {"ok": 0, "unauthorized": 0}
    expected = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            lines = head.split(b"\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self._answer(lines[0].split(b" ")[1], headers)

    def _answer(self, target: bytes, headers: dict[bytes, bytes]) -> None:
        if target == b"/stats":
            status, body = b"200 OK", json.dumps(self.stats).encode()
        elif headers.get(b"authorization") == self.expected:
            self.stats["ok"] += 1
            item = target.rsplit(b"/", 1)[-1].decode("latin-1")
            status = b"200 OK"
            body = json.dumps({"id": item, "name": "Widget", "price": 12.5, "in_stock": True, "tags": ["a", "b"]})
            body = body.encode()
        else:
            self.stats["unauthorized"] += 1
            status, body = b"401 Unauthorized", b'{"message": "bad credentials"}'
        self.transport.write(
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )


async def _serve(token: str) -> None:
    _Upstream.expected = b"Bearer " + token.encode()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Upstream, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    # Serve until the parent closes our stdin.
    await loop.run_in_executor(None, sys.stdin.read)


class Upstream:
    """The upstream as a child process (its CPU is not ours, nor the server's)."""

    def __init__(self, token: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.token = token
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(token + "\n")
        self.process.stdin.flush()
        self.port = int(self.process.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, int]:
        return httpx2.get(f"{self.url}/stats").json()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


if __name__ == "__main__":
    asyncio.run(_serve(sys.stdin.readline().strip()))
