"""Streamable HTTP 2026-07-28 `tools/call` answered without the SDK's per-request machinery.

Why (profile in docs/benchmarks/changes.md): a 2026-07-28 request is self-contained, and the SDK's
entry for it (`mcp.server._streamable_http_modern.handle_modern_request`) spends about 0.6 ms of
CPU per call around the handler — a task group with two tasks and a memory stream for the SSE
deferral, a per-request `Connection` with its exit stack, a `ServerRunner`, the middleware chain,
and three model round trips of the result — while every check it makes costs ~30 µs. That was
the whole gap between our HTTP calls and the 1 ms target.

`ModernToolCalls` wraps the SDK's `/mcp` app. For a POST naming a 2026-era protocol version it
reads the body and makes the SDK's own checks, with the SDK's own functions, in the SDK's order:
transport security (Content-Type), Accept, JSON, one JSON-RPC request, no duplicated routing
header, `classify_inbound_request`, `Mcp-Param-*` headers against the tool's input schema, the
per-version surface (`validate_client_request`) and `CallToolRequestParams`. When all pass and the
method is `tools/call`, it calls the handler `build_server` registered (`DirectCall`) and shapes
the result with the SDK's result surface and envelope models, so the bytes are the SDK's (tested
byte for byte against the SDK's path, and with the SDK client, the TypeScript SDK client and the
MCP conformance suite: `make interop`).

Everything else goes to the SDK untouched, the body replayed: other methods, notifications, any
failed check (so every error answer is the SDK's own), a request asking for progress (its
notifications need the SDK's SSE sink), a server whose `tools/call` handler or middleware is not
the one built here, a manager that is not running, and any process with an OpenTelemetry tracer
provider installed (the SDK's middleware records a span per call there).

The SSE deferral is kept: the answer is JSON when the call ends within the SDK's window (15 s);
a longer call commits `text/event-stream`, gets a comment ping every window, and ends with the
result as one `message` event. A client that disconnects cancels the call, as on the SDK's path.
A manager in `json_response` mode (ours never is) keeps the SDK's path.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any, Final, cast

import anyio
import mcp_types as types
from mcp.server.runner import modern_error_data
from mcp.server.streamable_http import check_accept_headers
from mcp.server.transport_security import TransportSecurityMiddleware
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    InboundLadderRejection,
    classify_inbound_request,
    find_duplicated_routing_header,
    validate_mcp_param_headers,
)
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from mcp_types import methods
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from opentelemetry import trace
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server._changes import ConnectorServer
from mcp_server._ops import SessionManager
from mcp_server._wire import replay_body

__all__ = ["PING", "SSE_WINDOW_SECONDS", "ModernToolCalls", "buffered_request", "untraced"]

logger = logging.getLogger(__name__)

SSE_WINDOW_SECONDS: Final = 15.0
"""The SDK's `_SSEPING_INTERVAL`: a call still running after this long is answered as an SSE stream."""

_VERSION_HEADER: Final = b"mcp-protocol-version"
_MODERN: Final = frozenset(v.encode("latin-1") for v in MODERN_PROTOCOL_VERSIONS)
_PARAM_HEADER_PREFIX: Final = "mcp-param-"
_SSE_HEADERS: Final[list[tuple[bytes, bytes]]] = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]
PING: Final = b": ping\r\n\r\n"

_Answer = types.JSONRPCResponse | types.JSONRPCError


class _Call:
    """One `tools/call` that passed every check: what the handler and the answer need."""

    __slots__ = ("params", "request", "request_id", "version")

    def __init__(
        self, request: Request, request_id: types.RequestId, version: str, params: types.CallToolRequestParams
    ) -> None:
        self.request = request  # what `Access.principal` reads the caller from, as from an SDK `ctx.request`
        self.request_id = request_id
        self.version = version
        self.params = params


