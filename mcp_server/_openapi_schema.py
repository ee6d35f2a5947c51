"""Translate one OpenAPI schema object (3.0 or 3.1) into a self-contained JSON Schema 2020-12. Pure.

The output is what a model reads and what OpenAI function calling (non-strict) accepts; it always passes
`Draft202012Validator.check_schema`. Rules:

- `$ref` is inlined wherever a schema may appear: `resolve(ref, base_uri)` gives the target and the base URI of
  the document holding it, which resolves the refs nested in the target. Resolver exceptions propagate unchanged.
  A ref already open `max_ref_depth` times on the current path is cut: `{"description": "... (recursive Name
  omitted beyond depth N)"}` (with `"type": "object"` when the target is an object) and a note. No `$ref` is ever
  left in the output.
- 3.1: keywords next to `$ref` are merged over the inlined target (siblings win; `properties` and `required` are
  merged). 3.0 ignores such siblings, except the annotations authors rely on in practice (`description`, `title`,
  `nullable`, `readOnly`, `writeOnly`, `default`, `example`, `deprecated`).
- Nesting (ref hops included) is cut at `MAX_DEPTH` levels with a note, so deep input never raises RecursionError.
  Beyond `max_nodes` output schema objects, the schema is cut at the deepest nesting level that fits, with a note.
- `allOf` is merged into one schema when every member is object-ish (or there is a single member): properties
  united (a property defined differently by two members becomes an `allOf` of both), `required` united, `type`
  intersected, other keywords first-wins; the parent's own keywords come first. Otherwise `allOf` is kept.
- `oneOf`/`anyOf` are kept. `discriminator` is removed, its information kept: each branch that is a ref gets
  `properties[propertyName] = {"const": key}` (from `mapping`, else the schema name) and `propertyName` in
  `required`; the parent description gains "Set <propertyName> to choose the variant: a | b."
- 3.0: `nullable` / `x-nullable` add "null" to `type` and `enum`, or wrap as `anyOf: [schema, {"type": "null"}]`
  when there is no plain type. Boolean `exclusiveMinimum`/`exclusiveMaximum` become numeric (any dialect).
  An integer's `format: int32`/`int64` also becomes `minimum`/`maximum`, unless its own bounds are tighter.
  `example` becomes `examples` (any dialect).
- Dropped: `x-*`, `xml`, `externalDocs`, `discriminator`, `deprecated: false`, `$defs`, `$id`, unknown keywords and
  keyword values of the wrong shape (a `pattern` Python cannot compile is dropped with a note). Request
  direction drops `readOnly` properties (and their `required` entries); response direction drops `writeOnly` ones.
- `format: binary` strings get `contentEncoding: base64` and "File content, base64-encoded." (the request builder
  decodes it); `format: byte` gets `contentEncoding: base64`. Arrays without `items` get `items: {}` (OpenAI
  rejects arrays without it).
- `title`/`description` have their whitespace collapsed and are trimmed to 1000 characters with "…".
  `default`, `const`, `enum` and `examples` values are made JSON-safe (YAML dates become ISO strings).
- A non-schema where a schema is expected becomes `{}` with a note; boolean schemas pass through.

Translations of referenced schemas are cached per (target, base URI, times that ref is already open on the path,
nesting room when a depth cut made it matter) and reused, also across calls: pass a `SchemaCache` per document,
or let `translate_schema` keep one for the document behind a bound-method resolver. That key ignores how often
*other* refs are open, so a reused translation keeps the cuts of the path it was first built on: along one path
a ref may then appear more than `max_ref_depth` times, always within the nesting and size bounds. Without that
approximation densely cyclic documents (Stripe-like) expand exponentially. Output schemas share sub-objects:
treat them as read-only (the top-level dict is always a fresh copy).
"""

from __future__ import annotations

import datetime
import functools
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import unquote, urljoin

from jsonschema import Draft202012Validator

Resolver = Callable[[str, str], tuple[Any, str]]
"""(ref, base_uri) -> (target value, base_uri of the document holding it). Whatever it raises propagates."""

Schema = dict[str, Any] | bool

MAX_DEPTH = 64
"""Nesting levels (a `$ref` hop counts as one) kept before subschemas are cut."""
MAX_TEXT = 1000
MAX_NOTES = 20
"""Distinct notes kept per referenced schema and per call; the rest are summarised in one note."""

