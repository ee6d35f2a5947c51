"""Response bodies, bounded twice: by decoded bytes while reading, by characters before a model reads them.

`BoundedDecoder` undoes `Content-Encoding` itself, on the raw chunks of `Response.aiter_raw()`, so the
size limit applies to the *decoded* body and a small compressed payload cannot inflate to gigabytes in
memory first (a decompression bomb): zlib is asked for at most one piece at a time, and the piece is
counted before the next one is produced.

`trim_json` shrinks a parsed JSON result that is too long for a model to read by dropping whole items
from the end of its largest arrays, and says so in a note, so the result stays valid JSON whose kept
items are unchanged.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

ACCEPT_ENCODING = "gzip, deflate"
"""What to advertise upstream: exactly the codings `BoundedDecoder` can undo."""

_PIECE = 64 * 1024
"""Most bytes zlib is asked to produce (or given) per call: the overshoot past a limit is at most this."""
_MAX_LAYERS = 4
"""More stacked codings than this is no real server, only a way to make us allocate decompressors."""
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_GZIP = frozenset({"gzip", "x-gzip"})


class BodyTooLarge(Exception):
    """The decoded body would exceed `limit`; `received` counts decoded bytes up to the piece that crossed it."""

    def __init__(self, limit: int, received: int) -> None:
        super().__init__(f"the decoded body exceeds {limit} bytes ({received} decoded so far)")
        self.limit = limit
        self.received = received


class UnsupportedEncoding(Exception):
    """A `Content-Encoding` this module does not decode (br, zstd, compress, ...)."""

    def __init__(self, encoding: str, message: str | None = None) -> None:
        super().__init__(message or f"unsupported Content-Encoding: {encoding!r}")
        self.encoding = encoding


class BodyDecodeError(UnsupportedEncoding):
    """The body is not valid data for its `Content-Encoding`.

    A subclass of `UnsupportedEncoding` because, to the caller, both mean "an upstream body that cannot
    be decoded": one `except` reports either as an upstream failure.
    """


def _is_zlib_header(head: bytes) -> bool:
    """RFC 1950: method 8 in the low nibble and the first two bytes a multiple of 31 (a raw stream never is)."""
    return head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0


class _Inflater:
    """One gzip or deflate layer; hands its output, in pieces of at most `_PIECE` bytes, to `sink`."""

    def __init__(self, gzip: bool, sink: Callable[[bytes], None]) -> None:
        self._gzip = gzip
        self._sink = sink
        # `deflate` is zlib-wrapped per RFC 9110 but many servers send raw deflate: decided on the first 2 bytes.
        self._obj = zlib.decompressobj(_GZIP_WBITS) if gzip else None
        self._head = b""
        self._later_member = False
        self._ended = False

    def push(self, data: bytes) -> None:
        if self._obj is None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            self._obj = zlib.decompressobj(zlib.MAX_WBITS if _is_zlib_header(data) else -zlib.MAX_WBITS)
        view = memoryview(data)
        # Slicing the input too keeps each `unconsumed_tail` copy small when a chunk inflates a lot.
        for start in range(0, len(view), _PIECE):
            if self._ended:
                return
            self._inflate(view[start : start + _PIECE])

    def _inflate(self, data: bytes | memoryview) -> None:
        obj = self._obj
        assert obj is not None
        while True:
            try:
                out = obj.decompress(data, _PIECE)
            except zlib.error as exc:
                if self._later_member:  # junk after a complete gzip member: ignored, as browsers and curl do
                    self._ended = True
                    return
                raise self._corrupt(exc) from None
            if out:
                self._sink(out)
            if obj.eof:
                if not self._gzip:  # nothing can follow a deflate stream; trailing bytes are ignored
                    self._ended = True
                    return
                # RFC 1952 allows concatenated gzip members; each one starts a fresh decompressor.
                data = obj.unused_data
                obj = self._obj = zlib.decompressobj(_GZIP_WBITS)
                self._later_member = True
                if not data:
                    return
                continue
            data = obj.unconsumed_tail
            # Output shorter than asked with no input left means zlib has nothing pending.
            if not data and len(out) < _PIECE:
                return

    def _corrupt(self, exc: zlib.error) -> BodyDecodeError:
        coding = "gzip" if self._gzip else "deflate"
        return BodyDecodeError(coding, f"corrupt {coding} data: {exc}")

    def finish(self) -> None:
        if self._obj is None or self._ended:  # under 2 bytes of deflate: nothing decodable was sent
            return
        try:
            # Only the (tiny) remainder: `_inflate` already drained every pending piece.
            out = self._obj.flush()
        except zlib.error as exc:
            if self._later_member:
                return
            raise self._corrupt(exc) from None
        if out:
            self._sink(out)


class BoundedDecoder:
    """Decodes raw (still Content-Encoded) chunks into at most `limit` decoded bytes.

    Handles `identity`, `gzip`/`x-gzip`, `deflate` (zlib-wrapped or raw) and stacked codings such as
    `gzip, gzip`. Memory stays near `limit` plus one piece however well the input compresses (and
    twice `limit` for the moment `finish` copies the body out).
    Raises `UnsupportedEncoding` at construction, `BodyTooLarge` from `feed`/`finish` as soon as the
    decoded size would pass `limit`, and `BodyDecodeError` on corrupt data. A truncated stream is not
    an error: `finish` returns what was decoded. After raising, the decoder is not to be used again.
    """

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        codings = [token.strip().lower() for token in (content_encoding or "").split(",")]
        codings = [coding for coding in codings if coding and coding != "identity"]
        for coding in codings:
            if coding not in _GZIP and coding != "deflate":
                raise UnsupportedEncoding(coding)
        if len(codings) > _MAX_LAYERS:
            raise UnsupportedEncoding(content_encoding or "")
        self._limit = limit
        self._body = bytearray()
        # Codings are listed in the order applied, so the last one is undone first.
        sink: Callable[[bytes], None] = self._accept
        layers: list[_Inflater] = []
        for coding in codings:
            layer = _Inflater(coding in _GZIP, sink)
            layers.append(layer)
            sink = layer.push
        self._layers = layers[::-1]
        self._entry = sink

    def _accept(self, piece: bytes) -> None:
        received = len(self._body) + len(piece)
        if received > self._limit:
            raise BodyTooLarge(self._limit, received)
        self._body += piece

    def feed(self, raw: bytes) -> None:
        self._entry(raw)

    def finish(self) -> bytes:
        # Outermost first: whatever a layer flushes still has to pass through the layers under it.
        for layer in self._layers:
            layer.finish()
        return bytes(self._body)


# --- trimming a JSON result ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trimmed:
    value: Any
    """The trimmed value. Trimmed containers are new; everything left whole is shared with the input, not copied."""
    dropped: int
    """Array items removed, in total."""
    note: str | None
    """For the model: what was dropped where, or that the value still does not fit; None when nothing changed."""


@dataclass(frozen=True, slots=True)
class _Cut:
    path: str
    kept: int
    total: int


_Fit = tuple[Any, int, list[_Cut]]
"""A fitted value, its serialized length, and the arrays cut to get there."""
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NOTE_PATHS = 5
"""Cut arrays named in a note; more would crowd out the result it explains."""
_NOTE_PATH_CHARS = 120
"""Longer paths (deep nesting) are shown with their middle elided."""


def _dumps(value: Any) -> str:
    # The pipeline sends results as `json.dumps(value, ensure_ascii=False)`: lengths are measured the same way.
    return json.dumps(value, ensure_ascii=False)


_encode_string = json.encoder.encode_basestring  # what `ensure_ascii=False` uses for strings (C-accelerated)


def _scalar_size(value: Any) -> int:
    # Cheaper than `json.dumps` per scalar, which dominates walking many small items; same lengths.
    if value is None or value is True:
        return 4
    if value is False:
        return 5
    if type(value) is int:
        return len(str(value))
    if type(value) is float and math.isfinite(value):
        return len(repr(value))
    return len(_dumps(value))


def _key_size(key: Any) -> int:
    if isinstance(key, str):
        return len(_encode_string(key))
    return len(_dumps({key: None})) - len("{: null}")  # json.dumps spells non-string keys its own way


def _is_container(value: Any) -> bool:
    return isinstance(value, list | dict)


def _member_path(path: str, key: Any) -> str:
    if isinstance(key, str) and _IDENTIFIER.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{_dumps(key if isinstance(key, str) else str(key))}]"


class _Sizer:
    """Serialized lengths, exact up to `cap` and only a lower bound beyond it.

    Nothing longer than `cap` is ever kept whole, so measuring past it is wasted work: a 50 MB array is
    measured item by item only until its prefix passes `cap`. Cached by `id()`, which is stable because
    the input holds every node alive for the whole call.
    """

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._prefixes: dict[int, list[int]] = {}
        self._children: dict[int, tuple[int, list[int]]] = {}
        self._minimums: dict[int, int] = {}

    def size(self, node: Any) -> int:
        if isinstance(node, list):
            return self.prefix(cast(list[Any], node))[-1]
        if isinstance(node, dict):
            overhead, sizes = self.children(cast(dict[Any, Any], node))
            return overhead + sum(sizes)
        if isinstance(node, str):
            if len(node) + 2 > self._cap:
                return len(node) + 2  # too long to keep anyway; escaping only adds to it
            return len(_encode_string(node))
        return _scalar_size(node)

    def prefix(self, node: list[Any]) -> list[int]:
        """`prefix[k]` is the length of `node[:k]` serialized, for k up to the first prefix longer than `cap`."""
        prefix = self._prefixes.get(id(node))
        if prefix is None:
            total = 2  # "[]"
            prefix = [total]
            for index, item in enumerate(node):
                total += self.size(item) + (2 if index else 0)  # ", " between items
                prefix.append(total)
                if total > self._cap:
                    break
            self._prefixes[id(node)] = prefix
        return prefix

    def children(self, node: dict[Any, Any]) -> tuple[int, list[int]]:
        """The length of everything but the values (braces, keys, separators), and each value's length."""
        known = self._children.get(id(node))
        if known is None:
            overhead = 2 + sum(_key_size(key) + 2 for key in node) + 2 * max(len(node) - 1, 0)
            known = self._children[id(node)] = (overhead, [self.size(value) for value in node.values()])
        return known

    def minimum(self, node: Any) -> int:
        """The length with every array in it emptied: the least that trimming can achieve."""
        if isinstance(node, list):
            return 2
        if not isinstance(node, dict):
            return self.size(node)
        mapping = cast(dict[Any, Any], node)
        known = self._minimums.get(id(mapping))
        if known is None:
            overhead, sizes = self.children(mapping)
            known = overhead + sum(
                self.minimum(value) if _is_container(value) else size
                for value, size in zip(mapping.values(), sizes, strict=True)
            )
            self._minimums[id(mapping)] = known
        return known


