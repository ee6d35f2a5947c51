"""One HTTP exchange with an upstream: guarded destination, pinned address, redirects, bounded body.

Every hop (the first request and each redirect) is checked by the connector's
`DestinationPolicy`, and the connection goes to the address that was checked —
never to a second DNS answer — with the Host header and TLS server name of the
original name. A cross-origin redirect drops every credential header. The body is
read raw and decoded by `BoundedDecoder`, so neither a huge body nor a
decompression bomb costs more than about the configured cap.

Failures before a complete response are `TransportFailure`s, which the pipeline's
retry loop classifies; everything else is a `ToolError`.
"""

from __future__ import annotations

import email.message
import functools
import ipaddress
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal, cast
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx2

from mcp_server._body import ACCEPT_ENCODING, BodyDecodeError, BodyTooLarge, BoundedDecoder, UnsupportedEncoding
from mcp_server._errors import ResponseTooLarge, UpstreamError, UpstreamUnreachable
from mcp_server._model import Timeouts
from mcp_server._netguard import DestinationPolicy
from mcp_server._request import PreparedRequest

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}

FailureKind = Literal["connect", "connect_timeout", "read_timeout", "reset"]


class TransportFailure(Exception):
    """An attempt that ended without a complete response.

    `may_have_reached_upstream` is False only when no byte of the request can have
    been processed (connection refused, DNS failure, connect timeout).
    """

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail)
        self.kind: FailureKind = kind
        self.may_have_reached_upstream = kind in ("read_timeout", "reset")


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    encoding: str | None
    final_url: str
    """Without its query string, which may carry an API key."""


def public_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


def _usable_origin(url: str, what: str) -> tuple[str, str, int]:
    """`_origin(url)`, or the `UpstreamError` for a port the HTTP client reads but the standard library cannot
    (`:+80`): an upstream's redirect may carry one, and it must not become an internal error."""
    try:
        return _origin(url)
    except ValueError:
        shown = public_url(url)
        raise UpstreamError(f"{what} {shown} has a port that cannot be used", url=shown) from None


