"""Turn an upstream answer into what the client sees: a `ToolSuccess` or a `ToolError`. Pure.

Secrets are scrubbed before anything else looks at the body; JSON is parsed, then
trimmed by whole array items to the operation's result cap; text is cut with a note.
A connector's `error_format` names where its error body keeps message, code and type;
a paginated operation's page is read into items, `has_more` and the next cursor here too.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from mcp_server._body import trim_json
from mcp_server._errors import AuthFailed, RateLimited, UpstreamError, printable_tree
from mcp_server._exchange import RawResponse
from mcp_server._model import CallPolicy, ErrorFormat, JsonPointer, Pagination
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


@dataclass(frozen=True, slots=True)
class Parsed:
    """A 2xx answer, scrubbed and parsed but not yet trimmed (pages are joined before the result is cut to size)."""

    status: int
    value: Any
    text: str
    is_json: bool


def shape_response(
    label: str, response: RawResponse, policy: CallPolicy, redactor: Redactor, errors: ErrorFormat | None = None
) -> ToolSuccess:
    """The success the model sees, or raise the `ToolError` that describes the failure."""
    return finish(read_response(label, response, redactor, errors), policy)


def finish(parsed: Parsed, policy: CallPolicy) -> ToolSuccess:
    """`parsed` cut to the operation's `max_result_chars`: JSON by whole array items, text with a note."""
    status, text = parsed.status, parsed.text
    limit = policy.max_result_chars
    if parsed.is_json:
        if len(text) <= limit:
            # Most answers are far under the cap: one serialization tells, without trim_json's size walk
            # (which measures with the same separators, so it would keep the value whole too).
            dumped = json.dumps(parsed.value, ensure_ascii=False)
            if len(dumped) <= limit:
                return ToolSuccess(status, parsed.value, dumped, True)
        trimmed = trim_json(parsed.value, limit)
        return ToolSuccess(status, trimmed.value, json.dumps(trimmed.value, ensure_ascii=False), True, trimmed.note)
    if len(text) > limit:
        note = f"Result cut to {limit} characters; {len(text) - limit} more were not shown."
        return ToolSuccess(status, None, f"{text[:limit]}\n[{note}]", False, note)
    return ToolSuccess(status, None, text, False)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def read_response(label: str, response: RawResponse, redactor: Redactor, errors: ErrorFormat | None = None) -> Parsed:
    """The parsed 2xx answer, or raise the `ToolError` that describes the failure."""
    text = redactor.text(_decode(response.body, response.encoding))
    parsed: Any = None
    is_json = not response.body.strip()
    if not is_json and _looks_like_json(response.headers.get("content-type", ""), response.body):
        try:
            parsed = redactor.value(json.loads(text))
            if _SURROGATE_ESCAPE.search(text):
                # JSON may spell a lone surrogate ("\ud800"), which no wire form can carry: written as the
                # escape's text, as error messages write one, instead of failing the answer's serialization.
                parsed = printable_tree(parsed)
            is_json = True
        except ValueError:
            pass
        except RecursionError:
            raise UpstreamError(
                f"{label} answered with JSON nested too deeply to read", status=response.status
            ) from None

    status = response.status
    if 200 <= status < 300:
        return Parsed(status, parsed, text, is_json)

    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "error"
    summary = f"{label} answered HTTP {status} {reason}"
    said = upstream_message(parsed) if is_json else None
    message = f"{summary}: {said}" if said else summary
    details: dict[str, Any] = {"status": status, "body": _quoted_body(parsed, text, is_json)}
    formatted = _formatted_error(parsed, errors) if errors is not None and is_json else None
    if formatted is not None:
        # The API's own words, code and type lead; the status stays in the details.
        said, fields = formatted
        message = f"{label}: {said}"
        details = {"status": status, **fields, "body": details["body"]}
    if status == 401:
        raise AuthFailed(
            _sentences(message, "The stored credential was rejected; check it and store it again."), **details
        )
    if _is_rate_limit(response):
        delay = server_delay(response.headers, time.time())
        retry_after = None if delay is None else max(1, round(delay))
        when = f"Retry after {retry_after} s." if retry_after is not None else "Retry later."
        raise RateLimited(_sentences(message, when), retry_after=retry_after, **details)
    raise UpstreamError(message, **details)


def _sentences(first: str, second: str) -> str:
    return f"{first} {second}" if first.endswith((".", "!", "?")) else f"{first}. {second}"


# --- JSON pointers, error formats, pages ------------------------------------------------------------------------------

_MISSING = object()