_TYPES = frozenset({"null", "boolean", "object", "array", "number", "string", "integer"})
_SINGLE = frozenset(
    {
        "additionalProperties",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
        "contentSchema",
    }
)
_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_MAPS = frozenset({"patternProperties", "dependentSchemas"})
_COUNTS = frozenset(
    {"maxLength", "minLength", "maxItems", "minItems", "maxContains", "minContains", "maxProperties", "minProperties"}
)
_NUMBERS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
_FLAGS = frozenset({"uniqueItems", "readOnly", "writeOnly", "deprecated"})
_STRINGS = frozenset({"format", "contentEncoding", "contentMediaType"})
_COMPOSITION = frozenset({"allOf", "anyOf", "oneOf", "not", "if", "then", "else"})
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "readOnly", "writeOnly", "deprecated"})
_REF_SIBLINGS_3_0 = frozenset(
    {"description", "title", "nullable", "x-nullable", "readOnly", "writeOnly", "default", "example", "deprecated"}
)
_BASE64_NOTE = "File content, base64-encoded."
_INTEGER_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_REGEX = Draft202012Validator.FORMAT_CHECKER


@dataclass(frozen=True, slots=True)
class Translated:
    schema: dict[str, Any]
    notes: tuple[str, ...]
    """Human notes, e.g. "recursive reference to Node cut at depth 3 (at $.children.items)"."""


@dataclass(frozen=True, slots=True)
class _Entry:
    """A finished translation of a referenced schema, reusable wherever its key matches."""

    schema: Schema
    size: int
    height: int
    """Nesting levels used below the entry; it fits wherever at least `height + 1` levels remain."""
    depth_cut: bool
    """A subschema was cut for depth: the entry only fits at the exact nesting room it was built with."""
    notes: tuple[tuple[str, str], ...]
    """(message, path relative to the entry)."""
    more_notes: bool


@dataclass(slots=True)
class _Frame:
    """Bookkeeping of one referenced schema being translated (the root call has one too)."""

    start: int
    """Length of the path at the frame's root: note paths are kept relative to it."""
    min_room: int
    depth_cut: bool = False
    notes: dict[str, str] = field(default_factory=dict[str, str])
    more_notes: bool = False


class _Overflow(Exception):
    """The output grew beyond max_nodes; the attempt is abandoned and retried shallower."""


class SchemaCache:
    """Translations of referenced schemas, reused across `translate_schema` calls on one document."""

    __slots__ = ("_dropped", "_entries", "_resolved", "_token")

    def __init__(self) -> None:
        self._token: object = None
        self._resolved: dict[tuple[str, str], tuple[Any, str]] = {}
        # One store per (dialect, direction, max_ref_depth): a document's requests and responses alternate.
        self._entries: dict[tuple[object, ...], dict[tuple[int, str, int, int], _Entry]] = {}
        # Names of the properties dropped (readOnly/writeOnly) from an output object, by id of that object (kept
        # alive here, so ids are not recycled): an allOf merge must not re-require them.
        self._dropped: dict[int, tuple[Schema, frozenset[str]]] = {}

    def _bind(self, token: object, options: tuple[object, ...]) -> dict[tuple[int, str, int, int], _Entry]:
        """The stored translations for these options; another resolver makes every stored translation stale."""
        if self._token is not token and self._token != token:
            self._token = token
            self._resolved.clear()
            self._entries.clear()
            self._dropped.clear()
        return self._entries.setdefault(options, {})


_AUTO_CACHES: dict[int, SchemaCache] = {}


def _auto_cache(resolve: Resolver) -> tuple[SchemaCache, object]:
    """The cache of the document behind a bound-method resolver (`document.resolve`), dropped with the document.

    It holds no strong reference to the document. Other resolvers (a module-level function may serve several
    documents) and documents that cannot be weakly referenced get a cache for this call only.
    """
    owner: object = getattr(resolve, "__self__", None)
    token: object = getattr(resolve, "__func__", None)
    if owner is None or token is None:
        return SchemaCache(), None
    key = id(owner)
    cache = _AUTO_CACHES.get(key)
    if cache is None:
        cache = SchemaCache()
        try:
            weakref.finalize(owner, _AUTO_CACHES.pop, key, None)
        except TypeError:
            return cache, token
        _AUTO_CACHES[key] = cache
    return cache, token


