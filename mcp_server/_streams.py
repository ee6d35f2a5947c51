"""A bound on the long-lived streams one authenticated client holds open at once.

Tool calls are bounded per client by `_access.ClientLimiter`; a stream is not a call, but each one holds
a connection and a task (an SSE session holds a whole MCP session) until its client goes away, so
without a bound one client could hold any number. Counted, per client across the whole process:

    GET  /sse                      a legacy HTTP+SSE session
    GET  /mcp                      a Streamable HTTP session's standalone stream (handshake era)
    POST /mcp, Mcp-Method: subscriptions/listen
                                   a 2026-07-28 listen stream (the SDK refuses a request whose body
                                   names another method than the header, so the header can be trusted)
    GET  /v1/events/{connector}    webhook events as Server-Sent Events

Over the bound the request is refused at once, before the route sees it: 429 with the REST error shape
(as the other per-client limits and the authentication refusals answer on every path),
`{"error": "rate_limit_exceeded", "details": {"limit": "client", "reason": "streams", "max_streams",
"retry_after"}}` and `Retry-After`. The slot is freed when the stream's request ends, however it ends.
Unauthenticated (local) use is not limited, like the other per-client limits.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server._access import ClientUser
from mcp_server._rest import rest_error

RETRY_AFTER_SECONDS: Final = 5
"""What a refused client is told to wait: a stream slot frees when one of its streams ends, not on a clock."""

_LISTEN: Final = b"subscriptions/listen"


def opens_stream(scope: Scope) -> bool:
    """Whether this HTTP request is one of the long-lived streams in the module docstring."""
    method: str = scope["method"]
    path: str = scope["path"]
    if method == "GET":
        return path in ("/sse", "/mcp") or path.startswith("/v1/events/")
    if method != "POST" or path != "/mcp":
        return False
    return any(name == b"mcp-method" and value.strip() == _LISTEN for name, value in scope["headers"])


class StreamLimit:
    """ASGI middleware (behind authentication): at most `max_streams` open streams per client; None = no bound."""

    def __init__(self, app: ASGIApp, *, max_streams: int | None) -> None:
        self.app = app
        self.max_streams = max_streams
        self._open: Counter[str] = Counter()

    def open_streams(self, client_id: str) -> int:
        return self._open[client_id]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user") if scope["type"] == "http" else None
        if self.max_streams is None or not isinstance(user, ClientUser) or not opens_stream(scope):
            await self.app(scope, receive, send)
            return
        client = user.principal.id
        if self._open[client] >= self.max_streams:
            refusal = rest_error(
                429,
                "rate_limit_exceeded",
                f"This client already holds {self.max_streams} open streams (SSE sessions, listen or event "
                "streams), its limit; close one first",
                limit="client",
                reason="streams",
                max_streams=self.max_streams,
                retry_after=RETRY_AFTER_SECONDS,
            )
            refusal.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            await refusal(scope, receive, send)
            return
        self._open[client] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._open[client] -= 1
            if self._open[client] <= 0:
                del self._open[client]