class ModernToolCalls:
    """The `/mcp` ASGI app: 2026-07-28 `tools/call` answered here, everything else by `sdk_app`."""

    def __init__(self, server: ConnectorServer, manager: SessionManager, sdk_app: ASGIApp) -> None:
        self._server = server
        self._manager = manager
        self._sdk_app = sdk_app
        self._direct = server.direct_call
        # The SDK builds one per request from the same settings; building it (a settings model) was 5 % of a call.
        self._security = TransportSecurityMiddleware(manager.security_settings)
        self.sse_window = SSE_WINDOW_SECONDS
        self.answered = 0
        """Calls answered here rather than by the SDK (tests read it; it is not a metric)."""
        self.enabled = server.may_answer_calls_directly()
        if not self.enabled:
            logger.debug("the HTTP tools/call fast path is off: a handler or middleware not built here")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._takes(scope):
            await self._sdk_app(scope, receive, send)
            return
        buffered = await buffered_request(scope, receive)
        if buffered is None:
            return  # the client went away mid-body; WireGuard normally sees to this first
        body, request = buffered
        call = await self._checked(request, body)
        if call is None:
            await self._sdk_app(scope, request.receive, send)
            return
        self.answered += 1
        await self._deferred(call, scope, request.receive, send)

    def _takes(self, scope: Scope) -> bool:
        # (A `json_response` manager answers JSON without watching for disconnects: ours never is one.)
        if not self.enabled or self._manager.json_response or scope["type"] != "http" or scope["method"] != "POST":
            return False
        version = next((value for key, value in scope["headers"] if key == _VERSION_HEADER), None)
        if version not in _MODERN:
            return False
        if not untraced():
            return False
        return self._manager.running  # the SDK raises for a request before `run()`: its path

    async def _checked(self, request: Request, body: bytes) -> _Call | None:
        """The call when every check of the SDK's entry and kernel passes and it is a `tools/call`, else None."""
        if await self._security.validate_request(request, is_post=True) is not None:
            return None
        has_json, has_sse = check_accept_headers(request)
        if not (has_json and has_sse):
            return None
        try:
            decoded: Any = json.loads(body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(decoded, dict):
            return None
        message = cast(dict[str, Any], decoded)
        if "id" not in message or message.get("method") != "tools/call":
            return None
        try:
            envelope = types.JSONRPCRequest.model_validate(message)
        except ValidationError:
            return None
        headers = request.headers
        if find_duplicated_routing_header(headers.items()) is not None:
            return None
        verdict = classify_inbound_request(message, headers=dict(headers))
        if isinstance(verdict, InboundLadderRejection):
            return None
        params = envelope.params
        if progress_token_from_params(params) is not None or not self._params_headers_ok(request, params):
            return None
        if self._server.live_direct_call() is None:
            return None
        try:
            methods.validate_client_request("tools/call", verdict.protocol_version, params)
            typed = types.CallToolRequestParams.model_validate({} if params is None else params, by_name=False)
        except (KeyError, ValueError):  # pydantic's ValidationError is a ValueError
            return None
        return _Call(request, envelope.id, verdict.protocol_version, typed)

    def _params_headers_ok(self, request: Request, params: Mapping[str, Any] | None) -> bool:
        """The SDK's `Mcp-Param-*` check (`_mcp_param_rejection`), with the tool's schema from our registry."""
        name = (params or {}).get("name")
        if not isinstance(name, str):
            return True  # the surface validation refuses it (the call then goes to the SDK)
        arguments: object = (params or {}).get("arguments")
        if arguments is not None and not isinstance(arguments, Mapping):
            return True
        args: Mapping[str, Any] = cast(Mapping[str, Any], arguments) if arguments is not None else {}
        if not args and not any(header.startswith(_PARAM_HEADER_PREFIX) for header in request.headers):
            return True
        lookup = self._server.get_tool_input_schema
        if lookup is None:
            return False  # the SDK would walk tools/list for the schema: its path
        try:
            schema = lookup(name)
        except Exception:
            return False  # the SDK logs and skips the check: its path, its log line
        return schema is None or validate_mcp_param_headers(schema, args, request.headers) is None

    async def _answer(self, call: _Call) -> _Answer:
        """Run the call; the JSON-RPC answer the SDK's kernel would give for it."""
        assert self._direct is not None  # _checked returned a call only with a direct handler
        try:
            principal = self._direct.access.principal(call.request)
            result = await self._direct.call(principal, call.params, None)
            return types.JSONRPCResponse(jsonrpc="2.0", id=call.request_id, result=self._wire(call, result))
        except Exception as exc:
            return types.JSONRPCError(jsonrpc="2.0", id=call.request_id, error=modern_error_data(exc))

    def _wire(self, call: _Call, result: types.CallToolResult) -> dict[str, Any]:
        """`ServerRunner._serialize` for a `CallToolResult` at a 2026-era version (no cache hint: checked)."""
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        try:
            shaped = methods.serialize_server_result("tools/call", call.version, dumped)
        except ValidationError:
            logger.exception("handler for 'tools/call' returned an invalid result")
            raise MCPError(code=types.INTERNAL_ERROR, message="Handler returned an invalid result") from None
        if shaped.get("resultType") is None:
            shaped["resultType"] = "complete"
        meta: object = shaped.get("_meta")
        stamp_key = types.SERVER_INFO_META_KEY
        if meta is None:
            shaped["_meta"] = {stamp_key: self._server.server_info_stamp}
        elif isinstance(meta, dict) and cast(dict[str, Any], meta).get(stamp_key) is None:
            shaped["_meta"] = {**cast(dict[str, Any], meta), stamp_key: self._server.server_info_stamp}
        return shaped

    async def _deferred(self, call: _Call, scope: Scope, receive: Receive, send: Send) -> None:
        """JSON if the call ends within the window; past it, an SSE stream with pings, then the result.

        The watcher is a bare asyncio task, not an anyio task group: a group's start and cancel were most
        of this method's cost in a profile, and the HTTP server always runs on asyncio (or uvloop)."""
        stream = _Stream()
        answering = anyio.CancelScope()
        watcher = asyncio.get_running_loop().create_task(_watch(receive, send, stream, answering, self.sse_window))
        answer: _Answer | None = None
        try:
            with answering:
                answer = await self._answer(call)
        finally:
            watcher.cancel()
            if stream.starting:  # cancelled inside the send of the SSE headers: know whether they went out
                await asyncio.wait({watcher})
        if answer is None:
            return  # the client closed the stream, which cancels the call (as on the SDK's path)
        if stream.committed:
            await send({"type": "http.response.body", "body": _sse_event(answer), "more_body": False})
        else:
            await _write(answer, scope, receive, send)


def untraced() -> bool:
    """No OpenTelemetry tracer provider installed: with one, the SDK's middleware records a span for every call,
    so calls keep the SDK's path."""
    return isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


class _Stream:
    __slots__ = ("committed", "starting")

    def __init__(self) -> None:
        self.committed = False  # `text/event-stream` headers sent: the answer must be an SSE event
        self.starting = False  # the watcher is inside the send of those headers


async def _watch(receive: Receive, send: Send, stream: _Stream, answering: anyio.CancelScope, window: float) -> None:
    """Until cancelled: cancel the call when the client disconnects; past each window, commit SSE and ping."""
    try:
        while True:
            try:
                async with asyncio.timeout(window):
                    while (await receive())["type"] != "http.disconnect":
                        pass
            except TimeoutError:
                if not stream.committed:
                    # A send may wait for the transport to drain before it writes: only a completed one commits.
                    stream.starting = True
                    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
                    stream.committed = True
                    stream.starting = False
                await send({"type": "http.response.body", "body": PING, "more_body": True})
                continue
            break
    except Exception:  # a ping the server could not write: the client is as good as gone
        logger.debug("the SSE keepalive failed; cancelling the call", exc_info=True)
    answering.cancel()


async def buffered_request(scope: Scope, receive: Receive) -> tuple[bytes, Request] | None:
    """A POST's whole body, read before any check as the SDK's transports read it, and a `Request` whose
    `receive` replays it (then whatever the client sends next), for the SDK's app when the request goes on
    to it; None when the client went away mid-body."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            body = b"".join(chunks)
            return body, Request(scope, replay_body(body, receive))


def _dump(answer: _Answer) -> str:
    body = answer.model_dump(mode="json", by_alias=True, exclude_none=True)
    return json.dumps(body, separators=(",", ":"))


async def _write(answer: _Answer, scope: Scope, receive: Receive, send: Send) -> None:
    status = ERROR_CODE_HTTP_STATUS.get(answer.error.code, 200) if isinstance(answer, types.JSONRPCError) else 200
    await Response(_dump(answer), status_code=status, media_type="application/json")(scope, receive, send)


def _sse_event(answer: _Answer) -> bytes:
    return f"event: message\r\ndata: {_dump(answer)}\r\n\r\n".encode()