def translate_schema(
    schema: Any,
    *,
    base_uri: str,
    resolve: Resolver,
    dialect: Literal["3.0", "3.1"],
    direction: Literal["request", "response"] = "request",
    max_ref_depth: int = 3,
    max_nodes: int = 20_000,
    cache: SchemaCache | None = None,
) -> Translated:
    """Translate `schema` (found in the document at `base_uri`) into self-contained JSON Schema 2020-12."""
    ref_depth = max(1, max_ref_depth)
    node_limit = max(1, max_nodes)
    if cache is None:
        cache, token = _auto_cache(resolve)
    else:
        token = resolve
    entries = cache._bind(token, (dialect, direction, ref_depth))  # pyright: ignore[reportPrivateUsage]

    def attempt(room: int) -> tuple[Schema, list[str]]:
        run = _Run(cache, entries, resolve, dialect=dialect, direction=direction, ref_depth=ref_depth, limit=node_limit)
        return run.root(schema, base_uri, room), run.root_notes()

    try:
        out, notes = attempt(MAX_DEPTH)
    except _Overflow:
        # Size grows with depth: the deepest cut that fits is found by bisection (cached refs make retries cheap).
        low, high = 0, MAX_DEPTH - 1
        out, notes = attempt(low)
        while low < high:
            middle = (low + high + 1) // 2
            try:
                out, notes = attempt(middle)
                low = middle
            except _Overflow:
                high = middle - 1
        notes = [f"schema larger than {node_limit} nodes: subschemas nested deeper than {low} levels omitted", *notes]
    if out is True:
        top: dict[str, Any] = {}
    elif out is False:
        top = {"not": {}}
    else:
        top = dict(out)  # the caller may edit the top level; everything below is shared
    return Translated(top, tuple(notes))


