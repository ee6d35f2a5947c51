"""`mcp-connectors auth login`: the interactive authorization-code login with PKCE (RFC 7636) and a loopback
redirect (RFC 8252 §7.3).

A one-shot HTTP server on 127.0.0.1 waits for the browser to come back to `/callback`; the code it brings is
exchanged at the token endpoint and the token set is stored in the vault. A callback whose `state` is wrong or
missing is answered 400 and otherwise ignored: any web page can make the browser request a loopback URL, so a
forged callback must neither end the login nor plant someone else's code. The server is a minimal HTTP/1.1 reader
on anyio (one request per connection) rather than a web framework: it serves one page, once.
"""

from __future__ import annotations

import contextlib
import html
import secrets
import webbrowser
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.to_thread
import httpx2
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from mcp_server._errors import ConnectorsError
from mcp_server._model import OAuth2AuthorizationCode
from mcp_server._oauth import TokenSet, authorization_url, exchange_code, make_pkce_pair
from mcp_server._secrets import SecretStore, ValueRef
from mcp_server._version import server_version

__all__ = ["CALLBACK_PATH", "LoginFailed", "login"]

CALLBACK_PATH = "/callback"
_REQUEST_TIMEOUT = 10.0
"""Seconds a connection may take to send its request head; a silent connection must not hold the server."""
_MAX_LINE = 16 * 1024
_MAX_HEADERS = 100
_MAX_DESCRIPTION = 300


class LoginFailed(ConnectorsError):
    """The login ended without tokens: denied, timed out, or the callback could not be used."""


@dataclass
class _Session:
    state: str
    claimed: anyio.Event = field(default_factory=anyio.Event)
    """A callback with the right `state` arrived; from then on the outcome no longer depends on the timeout."""
    done: anyio.Event = field(default_factory=anyio.Event)
    tokens: TokenSet | None = None
    error: BaseException | None = None


async def login(
    auth: OAuth2AuthorizationCode,
    *,
    connector: str,
    record: str,
    store: SecretStore,
    resolve: Callable[[ValueRef], str],
    open_browser: bool,
    announce: Callable[[str], None],
    timeout: float = 300,  # noqa: ASYNC109 - how long the user has to finish in the browser, not an I/O deadline
    client: httpx2.AsyncClient | None = None,
) -> TokenSet:
    """Run the login and store the token set in `record`; raises `LoginFailed` or a `ToolError` from the token
    endpoint (the message is safe to print)."""
    client_id = resolve(auth.client_id)
    client_secret = resolve(auth.client_secret) if auth.client_secret is not None else None
    try:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=auth.redirect_port)
    except OSError as exc:
        raise LoginFailed(
            f"{connector}: cannot listen on 127.0.0.1:{auth.redirect_port} for the login callback "
            f"({exc.strerror or exc}); is another login running?"
        ) from None
    port = listener.extra(SocketAttribute.local_port)  # noqa: S610 - anyio's typed attributes, not Django
    redirect_uri = f"http://127.0.0.1:{port}{CALLBACK_PATH}"
    verifier, challenge = make_pkce_pair()
    session = _Session(state=secrets.token_urlsafe(32))
    url = authorization_url(
        auth, client_id=client_id, redirect_uri=redirect_uri, state=session.state, challenge=challenge
    )
    own_client = client is None
    http = client or httpx2.AsyncClient(
        trust_env=False, follow_redirects=False, headers={"User-Agent": f"mcp-connectors/{server_version()}"}
    )

    async def finish(code: str) -> None:
        tokens = await exchange_code(
            auth,
            client=http,
            client_id=client_id,
            client_secret=client_secret,
            code=code,
            verifier=verifier,
            redirect_uri=redirect_uri,
            connector=connector,
        )
        text = tokens.to_json()
        if store.remote:
            await anyio.to_thread.run_sync(store.set, record, text)
        else:
            store.set(record, text)
        session.tokens = tokens

    async def handle(stream: SocketStream) -> None:
        async with stream:
            await _serve_one(stream, session, connector, finish)

    try:
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, handle, group)
            announce(f"To authorize {connector}, open this URL in a browser:\n\n    {url}\n")
            if open_browser:
                group.start_soon(_open_browser, url, announce)
            with anyio.move_on_after(timeout):
                await session.claimed.wait()
            if session.claimed.is_set():
                await session.done.wait()  # the code exchange has its own time limit
            group.cancel_scope.cancel()
    finally:
        if own_client:
            await http.aclose()
    if session.error is not None:
        raise session.error
    if session.tokens is None:
        raise LoginFailed(
            f"{connector}: no authorization arrived within {timeout:g} s; run the login again and finish it "
            "in the browser"
        )
    return session.tokens


