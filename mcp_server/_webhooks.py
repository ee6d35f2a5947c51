"""Webhooks over HTTP: `POST /webhooks/<connector>` receives deliveries, `GET /v1/events/<connector>` streams them.

A delivery is checked in this order, and the first failure answers (JSON `{"error", "message",
"details": {"reason"}}`) with nothing stored:

    404  unknown connector, or a connector without a `webhooks:` block
    413  body over the connector's `max_body_bytes` (the HTTP layer refuses anything over 1 MiB before)
    503  the signing secret is not set (the sender retries later; the log names the fix)
    400 / 401  malformed / missing or wrong signature, timestamp outside the tolerance (`_webhook_verify`)
    415  a declared Content-Type that is not JSON;  400  a body that is not a JSON object
    400  no event id where the manifest says it is
    200  stored: {"received": true, "duplicate": false, "event_id", "seq"}
    200  an id already seen (before a restart too): {"received": true, "duplicate": true, ...}, nothing stored

A duplicate is answered 200, not 409, on purpose: senders (Stripe, GitHub) retry every non-2xx for hours
or days, and a retry of an event we already hold is exactly what a duplicate is — the idempotent answer
stops the retries. A replay is refused by the same id check (and, for signed timestamps, by the tolerance).

The signature is checked over the raw bytes before the body is parsed. The secret is read per delivery
(a `vault set` takes effect at once), held in the log scrubber while it is used, scrubbed from the
stored payload, and never part of an answer, a log line or an event.

The route is exempt from the inbound client authentication (`_inbound`): senders prove themselves with
the signature. The SSE stream is not: it needs a client that may read the connector's events.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, cast

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_server._access import Access
from mcp_server._builtin_tools import LocalTools
from mcp_server._errors import VaultError
from mcp_server._event_tools import parse_time
from mcp_server._events import EventHub, EventStoreError
from mcp_server._model import Connector
from mcp_server._pipeline import Caller, Pipeline, SecretSource
from mcp_server._redact import IN_FLIGHT, Redactor
from mcp_server._webhook_model import FieldSource
from mcp_server._webhook_verify import Rejection, verify

logger = logging.getLogger("mcp_server.webhooks")

WEBHOOK_PREFIX = "/webhooks/"
MAX_EVENT_ID_CHARS = 256
SSE_BATCH = 100
SSE_PING_SECONDS = 15


def _error(status: int, error: str, message: str, **details: Any) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, "details": details}, status_code=status)


def _pointer(document: Any, pointer: str) -> Any:
    """RFC 6901 lookup; None when the pointer leads nowhere."""
    node = document
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            node = cast(dict[str, Any], node).get(token)
        elif isinstance(node, list) and token.isdigit() and int(token) < len(cast(list[Any], node)):
            node = cast(list[Any], node)[int(token)]
        else:
            return None
        if node is None:
            return None
    return node


def _field(source: FieldSource, payload: Any, request: Request) -> Any:
    if source.header is not None:
        return request.headers.get(source.header)
    assert source.pointer is not None
    return _pointer(payload, source.pointer)


def _scalar_text(value: Any) -> str | None:
    """A string or a whole number as text; None for anything else (objects, booleans, empty text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _event_time(value: Any, received: float) -> float:
    """The event's own time: unix seconds or milliseconds, or ISO 8601; else (absent, unparsable) when it arrived."""
    seconds = parse_time(value) if value is not None else None
    if seconds is None or not math.isfinite(seconds):
        return received
    return seconds / 1000 if seconds > 1e11 else seconds


def _is_json_media(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class WebhookEndpoints:
    def __init__(
        self,
        local: LocalTools,
        access: Access,
        pipeline: Pipeline,
        secrets: SecretSource,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        assert local.hub is not None
        self._hub: EventHub = local.hub
        self._local = local
        self._access = access
        self._pipeline = pipeline
        self._secrets = secrets
        self._environ = environ or {}
        self._clock = clock

    def routes(self) -> list[Route]:
        return [
            Route(WEBHOOK_PREFIX + "{connector}", self.receive, methods=["POST"]),
            Route("/v1/events/{connector}", self.stream, methods=["GET"]),
        ]

    # -- receiving ----------------------------------------------------------------------------------------

    def _secret(self, connector: Connector) -> tuple[str | None, str]:
        """The signing secret (None when unset) and what to tell the operator to fix it; blocking (vault I/O)."""
        spec = connector.webhooks
        assert spec is not None
        ref = spec.secret
        if ref.kind == "literal":
            return ref.value, ""
        if ref.kind == "env":
            return self._environ.get(ref.value) or None, f"export {ref.value}=... before starting the server"
        account = self._pipeline.account_for(connector.name, Caller())  # the server's account, as its tools use
        name = ref.value if account is None else f"{ref.value}@{account}"
        secret = self._secrets.get(name)
        return (secret.reveal() if secret is not None else None) or None, f"mcp-connectors vault set {name}"

    async def receive(self, request: Request) -> Response:
        name = request.path_params["connector"]
        connector = self._hub.connectors().get(name)
        if connector is None:
            if self._hub.known(name):
                return _error(404, "not_found", f"Connector {name!r} receives no webhooks (no webhooks: block)")
            return _error(404, "not_found", f"Unknown connector {name[:64]!r}")
        spec = connector.webhooks
        assert spec is not None
        body = await request.body()
        if len(body) > spec.max_body_bytes:
            return self._refused(name, 413, "bad_request", "body_too_large", f"Body over {spec.max_body_bytes} bytes")
        try:
            secret, fix = await anyio.to_thread.run_sync(self._secret, connector)
        except VaultError as exc:
            logger.error("webhook %s: the vault cannot be read: %s", name, exc.message)
            return _error(503, "internal_error", "The webhook secret cannot be read; the server log has the details.")
        if secret is None:
            logger.error("webhook %s: the signing secret is not set; run: %s", name, fix)
            return _error(503, "internal_error", "The webhook secret is not configured on this server.")
        with IN_FLIGHT.holding([secret]):  # scrubbed from any log line while it is in use
            return await self._accept(request, connector, body, secret)

    async def _accept(self, request: Request, connector: Connector, body: bytes, secret: str) -> Response:
        spec = connector.webhooks
        assert spec is not None
        name = connector.name
        now = self._clock()
        try:
            verify(spec, request.headers, body, secret, now=now)
        except Rejection as rejection:
            return self._refused(name, rejection.status, rejection.error, rejection.reason, rejection.message)
        content_type = request.headers.get("content-type", "")
        if content_type and not _is_json_media(content_type):
            return self._refused(
                name, 415, "bad_request", "not_json", "Content-Type must be application/json (GitHub: set it so)"
            )
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return self._refused(name, 400, "bad_request", "not_json", "The body is not JSON")
        if not isinstance(payload, dict):
            return self._refused(name, 400, "bad_request", "not_json", "The body must be a JSON object")
        event_id = _scalar_text(_field(spec.event_id, payload, request))
        if event_id is None or len(event_id) > MAX_EVENT_ID_CHARS:
            return self._refused(
                name, 400, "bad_request", "event_id_missing", f"No event id at {spec.event_id.describe()}"
            )
        event_type = _scalar_text(_field(spec.event_type, payload, request)) if spec.event_type else None
        occurred = _event_time(_field(spec.event_time, payload, request), now) if spec.event_time else now
        # A payload that carries the secret (a misconfigured sender) must not hand it to every reader of the events.
        stored_payload = Redactor([secret]).value(payload)
        text = json.dumps(stored_payload, ensure_ascii=False, separators=(",", ":"))
        try:
            stored, duplicate = await self._hub.record(connector, event_id, event_type, occurred, text)
        except EventStoreError as exc:
            logger.error("webhook %s: event %s not stored: %s", name, event_id, exc)
            return _error(503, "internal_error", "The event could not be stored; retry later.")
        logger.info(
            "webhook %s: %s event %s (%s) seq=%d",
            name,
            "duplicate" if duplicate else "stored",
            event_id,
            event_type or "-",
            stored.seq,
            extra={"event": "webhook", "connector": name, "duplicate": duplicate},
        )
        return JSONResponse({"received": True, "duplicate": duplicate, "event_id": event_id, "seq": stored.seq})

    @staticmethod
    def _refused(connector: str, status: int, error: str, reason: str, message: str) -> Response:
        logger.warning(
            "webhook %s refused: %s", connector, reason, extra={"event": "webhook_refused", "connector": connector}
        )
        return _error(status, error, message, reason=reason)

    # -- streaming ----------------------------------------------------------------------------------------

    async def stream(self, request: Request) -> Response:
        """SSE of a connector's new events: `id:` is the event's seq, `data:` its JSON; Last-Event-ID resumes."""
        name = request.path_params["connector"]
        principal = self._access.principal(request)
        if not self._local.may_read_events(principal, name):
            # As with tools: only a client that may read every connector's events learns that a name has none;
            # to any other, a connector it may not read and one that does not exist look the same.
            if name not in self._hub.connectors() and (principal.scopes.every_tool or principal.scopes.every_read):
                return _error(404, "not_found", f"Connector {name[:64]!r} receives no webhooks")
            return _error(
                403, "forbidden", f"This client may not read the events of {name[:64]!r}", connector=name[:64]
            )
        resume = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        if resume is not None and re.fullmatch(r"[0-9]{1,18}", resume.strip()) is None:
            return _error(400, "bad_request", "Last-Event-ID must be the seq of an event (a whole number)")
        try:
            start = (
                int(resume.strip())
                if resume is not None
                else await anyio.to_thread.run_sync(self._hub.store.last_seq, name)
            )
        except EventStoreError as exc:
            logger.error("%s", exc)
            return _error(503, "internal_error", "The event store cannot be read; the server log has the details.")
        return EventSourceResponse(self._events(name, start), ping=SSE_PING_SECONDS)

    async def _events(self, connector: str, last: int) -> AsyncGenerator[ServerSentEvent]:
        # The store is the source of truth: a wake-up only says "look again", so a slow reader or a burst loses nothing.
        yield ServerSentEvent(comment="ready")
        while not self._hub.closed:
            wakeup = self._hub.wakeup(connector)  # before the read: an event stored after it sets this
            try:
                found = await anyio.to_thread.run_sync(self._hub.store.after, connector, last, SSE_BATCH)
            except EventStoreError as exc:
                logger.error("%s", exc)
                return
            for event in found:
                yield ServerSentEvent(data=json.dumps(event.to_json(), ensure_ascii=False), id=str(event.seq))
                last = event.seq
            if len(found) < SSE_BATCH:
                await wakeup.wait()
