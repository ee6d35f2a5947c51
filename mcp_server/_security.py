"""Host and Origin checks for every HTTP route, on every bind address.

The SDK guards only loopback binds and only its own MCP routes; this middleware
covers the REST façade, `/health` and `/metrics` too, and any bind address.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server._config import LOOPBACK_HOSTS

WILDCARD_BINDS = ("0.0.0.0", "::", "")  # noqa: S104 - recognising a wildcard bind, not binding one


# RFC 9110 Host: uri-host [ ":" port ] — an IP literal in brackets or a name, nothing else (no
# userinfo, path, query or fragment for a URL parser to skip over).
_HOST_SHAPE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s/\\?#@\[\]:]+)(:[0-9]{1,5})?")


def _hostname(host_header: str) -> str | None:
    """`example.com:8765` → `example.com`; `[::1]:8765` → `::1`; None if unparseable."""
    if not _HOST_SHAPE.fullmatch(host_header):
        return None
    try:
        parsed = urlsplit(f"//{host_header}")
        _ = parsed.port  # raises on a non-numeric port
    except ValueError:
        return None
    return parsed.hostname


class HostOriginGuard:
    """Reject requests whose Host is not this server's name (421) or whose Origin is foreign (403).

    Allowed host names: loopback names, the bind address (unless it is a wildcard)
    and `extra_hosts`. An Origin is accepted when absent (non-browser clients),
    when listed in `extra_origins`, or when it is http(s) on an allowed host name.
    """

    def __init__(
        self, app: ASGIApp, *, bind_host: str, extra_hosts: Iterable[str], extra_origins: Iterable[str]
    ) -> None:
        self.app = app
        hosts = {*LOOPBACK_HOSTS, *(h.lower() for h in extra_hosts)}
        if bind_host not in WILDCARD_BINDS:
            hosts.add(bind_host.lower())
        self.allowed_hosts = frozenset(hosts)
        self.allowed_origins = frozenset(o.rstrip("/").lower() for o in extra_origins)

    def host_allowed(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        hostname = _hostname(host_header)
        return hostname is not None and hostname.lower() in self.allowed_hosts

    def origin_allowed(self, origin: str | None) -> bool:
        if origin is None:
            return True
        origin = origin.rstrip("/").lower()
        if origin in self.allowed_origins:
            return True
        try:
            parsed = urlsplit(origin)
            _ = parsed.port  # raises on a non-numeric or out-of-range port
        except ValueError:  # `http://[::1` and the like: refused, not a 500
            return False
        if not _HOST_SHAPE.fullmatch(parsed.netloc) or parsed.path or parsed.query or parsed.fragment:
            return False  # an Origin is scheme://host[:port] only; no userinfo, path, query or fragment
        return parsed.scheme in ("http", "https") and (parsed.hostname or "") in self.allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not self.host_allowed(headers.get("host")):
            await _reject(send, 421, "bad_request", "Host header not allowed (DNS-rebinding protection)")
            return
        if not self.origin_allowed(headers.get("origin")):
            await _reject(send, 403, "forbidden", "Origin not allowed")
            return
        await self.app(scope, receive, send)


async def _reject(send: Send, status: int, error: str, message: str) -> None:
    body = json.dumps({"error": error, "message": message, "details": {}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
