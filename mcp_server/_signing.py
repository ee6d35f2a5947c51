"""Request signing over the final request: a generic HMAC scheme and AWS Signature Version 4. Pure: the clock
and the nonce are parameters, so a retry that re-signs passes a fresh `now`.

Both signers run after `_request.build_request` on the `PreparedRequest` that is about to be sent, because a
signature covers bytes (the method, the URL as encoded, header values, the body) that only exist then. The Host
they cover is `_exchange.host_header(url)`, the value the sender writes, not one recomputed here, so the two
cannot drift apart. Every header a signer sets replaces any same-named header (compared case-insensitively)
already in the request: credentials always win over manifest headers and arguments.

HMAC (`HmacAuth`): the many "key id + timestamp + HMAC over a canonical string" schemes of web APIs differ only
in what the canonical string holds and where the parts go, so the canonical string is a `str.format`-style
template over a fixed set of fields (`HMAC_TEMPLATE_FIELDS`) and the header names, digest, encoding and prefix
are settings. The template is taken literally: a YAML `"\\n"` is already a newline when it arrives here, and no
further escape processing happens.

SigV4 (`SigV4Auth`): https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html, with the same
choices as botocore, against which the tests check it:

- Canonical URI: for every service but S3 the path is normalised (dot segments and empty segments removed) and
  then percent-encoded once more, because AWS encodes the path it received and our URL is already encoded once.
  S3 neither normalises nor double-encodes: each segment is decoded and re-encoded once with AWS's rules (which
  is the identity for a path encoded that way, and repairs lower-case or missing escapes otherwise).
- Canonical query: the URL's query is decoded (`+` as a space, as form decoding does) and every key and value
  re-encoded with AWS's rules (`A-Z a-z 0-9 - _ . ~` kept, everything else `%XX`), then sorted by key, then
  value: the service canonicalises what it parsed, not the bytes we happened to send.
- Signed headers: `host` plus every header of the request except those a proxy or the HTTP client may add,
  drop or rewrite (botocore's list: `user-agent`, `expect`, `transfer-encoding`, `connection`, tracing
  headers, ...) and the two the sender replaces itself (`host`, `accept-encoding`).
- `X-Amz-Content-Sha256` (the hex SHA-256 of the body) is sent, and signed, for S3 only, as botocore does: S3
  requires it, other services neither require nor expect it (AWS's own test-suite vectors do not sign it).
  The payload hash in the canonical request is always the hash of the actual body; unsigned payloads are not
  offered, since the whole body is in memory anyway.
- `X-Amz-Security-Token` carries a session token when there is one (temporary credentials), signed.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import string
from datetime import UTC, datetime
from urllib.parse import quote, unquote_to_bytes, urlsplit

from mcp_server._exchange import host_header
from mcp_server._model import HmacAuth, SigV4Auth
from mcp_server._request import PreparedRequest
from mcp_server._serialize import has_control_characters

Headers = tuple[tuple[str, str], ...]

HMAC_TEMPLATE_FIELDS = frozenset(
    {
        "method",
        "path",
        "path_only",
        "query",
        "timestamp",
        "body_sha256",
        "body_sha512",
        "body_md5",
        "host",
        "key_id",
        "nonce",
    }
)
"""The names an `HmacAuth.canonical` template may use, each as a plain `{name}`."""


def check_hmac_template(template: str) -> None:
    """Raise ValueError (with a message fit for a manifest fault) unless `template` uses only plain `{field}`
    placeholders from HMAC_TEMPLATE_FIELDS; `{{` and `}}` stand for literal braces."""
    _template_parts(template)


def sign_hmac(
    request: PreparedRequest, auth: HmacAuth, *, key_id: str, secret: str, now: float, nonce: str
) -> PreparedRequest:
    """`request` with the key id, timestamp, signature (and nonce, when configured) headers of `auth` set."""
    if not secret:
        raise ValueError("the HMAC secret is empty")
    parts = urlsplit(request.url)
    path_only = parts.path or "/"  # what an HTTP client sends for an empty path
    body = request.content or b""
    timestamp = _hmac_timestamp(now, auth.timestamp_format)
    fields = {
        "method": request.method.upper(),
        "path": f"{path_only}?{parts.query}" if parts.query else path_only,
        "path_only": path_only,
        "query": parts.query,
        "timestamp": timestamp,
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "body_sha512": hashlib.sha512(body).hexdigest(),
        "body_md5": hashlib.md5(body, usedforsecurity=False).hexdigest(),
        "host": host_header(request.url),
        "key_id": key_id,
        "nonce": nonce,
    }
    canonical = "".join(
        literal + (fields[name] if name is not None else "") for literal, name in _template_parts(auth.canonical)
    )
    digest = hmac.new(secret.encode("utf-8"), canonical.encode("utf-8"), auth.algorithm).digest()
    encoded = digest.hex() if auth.signature_encoding == "hex" else base64.b64encode(digest).decode("ascii")

    added: list[tuple[str, str]] = []
    if auth.key_header is not None:
        added.append((auth.key_header, _header_safe("the HMAC key id", key_id)))
    added.append((auth.timestamp_header, timestamp))
    if auth.nonce_header is not None:
        added.append((auth.nonce_header, _header_safe("the HMAC nonce", nonce)))
    added.append((auth.signature_header, _header_safe("the HMAC signature prefix", auth.signature_prefix) + encoded))
    return dataclasses.replace(request, headers=_replaced(request.headers, added))


def _template_parts(template: str) -> list[tuple[str, str | None]]:
    """(literal text, field name or None) pairs of a template; ValueError for anything but known plain fields."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:  # an unmatched `{` or `}`
        raise ValueError(f"HMAC canonical template: {exc} (write {{{{ or }}}} for a literal brace)") from None
    parts: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None:
            if name not in HMAC_TEMPLATE_FIELDS:
                known = ", ".join(sorted(HMAC_TEMPLATE_FIELDS))
                shown = f"{{{name}}}" if name else "{}"
                raise ValueError(f"HMAC canonical template: unknown field {shown}; the fields are {known}")
            # Format specs and conversions are refused rather than interpreted: a signature over `{method!r}`
            # or `{path:>40}` is almost certainly a mistake, and plain fields are all any scheme needs.
            if spec or conversion:
                raise ValueError(f"HMAC canonical template: write {{{name}}} without a format spec or conversion")
        parts.append((literal, name))
    return parts