def _pinned_url(url: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    parts = urlsplit(url)
    host = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def host_header(url: str) -> str:
    parts = urlsplit(url)
    scheme, host, port = _origin(url)
    shown = f"[{host}]" if ":" in host else host
    return shown if port == _DEFAULT_PORTS.get(scheme) or parts.port is None else f"{shown}:{port}"


def _redirected_method(status: int, method: str) -> str:
    """303 always becomes GET; 301/302 turn POST into GET as every HTTP client does; 307/308 keep the method."""
    if status == 303 and method != "HEAD":
        return "GET"
    if status in (301, 302) and method == "POST":
        return "GET"
    return method


class Exchange:
    """Sends `PreparedRequest`s for one connector.

    Straight to the connector's httpx2 transport (its connection pool), not through an `AsyncClient`: this
    class already does what the client adds (redirects, headers, timeouts, no cookie jar), and the client's
    layers cost a fifth of a proxied call's CPU.
    """

    def __init__(
        self,
        transport: httpx2.AsyncBaseTransport,
        guard: DestinationPolicy,
        credential_headers: Collection[str],
        *,
        user_agent: str,
    ) -> None:
        self._transport = transport
        self._guard = guard
        self._credential_headers = frozenset(name.lower() for name in credential_headers) | {"authorization", "cookie"}
        self._user_agent = user_agent

    async def send(self, request: PreparedRequest, *, timeouts: Timeouts, max_bytes: int) -> RawResponse:
        method, url, content = request.method, request.url, request.content
        headers = [(k, v) for k, v in request.headers if k.lower() not in ("host", "accept-encoding")]
        present = {k.lower() for k, _ in headers}
        headers += [
            (k, v) for k, v in (("Accept", "*/*"), ("User-Agent", self._user_agent)) if k.lower() not in present
        ]
        start_origin = _usable_origin(url, "The URL")
        for _hop in range(MAX_REDIRECTS + 1):
            response = await self._send_once(method, url, headers, content, timeouts, max_bytes)
            location = response.headers.get("location")
            if response.status not in REDIRECT_STATUSES or not location:
                return response
            next_url = urljoin(url, location)
            new_method = _redirected_method(response.status, method)
            if new_method != method:
                content = None
                headers = [(k, v) for k, v in headers if k.lower() not in ("content-type", "content-length")]
            if _usable_origin(next_url, "The redirect target") != start_origin:
                # Credentials were meant for the connector's own origin, never for wherever it points us.
                headers = [(k, v) for k, v in headers if k.lower() not in self._credential_headers]
            method, url = new_method, next_url
        raise UpstreamError(
            f"More than {MAX_REDIRECTS} redirects; the last pointed to {public_url(url)}", url=public_url(url)
        )

    async def _send_once(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        content: bytes | None,
        timeouts: Timeouts,
        max_bytes: int,
    ) -> RawResponse:
        try:
            destination = await self._guard.check(url)
        except UpstreamUnreachable as exc:
            raise TransportFailure("connect", exc.message) from None
        scheme = urlsplit(url).scheme.lower()
        extensions = {"sni_hostname": destination.host} if scheme == "https" else {}
        send_headers = [*headers, ("Host", host_header(url)), ("Accept-Encoding", ACCEPT_ENCODING)]
        timeout = {"connect": timeouts.connect, "read": timeouts.read, "write": timeouts.read, "pool": timeouts.connect}
        last_error = "no address to connect to"
        for address in destination.addresses:
            try:
                return await self._read(
                    method, _pinned_url(url, address), send_headers, content, timeout, extensions, max_bytes, url
                )
            except httpx2.ConnectTimeout:
                raise TransportFailure("connect_timeout", f"no connection within {timeouts.connect:g} s") from None
            except httpx2.ConnectError as exc:
                last_error = str(exc) or type(exc).__name__  # try the next address the name resolved to
            except (httpx2.ReadTimeout, httpx2.WriteTimeout):
                raise TransportFailure("read_timeout", f"no data for {timeouts.read:g} s") from None
            except httpx2.PoolTimeout:
                raise TransportFailure("connect_timeout", "no free connection in the pool") from None
            except httpx2.TransportError as exc:
                raise TransportFailure("reset", str(exc) or type(exc).__name__) from None
        raise TransportFailure("connect", last_error)

    async def _read(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        content: bytes | None,
        timeout: dict[str, float],  # noqa: ASYNC109 - httpx2's per-phase timeouts, not a deadline for this function
        extensions: dict[str, str],
        max_bytes: int,
        url: str,
    ) -> RawResponse:
        outgoing = httpx2.Request(
            method, target, headers=headers, content=content, extensions={"timeout": timeout, **extensions}
        )
        response = await self._transport.handle_async_request(outgoing)
        try:
            try:
                decoder = BoundedDecoder(response.headers.get("content-encoding"), max_bytes)
                async for chunk in cast(httpx2.AsyncByteStream, response.stream):  # an async transport's stream
                    decoder.feed(chunk)
                body = decoder.finish()
            except BodyTooLarge:
                raise ResponseTooLarge(
                    f"The response is larger than {max_bytes} bytes (decoded) and was abandoned; "
                    "ask for less (filters, a smaller page) or raise max_response_bytes in the manifest",
                    limit_bytes=max_bytes,
                    status=response.status_code,
                    url=public_url(url),
                ) from None
            except BodyDecodeError as exc:
                raise UpstreamError(
                    f"The response body could not be decompressed ({exc})", status=response.status_code
                ) from None
            except UnsupportedEncoding as exc:
                raise UpstreamError(
                    f"The response uses an unsupported Content-Encoding ({exc})", status=response.status_code
                ) from None
            return RawResponse(
                status=response.status_code,
                headers={k.lower(): v for k, v in response.headers.items()},
                body=body,
                encoding=_charset(response.headers.get("content-type")),
                final_url=public_url(url),
            )
        finally:
            await response.aclose()


@functools.lru_cache(maxsize=256)
def _charset(content_type: str | None) -> str | None:
    """httpx2's `Response.charset_encoding`, remembered per Content-Type value: it builds an
    `email.message.Message` to read one parameter, which was 1-2 % of a proxied call in a profile."""
    if content_type is None:
        return None
    message = email.message.Message()
    message["content-type"] = content_type
    return message.get_content_charset(failobj=None)