class _Trimmer:
    def __init__(self, max_chars: int) -> None:
        self._sizes = _Sizer(max_chars)

    def fit(self, node: Any, budget: int, path: str) -> _Fit:
        """`node` within `budget` characters if its `minimum` allows, else at its minimum."""
        size = self._sizes.size(node)
        if size <= budget:
            return node, size, []
        if isinstance(node, list):
            return self._fit_list(cast(list[Any], node), budget, path)
        if isinstance(node, dict):
            return self._fit_dict(cast(dict[Any, Any], node), budget, path)
        return node, size, []  # a string or number is never cut

    def _fit_list(self, node: list[Any], budget: int, path: str) -> _Fit:
        # Whole items are dropped from the end: a binary search over the prefix lengths finds how many stay.
        prefix = self._sizes.prefix(node)
        keep = bisect_right(prefix, budget) - 1
        if keep >= 1:
            return node[:keep], prefix[keep], [_Cut(path, keep, len(node))]
        if not node:  # a budget under 2: "[]" is as short as an array gets
            return node, 2, []
        # Not even the first item fits whole. Trimming inside it beats dropping it: for
        # {"data": [{"children": [...]}]} the children are what is large, not the one item around them.
        first = node[0]
        if self._sizes.minimum(first) + 2 <= budget:
            value, size, cuts = self.fit(first, budget - 2, f"{path}[0]")
            own = [_Cut(path, 1, len(node))] if len(node) > 1 else []
            return [value], size + 2, own + cuts
        return [], 2, [_Cut(path, 0, len(node))]

    def _fit_dict(self, node: dict[Any, Any], budget: int, path: str) -> _Fit:
        overhead, sizes = self._sizes.children(node)
        fixed = overhead
        shrinkable: list[tuple[Any, Any, int, int]] = []  # key, value, size, minimum
        for (key, value), size in zip(node.items(), sizes, strict=True):
            minimum = self._sizes.minimum(value) if _is_container(value) else size
            if minimum < size:
                shrinkable.append((key, value, size, minimum))
            else:
                fixed += size
        # Every member gets at least its minimum; the characters left over are shared out like water
        # filling a basin: members needing less than an equal share stay whole, and the rest, the largest,
        # are trimmed to an equal share each. Smallest first, so what one does not use goes to the next.
        spare = budget - fixed - sum(minimum for _, _, _, minimum in shrinkable)
        shrinkable.sort(key=lambda member: member[2] - member[3])
        result = dict(node)  # a copy, so the input is untouched and the key order kept
        total = fixed
        cuts: list[_Cut] = []
        for waiting, (key, value, size, minimum) in zip(range(len(shrinkable), 0, -1), shrinkable, strict=True):
            share = max(spare, 0) // waiting
            if size - minimum <= share:
                fitted = size
            else:
                result[key], fitted, more = self.fit(value, minimum + share, _member_path(path, key))
                cuts += more
            total += fitted
            spare -= fitted - minimum
        return result, total, cuts


