"""A fake upstream API on 127.0.0.1 that records every request and can echo it back.

Routes (any method):
  /echo/...          200, JSON of the request as received (method, raw path, query, headers, cookies, body)
  /status/{code}     that status with a JSON error body that echoes the Authorization header
  /text/...          200 text/plain that echoes the request headers
  /empty             204 with no body
  /slow              waits 3 s, then 200
  /big               a 12 MiB JSON body
  /retry-after       429 with Retry-After: 7

`HoldingUpstream` is rawer (asyncio streams): it counts connections and holds `/hold...` requests open
until released, for tests of connection pooling.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send


@dataclass
class Recorded:
    method: str
    raw_path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeUpstream:
    port: int = 0
    requests: list[Recorded] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        raw_path = request.scope["raw_path"].decode("latin-1")
        recorded = Recorded(
            method=request.method,
            raw_path=raw_path,
            query=request.scope["query_string"].decode("latin-1"),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        self.requests.append(recorded)
        path = request.url.path
        echo = {
            "method": recorded.method,
            "path": raw_path,
            "query": recorded.query,
            "headers": recorded.headers,
            "cookies": dict(request.cookies),
            "body": body.decode("utf-8", errors="replace"),
        }
        if path.startswith("/echo"):
            return JSONResponse(echo)
        if path.startswith("/status/"):
            code = int(path.split("/")[2])
            return JSONResponse(
                {"message": f"failure {code}", "echo_auth": recorded.headers.get("authorization", "")},
                status_code=code,
            )
        if path.startswith("/text"):
            return PlainTextResponse("headers were: " + json.dumps(recorded.headers))
        if path == "/empty":
            return Response(status_code=204)
        if path == "/lone-surrogate":  # JSON may spell half of a surrogate pair alone; no UTF-8 text can hold it
            return Response(b'{"lone": "\\ud800 alone", "pair": "\\ud83d\\ude00"}', media_type="application/json")
        if path == "/slow":
            await asyncio.sleep(3)
            return JSONResponse({"slow": True})
        if path == "/slow-echo":  # says which call it answers
            await asyncio.sleep(3)
            return JSONResponse({"slow": True, "query": recorded.query})
        if path == "/big":
            return Response(b'{"data": "' + b"x" * (12 * 1024 * 1024) + b'"}', media_type="application/json")
        if path == "/retry-after":
            return JSONResponse({"message": "slow down"}, status_code=429, headers={"Retry-After": "7"})
        return JSONResponse({"message": "no such route"}, status_code=404)

    def app(self) -> Starlette:
        app = Starlette(
            routes=[
                Route(
                    "/{path:path}", self._handle, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
                )
            ]
        )

        async def unmatched(scope: Scope, receive: Receive, send: Send) -> None:
            # A path with a newline (%0A) escapes the route's `.*`; it is still a request to record and echo.
            response = await self._handle(Request(scope, receive))
            await response(scope, receive, send)

        app.router.default = unmatched
        return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppThread:
    """Runs an ASGI app with uvicorn on 127.0.0.1 in a daemon thread; `config` goes to `uvicorn.Config` (TLS...)."""

    def __init__(self, app: Any, *, port: int | None = None, log_level: str = "warning", **config: Any) -> None:
        self.port = port if port is not None else free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level=log_level, **config)
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self, timeout: float = 10) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the in-process server did not start")
            time.sleep(0.01)

    def stop(self, timeout: float = 5) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=timeout)


class UpstreamThread:
    """Runs a `FakeUpstream` (or a subclass with more routes) with uvicorn in a daemon thread."""

    def __init__(self, upstream: FakeUpstream | None = None) -> None:
        self.upstream = upstream or FakeUpstream()
        self.upstream.port = free_port()
        self._thread = AppThread(self.upstream.app(), port=self.upstream.port)

    def start(self) -> FakeUpstream:
        self._thread.start()
        return self.upstream

    def stop(self) -> None:
        self._thread.stop()


@dataclass
class HoldingUpstream:
    """HTTP/1.1 on loopback: a `/hold...` request is answered when `release` is set; counts connections."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    held: int = 0
    held_changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    open_connections: int = 0
    peak_connections: int = 0
    connections: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        self.peak_connections = max(self.peak_connections, self.open_connections)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if head.split(b" ", 2)[1].startswith(b"/hold"):
                    async with self.held_changed:
                        self.held += 1
                        self.held_changed.notify_all()
                    try:
                        await self.release.wait()
                    finally:
                        self.held -= 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_connections -= 1
            writer.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def wait_held(self, count: int) -> None:
        async with self.held_changed:
            await self.held_changed.wait_for(lambda: self.held >= count)


@asynccontextmanager
async def serve_holding() -> AsyncIterator[HoldingUpstream]:
    fake = HoldingUpstream()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    try:
        yield fake
    finally:
        fake.release.set()
        server.close()
