"""A connector's `webhooks:` block: how deliveries to `POST /webhooks/<connector>` are verified and kept.

A leaf module (only `_secrets` below it), so `_model` can carry a `WebhookSpec` on each `Connector` and
`_catalog` can build one without an import cycle. The signature checks themselves are in `_webhook_verify`.

Per type, the defaults follow each provider's documentation:

    stripe   Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]  HMAC-SHA256 over "<t>.<body>", tolerance 300 s;
             event id /id, type /type, time /created
    github   X-Hub-Signature-256: sha256=<hex>  HMAC-SHA256 over the body (GitHub signs no timestamp);
             id from the X-GitHub-Delivery header, type from X-GitHub-Event, time = when it arrived
    hmac     a configurable header, algorithm, encoding and prefix, optionally a signed timestamp header;
             id /id, type /type
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from mcp_server._secrets import ValueRef

WebhookType = Literal["stripe", "github", "hmac"]
WebhookAlgorithm = Literal["sha1", "sha256", "sha384", "sha512"]

DEFAULT_TOLERANCE = 300.0
DEFAULT_MAX_EVENTS = 1000
MAX_BODY_BYTES = 1024 * 1024
"""The HTTP layer's ceiling for every non-MCP body (`_wire.WireGuard`); a connector may only lower it."""
DEFAULT_REMEMBERED_IDS = 10_000
"""Ids of pruned events still refused as duplicates (a replay of an event pruned long ago is still a replay)."""
EVENTS_TOOL_OPERATION = "list_events"
"""The operation name the event-listing tool takes: `<connector>_list_events` (see `_builtin_tools`)."""


@dataclass(frozen=True, slots=True)
class FieldSource:
    """Where one event attribute comes from: a JSON pointer into the body, or a request header."""

    pointer: str | None = None
    header: str | None = None

    def describe(self) -> str:
        return f"header {self.header}" if self.header is not None else f"JSON pointer {self.pointer}"


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    type: WebhookType
    secret: ValueRef
    event_id: FieldSource
    event_type: FieldSource | None
    event_time: FieldSource | None
    """None: the time the delivery arrived."""
    tolerance: float = DEFAULT_TOLERANCE
    """Seconds a signed timestamp may be away from now (either way: clock skew counts too)."""
    max_events: int = DEFAULT_MAX_EVENTS
    """Events kept for this connector; the oldest are pruned (their ids stay remembered for deduplication)."""
    max_body_bytes: int = MAX_BODY_BYTES
    remembered_ids: int = DEFAULT_REMEMBERED_IDS
    # -- `hmac` only (stripe and github fix these) --
    header: str = "X-Signature"
    algorithm: WebhookAlgorithm = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    timestamp_header: str | None = None
    """When set, the delivery must carry a unix timestamp here, within `tolerance`, and it is signed."""
    signed_payload: str = "{body}"
    """What is signed: `{body}` (the raw body, exactly once) and `{timestamp}` (the timestamp header's value)."""


_DEFAULT_FIELDS: dict[str, tuple[FieldSource, FieldSource | None, FieldSource | None]] = {
    "stripe": (FieldSource(pointer="/id"), FieldSource(pointer="/type"), FieldSource(pointer="/created")),
    "github": (FieldSource(header="X-GitHub-Delivery"), FieldSource(header="X-GitHub-Event"), None),
    "hmac": (FieldSource(pointer="/id"), FieldSource(pointer="/type"), None),
}


def _source(raw: Any) -> FieldSource | None:
    """`/a/b` (a JSON pointer), `{header: NAME}`, or null (not taken from the delivery)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        return FieldSource(pointer=raw)
    return FieldSource(header=str(cast(Mapping[str, Any], raw)["header"]))


HMAC_ONLY = ("header", "algorithm", "encoding", "prefix", "timestamp_header", "signed_payload")


class WebhookSpecError(ValueError):
    """A `webhooks:` block the schema admits but that cannot work; `key` is the offending key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def webhook_spec(raw: Mapping[str, Any], secret: ValueRef) -> WebhookSpec:
    """The spec of a schema-valid `webhooks:` block; `WebhookSpecError` for what the schema cannot say."""
    kind = cast(WebhookType, raw["type"])
    if kind != "hmac":
        for key in HMAC_ONLY:
            if key in raw:  # a silently ignored key would look like it changed how deliveries are checked
                raise WebhookSpecError(key, f"{key} is for type hmac only; {kind} deliveries are signed one fixed way")
    id_default, type_default, time_default = _DEFAULT_FIELDS[kind]
    event_id = _source(raw["event_id"]) if "event_id" in raw else id_default
    if event_id is None:
        raise WebhookSpecError("event_id", "every event needs an id (duplicates and replays are refused by it)")
    timestamp_header = raw.get("timestamp_header")
    signed_payload = str(raw.get("signed_payload", "{timestamp}.{body}" if timestamp_header else "{body}"))
    if signed_payload.count("{body}") != 1:
        raise WebhookSpecError("signed_payload", "must contain {body} exactly once")
    if "{timestamp}" in signed_payload and not timestamp_header:
        raise WebhookSpecError("signed_payload", "{timestamp} needs timestamp_header")
    return WebhookSpec(
        type=kind,
        secret=secret,
        event_id=event_id,
        event_type=_source(raw["event_type"]) if "event_type" in raw else type_default,
        event_time=_source(raw["event_time"]) if "event_time" in raw else time_default,
        tolerance=float(raw.get("tolerance", DEFAULT_TOLERANCE)),
        max_events=int(raw.get("max_events", DEFAULT_MAX_EVENTS)),
        max_body_bytes=int(raw.get("max_body_bytes", MAX_BODY_BYTES)),
        remembered_ids=int(raw.get("remembered_ids", DEFAULT_REMEMBERED_IDS)),
        header=str(raw.get("header", "X-Signature")),
        algorithm=cast(WebhookAlgorithm, raw.get("algorithm", "sha256")),
        encoding=cast(Literal["hex", "base64"], raw.get("encoding", "hex")),
        prefix=str(raw.get("prefix", "")),
        timestamp_header=timestamp_header,
        signed_payload=signed_payload,
    )