def _hmac_timestamp(now: float, form: str) -> str:
    if form == "unix":
        return str(int(now))
    if form == "unix_ms":
        return str(int(now * 1000))
    return datetime.fromtimestamp(int(now), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# SigV4

_SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"
_UNSIGNED_HEADERS = frozenset(
    {
        # botocore's SIGNED_HEADERS_BLACKLIST: hop-by-hop and tracing headers that proxies and agents add,
        # remove or rewrite on the way.
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
        # `_exchange` drops these from the request and sends its own values; `host` is signed from the URL.
        "host",
        "accept-encoding",
    }
)


def sign_sigv4(
    request: PreparedRequest,
    auth: SigV4Auth,
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None,
    now: float,
) -> PreparedRequest:
    """`request` with `X-Amz-Date`, `Authorization` and, as needed, `X-Amz-Security-Token` and
    `X-Amz-Content-Sha256` set (see the module docstring for what is signed)."""
    if not secret_access_key:
        raise ValueError("the AWS secret access key is empty")
    is_s3 = auth.service == "s3"
    amz_date = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    payload_hash = hashlib.sha256(request.content or b"").hexdigest()

    # The headers this signer owns are removed from the request first, whatever their case, and set anew.
    owned = {"authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"}
    added: list[tuple[str, str]] = [("X-Amz-Date", amz_date)]
    if is_s3:
        added.append(("X-Amz-Content-Sha256", payload_hash))
    if session_token is not None:
        added.append(("X-Amz-Security-Token", _header_safe("the AWS session token", session_token)))
    headers = (*((name, value) for name, value in request.headers if name.lower() not in owned), *added)

    signed: dict[str, list[str]] = {"host": [host_header(request.url)]}
    for name, value in headers:
        key = name.strip().lower()
        if key not in _UNSIGNED_HEADERS:
            signed.setdefault(key, []).append(" ".join(value.split()))
    signed_names = ";".join(sorted(signed))
    parts = urlsplit(request.url)
    canonical_request = "\n".join(
        [
            request.method.upper(),
            _s3_path(parts.path) if is_s3 else _double_encoded_path(parts.path),
            _canonical_query(parts.query),
            "".join(f"{name}:{','.join(signed[name])}\n" for name in sorted(signed)),
            signed_names,
            payload_hash,
        ]
    )
    scope = f"{amz_date[:8]}/{auth.region}/{auth.service}/aws4_request"
    string_to_sign = "\n".join(
        [_SIGV4_ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()]
    )
    key = f"AWS4{secret_access_key}".encode()
    for part in (amz_date[:8], auth.region, auth.service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    credential = f"{_header_safe('the AWS access key id', access_key_id)}/{scope}"
    authorization = f"{_SIGV4_ALGORITHM} Credential={credential}, SignedHeaders={signed_names}, Signature={signature}"
    return dataclasses.replace(request, headers=(*headers, ("Authorization", authorization)))


def _aws_encode(data: str | bytes) -> str:
    # `quote` keeps exactly RFC 3986's unreserved `A-Z a-z 0-9 - _ . ~` with safe="", upper-case hex, UTF-8.
    return quote(data, safe="")


def _double_encoded_path(path: str) -> str:
    """RFC 3986 §5.2.4 dot-segment removal plus AWS's collapsing of empty segments, then one more encoding."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    normalized = "/" + "/".join(segments)
    if segments and path.endswith("/"):
        normalized += "/"
    return quote(normalized, safe="/~")


def _s3_path(path: str) -> str:
    return "/".join(_aws_encode(unquote_to_bytes(segment)) for segment in (path or "/").split("/"))


def _canonical_query(query: str) -> str:
    pairs: list[tuple[str, str]] = []
    for item in query.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        # Bytes throughout: an escape that is not UTF-8 (`%FF`) must come out as it went in.
        pairs.append(
            (
                _aws_encode(unquote_to_bytes(key.replace("+", " "))),
                _aws_encode(unquote_to_bytes(value.replace("+", " "))),
            )
        )
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


# Shared


def _header_safe(what: str, value: str) -> str:
    """`value` if an HTTP header can carry it; a ValueError naming `what`, never the value, otherwise."""
    if has_control_characters(value):
        raise ValueError(f"{what} contains a line break or another control character")
    if not value.isascii():
        raise ValueError(f"{what} contains non-ASCII characters, which a header cannot carry")
    return value


def _replaced(headers: Headers, added: list[tuple[str, str]]) -> Headers:
    """`headers` without any name in `added` (case-insensitively), then `added`."""
    names = {name.lower() for name, _ in added}
    return (*((name, value) for name, value in headers if name.lower() not in names), *added)
