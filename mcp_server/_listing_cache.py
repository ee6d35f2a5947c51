"""Repeated `tools/list` requests answered with the wire result the SDK produced the first time.

A profile of a 5,000-tool listing (docs/benchmarks/profiles) spent 91 % of its time in the SDK
re-validating and re-dumping the same pydantic models on every request; our handler was ~0 %. The
SDK's own extension point for this is a `ServerMiddleware`: one that returns without calling
`call_next` owns the result. This one only ever returns a dict the SDK itself serialized for an
identical request (same listing, cursor, protocol version), so the wire format cannot drift from
the SDK's; everything else — the first request of each key, errors, other methods — goes through
the SDK untouched.

The key includes the registry object the listing was paged from, so a hot reload (which swaps the
registry) or another client's view (a different registry) never sees a stale page.

`wire_json` gives a transport that writes messages itself (stdio, `_stdio_pipes.MessageWriter`) the JSON
text of a cached page, serialized once by pydantic-core, the serializer the SDK's own writer uses: a
5,000-tool listing is 21 MB of JSON, and re-serializing it for every request was most of a listing's cost.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import pydantic_core
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

__all__ = ["ListingCache"]

_MAX_ENTRIES = 256
"""Pages by views by protocol versions; each entry holds references to tool dicts, not copies."""

ListingKey = Callable[[ServerRequestContext[Any, Any]], Hashable | None]
"""What the listing depends on besides the cursor and protocol version; None: do not cache this request."""


class ListingCache:
    """A `ServerMiddleware` for `tools/list`; see the module docstring."""

    def __init__(self, listing_key: ListingKey) -> None:
        self._listing_key = listing_key
        self._entries: OrderedDict[Hashable, dict[str, Any]] = OrderedDict()
        # id() of a cached page's `tools` list → the page and, once written, its JSON text.
        self._wire: dict[int, tuple[dict[str, Any], bytes | None]] = {}

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/list" or ctx.request_id is None:
            return await call_next(ctx)
        key = self._key(ctx)
        if key is None:
            return await call_next(ctx)
        cached = self._entries.get(key)
        if cached is not None:
            self._entries.move_to_end(key)
            return cached  # the SDK copies a returned dict before it shapes the envelope around it
        result = await call_next(ctx)
        if isinstance(result, dict):
            page: dict[str, Any] = result
            tools: object = page.get("tools")
            if isinstance(tools, list):
                replaced = self._entries.get(key)  # concurrent misses of one key: the last answer stays
                if replaced is not None:
                    self._wire.pop(_identity(replaced["tools"]), None)
                self._entries[key] = page
                self._wire[_identity(page["tools"])] = (page, None)
            while len(self._entries) > _MAX_ENTRIES:
                _, evicted = self._entries.popitem(last=False)
                self._wire.pop(_identity(evicted["tools"]), None)
        return result

    def wire_json(self, result: Mapping[str, Any]) -> bytes | None:
        """The JSON text of `result` when it is (the SDK's shallow copy of) a cached page, else None.

        Same members, each the very object cached: nothing can have changed, so the text serialized the
        first time is the text serializing it again would give.
        """
        tools: object = result.get("tools")
        found = self._wire.get(_identity(tools))
        if found is None:
            return None
        page, text = found
        if (
            page["tools"] is not tools
            or len(page) != len(result)
            or any(result.get(k) is not v for k, v in page.items())
        ):
            return None
        if text is None:
            text = pydantic_core.to_json(page)
            self._wire[_identity(tools)] = (page, text)
        return text

    def _key(self, ctx: ServerRequestContext[Any, Any]) -> Hashable | None:
        if not _initialized(ctx):
            return None  # the SDK's pre-initialization gate must answer this one
        params = ctx.params
        cursor: object = None
        if params is not None:
            if not set(params) <= {"cursor", "_meta"}:
                return None  # anything unusual is the SDK's to validate and answer
            cursor = params.get("cursor")
            if cursor is not None and not isinstance(cursor, str):
                return None
        listing = self._listing_key(ctx)
        if listing is None:
            return None
        return (listing, cursor, ctx.protocol_version)


def _identity(value: object) -> int:
    return id(value)


def _initialized(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether the SDK's request gate is open for this connection; False when it cannot tell (never cache then)."""
    connection = getattr(ctx.session, "_connection", None)
    return bool(getattr(connection, "initialize_accepted", False))
