"""What one tool call sends upstream and makes of the answers: the request its arguments pick (variants), every page
`all_pages` follows, the cut to the result size limit, and the check against the tool's output schema.

A paginated tool answers one page object, whatever the API's own way of paging:

    {"has_more": true, "next_page": {"starting_after": "ch_3"}, ..., "items": [...]}

`next_page` holds the arguments that fetch the next page (added to the same arguments), or null. Positions come
from the pagination style: a cursor (Stripe's last id), an offset (Frappe's `limit_start`), the `Link` header's next
page (GitHub), or a keyset over sorted fields (an opaque cursor that encodes the last item's keys, so records that
share a sort value are neither skipped nor repeated). `all_pages` follows `next_page` until the last page, the
operation's `max_items` / `max_pages`, the result size limit or the call's deadline, whichever comes first; a result
cut short says `truncated: true` and why, and its `next_page` continues exactly after the last item it holds.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import anyio

from mcp_server._catalog import placeholder
from mcp_server._errors import AuthMissing, InvalidArguments, ToolError, UpstreamError
from mcp_server._exchange import RawResponse
from mcp_server._model import Operation, Pagination
from mcp_server._redact import Redactor
from mcp_server._registry import ALL_PAGES, ToolSpec
from mcp_server._request import Binding
from mcp_server._shape import (
    MAX_ERROR_BODY_CHARS,
    Parsed,
    ToolSuccess,
    finish,
    page_body,
    read_response,
    resolve_pointer,
    shape_response,
)

Send = Callable[[Operation, Mapping[str, Binding], Mapping[str, Any]], Awaitable[RawResponse]]
"""Builds and sends one request (credentials, retries, breaker: the pipeline's business) and returns the answer."""

_SIZE_MARGIN = 512
"""Characters kept free for `next_page` and the note when items are cut to the result size limit."""


async def run_tool(
    tool: ToolSpec, arguments: Mapping[str, Any], send: Send, redactor: Callable[[], Redactor]
) -> ToolSuccess:
    """The call's result; raises the `ToolError` of the first failure (a later page's failure ends `all_pages`
    early instead, keeping the pages before it)."""
    connector = tool.connector
    if connector.base_url_unset is not None:
        name = connector.base_url_unset
        fix = f"export {name}=https://your-host before starting the server"
        raise AuthMissing(
            f"{connector.name}: environment variable {name} (the API's base URL) is not set; run: {fix}",
            connector=connector.name,
            missing=name,
            source="env",
            fix=fix,
        )
    operation, bindings, sent = tool.request_for(arguments)
    label = connector.title or connector.name
    pagination = tool.operation.pagination
    if pagination is None:
        response = await send(operation, bindings, sent)
        success = shape_response(label, response, tool.operation.policy, redactor(), connector.error_format)
        check_output(tool, label, success)
        return success
    pager = _Pager(tool, pagination, operation, bindings, sent, arguments, send, label, redactor)
    success = await pager.run(all_pages=bool(arguments.get(ALL_PAGES)))
    check_output(tool, label, success)
    return success


def check_output(tool: ToolSpec, label: str, success: ToolSuccess) -> None:
    """Refuse an answer that breaks the tool's output schema: clients check `structuredContent` against it, and a
    clear upstream error beats a client-side validation failure the model cannot read."""
    if tool.output_validator is None:
        return
    if not success.is_json:
        raise UpstreamError(
            f"{label} answered HTTP {success.status} with text, not the JSON {tool.name} promises",
            status=success.status,
            body=success.text[:MAX_ERROR_BODY_CHARS],
        )
    raw: Any = success.value
    value: Any = cast(dict[str, Any], raw) if isinstance(raw, dict) else {"result": raw}  # as structuredContent
    problem = tool.output_problem(value)
    if problem is not None:
        path, message = problem
        raise UpstreamError(
            f"{label}'s answer does not match the output schema of {tool.name} at {path}: {message}"[:500],
            status=success.status,
            path=path,
        )


# --- keyset cursors ---------------------------------------------------------------------------------------------------


def encode_cursor(key: tuple[Any, ...]) -> str:
    """An opaque, URL-safe cursor for the key of the last item served."""
    text = json.dumps(list(key), separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> tuple[Any, ...] | None:
    """The key inside a cursor of `size` keys, or None when it is not one `encode_cursor` made."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(key, list) or len(cast(list[Any], key)) != size:
        return None
    values = cast(list[Any], key)
    if not all(isinstance(value, str | int | float | bool) or value is None for value in values):
        return None
    return tuple(values)


def fill(template: Any, key: tuple[Any, ...], arguments: Mapping[str, Any]) -> Any:
    """`template` with `{key: N}` replaced by the N-th key and `{argument: NAME}` by that argument."""
    found = placeholder(template)
    if found is not None:
        kind, target = found
        return key[target] if kind == "key" else arguments.get(target)
    if isinstance(template, Mapping):
        return {name: fill(value, key, arguments) for name, value in cast(Mapping[str, Any], template).items()}
    if isinstance(template, list):
        return [fill(value, key, arguments) for value in cast(list[Any], template)]
    return template


# --- pages ------------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Page:
    status: int
    items: list[Any]
    extras: dict[str, Any]
    has_more: bool
    next: Any
    """The position of the page after this one (a cursor, an offset, a key), or None."""
    resumable: bool
    """Whether a position can be had after any item (cursor field, offset, keyset), not only after the last."""
    size: int
    """Serialized length of the items, for the result size limit."""


class _Pager:
    def __init__(
        self,
        tool: ToolSpec,
        pagination: Pagination,
        operation: Operation,
        bindings: Mapping[str, Binding],
        sent: Mapping[str, Any],
        arguments: Mapping[str, Any],
        send: Send,
        label: str,
        redactor: Callable[[], Redactor],
    ) -> None:
        self.tool, self.pagination, self.operation, self.bindings = tool, pagination, operation, bindings
        self.sent, self.arguments, self.send, self.label, self.redactor = sent, arguments, send, label, redactor
        self.policy = tool.operation.policy
        # The tool arguments that carry the page position and size (argument names can differ from parameter names).
        argument_of = {b.name: arg for arg, b in bindings.items() if b.location != "body"}
        self.position_arg = self._position_arg(argument_of)
        self.limit_arg = argument_of.get(pagination.limit_param) if pagination.limit_param else None
        self.set_args = {argument_of.get(name, name): value for name, value in pagination.set.items()}
        self.size = self._page_size()

    def _position_arg(self, argument_of: Mapping[str, str]) -> str | None:
        pagination = self.pagination
        if pagination.style == "keyset":
            return pagination.cursor_param  # the tool's own argument, never sent
        name = pagination.offset_param if pagination.style == "offset" else pagination.cursor_param
        return argument_of.get(name) if name else None

    def _page_size(self) -> int | None:
        if self.limit_arg is not None and isinstance(self.sent.get(self.limit_arg), int):
            return cast(int, self.sent[self.limit_arg])
        return self.pagination.default_limit

    # positions -------------------------------------------------------------------------------------------------------

    def initial(self) -> Any:
        pagination, arguments = self.pagination, self.arguments
        if pagination.style == "keyset":
            cursor = arguments.get(pagination.cursor_param or "")
            if cursor is not None:
                key = decode_cursor(str(cursor), len(pagination.keys))
                if key is None:
                    raise InvalidArguments(
                        f"Invalid arguments for {self.tool.name} at $.{pagination.cursor_param}: not a cursor this "
                        "tool returned (pass next_page.cursor unchanged)",
                        path=f"$.{pagination.cursor_param}",
                    )
                return key
            start = tuple(fill(value, (), arguments) for value in pagination.start)
            if any(value is None for value in start):
                names = " or ".join(found[1] for t in pagination.start if (found := placeholder(t)) is not None)
                raise InvalidArguments(
                    f"Invalid arguments for {self.tool.name} at $: give {names} to start, or "
                    f"{pagination.cursor_param} to continue",
                    path="$",
                )
            return start
        if pagination.style == "offset":
            value = self.sent.get(self.position_arg or "")
            return value if isinstance(value, int) else 0
        return self.sent.get(self.position_arg or "")

    def next_page(self, position: Any) -> dict[str, Any] | None:
        """The arguments a caller adds to fetch the page at `position`."""
        if position is None or self.position_arg is None:
            return None
        if self.pagination.style == "keyset":
            return {self.position_arg: encode_cursor(cast(tuple[Any, ...], position))}
        return {self.position_arg: position}

    def arguments_for(self, position: Any) -> dict[str, Any]:
        pagination = self.pagination
        page = dict(self.sent)
        key: tuple[Any, ...] = position if pagination.style == "keyset" else ()
        for arg, template in self.set_args.items():
            page[arg] = fill(template, key, self.arguments)
        if pagination.style != "keyset" and self.position_arg is not None:
            if position is None:
                page.pop(self.position_arg, None)
            else:
                page[self.position_arg] = position
        if pagination.lookahead and self.limit_arg is not None and self.size is not None:
            page[self.limit_arg] = self.size + 1  # one more than wanted: its presence says for sure that more follow
        return page

    def _key(self, item: Any) -> tuple[Any, ...]:
        key = tuple(resolve_pointer(item, pointer) for pointer in self.pagination.keys)
        if any(not isinstance(value, str | int | float | bool) for value in key):
            raise UpstreamError(
                f"{self.label} answered items without their sort keys {', '.join(self.pagination.keys)}; "
                "the next page cannot be found without them"
            )
        return key

    def _cursor_of(self, item: Any) -> Any:
        value = resolve_pointer(item, self.pagination.cursor_field or "")
        return value if isinstance(value, str | int) and value != "" else None

    def _coerce(self, value: Any) -> Any:
        """A cursor read from a URL is text; an integer parameter (GitHub's `page`) is given back as a number."""
        parameter = next((p for p in self.operation.parameters if p.name == self.pagination.cursor_param), None)
        if isinstance(value, str) and parameter is not None and parameter.schema.get("type") == "integer":
            return int(value) if value.isdigit() else None
        return value

    # one page --------------------------------------------------------------------------------------------------------

    async def fetch(self, position: Any) -> _Page:
        response = await self.send(self.operation, self.bindings, self.arguments_for(position))
        parsed = read_response(self.label, response, self.redactor(), self.tool.connector.error_format)
        body = page_body(self.label, parsed, response.headers, self.pagination)
        return self.read(parsed.status, body.items, body.extras, body.has_more, body.next_cursor, position)

    def read(
        self, status: int, items: list[Any], extras: dict[str, Any], said: bool | None, cursor: Any, position: Any
    ) -> _Page:
        pagination, size = self.pagination, self.size
        style = pagination.style
        more: bool
        if pagination.lookahead and size is not None:
            more = len(items) > size
            items = items[:size]
        elif said is not None:
            more = said
        elif style == "link" or (style == "cursor" and pagination.next_cursor):
            more = cursor is not None
        else:
            more = size is not None and len(items) >= size and bool(items)
        following: Any = None
        resumable = True
        if style == "offset":
            following = cast(int, position) + len(items)
        elif style == "keyset":
            following = self._key(items[-1]) if items else None
        elif style == "cursor" and pagination.cursor_field:
            following = self._cursor_of(items[-1]) if items else None
        else:
            following, resumable = self._coerce(cursor), False
        more = more and following is not None
        measured = len(json.dumps(items, ensure_ascii=False))
        return _Page(status, items, extras, more, following if more else None, resumable, measured)

    def position_after(self, page: _Page, index: int, first: int) -> Any:
        """The position right after `page.items[index]`; `first` is the page's own starting position (offsets)."""
        style = self.pagination.style
        if style == "offset":
            return first + index + 1
        if style == "keyset":
            return self._key(page.items[index])
        return self._cursor_of(page.items[index])

    # the loop --------------------------------------------------------------------------------------------------------

    async def run(self, *, all_pages: bool) -> ToolSuccess:
        pagination, policy = self.pagination, self.policy
        deadline = anyio.current_time() + policy.timeouts.total
        position = self.initial()
        pages: list[tuple[Any, _Page]] = []  # (the position each page started at, the page)
        stop: str | None = None
        while True:
            if not pages:
                page = await self.fetch(position)  # the first page's failure is the call's failure
            else:
                page = None
                with anyio.move_on_after(deadline - anyio.current_time()):
                    try:
                        page = await self.fetch(position)
                    except ToolError as error:
                        stop = f"page {len(pages) + 1} failed ({error.error_code}: {error.message})"
                if page is None:
                    stop = stop or f"the call's {policy.timeouts.total:g} s time limit ran out"
                    break
            pages.append((position, page))
            if not all_pages or not page.has_more:
                break
            count = sum(len(p.items) for _, p in pages)
            if count >= pagination.max_items:
                stop = f"all_pages stops at {pagination.max_items:,} items"
                break
            if len(pages) >= pagination.max_pages:
                stop = f"all_pages stops after {pagination.max_pages} pages"
                break
            if sum(p.size for _, p in pages) >= policy.max_result_chars:
                stop = f"the items fill the {policy.max_result_chars:,}-character result limit"
                break
            position = page.next
        return self.compose(pages, all_pages=all_pages, stop=stop)

    def compose(self, pages: list[tuple[Any, _Page]], *, all_pages: bool, stop: str | None) -> ToolSuccess:
        pagination, policy = self.pagination, self.policy
        items = [item for _, page in pages for item in page.items]
        last = pages[-1][1]
        following = last.next if last.has_more else None
        notes: list[str] = []
        cut = False
        if all_pages and len(items) > pagination.max_items:
            kept, following, skipped = self._cut(pages, pagination.max_items)
            items, cut = items[:kept], True
            stop = f"all_pages stops at {pagination.max_items:,} items"
            if skipped:
                notes.append(self._skipped_note(skipped))
        extras = pages[0][1].extras
        result = self._result(extras, following, items, all_pages, len(pages), stop is not None or cut, None)
        overhead = len(json.dumps({**result, "items": []}, ensure_ascii=False)) + _SIZE_MARGIN
        fits = self._fitting(items, policy.max_result_chars - overhead)
        if fits < len(items):
            kept, following, skipped = self._cut(pages, max(fits, 1))
            notes.append(
                f"Only {kept:,} of {len(items):,} items fit in the {policy.max_result_chars:,}-character result "
                "limit; next_page continues after the last one shown."
            )
            if skipped:
                notes.append(self._skipped_note(skipped))
            items, cut = items[:kept], True
        if stop is not None:
            ending = "next_page continues from there." if following is not None else ""
            notes.insert(0, f"Stopped early: {stop}; {len(items):,} items from {len(pages)} pages. {ending}".strip())
        note = " ".join(notes) or None
        truncated = stop is not None or cut
        result = self._result(extras, following, items, all_pages, len(pages), truncated, note)
        success = finish(Parsed(last.status, result, "", True), policy)
        joined = " ".join(text for text in (note, success.note) if text) or None
        return ToolSuccess(success.status, success.value, success.text, True, joined)

    def _result(
        self,
        extras: dict[str, Any],
        following: Any,
        items: list[Any],
        all_pages: bool,
        pages: int,
        truncated: bool,
        note: str | None,
    ) -> dict[str, Any]:
        # Paging facts first, the items last: the part a reader needs to continue is never below a long list.
        result: dict[str, Any] = {"has_more": following is not None, "next_page": self.next_page(following)}
        if all_pages or truncated:
            result["truncated"] = truncated
        if all_pages:
            result["pages"] = pages
        if note:
            result["note"] = note
        return {**result, **extras, "items": items}

    @staticmethod
    def _fitting(items: list[Any], budget: int) -> int:
        """How many leading items serialize (as a JSON array) within `budget` characters."""
        total = 2
        for index, item in enumerate(items):
            total += len(json.dumps(item, ensure_ascii=False)) + (2 if index else 0)
            if total > budget:
                return index
        return len(items)

    def _cut(self, pages: list[tuple[Any, _Page]], keep: int) -> tuple[int, Any, int]:
        """Keep the first `keep` items: how many stay, the position after the last one kept, and how many items of a
        page that cannot be resumed mid-way were left out for good (0 normally)."""
        before = 0
        for index, (first, page) in enumerate(pages):
            if keep < before + len(page.items):
                inside = keep - before
                if inside > 0 and page.resumable:
                    return keep, self.position_after(page, inside - 1, first), 0
                if index > 0:  # a page-numbered API: drop the partial page, next_page fetches it whole
                    return before, pages[index - 1][1].next, 0
                # The first page alone is too much and cannot be resumed mid-way: say what was left out.
                kept = max(inside, 1)
                return kept, page.next, len(page.items) - kept
            before += len(page.items)
        return before, pages[-1][1].next, 0

    @staticmethod
    def _skipped_note(skipped: int) -> str:
        return (
            f"{skipped:,} items of the first page were left out and next_page does not return to them; ask for a "
            "smaller page size to see them."
        )