def resolve_pointer(document: Any, pointer: JsonPointer) -> Any:
    """The value `pointer` (RFC 6901) names in `document`, or `_MISSING`.

    A string met on the way that is itself JSON text is parsed and descended into: Frappe keeps its messages in
    `_server_messages`, a JSON list of JSON objects, each as text.
    """
    node = document
    if not pointer:
        return node
    for raw in pointer[1:].split("/"):
        step = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, str) and node[:1] in ("{", "["):
            try:
                node = json.loads(node)
            except (ValueError, RecursionError):
                return _MISSING
        if isinstance(node, dict) and step in node:
            node = cast(dict[str, Any], node)[step]
        elif isinstance(node, list) and step.isdigit() and (step == "0" or step[0] != "0"):
            items = cast(list[Any], node)
            if int(step) >= len(items):
                return _MISSING
            node = items[int(step)]
        else:
            return _MISSING
    return node


def first_present(document: Any, pointers: tuple[JsonPointer, ...]) -> Any:
    """The first value the pointers reach that is neither null nor an empty string, or None."""
    for pointer in pointers:
        value = resolve_pointer(document, pointer)
        if value is not _MISSING and value is not None and value != "":
            return value
    return None


def _formatted_error(parsed: Any, errors: ErrorFormat) -> tuple[str, dict[str, Any]] | None:
    """`"<code> (<type>): <message>"` and the detail fields, or None when the body is not in the declared format."""
    said = first_present(parsed, errors.message)
    if not isinstance(said, str):
        return None
    code, kind = first_present(parsed, errors.code), first_present(parsed, errors.type)
    code = code if isinstance(code, str | int) else None
    kind = kind if isinstance(kind, str | int) else None
    fields: dict[str, Any] = {}
    if code is not None:
        fields["code"] = code
    if kind is not None:
        fields["type"] = kind
    for name, pointers in errors.details.items():
        value = first_present(parsed, pointers)
        if value is not None:
            fields[name] = value
    head = f"{code} ({kind})" if code is not None and kind is not None else code if code is not None else kind
    said = said.strip()[:300]
    return (f"{head}: {said}" if head is not None else said), fields


@dataclass(frozen=True, slots=True)
class PageBody:
    """One page as the API answered it: its items, the rest of the body, and what it says about the next page."""

    items: list[Any]
    extras: dict[str, Any]
    """The body's other top-level members (Stripe's `url`, GitHub search's `total_count`), kept beside the items."""
    has_more: bool | None
    """What the body says (`has_more` pointer), or None when it says nothing."""
    next_cursor: Any
    """The next page's cursor from the body (`next_cursor`) or the `Link` header, or None."""


RESERVED_PAGE_KEYS = frozenset({"items", "has_more", "next_page", "truncated", "pages", "note"})
"""The page object's own members; a body member of the same name is dropped rather than shadowed."""


def page_body(label: str, parsed: Parsed, headers: Mapping[str, str], pagination: Pagination) -> PageBody:
    """The items and paging hints of one 2xx answer; an answer with no list where the items should be is an error."""
    value = parsed.value if parsed.is_json else _MISSING
    items = resolve_pointer(value, pagination.items) if value is not _MISSING else _MISSING
    if not isinstance(items, list):
        where = pagination.items or "the top level"
        raise UpstreamError(
            f"{label} answered HTTP {parsed.status} without a list of items at {where}",
            status=parsed.status,
            body=_quoted_body(parsed.value, parsed.text, parsed.is_json),
        )
    extras: dict[str, Any] = {}
    if isinstance(value, dict):
        own = {_top(pointer) for pointer in (pagination.items, pagination.has_more, pagination.next_cursor) if pointer}
        body = cast(dict[str, Any], value)
        extras = {key: item for key, item in body.items() if key not in own and key not in RESERVED_PAGE_KEYS}
    has_more = resolve_pointer(value, pagination.has_more) if pagination.has_more else None
    next_cursor: Any = None
    if pagination.style == "cursor" and pagination.next_cursor:
        found = resolve_pointer(value, pagination.next_cursor)
        next_cursor = None if found is _MISSING or found == "" else found
    elif pagination.style == "link" and pagination.cursor_param:
        url = next_link(headers.get("link", ""))
        if url is not None:
            next_cursor = (parse_qs(urlsplit(url).query).get(pagination.cursor_param) or [None])[0]
    return PageBody(
        items=cast(list[Any], items),
        extras=extras,
        has_more=has_more if isinstance(has_more, bool) else None,
        next_cursor=next_cursor,
    )


def _top(pointer: JsonPointer) -> str:
    return pointer[1:].split("/", 1)[0].replace("~1", "/").replace("~0", "~")


_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")


def next_link(header: str) -> str | None:
    """The target of the `rel="next"` link in a `Link` header (RFC 8288), or None."""
    for match in _LINK.finditer(header):
        target, params = match.groups()
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "rel" and "next" in value.strip().strip('"').lower().split():
                return target
    return None
