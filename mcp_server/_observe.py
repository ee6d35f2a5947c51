"""Request ids, JSON log lines and the HTTP access log.

Every HTTP request gets a request id: the client's `X-Request-ID` when it is sane (1-128
characters of `A-Z a-z 0-9 . _ ~ : + / = @ -`), else a fresh one. It is held in a
contextvar for the request's task — the SDK carries the sender's contextvars into the MCP
handlers, so the pipeline's per-call log lines see it too — and returned as `X-Request-ID`.
A call with no HTTP request around it (stdio, `mcp-connectors call`) gets its own id.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_server._redact import IN_FLIGHT

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._~:+/=@-]{1,128}")
REQUEST_ID: ContextVar[str | None] = ContextVar("mcp_connectors_request_id", default=None)

access_logger = logging.getLogger("mcp_server.access")

# Attributes every LogRecord has; anything else on a record came from `extra=` and goes into the JSON line.
_STANDARD_ATTRIBUTES = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "request_id",
        "taskName",
    }
)


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane_request_id(value: str | None) -> str | None:
    """`value` if it is safe to log and echo (length and characters), else None."""
    if value is not None and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return None


def current_request_id() -> str | None:
    return REQUEST_ID.get()


def bind_request_id(request_id: str | None = None) -> Token[str | None]:
    """Set the request id for the current context (a fresh one if None); reset with `REQUEST_ID.reset(token)`."""
    return REQUEST_ID.set(request_id or new_request_id())


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, the record's `extra` fields, exc.

    The finished line is scrubbed of in-flight secrets again, since `extra` fields are not part of the
    message the redacting filter checks.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and key != "color_message" and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        line = json.dumps(entry, ensure_ascii=False, default=str)
        redactor = IN_FLIGHT.redactor
        return redactor.text(line) if redactor else line


class TextFormatter(logging.Formatter):
    """The classic one-line format, with ` [request_id]` when the record has one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id is None:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} [{request_id}]{newline}{rest}"


_KNOWN_PATHS = frozenset(
    {
        "/mcp",
        "/sse",
        "/health",
        "/ready",
        "/metrics",
        "/v1/meta",
        "/v1/handshake",
        "/v1/tools",
        "/v1/invoke",
        "/v1/status",
    }
)


def _route(path: str) -> str:
    """A bounded name for the path, so nothing a client chose reaches the access log verbatim."""
    if path in _KNOWN_PATHS:
        return path
    for prefix in ("/messages/", "/v1/", "/mcp/"):
        if path.startswith(prefix):
            return prefix
    return "other"


class RequestContextMiddleware:
    """Outermost ASGI middleware: request id in, `X-Request-ID` out, one access log line per request.

    The access line names the method, the path without its query string (which may carry a session id),
    the status and the duration; never headers or bodies.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming: str | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = sane_request_id(value.decode("latin-1"))
                break
        request_id = incoming or new_request_id()
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
            path: str = scope.get("path", "")
            access_logger.info(
                "%s %s %s %.1fms",
                scope.get("method", "?"),
                _route(path),
                status or "-",
                elapsed_ms,
                extra={
                    "event": "http_request",
                    "method": scope.get("method"),
                    "route": _route(path),
                    "status": status or None,
                    "duration_ms": elapsed_ms,
                },
            )
            REQUEST_ID.reset(token)
