"""Webhook signature checks (pure: headers, raw body, secret and the clock in; a verdict out).

Every comparison is constant-time (`hmac.compare_digest`), every check runs over the raw bytes as
received (never re-serialized JSON), and no message carries a header value, a signature or the secret:
a rejection says which check failed, not what was sent.

Stripe: `Stripe-Signature: t=1700000000,v1=<hex>,v1=<hex>,v0=<hex>`; the signed payload is
`"<t>.<body>"` under HMAC-SHA256; any `v1` may match (Stripe sends several while a secret is rolled);
other schemes (`v0`, test-mode) are ignored. The signature is checked before the timestamp, as
Stripe's own libraries do, so an unsigned request learns nothing about the clock.
GitHub: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 over the body; GitHub signs no timestamp, so
replays are stopped by the delivery id alone (`_events` remembers ids across restarts).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
from collections.abc import Mapping

from mcp_server._webhook_model import WebhookSpec

STRIPE_HEADER = "Stripe-Signature"
GITHUB_HEADER = "X-Hub-Signature-256"
MAX_SIGNATURE_HEADER = 4096
"""Longer signature headers are malformed (Stripe's carries a few 64-character signatures)."""


class Rejection(Exception):
    """Why a delivery was refused: HTTP status, REST error name, reason code and a message safe to return."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def error(self) -> str:
        return "unauthorized" if self.status == 401 else "bad_request"


def _missing(header: str) -> Rejection:
    return Rejection(401, "signature_missing", f"The delivery carries no {header} header")


def _mismatch() -> Rejection:
    return Rejection(401, "signature_mismatch", "No signature matches the body under this connector's secret")


def _stale(tolerance: float) -> Rejection:
    return Rejection(
        401,
        "timestamp_outside_tolerance",
        f"The signed timestamp is more than {tolerance:g} s away from the server's clock (a replay, or clock skew)",
    )


def _within(timestamp: float, now: float, tolerance: float) -> bool:
    """Inclusive: a delivery exactly `tolerance` seconds old is accepted; clock skew forward counts too."""
    return abs(now - timestamp) <= tolerance


def _digest(algorithm: str, secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), payload, getattr(hashlib, algorithm)).digest()


def _hex_bytes(text: str) -> bytes | None:
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def verify_stripe(header: str | None, body: bytes, secret: str, *, tolerance: float, now: float) -> None:
    """Raise `Rejection` unless some `v1` signature of `header` signs `"<t>.<body>"` and `t` is within tolerance."""
    if not header:
        raise _missing(STRIPE_HEADER)
    if len(header) > MAX_SIGNATURE_HEADER:
        raise Rejection(400, "signature_malformed", f"The {STRIPE_HEADER} header is too long")
    timestamps: list[str] = []
    signatures: list[bytes] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamps.append(value.strip())
        elif key == "v1":
            signature = _hex_bytes(value.strip())
            if signature is not None:
                signatures.append(signature)
    # ASCII digits only: str.isdigit() also admits "²", which then fails to encode.
    if len(timestamps) != 1 or re.fullmatch(r"[0-9]{1,12}", timestamps[0]) is None or not signatures:
        raise Rejection(
            400, "signature_malformed", f"The {STRIPE_HEADER} header needs one t=<unix time> and a v1=<hex signature>"
        )
    expected = _digest("sha256", secret, timestamps[0].encode("ascii") + b"." + body)
    # Every candidate is compared (no early exit), so timing does not tell which one matched.
    matched = [hmac.compare_digest(expected, signature) for signature in signatures]
    if not any(matched):
        raise _mismatch()
    if not _within(float(timestamps[0]), now, tolerance):
        raise _stale(tolerance)


def verify_github(header: str | None, body: bytes, secret: str) -> None:
    """Raise `Rejection` unless `header` is `sha256=<hex>` of the HMAC-SHA256 of `body`."""
    if not header:
        raise _missing(GITHUB_HEADER)
    scheme, sep, value = header.strip().partition("=")
    signature = _hex_bytes(value) if sep and scheme == "sha256" and len(value) == 64 else None
    if signature is None:
        raise Rejection(400, "signature_malformed", f"The {GITHUB_HEADER} header must be sha256=<64 hex digits>")
    if not hmac.compare_digest(_digest("sha256", secret, body), signature):
        raise _mismatch()


def _decode(spec: WebhookSpec, text: str) -> bytes | None:
    if spec.encoding == "hex":
        return _hex_bytes(text)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        try:  # base64url, as some providers send it
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return None


def _unix_time(text: str) -> float | None:
    """Unix seconds, or milliseconds (anything past year 5138 in seconds is taken as milliseconds)."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return value / 1000 if value > 1e11 else value


def verify_hmac(spec: WebhookSpec, headers: Mapping[str, str], body: bytes, secret: str, *, now: float) -> None:
    """The configurable scheme: `prefix + encode(HMAC(secret, signed_payload))` in `spec.header`.

    With `timestamp_header`, the timestamp must be within `spec.tolerance` and is part of what is signed.
    Header names are matched case-insensitively (`headers` is a Starlette `Headers` or lower-cased keys).
    """
    raw = headers.get(spec.header) or headers.get(spec.header.lower())
    if not raw:
        raise _missing(spec.header)
    if len(raw) > MAX_SIGNATURE_HEADER:
        raise Rejection(400, "signature_malformed", f"The {spec.header} header is too long")
    raw = raw.strip()
    if spec.prefix and not raw.startswith(spec.prefix):
        raise Rejection(400, "signature_malformed", f"The {spec.header} header must start with {spec.prefix!r}")
    signature = _decode(spec, raw[len(spec.prefix) :])
    if not signature:
        raise Rejection(400, "signature_malformed", f"The {spec.header} header is not {spec.encoding}")
    timestamp = ""
    if spec.timestamp_header is not None:
        timestamp = (headers.get(spec.timestamp_header) or headers.get(spec.timestamp_header.lower()) or "").strip()
        if not timestamp:
            raise Rejection(401, "timestamp_missing", f"The delivery carries no {spec.timestamp_header} header")
        if _unix_time(timestamp) is None:
            raise Rejection(400, "timestamp_malformed", f"The {spec.timestamp_header} header is not a unix time")
    # The template is the manifest's; the body goes in exactly once, as received (`{body}` inside the body is data).
    head, _, tail = spec.signed_payload.replace("{timestamp}", timestamp).partition("{body}")
    payload = head.encode("utf-8") + body + tail.encode("utf-8")
    if not hmac.compare_digest(_digest(spec.algorithm, secret, payload), signature):
        raise _mismatch()
    seconds = _unix_time(timestamp) if timestamp else None
    if seconds is not None and not _within(seconds, now, spec.tolerance):
        raise _stale(spec.tolerance)


def verify(spec: WebhookSpec, headers: Mapping[str, str], body: bytes, secret: str, *, now: float) -> None:
    """Raise `Rejection` unless the delivery is signed with `secret` as `spec` says (and fresh, where it can tell)."""
    if spec.type == "stripe":
        verify_stripe(headers.get(STRIPE_HEADER), body, secret, tolerance=spec.tolerance, now=now)
    elif spec.type == "github":
        verify_github(headers.get(GITHUB_HEADER), body, secret)
    else:
        verify_hmac(spec, headers, body, secret, now=now)