async def _open_browser(url: str, announce: Callable[[str], None]) -> None:
    # Off the event loop, and abandoned at the end: a console browser (lynx, w3m) may not return until it quits.
    opened = await anyio.to_thread.run_sync(webbrowser.open, url, abandon_on_cancel=True)
    if not opened:
        announce("No browser could be opened; open the URL above yourself.")


async def _serve_one(
    stream: SocketStream, session: _Session, connector: str, finish: Callable[[str], Awaitable[None]]
) -> None:
    """Answer one request on `stream`. Never raises: a failure here would end the login for every connection."""
    try:
        with anyio.fail_after(_REQUEST_TIMEOUT):
            method, target = await _read_request_head(BufferedByteReceiveStream(stream))
    except (TimeoutError, ValueError, anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
        await _respond(stream, 400, "Bad request", "This is the mcp-connectors login callback.")
        return
    except anyio.DelimiterNotFound:
        await _respond(stream, 431, "Request too large", "The request line or a header is too long.")
        return
    parts = urlsplit(target)
    if parts.path != CALLBACK_PATH:
        await _respond(stream, 404, "Not found", "This is the mcp-connectors login callback.")
        return
    if method != "GET":
        await _respond(stream, 405, "Method not allowed", "The login callback takes GET only.")
        return
    params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    state = params.get("state")
    if state is None or not secrets.compare_digest(state.encode(), session.state.encode()):
        await _respond(
            stream,
            400,
            "Not this login",
            "This callback does not belong to the login in progress (its state does not match) and was ignored. "
            "If you started the login, use the link it printed.",
        )
        return
    if session.claimed.is_set():
        await _respond(stream, 409, "Already done", "This login has already received its answer.")
        return
    session.claimed.set()
    try:
        await _complete(stream, session, connector, params, finish)
    finally:
        session.done.set()


async def _complete(
    stream: SocketStream,
    session: _Session,
    connector: str,
    params: dict[str, str],
    finish: Callable[[str], Awaitable[None]],
) -> None:
    error = params.get("error")
    code = params.get("code")
    if error is not None or not code:
        reason = _clean(error or "no authorization code in the callback")
        description = _clean(params.get("error_description", ""))
        detail = f"{reason}: {description}" if description else reason
        if error == "access_denied":
            message = f"{connector}: authorization was denied ({detail}); run the login again and allow access"
        else:
            message = f"{connector}: the authorization server answered with an error ({detail})"
        session.error = LoginFailed(message)
        await _respond(stream, 400, "Login failed", message)
        return
    try:
        await finish(code)
    except ConnectorsError as exc:
        session.error = exc
        await _respond(stream, 502, "Login failed", exc.message)
        return
    except Exception as exc:  # a bug: report it in the terminal, where the traceback can be seen
        session.error = exc
        await _respond(stream, 500, "Login failed", "Unexpected error; see the terminal.")
        return
    await _respond(
        stream,
        200,
        "Logged in",
        f"mcp-connectors is now authorized for {connector}. You can close this tab.",
    )


async def _read_request_head(reader: BufferedByteReceiveStream) -> tuple[str, str]:
    """The method and target of one HTTP/1.x request; its headers are read and dropped, so closing the
    connection after the answer does not reset it (unread input makes the kernel send RST, losing the page)."""
    line = (await reader.receive_until(b"\r\n", _MAX_LINE)).decode("latin-1")
    method, target, version = line.split(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError("not HTTP/1.x")
    for _ in range(_MAX_HEADERS):
        if not await reader.receive_until(b"\r\n", _MAX_LINE):
            return method, target
    raise ValueError("too many headers")


def _clean(text: str) -> str:
    line = "".join(ch for ch in " ".join(text.split()) if ch.isprintable())
    return line if len(line) <= _MAX_DESCRIPTION else line[: _MAX_DESCRIPTION - 1] + "…"


async def _respond(stream: SocketStream, status: int, title: str, text: str) -> None:
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body style='font-family: sans-serif; margin: 3em'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    ).encode()
    head = (
        f"HTTP/1.1 {status} {title}\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(page)}\r\n"
        "Cache-Control: no-store\r\n"
        # The callback URL holds the authorization code: nothing on the page may send it anywhere.
        "Referrer-Policy: no-referrer\r\n"
        "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")
    # A browser that went away does not change the login's outcome.
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        await stream.send(head + page)