class _Run:
    """One attempt at translating one root schema with a given nesting room."""

    def __init__(
        self,
        cache: SchemaCache,
        entries: dict[tuple[int, str, int, int], _Entry],
        resolve: Resolver,
        *,
        dialect: str,
        direction: str,
        ref_depth: int,
        limit: int,
    ) -> None:
        self.cache = cache
        self.entries = entries
        self.resolve = resolve
        self.dialect_3_0 = dialect == "3.0"
        self.hidden = "readOnly" if direction == "request" else "writeOnly"
        self.ref_depth = ref_depth
        self.node_limit = limit
        self.size = 0
        self.path: list[str] = []
        self.frames: list[_Frame] = [_Frame(start=0, min_room=MAX_DEPTH)]
        self.open: dict[tuple[int, str], int] = {}

    # -- driving -------------------------------------------------------------------------------------------

    def root(self, schema: Any, base: str, room: int) -> Schema:
        if isinstance(schema, dict):
            # A component passed by value is as open as one reached by $ref: its recursion is cut alike.
            self.open[(id(cast(object, schema)), base)] = 1
        return self._schema(schema, base, room)

    def root_notes(self) -> list[str]:
        frame = self.frames[0]
        notes = [f"{message} (at ${path})" for message, path in frame.notes.items()]
        if frame.more_notes:
            notes.append("further notes omitted")
        return notes

    def _count(self, node: Schema) -> Schema:
        self.size += 1
        if self.size > self.node_limit:
            raise _Overflow
        return node

    def _note(self, message: str) -> None:
        frame = self.frames[-1]
        if message in frame.notes:
            return
        if len(frame.notes) >= MAX_NOTES:
            frame.more_notes = True
            return
        frame.notes[message] = "".join(self.path[frame.start :])

    def _sub(self, value: Any, base: str, room: int, segment: str) -> Schema:
        self.path.append(segment)
        out = self._schema(value, base, room)
        self.path.pop()
        return out

    def _schema(self, value: Any, base: str, room: int) -> Schema:
        frame = self.frames[-1]
        if room <= 0:
            frame.depth_cut = True
            self._note("deeply nested subschema omitted")
            return self._count({})
        frame.min_room = min(frame.min_room, room)
        if value is True or value is False:
            return self._count(value)
        if not isinstance(value, dict):
            self._note(f"{type(value).__name__} where a schema was expected, replaced by {{}}")
            return self._count({})
        node = cast(dict[str, Any], value)
        if "$ref" in node:
            return self._ref(node, base, room)
        self._count(True)  # counted before the children so an oversized schema stops early
        own, dropped = self._keywords(node, base, room)
        return self._finish(own, dropped, node, under=None)

    # -- references -----------------------------------------------------------------------------------------

    def _ref(self, node: dict[str, Any], base: str, room: int) -> Schema:
        ref = node["$ref"]
        if not isinstance(ref, str):
            self._note("$ref that is not a string replaced by {}")
            return self._count({})
        resolved = self.cache._resolved.get((ref, base))  # pyright: ignore[reportPrivateUsage]
        if resolved is None:
            resolved = self.resolve(ref, base)
            self.cache._resolved[(ref, base)] = resolved  # pyright: ignore[reportPrivateUsage]
        target, target_base = resolved
        key = (id(target), target_base)  # the target object is kept alive by the cache: its id is stable
        count = self.open.get(key, 0)
        if count >= self.ref_depth:
            out = self._cut(target, ref)
        else:
            out = self._expand(target, target_base, key, count, room - 1)
        allowed = None if not self.dialect_3_0 else _REF_SIBLINGS_3_0
        siblings = {k: v for k, v in node.items() if k != "$ref" and (allowed is None or k in allowed)}
        if not siblings:
            return out
        own, dropped = self._keywords(siblings, base, room)
        return self._finish(own, dropped, siblings, under=out)

    def _cut(self, target: Any, ref: str) -> Schema:
        name = _ref_name(ref)
        self._note(f"recursive reference to {name} cut at depth {self.ref_depth}")
        raw = _as_dict(target)
        description = raw.get("description") if raw is not None else None
        text = _append(
            description if isinstance(description, str) else None,
            f"(recursive {name} omitted beyond depth {self.ref_depth})",
        )
        if raw is not None and _raw_is_object(raw):
            return self._count({"type": "object", "description": text})
        return self._count({"description": text})

    def _expand(self, target: Any, base: str, key: tuple[int, str], count: int, room: int) -> Schema:
        entries = self.entries
        entry = entries.get((*key, count, -1))
        if entry is None or room - entry.height < 1:
            entry = entries.get((*key, count, room))
        if entry is not None:
            self.size += entry.size
            if self.size > self.node_limit:
                raise _Overflow
            self._absorb(entry, room)
            return entry.schema
        frame = _Frame(start=len(self.path), min_room=room)
        self.frames.append(frame)
        self.open[key] = count + 1
        before = self.size
        out = self._schema(target, base, room)
        self.open[key] = count
        self.frames.pop()
        entry = _Entry(
            out,
            self.size - before,
            room - frame.min_room,
            frame.depth_cut,
            tuple(frame.notes.items()),
            frame.more_notes,
        )
        entries[(*key, count, room if frame.depth_cut else -1)] = entry
        self._absorb(entry, room)
        return out

    def _absorb(self, entry: _Entry, room: int) -> None:
        """Account for a referenced schema's translation in the frame that uses it."""
        frame = self.frames[-1]
        frame.min_room = min(frame.min_room, room - entry.height)
        frame.depth_cut = frame.depth_cut or entry.depth_cut
        if entry.more_notes:
            frame.more_notes = True
        if not entry.notes:
            return
        prefix = "".join(self.path[frame.start :])
        for message, path in entry.notes:
            if message in frame.notes:
                continue
            if len(frame.notes) >= MAX_NOTES:
                frame.more_notes = True
                break
            frame.notes[message] = prefix + path

    # -- keywords -------------------------------------------------------------------------------------------

    def _keywords(self, node: dict[str, Any], base: str, room: int) -> tuple[dict[str, Any], list[str]]:
        """Translate each keyword of a schema object; returns it and the names of the properties dropped."""
        out: dict[str, Any] = {}
        dropped: list[str] = []
        for key, value in node.items():
            if key == "properties":
                properties = _as_dict(value)
                if properties is not None:
                    out["properties"] = self._properties(properties, base, room, dropped)
            elif key == "type":
                kind = _type(value)
                if kind is not None:
                    out["type"] = kind
            elif key in ("title", "description"):
                if isinstance(value, str) and (text := _text(value)):
                    out[key] = text
            elif key == "items":
                if isinstance(value, list):  # draft-4 tuple form
                    items = cast(list[Any], value)
                    if items:
                        out["prefixItems"] = [
                            self._sub(item, base, room - 1, f".items[{i}]") for i, item in enumerate(items)
                        ]
                else:
                    out["items"] = self._sub(value, base, room - 1, ".items")
            elif key in _SINGLE:
                out[key] = self._sub(value, base, room - 1, "." + key)
            elif key in _LISTS:
                if isinstance(value, list) and value:
                    members = cast(list[Any], value)
                    out[key] = [self._sub(m, base, room - 1, f".{key}[{i}]") for i, m in enumerate(members)]
            elif key in _MAPS:
                if (schemas := _as_dict(value)) is not None:
                    out[key] = self._map(key, schemas, base, room)
            elif key == "required":
                if isinstance(value, list):
                    names = _strings(cast(list[Any], value))
                    if names:
                        out["required"] = names
            elif key == "enum":
                if isinstance(value, list):
                    out["enum"] = [_json(v) for v in cast(list[Any], value)]
            elif key in ("default", "const"):
                out[key] = _json(value)
            elif key in _COUNTS:
                if (number := _count_value(value)) is not None:
                    out[key] = number
            elif key in _NUMBERS:
                if _is_number(value):
                    out[key] = value
            elif key == "multipleOf":
                if _is_number(value) and value > 0:
                    out[key] = value
            elif key in _FLAGS:
                if isinstance(value, bool) and (value or key != "deprecated"):
                    out[key] = value
            elif key in _STRINGS:
                if isinstance(value, str):
                    out[key] = value
            elif key == "pattern":
                if isinstance(value, str):
                    if _valid_regex(value):
                        out[key] = value
                    else:
                        self._note(f"pattern {value!r} is not a valid regular expression; dropped")
            elif key == "dependentRequired":
                if (mapping := _as_dict(value)) is not None:
                    out[key] = _dependent_required(mapping)
            elif key == "dependencies":  # draft-7: split into its 2020-12 successors
                if (mapping := _as_dict(value)) is not None:
                    if names := _dependent_required(mapping):
                        out.setdefault("dependentRequired", {}).update(names)
                    if schemas := {k: v for k, v in mapping.items() if not isinstance(v, list)}:
                        out.setdefault("dependentSchemas", {}).update(self._map("dependencies", schemas, base, room))
            elif key == "additionalItems" and isinstance(node.get("items"), list):
                out["items"] = self._sub(value, base, room - 1, ".additionalItems")
            # Everything else is dropped: x-*, xml, externalDocs, discriminator (below), example(s) (below),
            # nullable (in _finish), $defs/$id/$comment, unknown keywords.
        for bound in ("minimum", "maximum"):
            flag = node.get("exclusiveM" + bound[1:])
            if flag is True and bound in out:  # 3.0 form: a flag on minimum/maximum (false is the default)
                out["exclusiveM" + bound[1:]] = out.pop(bound)
        _bound_integer_format(out)
        examples = _examples(node)
        if examples:
            out["examples"] = examples
        if node.get("type") == "file":  # Swagger 2.0 leftover
            out["type"] = "string"
            out.setdefault("format", "binary")
        self._base64(out)
        discriminator = _as_dict(node.get("discriminator"))
        if discriminator is not None:
            self._discriminator(out, node, discriminator, base)
        if dropped and "required" in out:
            required = [name for name in out["required"] if name not in dropped]
            if required:
                out["required"] = required
            else:
                del out["required"]
        return out, dropped

    def _properties(self, properties: dict[str, Any], base: str, room: int, dropped: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for raw_name, value in properties.items():
            name = str(raw_name)
            if isinstance(value, dict) and cast(dict[str, Any], value).get(self.hidden) is True:
                dropped.append(name)
                continue
            schema = self._sub(value, base, room - 1, _segment(name))
            if isinstance(schema, dict) and schema.get(self.hidden) is True:  # e.g. readOnly on the ref target
                dropped.append(name)
                continue
            out[name] = schema
        return out

    def _map(self, keyword: str, schemas: dict[str, Any], base: str, room: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for raw_key, value in schemas.items():
            key = str(raw_key)
            if keyword == "patternProperties" and not _valid_regex(key):
                self._note(f"patternProperties key {key!r} is not a valid regular expression; dropped")
                continue
            out[key] = self._sub(value, base, room - 1, f".{keyword}[{_quote(key)}]")
        return out

    def _base64(self, out: dict[str, Any]) -> None:
        form = out.get("format")
        if form not in ("binary", "byte"):
            return
        kind = out.get("type")
        if kind is None:
            out["type"] = "string"
        elif kind != "string" and not (isinstance(kind, list) and "string" in kind):
            return
        out.setdefault("contentEncoding", "base64")
        if form == "binary":
            out["description"] = _append(out.get("description"), _BASE64_NOTE)

    def _discriminator(
        self,
        out: dict[str, Any],
        node: dict[str, Any],
        discriminator: dict[str, Any],
        base: str,
    ) -> None:
        name = discriminator.get("propertyName")
        if not isinstance(name, str) or not name:
            return
        by_target: dict[str, list[str]] = {}
        for key, target in (_as_dict(discriminator.get("mapping")) or {}).items():
            if isinstance(target, str):
                by_target.setdefault(_mapping_uri(target, base), []).append(str(key))
        variants: list[str] = []
        for keyword in ("oneOf", "anyOf"):
            raw_branches, branches = node.get(keyword), out.get(keyword)
            if not isinstance(raw_branches, list) or not isinstance(branches, list):
                continue
            tagged = list(cast(list[Schema], branches))
            for i, raw in enumerate(cast(list[Any], raw_branches)):
                branch = _as_dict(raw)
                ref = branch.get("$ref") if branch is not None else None
                if not isinstance(ref, str):
                    continue
                keys = by_target.get(_join_uri(base, ref)) or [_ref_name(ref)]
                tagged[i] = self._tag(tagged[i], name, keys)
                variants.extend(k for k in keys if k not in variants)
            out[keyword] = tagged
        if variants:
            out["description"] = _append(
                out.get("description"),
                f"Set {name} to choose the variant: {' | '.join(variants)}.",
            )

    def _tag(self, branch: Schema, name: str, keys: list[str]) -> Schema:
        """The branch with its discriminator property pinned to its mapping key(s) and required."""
        if branch is False:
            return branch
        body: dict[str, Any] = {} if branch is True else branch
        choice: dict[str, Any] = {"const": keys[0]} if len(keys) == 1 else {"enum": keys}
        properties = dict(cast(dict[str, Any], body.get("properties") or {}))
        existing = properties.get(name)
        if isinstance(existing, dict):
            kept = {k: v for k, v in cast(dict[str, Any], existing).items() if k in ("title", "description")}
            properties[name] = {**kept, **choice}
        else:
            properties[name] = self._count(choice)
        required = list(cast(list[str], body.get("required") or []))
        if name not in required:
            required.append(name)
        tagged = {**body, "properties": properties, "required": required}
        self._mark(tagged, self._dropped_from(body))
        return tagged

    # -- assembling ----------------------------------------------------------------------------------------

    def _finish(self, own: dict[str, Any], dropped: list[str], raw: dict[str, Any], under: Schema | None) -> Schema:
        if under is None:
            node: Schema = self._collapse(own, dropped)
        elif own:
            node = self._overlay(under, self._collapse(own, dropped))
        else:
            node = under
        node = self._nullable(node, raw)
        if isinstance(node, dict) and "items" not in node and _has_type(node, "array"):
            node = {**node, "items": self._count({})}
        return node

    def _collapse(self, own: dict[str, Any], dropped: list[str]) -> Schema:
        members = cast(list[Schema] | None, own.get("allOf"))
        if members is not None:
            rest = {k: v for k, v in own.items() if k != "allOf"}
            if len(members) == 1 or all(_objectish(m) for m in members):
                merged = self._merge([rest, *members], dropped)
                if merged is not None:
                    return merged
        self._mark(own, frozenset(dropped))
        return own

    def _merge(self, parts: list[Schema], dropped: list[str]) -> dict[str, Any] | None:
        """One schema meaning the same as allOf(parts), or None when keywords conflict beyond repair."""
        out: dict[str, Any] = {}
        properties: dict[str, Any] = {}
        required: list[str] = []
        kinds: list[str] | None = None
        hidden = set(dropped)
        for part in parts:
            if part is True:
                continue
            if part is False:
                return None
            hidden.update(self._dropped_from(part))
            for key, value in part.items():
                if key == "properties":
                    for name, schema in cast(dict[str, Schema], value).items():
                        known = properties.get(name)
                        properties[name] = schema if known is None else self._both(known, schema)
                    out.setdefault("properties", properties)
                elif key == "required":
                    required.extend(n for n in cast(list[str], value) if n not in required)
                    out.setdefault("required", required)
                elif key == "type":
                    these = [value] if isinstance(value, str) else cast(list[str], value)
                    kinds = these if kinds is None else [k for k in kinds if k in these]
                    out.setdefault("type", kinds)
                elif key not in out:
                    out[key] = value
                elif key in _COMPOSITION and out[key] != value:
                    return None
        if kinds is not None:
            if not kinds:
                return None
            out["type"] = kinds[0] if len(kinds) == 1 else kinds
        if required:
            # A property a member dropped (readOnly in requests) must not come back as required.
            kept = [n for n in required if n in properties or n not in hidden]
            if kept:
                out["required"] = kept
            else:
                del out["required"]
        self._mark(out, frozenset(hidden))
        return out

    def _both(self, first: Schema, second: Schema) -> Schema:
        """A property defined by two allOf members: both must hold."""
        if first is second or first == second or second is True or second == {}:
            return first
        if first is True or first == {}:
            return second
        if isinstance(first, dict) and isinstance(first.get("allOf"), list):
            return {**first, "allOf": [*first["allOf"], second]}  # appending to a conjunction keeps its meaning
        return self._count({"allOf": [first, second]})

    def _overlay(self, under: Schema, siblings: Schema) -> Schema:
        """3.1 `$ref` siblings over the inlined target: siblings win, properties and required are merged."""
        if under is False or siblings is True:
            return under
        if under is True or siblings is False:
            return siblings
        out = dict(under)
        for key, value in siblings.items():
            if key == "properties" and isinstance(out.get("properties"), dict):
                out["properties"] = {**out["properties"], **value}
            elif key == "required" and isinstance(out.get("required"), list):
                out["required"] = [*out["required"], *(n for n in value if n not in out["required"])]
            else:
                out[key] = value
        hidden = self._dropped_from(under) | self._dropped_from(siblings)
        if hidden and "required" in out:
            properties = cast(dict[str, Any], out.get("properties") or {})
            out["required"] = [n for n in out["required"] if n in properties or n not in hidden]
            if not out["required"]:
                del out["required"]
        self._mark(out, hidden)
        return out

    def _nullable(self, node: Schema, raw: dict[str, Any]) -> Schema:
        if not self.dialect_3_0 or not (raw.get("nullable") is True or raw.get("x-nullable") is True):
            return node
        if isinstance(node, bool):
            return node
        kind = node.get("type")
        if (kind is None and "enum" not in node) or "const" in node or any(k in node for k in _COMPOSITION):
            rest = {k: v for k, v in node.items() if k not in _ANNOTATIONS}
            if not rest:
                return node  # annotations only: null is already accepted
            # No plain type to extend (composition, a bare enum-less schema): null becomes an alternative.
            wrapped = {k: v for k, v in node.items() if k in _ANNOTATIONS}
            wrapped["anyOf"] = [self._count(rest), self._count({"type": "null"})]
            self._mark(rest, self._dropped_from(node))
            self._mark(wrapped, self._dropped_from(node))
            return wrapped
        out = dict(node)
        if isinstance(kind, str) and kind != "null":
            out["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            out["type"] = [*cast(list[str], kind), "null"]
        enum = node.get("enum")
        if isinstance(enum, list) and None not in enum:
            out["enum"] = [*cast(list[Any], enum), None]
        self._mark(out, self._dropped_from(node))
        return out

    def _mark(self, node: Schema, names: frozenset[str] | list[str]) -> None:
        if names:
            self.cache._dropped[id(node)] = (node, frozenset(names))  # pyright: ignore[reportPrivateUsage]

    def _dropped_from(self, node: Schema) -> frozenset[str]:
        found = self.cache._dropped.get(id(node))  # pyright: ignore[reportPrivateUsage]
        return found[1] if found is not None and found[0] is node else frozenset()


# -- helpers -----------------------------------------------------------------------------------------------------


def _as_dict(value: Any) -> dict[str, Any] | None:
    return cast(dict[str, Any], value) if isinstance(value, dict) else None


def _bound_integer_format(out: dict[str, Any]) -> None:
    """`format: int32`/`int64` on an integer as `minimum`/`maximum` (JSON Schema validators ignore these formats;
    OpenAPI validators and the APIs behind them do not), unless the schema's own bounds are as tight."""
    limits = _INTEGER_RANGES.get(str(out.get("format")))
    kind = out.get("type")
    if limits is None or not (kind == "integer" or (isinstance(kind, list) and "integer" in kind)):
        return
    low, high = limits
    own = {key: value for key, value in out.items() if key in _NUMBERS and _is_number(value)}
    lows = [own[key] for key in ("minimum", "exclusiveMinimum") if key in own]
    if not lows or max(lows) < low:
        out["minimum"] = low
    highs = [own[key] for key in ("maximum", "exclusiveMaximum") if key in own]
    if not highs or min(highs) > high:
        out["maximum"] = high


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count_value(value: Any) -> int | None:
    """A non-negative integer keyword value (YAML may give 5.0)."""
    if isinstance(value, bool) or not _is_number(value) or value < 0 or value != int(value):
        return None
    return int(value)


def _type(value: Any) -> str | list[str] | None:
    if isinstance(value, str):
        return value if value in _TYPES else None
    if isinstance(value, list):
        names = [n for n in _strings(cast(list[Any], value)) if n in _TYPES]
        if names:
            return names[0] if len(names) == 1 else names
    return None


def _has_type(node: dict[str, Any], name: str) -> bool:
    kind = node.get("type")
    return kind == name or (isinstance(kind, list) and name in kind)


def _strings(values: list[Any]) -> list[str]:
    out: list[str] = []
    for v in values:
        if isinstance(v, str) and v not in out:
            out.append(v)
    return out


def _objectish(member: Schema) -> bool:
    if isinstance(member, bool):
        return member
    kind = member.get("type")
    if kind is None or kind == "object":
        return True
    return isinstance(kind, list) and set(cast(list[str], kind)) <= {"object", "null"}


def _raw_is_object(raw: dict[str, Any]) -> bool:
    kind = raw.get("type")
    if kind is None:
        return isinstance(raw.get("properties"), dict)
    return kind == "object" or (isinstance(kind, list) and "object" in kind)


def _dependent_required(mapping: dict[str, Any]) -> dict[str, list[str]]:
    return {str(k): _strings(cast(list[Any], v)) for k, v in mapping.items() if isinstance(v, list)}


def _examples(node: dict[str, Any]) -> list[Any]:
    raw = node.get("examples")
    if isinstance(raw, list):
        examples = [_json(v) for v in cast(list[Any], raw)]
    elif isinstance(raw, dict):  # 3.0 authors sometimes use the media-type form: {name: {value: ...}}
        examples = [
            _json(v["value"]) for v in cast(dict[str, Any], raw).values() if isinstance(v, dict) and "value" in v
        ]
    else:
        examples = []
    example = node.get("example")
    if example is not None:
        value = _json(example)
        if value not in examples:
            examples.insert(0, value)
    return examples


def _json(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy: YAML dates become ISO strings, non-finite floats null, odd scalars strings."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {str(k): _json(v, depth + 1) for k, v in cast(dict[Any, Any], value).items()}
    if isinstance(value, list | tuple):
        return [_json(v, depth + 1) for v in cast(list[Any], value)]
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _text(text: str, limit: int = MAX_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _append(text: str | None, sentence: str) -> str:
    """`text` followed by `sentence`, trimming `text` (not the sentence) to stay within MAX_TEXT."""
    if not text:
        return _text(sentence)
    room = MAX_TEXT - len(sentence) - 1
    if room < 20:
        return _text(sentence)
    return f"{_text(text, room)} {sentence}"


def _ref_name(ref: str) -> str:
    location, _, fragment = ref.partition("#")
    tail = (fragment or location).rstrip("/").rsplit("/", 1)[-1]
    return unquote(tail).replace("~1", "/").replace("~0", "~") or ref


@functools.lru_cache(maxsize=65_536)
def _join_uri(base: str, ref: str) -> str:
    # Remembered: a discriminator's mapping is joined at each of its uses, and Microsoft Graph's root entity
    # maps 653 types (urljoin was a fifth of importing Graph's description).
    return urljoin(base, ref) if base else ref


def _mapping_uri(target: str, base: str) -> str:
    """A discriminator mapping value as a URI; 3.0 allows a bare schema name."""
    if "#" not in target and "/" not in target and not target.endswith((".json", ".yaml", ".yml")):
        target = "#/components/schemas/" + target
    return _join_uri(base, target)


def _segment(name: str) -> str:
    return "." + name if name.isidentifier() else f"[{_quote(name)}]"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@functools.lru_cache(maxsize=4096)
def _valid_regex(pattern: str) -> bool:
    # check_schema checks `pattern` (and patternProperties keys) with Python's re, so that is the bar.
    return _REGEX.conforms(pattern, "regex")