def _shown(path: str) -> str:
    if len(path) <= _NOTE_PATH_CHARS:
        return path
    half = _NOTE_PATH_CHARS // 2
    return f"{path[:half]}…{path[-half:]}"


def _describe(cuts: list[_Cut]) -> str:
    ranked = sorted(cuts, key=lambda cut: cut.total - cut.kept, reverse=True)
    parts = [
        f"{cut.total - cut.kept} of {cut.total} items dropped from {_shown(cut.path)}" for cut in ranked[:_NOTE_PATHS]
    ]
    if len(ranked) > _NOTE_PATHS:
        parts.append(f"and {len(ranked) - _NOTE_PATHS} more arrays cut")
    return ", ".join(parts)


def trim_json(value: Any, max_chars: int) -> Trimmed:
    """Make `value` serialize to at most `max_chars` characters by dropping whole items from the end of arrays.

    The largest arrays shrink first, at any depth; strings and numbers are never cut, so the result is
    always valid JSON, and every kept item is the original's (inner arrays of a lone first item aside).
    When even emptying every array is not enough, that is what is returned, with a note saying so.
    Arrays are measured only as far as `max_chars` reaches, so a 50 MB array costs about what a
    `max_chars` one does; objects are measured member by member, whole.
    """
    trimmer = _Trimmer(max_chars)
    try:
        trimmed, size, cuts = trimmer.fit(value, max_chars, "$")
    except RecursionError:  # json.loads accepts nesting a little deeper than this walk can follow
        return Trimmed(value, 0, "Result nests too deeply to be trimmed; it is returned whole.")
    dropped = sum(cut.total - cut.kept for cut in cuts)
    if size <= max_chars:
        if not cuts:
            return Trimmed(value, 0, None)
        note = f"Result trimmed to fit {max_chars} characters: {_describe(cuts)}; ask for fewer (page size / filters)."
        return Trimmed(trimmed, dropped, note)
    length = len(_dumps(trimmed))  # only here, where the value is already known to be too long, is it measured whole
    if not cuts:
        note = f"Result does not fit in {max_chars} characters ({length} characters) and has no array items to drop."
    else:
        note = (
            f"Result still does not fit in {max_chars} characters with every array emptied ({length} remain): "
            f"{_describe(cuts)}."
        )
    return Trimmed(trimmed, dropped, note)
