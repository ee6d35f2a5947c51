"""Turn an upstream answer into what the client sees: a `ToolSuccess` or a `ToolError`. Pure.

Secrets are scrubbed before anything else looks at the body; JSON is parsed, then
trimmed by whole array items to the operation's result cap; text is cut with a note.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

from mcp_server._body import trim_json
from mcp_server._errors import AuthFailed, RateLimited, UpstreamError
from mcp_server._exchange import RawResponse
from mcp_server._model import CallPolicy
from mcp_server._redact import Redactor
from mcp_server._resilience import server_delay

MAX_ERROR_BODY_CHARS = 2000
"""How much of a failed upstream answer is quoted back in `details.body`."""


@dataclass(frozen=True, slots=True)
class ToolSuccess:
    status: int
    value: Any
    """The parsed JSON body when `is_json` (None for an empty body); otherwise None and the body is `text`."""
    text: str
    is_json: bool
    note: str | None = None
    """Set when the result was trimmed to fit `max_result_chars`; says what was dropped."""


def _looks_like_json(content_type: str, body: bytes) -> bool:
    if content_type:
        return "json" in content_type.lower()
    return body.lstrip()[:1] in (b"{", b"[")


def _decode(body: bytes, encoding: str | None) -> str:
    try:
        return body.decode(encoding or "utf-8", errors="replace")
    except (LookupError, UnicodeError):  # unknown charset, or a codec such as idna that cannot replace
        return body.decode("utf-8", errors="replace")


def upstream_message(parsed: Any) -> str | None:
    """The human sentence most APIs put in their error body (`message`, `error.message`, `error`)."""
    if not isinstance(parsed, dict):
        return None
    body = cast(dict[str, Any], parsed)
    for candidate in (body.get("message"), body.get("error_description"), body.get("error")):
        if isinstance(candidate, dict):
            candidate = cast(dict[str, Any], candidate).get("message")
        if isinstance(candidate, str) and candidate:
            return candidate[:300]
    return None


def _is_rate_limit(response: RawResponse) -> bool:
    """429, or GitHub's way: 403 with `Retry-After` (secondary limit) or `X-RateLimit-Remaining: 0` (primary)."""
    if response.status == 429:
        return True
    headers = response.headers
    return response.status == 403 and ("retry-after" in headers or headers.get("x-ratelimit-remaining") == "0")


def _quoted_body(parsed: Any, text: str, is_json: bool) -> Any:
    if is_json and len(json.dumps(parsed, ensure_ascii=False)) <= MAX_ERROR_BODY_CHARS:
        return parsed
    return text if len(text) <= MAX_ERROR_BODY_CHARS else text[:MAX_ERROR_BODY_CHARS] + "…"


def shape_response(label: str, response: RawResponse, policy: CallPolicy, redactor: Redactor) -> ToolSuccess:
    """The success the model sees, or raise the `ToolError` that describes the failure."""
    text = redactor.text(_decode(response.body, response.encoding))
    parsed: Any = None
    is_json = not response.body.strip()
    if not is_json and _looks_like_json(response.headers.get("content-type", ""), response.body):
        try:
            parsed = redactor.value(json.loads(text))
            is_json = True
        except ValueError:
            pass
        except RecursionError:
            raise UpstreamError(
                f"{label} answered with JSON nested too deeply to read", status=response.status
            ) from None

    status = response.status
    if 200 <= status < 300:
        if is_json:
            trimmed = trim_json(parsed, policy.max_result_chars)
            return ToolSuccess(status, trimmed.value, json.dumps(trimmed.value, ensure_ascii=False), True, trimmed.note)
        limit = policy.max_result_chars
        if len(text) > limit:
            note = f"Result cut to {limit} characters; {len(text) - limit} more were not shown."
            return ToolSuccess(status, None, f"{text[:limit]}\n[{note}]", False, note)
        return ToolSuccess(status, None, text, False)

    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "error"
    summary = f"{label} answered HTTP {status} {reason}"
    said = upstream_message(parsed) if is_json else None
    message = f"{summary}: {said}" if said else summary
    details: dict[str, Any] = {"status": status, "body": _quoted_body(parsed, text, is_json)}
    if status == 401:
        raise AuthFailed(f"{message}. The stored credential was rejected; check it and store it again.", **details)
    if _is_rate_limit(response):
        delay = server_delay(response.headers, time.time())
        retry_after = None if delay is None else max(1, round(delay))
        when = f"Retry after {retry_after} s." if retry_after is not None else "Retry later."
        raise RateLimited(f"{message}. {when}", retry_after=retry_after, **details)
    raise UpstreamError(message, **details)
