"""Load an OpenAPI description from a file or URL into a form whose `$ref`s can be resolved.

* `load_document` reads a path (relative to a base folder) or an http(s) URL, size-capped, as JSON or YAML, and
  refuses anything that is not OpenAPI 3.x or Swagger 2.0 with a message that says what it is instead.
* Swagger 2.0 is converted to OpenAPI 3.0.3 (`convert_swagger2`), so everything downstream sees one shape.
* `Document.resolve` looks up a `$ref` relative to the document it appears in, loading other files or URLs on
  demand through a `referencing.Registry` (jsonschema's library does URI joining, percent-decoding and JSON
  pointer unescaping), and says which document the target lives in so that refs inside it resolve from there.

YAML is read with the YAML 1.2 core schema, which is what OpenAPI 3.1 asks for and what JSON users expect:
`yes`/`on`/`no` stay strings, dates stay strings (a `datetime` would not survive `json.dumps`), and every mapping
key is its source text (`200:` is the key "200", as in JSON). The document is built straight from libyaml's event
stream with the cyclic garbage collector paused: on a 10 MB document PyYAML's own constructor (even over libyaml)
is about 3x slower, and the collector, rescanning millions of new containers, makes it 5x slower again.

A document fetched from a URL may not lead us to local files, nor (through its refs or their redirects) to
loopback, private or cloud-metadata addresses other than its own host and the root's (the SSRF guard's verdicts).

Documents are shared, read-only trees: YAML aliases become shared objects, so callers must not mutate them.
Limitations: `$id`/`$anchor` inside OpenAPI 3.1 schemas do not change the base URI (refs are resolved against the
document's location, as in 3.0); a Swagger 2.0 document's refs into *other* files keep pointing at those files'
unconverted content (a 2.0 schema is a valid 3.0 schema in all but `type: file` and `x-nullable`).
"""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard, cast
from urllib.parse import urldefrag, urljoin, urlsplit
from urllib.request import url2pathname

import httpx2
import yaml
from referencing import Registry, Resource
from referencing import exceptions as ref_errors
from yaml import events

from mcp_server._netguard import IPAddress, blocked_reason, normalise_host, parse_host_literal
from mcp_server._version import server_version

__all__ = ["Document", "FetchLimits", "OpenAPIError", "convert_swagger2", "load_document", "parse_text"]

_DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_DEFAULT_TIMEOUT = 30.0


class OpenAPIError(Exception):
    """A document that cannot be used as it is; `pointer` says where ("" = the whole document)."""

    def __init__(self, message: str, pointer: str = "") -> None:
        super().__init__(message, pointer)
        self.message = message
        self.pointer = pointer

    def __str__(self) -> str:
        return f"{self.message} (at {self.pointer})" if self.pointer else self.message


# --------------------------------------------------------------------------------------------------------------------
# Parsing JSON and YAML


# The event source: libyaml when PyYAML was built with it, else the pure-Python parser (same events, slower).
_Parser: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INF, _NAN = float("inf"), float("nan")
_SPECIAL: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("null", "Null", "NULL", "~", ""), None),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), _INF),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -_INF),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), _NAN),
}
# Only a plain scalar starting with one of these can be anything but a string: one set lookup decides most scalars.
_MAYBE_NOT_STR = frozenset("-+.0123456789tTfFnN~")
_CORE = "tag:yaml.org,2002:"
# Anchors may not let a small file expand into a huge tree (every later walk would pay for the expansion).
_MAX_ALIAS_GROWTH = 10
# Real documents nest a few dozen levels; libyaml's time grows with depth x size, and tree walkers recurse.
_MAX_DEPTH = 500
_MERGE_KEY = "\x00<<"  # stands for a plain `<<` key while its mapping is built; YAML text cannot spell it
_ALIAS_ALLOWANCE = 1_000_000


def _plain_scalar(value: str) -> Any:
    """A plain (unquoted, untagged) scalar under the YAML 1.2 core schema."""
    if value and value[0] not in _MAYBE_NOT_STR:
        return value
    if value in _SPECIAL:
        return _SPECIAL[value]
    if _INT.fullmatch(value):
        if value.startswith(("0o", "0x")):
            return int(value[2:], 8 if value[1] == "o" else 16)
        return int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    return value


def _tagged_scalar(value: str, tag: str) -> Any:
    if tag in (_CORE + "int", _CORE + "float", _CORE + "bool", _CORE + "null"):
        resolved = _plain_scalar(value)
        kind = tag.removeprefix(_CORE)
        ok = {"int": int, "float": (int, float), "bool": bool, "null": type(None)}[kind]
        if isinstance(resolved, ok) and not (kind != "bool" and isinstance(resolved, bool)):
            return float(cast(float, resolved)) if kind == "float" else resolved
        raise ValueError(f"{value!r} is not a valid !!{kind}")
    # `!!str`, `!`, `!!binary`, `!!timestamp` and application tags: the text itself is the most useful reading.
    return value


class _Frame:
    """A mapping or sequence under construction."""

    __slots__ = ("anchor", "anchor_mark", "container", "key", "merges")

    def __init__(self, container: dict[str, Any] | list[Any], anchor: str | None, anchor_mark: int) -> None:
        self.container = container
        self.key: str | None = None  # a mapping's pending key
        self.merges: list[Any] | None = None  # `<<` values, applied at the end of the mapping
        self.anchor = anchor
        self.anchor_mark = anchor_mark


def _yaml_error(message: str, event: Any) -> OpenAPIError:
    mark = getattr(event, "start_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return OpenAPIError(f"invalid YAML: {message}{where}")


def _load_yaml(text: str) -> Any:
    """Build Python values from the YAML event stream (see the module docstring for why not `yaml.load`)."""
    parser = _Parser(text)
    try:
        return _build(parser.get_event)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise OpenAPIError(f"invalid YAML: {exc.problem or exc.context}{where}") from None
    except yaml.YAMLError as exc:
        raise OpenAPIError(f"invalid YAML: {exc}") from None
    finally:
        parser.dispose()


def _build(next_event: Callable[[], Any]) -> Any:
    stack: list[_Frame] = []
    frame: _Frame | None = None
    anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, nodes it stands for)
    nodes = expanded = 0  # events seen, and the node count with aliases expanded
    documents = 0
    result: Any = None
    scalar_event, alias_event = events.ScalarEvent, events.AliasEvent
    mapping_start, sequence_start = events.MappingStartEvent, events.SequenceStartEvent
    mapping_end, sequence_end = events.MappingEndEvent, events.SequenceEndEvent
    while True:
        event = next_event()
        kind = event.__class__
        nodes += 1
        expanded += 1
        if kind is scalar_event:
            if frame is not None and frame.key is None and type(frame.container) is dict:
                # Keys are their source text, whatever they look like; `<<` (plain) is a merge key.
                key: str = event.value
                frame.key = _MERGE_KEY if key == "<<" and not event.style and event.tag is None else key
                if event.anchor is not None:
                    anchors[event.anchor] = (key, 1)
                continue
            if not event.style and event.tag is None:
                value = _plain_scalar(event.value)
            elif event.tag is None or event.tag == "!":
                value = event.value
            else:
                try:
                    value = _tagged_scalar(event.value, event.tag)
                except ValueError as exc:
                    raise _yaml_error(str(exc), event) from None
            if event.anchor is not None:
                anchors[event.anchor] = (value, 1)
        elif kind is mapping_start or kind is sequence_start:
            if frame is not None and frame.key is None and type(frame.container) is dict:
                raise _yaml_error("a mapping key must be a scalar", event)
            if frame is not None:
                stack.append(frame)
                if len(stack) >= _MAX_DEPTH:
                    raise OpenAPIError("the document is nested too deeply")
            frame = _Frame({} if kind is mapping_start else [], event.anchor, expanded)
            continue
        elif kind is mapping_end or kind is sequence_end:
            assert frame is not None
            value = frame.container
            if frame.merges is not None:
                value = _merge(frame.merges, cast(dict[str, Any], value), event)
            if frame.anchor is not None:
                # Registered only now: an alias inside its own anchor (a cycle) finds nothing and is refused.
                anchors[frame.anchor] = (value, expanded - frame.anchor_mark + 1)
            frame = stack.pop() if stack else None
        elif kind is alias_event:
            if event.anchor not in anchors:
                raise _yaml_error(f"unknown or recursive alias *{event.anchor}", event)
            value, weight = anchors[event.anchor]
            expanded += weight - 1
            if expanded > _MAX_ALIAS_GROWTH * nodes + _ALIAS_ALLOWANCE:
                raise _yaml_error("aliases expand to too many nodes", event)
            if frame is not None and frame.key is None and type(frame.container) is dict:
                if not isinstance(value, str):
                    raise _yaml_error("a mapping key must be a scalar", event)
                frame.key = value
                continue
        elif kind is events.StreamEndEvent:
            return result
        else:  # stream and document starts and ends
            if kind is events.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise _yaml_error("expected one YAML document, found more", event)
            continue
        if frame is None:
            result = value
        elif type(frame.container) is dict:
            key = cast(str, frame.key)
            if key == _MERGE_KEY:
                frame.merges = [*(frame.merges or []), value]
            else:
                frame.container[key] = value
            frame.key = None
        else:
            cast(list[Any], frame.container).append(value)


def _merge(merges: list[Any], explicit: dict[str, Any], event: Any) -> dict[str, Any]:
    """YAML merge keys: explicit keys win, then earlier merged mappings over later ones."""
    sources: list[Any] = []
    for merge in merges:
        sources.extend(cast(list[Any], merge) if isinstance(merge, list) else [merge])
    merged: dict[str, Any] = {}
    for source in reversed(sources):
        if not isinstance(source, dict):
            raise _yaml_error("a merge key (<<) needs a mapping or a list of mappings", event)
        merged.update(cast(dict[str, Any], source))
    merged.update(explicit)
    return merged


@contextlib.contextmanager
def _gc_paused() -> Generator[None]:
    """Building millions of containers triggers full collections that find nothing; pause the collector."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _decode(data: bytes, where: str) -> str:
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise OpenAPIError(f"{where} is not UTF-8 text (byte {exc.start})") from None


def parse_text(text: str) -> Any:
    """JSON or YAML text to Python values; JSON is tried first when it looks like JSON (it is ~10x faster)."""
    with _gc_paused():
        stripped = text.lstrip()
        if stripped.startswith(("{", "[")):
            try:
                return json.loads(stripped)
            except json.JSONDecodeError:
                pass  # a YAML flow mapping (`{a: 1}`) or broken JSON: the YAML parser reports either precisely
            except RecursionError:
                raise OpenAPIError("the document is nested too deeply") from None
        return _load_yaml(text)


# --------------------------------------------------------------------------------------------------------------------
# Reading files and URLs


def _is_url(source: str) -> bool:
    return urlsplit(source).scheme.lower() in ("http", "https", "file")


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise OpenAPIError(f"cannot read {path}: it is a directory")
        if size > max_bytes:
            raise OpenAPIError(f"{path} is too large ({size} bytes; the limit is {max_bytes})")
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise OpenAPIError(f"cannot read {path}: no such file") from None
    except OSError as exc:
        raise OpenAPIError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise OpenAPIError(f"{path} is too large (over {max_bytes} bytes)")
    return data


def _host(uri: str) -> str:
    return normalise_host(urlsplit(uri).hostname or "")


def _check_destination(url: str, trusted_hosts: frozenset[str]) -> None:
    """The SSRF rule for URLs a *fetched* document leads us to: its own host and the root's are fine (they served
    us already); anything else must not be loopback, private, cloud metadata or otherwise non-public, or a
    description on the internet could pull internal data into tool descriptions."""
    parts = urlsplit(url)
    host = _host(url)
    if host in trusted_hosts:
        return
    literal = parse_host_literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, ValueError, UnicodeError):
            return  # does not resolve: the fetch fails and says so
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    for address in addresses:
        reason = blocked_reason(address)
        if reason is not None:
            raise OpenAPIError(f"refusing to fetch {url}: {host} is a {reason} address")


def _fetch(url: str, max_bytes: int, timeout: float, trusted_hosts: frozenset[str] | None = None) -> tuple[bytes, str]:
    """GET a URL, following redirects; returns the body and the final URL (the base for relative refs).

    With `trusted_hosts`, every hop (redirects too) must pass `_check_destination`."""
    deadline = time.monotonic() + timeout
    headers = {
        "Accept": "application/json, application/yaml, text/yaml, */*;q=0.5",
        "User-Agent": f"mcp-connectors/{server_version()}",
    }
    hooks: dict[str, list[Callable[[httpx2.Request], None]]] = {}
    if trusted_hosts is not None:
        hooks["request"] = [lambda request: _check_destination(str(request.url), trusted_hosts)]
    try:
        with (
            httpx2.Client(follow_redirects=True, timeout=timeout, headers=headers, event_hooks=hooks) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise OpenAPIError(f"cannot fetch {url}: HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise OpenAPIError(f"{url} is too large ({declared} bytes; the limit is {max_bytes})")
            chunks: list[bytes] = []
            received = 0
            # Decoded bytes are counted, so a compressed body cannot expand past the cap either.
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise OpenAPIError(f"{url} is too large (over {max_bytes} bytes)")
                if time.monotonic() > deadline:  # httpx's timeout is per read; a slow drip must end too
                    raise OpenAPIError(f"cannot fetch {url}: timed out after {timeout:g} s")
                chunks.append(chunk)
            return b"".join(chunks), str(response.url)
    except httpx2.TimeoutException:
        raise OpenAPIError(f"cannot fetch {url}: timed out after {timeout:g} s") from None
    except httpx2.HTTPError as exc:
        raise OpenAPIError(f"cannot fetch {url}: {str(exc) or type(exc).__name__}") from None


# --------------------------------------------------------------------------------------------------------------------
# Documents and $ref resolution


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Caps for every file or URL read: the root document's and each one its refs lead to."""

    max_bytes: int = _DEFAULT_MAX_BYTES
    timeout: float = _DEFAULT_TIMEOUT


class _Loader:
    """Fetches and parses the documents refs point at, once each (failures too), under the root's limits."""

    def __init__(self, root_uri: str, limits: FetchLimits) -> None:
        self.max_bytes = limits.max_bytes
        self.timeout = limits.timeout
        # A description fetched from the network may not make us read local files.
        self.allow_files = urlsplit(root_uri).scheme.lower() not in ("http", "https")
        self._cache: dict[str, Resource[Any] | OpenAPIError] = {}
        self._lock = threading.Lock()
        self._root_host = _host(root_uri) if not self.allow_files else None
        # URL -> hosts it may reach freely, for URLs first met in a fetched document (see `_check_destination`).
        self._guarded: dict[str, frozenset[str]] = {}

    def guard(self, uri: str, referrer: str) -> None:
        """Called before `uri` is looked up from a document fetched from `referrer`, a URL."""
        if urlsplit(uri).scheme.lower() == "file":
            raise OpenAPIError(f"a document fetched from a URL may not refer to local files ({uri})")
        trusted = frozenset(h for h in (_host(referrer), self._root_host) if h)
        with self._lock:
            self._guarded.setdefault(uri, trusted)
        _check_destination(uri, trusted)  # the cached copy too: the ref itself must be acceptable

    def retrieve(self, uri: str) -> Resource[Any]:
        with self._lock:
            cached = self._cache.get(uri)
            if cached is None:
                try:
                    cached = Resource.opaque(self._load(uri))
                except OpenAPIError as exc:
                    cached = exc
                self._cache[uri] = cached
        if isinstance(cached, OpenAPIError):
            raise cached
        return cached

    def _load(self, uri: str) -> Any:
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            data, _ = _fetch(uri, self.max_bytes, self.timeout, self._guarded.get(uri))
        elif scheme == "file":
            if not self.allow_files:
                raise OpenAPIError(f"a document fetched from a URL may not refer to local files ({uri})")
            if parts.netloc not in ("", "localhost"):
                raise OpenAPIError(f"cannot read {uri}: file URIs on other hosts are not supported")
            data = _read_file(Path(url2pathname(parts.path)), self.max_bytes)
        else:
            raise OpenAPIError(f"cannot load {uri}: only file, http and https references are supported")
        return parse_text(_decode(data, uri))


@dataclass(frozen=True, slots=True)
class Document:
    """An OpenAPI 3.x document (Swagger 2.0 already converted) and the means to resolve its `$ref`s."""

    root: dict[str, Any]
    uri: str
    version: str
    limits: FetchLimits = field(default=FetchLimits(), kw_only=True, repr=False, compare=False)
    _loader: _Loader = field(init=False, repr=False, compare=False)
    _registry: Registry[Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        loader = _Loader(self.uri, self.limits)
        object.__setattr__(self, "_loader", loader)
        # The root is registered as it is here (converted, for Swagger), never re-read from its URI.
        registry: Registry[Any] = Registry(retrieve=loader.retrieve).with_resource(self.uri, Resource.opaque(self.root))
        object.__setattr__(self, "_registry", registry)

    def resolve(self, ref: str, base_uri: str) -> tuple[Any, str]:
        """Look up `ref` relative to `base_uri`: (the target, the URI of the document it lives in)."""
        base_uri = urldefrag(base_uri).url
        # The document the target lives in, as `referencing` itself finds it (no `$id`s move the base: see above).
        target_uri = base_uri if ref.startswith("#") else urldefrag(urljoin(base_uri, ref)).url
        if target_uri != base_uri and urlsplit(base_uri).scheme.lower() in ("http", "https"):
            self._loader.guard(target_uri, base_uri)
        try:
            resolved = self._registry.resolver(base_uri=base_uri).lookup(ref)
        except ref_errors.PointerToNowhere as exc:
            raise OpenAPIError(f"cannot resolve $ref {ref!r}: {target_uri} has nothing at #{exc.ref}") from None
        except ref_errors.NoSuchAnchor:
            raise OpenAPIError(f"cannot resolve $ref {ref!r}: only JSON-pointer fragments are supported") from None
        except ref_errors.Unresolvable as exc:
            raise OpenAPIError(f"cannot resolve $ref {ref!r}: {_cause(exc)}") from None
        except (ValueError, TypeError):  # `referencing` indexes a string or number it met along the pointer
            raise OpenAPIError(f"cannot resolve $ref {ref!r}: the pointer goes through a non-container value") from None
        return resolved.contents, target_uri


def _cause(exc: BaseException) -> str:
    """The message of the `OpenAPIError` a retrieval failed with (referencing wraps it in two layers)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OpenAPIError):
            return seen.message
        seen = seen.__cause__
    return "it cannot be found"


_OPENAPI_3 = re.compile(r"3\.\d+(\.\d+)?([-+][0-9A-Za-z.-]+)?")


def _version_of(root: Any, where: str) -> str:
    """The document's version string; refuses what is not OpenAPI 3.x or Swagger 2.0, naming what it looks like."""
    if not isinstance(root, dict):
        found = "empty" if root is None else f"a {type(root).__name__}"
        raise OpenAPIError(f"{where} is not an OpenAPI document: its top level is {found}, not a mapping")
    doc = cast(dict[str, Any], root)
    if "openapi" in doc:
        version = doc["openapi"]
        # `openapi: 3.1` unquoted is a YAML number; take it for what the author meant.
        text = str(version) if isinstance(version, str | int | float) and not isinstance(version, bool) else ""
        if _OPENAPI_3.fullmatch(text):
            return text
        raise OpenAPIError(f"{where}: unsupported OpenAPI version {version!r} (supported: 3.0, 3.1 and Swagger 2.0)")
    if "swagger" in doc:
        version = doc["swagger"]
        if str(version) in ("2.0", "2"):
            return "2.0"
        raise OpenAPIError(f"{where}: unsupported Swagger version {version!r} (supported: 2.0, and OpenAPI 3.0, 3.1)")
    raise OpenAPIError(f"{where} is not an OpenAPI document: {_looks_like(doc)}")


def _looks_like(doc: dict[str, Any]) -> str:
    info = _mapping(doc.get("info"))
    if "getpostman.com" in str(info.get("schema", "")) or "_postman_id" in info or "item" in doc:
        return "it looks like a Postman collection (export the API as OpenAPI instead)"
    if "asyncapi" in doc:
        return "it is an AsyncAPI document, which describes message channels, not HTTP operations"
    if "$schema" in doc or ("type" in doc and "properties" in doc):
        return "it looks like a JSON Schema; an OpenAPI document has an 'openapi' field and 'paths'"
    return "no top-level 'openapi' (3.x) or 'swagger' ('2.0') field"


def load_document(
    source: str, base_dir: Path, *, max_bytes: int = _DEFAULT_MAX_BYTES, timeout: float = _DEFAULT_TIMEOUT
) -> Document:
    """Read an OpenAPI 3.x or Swagger 2.0 document from a path (relative to `base_dir`) or an http(s) URL."""
    if _is_url(source):
        scheme = urlsplit(source).scheme.lower()
        if scheme == "file":
            path = Path(url2pathname(urlsplit(source).path))
            data, uri = _read_file(path, max_bytes), path.as_uri()
        else:
            data, uri = _fetch(source, max_bytes, timeout)
        where = source
    else:
        path = (base_dir / Path(source).expanduser()).resolve()
        data, uri, where = _read_file(path, max_bytes), path.as_uri(), str(path)
    raw = parse_text(_decode(data, where))
    version = _version_of(raw, where)
    root = cast(dict[str, Any], raw)
    if "openapi" in root and not isinstance(root["openapi"], str):
        root["openapi"] = version  # our own fresh parse: callers may rely on a string, as the spec requires
    if version == "2.0":
        try:
            with _gc_paused():
                root = convert_swagger2(root)
        except RecursionError:
            raise OpenAPIError(f"{where}: the document is nested too deeply") from None
    return Document(root=root, uri=uri, version=version, limits=FetchLimits(max_bytes, timeout))


# --------------------------------------------------------------------------------------------------------------------
# Swagger 2.0 -> OpenAPI 3.0.3

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
_SCHEMA_KEYWORDS = (
    "type",
    "format",
    "items",
    "enum",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
)
_QUERY_STYLES: dict[str, tuple[str, bool]] = {
    "csv": ("form", False),
    "ssv": ("spaceDelimited", False),
    "pipes": ("pipeDelimited", False),
    "multi": ("form", True),
    "tsv": ("form", False),
}


def convert_swagger2(doc: dict[str, Any]) -> dict[str, Any]:
    """A Swagger 2.0 document as OpenAPI 3.0.3 (a new tree; the input is left as it was)."""
    body_params = {name for name, p in _mapping(doc.get("parameters")).items() if _is_map(p) and p.get("in") == "body"}
    # One pass copies the whole tree and re-points local refs, so the rest may edit the copy freely.
    src = cast(dict[str, Any], _copy_rewriting_refs(doc, body_params))
    return _Converter(src).run()


def _is_map(value: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict)


def _mapping(value: Any) -> dict[str, Any]:
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


def _copy_rewriting_refs(node: Any, body_params: set[str]) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in cast(dict[Any, Any], node).items():
            if key == "$ref" and isinstance(value, str):
                out[key] = _rewrite_ref(value, body_params)
            else:
                out[str(key)] = _copy_rewriting_refs(value, body_params)
        return out
    if isinstance(node, list):
        return [_copy_rewriting_refs(item, body_params) for item in cast(list[Any], node)]
    return node


def _rewrite_ref(ref: str, body_params: set[str]) -> str:
    if ref.startswith("#/definitions/"):
        return "#/components/schemas/" + ref.removeprefix("#/definitions/")
    if ref.startswith("#/responses/"):
        return "#/components/responses/" + ref.removeprefix("#/responses/")
    if ref.startswith("#/parameters/"):
        name = ref.removeprefix("#/parameters/")
        # Body parameters become request bodies. A formData one is inlined into its operation's form body; the
        # converter finds it through this pointer, which is all such a ref is ever used for.
        if name.replace("~1", "/").replace("~0", "~") in body_params:
            return "#/components/requestBodies/" + name
        return "#/components/parameters/" + name
    return ref


class _Converter:
    def __init__(self, src: dict[str, Any]) -> None:
        self.src = src
        self.consumes: list[str] = _strings(src.get("consumes")) or ["application/json"]
        self.produces: list[str] = _strings(src.get("produces")) or ["application/json"]
        self.global_params = _mapping(src.get("parameters"))

    def run(self) -> dict[str, Any]:
        src = self.src
        out: dict[str, Any] = {"openapi": "3.0.3", "info": src.get("info", {"title": "", "version": ""})}
        servers = _servers(src.get("host"), src.get("basePath"), src.get("schemes"))
        if servers:
            out["servers"] = servers
        handled = {"swagger", "info", "host", "basePath", "schemes", "consumes", "produces"}
        handled |= {"definitions", "parameters", "responses", "securityDefinitions", "paths"}
        for key, value in src.items():
            if key == "paths":
                out["paths"] = {
                    path: self._path_item(item) if not path.startswith("x-") and _is_map(item) else item
                    for path, item in _mapping(value).items()
                }
            elif key not in handled:
                out[key] = value  # tags, security, externalDocs, x-* are the same in 3.0
        out.setdefault("paths", {})
        components = self._components()
        if components:
            out["components"] = components
        return out

    def _components(self) -> dict[str, Any]:
        src = self.src
        components: dict[str, Any] = {}
        schemas = {name: _schema(schema) for name, schema in _mapping(src.get("definitions")).items()}
        parameters: dict[str, Any] = {}
        bodies: dict[str, Any] = {}
        for name, param in self.global_params.items():
            if not _is_map(param):
                continue
            if param.get("in") == "body":
                bodies[name] = self._request_body(param, self.consumes)
            elif param.get("in") != "formData":  # form fields only exist inside an operation's form body
                parameters[name] = _parameter(param)
        responses = {
            str(code): self._response(response, self.produces)
            for code, response in _mapping(src.get("responses")).items()
        }
        schemes = {
            name: _security_scheme(scheme) if _is_map(scheme) else scheme
            for name, scheme in _mapping(src.get("securityDefinitions")).items()
        }
        for key, value in (
            ("schemas", schemas),
            ("responses", responses),
            ("parameters", parameters),
            ("requestBodies", bodies),
            ("securitySchemes", schemes),
        ):
            if value:
                components[key] = value
        return components

    def _path_item(self, item: dict[str, Any]) -> dict[str, Any]:
        shared = _dicts(item.get("parameters"))
        out: dict[str, Any] = {}
        for key, value in item.items():
            if key == "parameters":
                kept = [p for p in shared if self._kind(p) not in ("body", "formData")]
                if kept:
                    out[key] = [self._parameter_or_ref(p) for p in kept]
            elif key in _METHODS and _is_map(value):
                out[key] = self._operation(value, shared)
            else:
                out[key] = value
        return out

    def _kind(self, param: dict[str, Any]) -> str:
        """Where a parameter goes, looking through a local ref; "" when it cannot be known (an external ref)."""
        target = self._local_param(param)
        return str(target.get("in", "")) if target is not None else ""

    def _local_param(self, param: dict[str, Any]) -> dict[str, Any] | None:
        ref = param.get("$ref")
        if not isinstance(ref, str):
            return param
        for prefix in ("#/components/requestBodies/", "#/components/parameters/"):
            if ref.startswith(prefix):
                name = ref.removeprefix(prefix).replace("~1", "/").replace("~0", "~")
                target = self.global_params.get(name)
                return target if _is_map(target) else None
        return None

    def _parameter_or_ref(self, param: dict[str, Any]) -> dict[str, Any]:
        return param if "$ref" in param else _parameter(param)

    def _operation(self, op: dict[str, Any], shared: list[dict[str, Any]]) -> dict[str, Any]:
        consumes = _strings(op.get("consumes")) or self.consumes
        produces = _strings(op.get("produces")) or self.produces
        own = _dicts(op.get("parameters"))
        # Path-level parameters apply unless the operation redefines them (same name and location).
        own_ids = {self._identity(p) for p in own}
        effective = [p for p in shared if self._identity(p) not in own_ids] + own
        skip = ("consumes", "produces", "schemes", "parameters", "responses")
        out: dict[str, Any] = {key: value for key, value in op.items() if key not in skip}
        kept = [self._parameter_or_ref(p) for p in own if self._kind(p) not in ("body", "formData")]
        if kept:
            out["parameters"] = kept
        body = self._operation_body(effective, consumes)
        if body is not None:
            out["requestBody"] = body
        responses = _mapping(op.get("responses")) or {"default": {"description": ""}}
        out["responses"] = {str(code): self._response(r, produces) for code, r in responses.items()}
        if "schemes" in op:
            servers = _servers(self.src.get("host"), self.src.get("basePath"), op["schemes"])
            if servers:
                out["servers"] = servers
        return out

    def _identity(self, param: dict[str, Any]) -> tuple[str, str]:
        target = self._local_param(param)
        if target is None:
            return ("$ref", str(param.get("$ref")))
        return (str(target.get("name", "")), str(target.get("in", "")))

    def _operation_body(self, params: list[dict[str, Any]], consumes: list[str]) -> dict[str, Any] | None:
        for param in params:
            if self._kind(param) == "body":
                if "$ref" in param and consumes == self.consumes:
                    return {"$ref": param["$ref"]}  # already pointing at components/requestBodies
                target = self._local_param(param)
                assert target is not None
                return self._request_body(target, consumes)
        fields = [target for p in params if self._kind(p) == "formData" and (target := self._local_param(p))]
        return _form_body(fields, consumes) if fields else None

    def _request_body(self, param: dict[str, Any], consumes: list[str]) -> dict[str, Any]:
        schema = _schema(param.get("schema", {}))
        body: dict[str, Any] = {}
        if "description" in param:
            body["description"] = param["description"]
        body["content"] = {media: {"schema": schema} for media in consumes}
        if param.get("required"):
            body["required"] = True
        body.update(_extensions(param))
        return body

    def _response(self, response: Any, produces: list[str]) -> Any:
        if not _is_map(response) or "$ref" in response:
            return response
        out: dict[str, Any] = {"description": response.get("description", "")}
        content: dict[str, Any] = {}
        schema = _schema(response["schema"]) if isinstance(response.get("schema"), dict) else None
        if schema is not None:
            content = {media: {"schema": schema} for media in produces}
        # 2.0 examples are keyed by media type; one for a type not in `produces` still describes that type.
        for media, example in _mapping(response.get("examples")).items():
            entry = content.setdefault(media, {"schema": schema} if schema is not None else {})
            entry["example"] = example
        if isinstance(response.get("headers"), dict):
            out["headers"] = {name: _header(h) for name, h in _mapping(response["headers"]).items()}
        if content:
            out["content"] = content
        out.update(_extensions(response))
        return out


def _strings(value: Any) -> list[str]:
    return [str(v) for v in cast(list[Any], value)] if isinstance(value, list) else []


def _dicts(value: Any) -> list[dict[str, Any]]:
    items = cast(list[Any], value) if isinstance(value, list) else []
    return [cast(dict[str, Any], item) for item in items if isinstance(item, dict)]


def _extensions(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if key.startswith("x-")}


def _servers(host: Any, base_path: Any, schemes: Any) -> list[dict[str, str]]:
    path = str(base_path or "").rstrip("/")
    if path and not path.startswith("/"):
        path = "/" + path
    if not host:
        # No host: the API is on the host serving the description, which a relative server URL says in 3.0.
        return [{"url": path}] if path else []
    names = [s.lower() for s in _strings(schemes) if s.lower() in ("http", "https")] or ["https"]
    # https first: a model should not send credentials in clear text just because "http" was listed first.
    names = sorted(dict.fromkeys(names), key=lambda s: s != "https")
    return [{"url": f"{scheme}://{host}{path}"} for scheme in names]


def _schema(schema: Any) -> Any:
    """A 2.0 schema in 3.0 terms, recursively (edits the fresh copy in place)."""
    if not _is_map(schema):
        return schema
    if schema.get("type") == "file":
        schema["type"] = "string"
        schema["format"] = "binary"
    if schema.get("x-nullable") is True:
        schema["nullable"] = True
    if isinstance(schema.get("discriminator"), str):
        schema["discriminator"] = {"propertyName": schema["discriminator"]}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            _schema(schema[key])
    for key in ("allOf", "anyOf", "oneOf", "items"):
        if isinstance(schema.get(key), list):
            for sub in schema[key]:
                _schema(sub)
    for sub in _mapping(schema.get("properties")).values():
        _schema(sub)
    return schema


def _parameter_schema(param: dict[str, Any]) -> dict[str, Any]:
    schema = {key: param[key] for key in _SCHEMA_KEYWORDS if key in param}
    if isinstance(schema.get("items"), dict):
        items = dict(cast(dict[str, Any], schema["items"]))
        items.pop("collectionFormat", None)  # a nested array's format has no 3.0 spelling
        schema["items"] = _parameter_schema(items) if "$ref" not in items else items
    return _schema(schema)


def _parameter(param: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {key: param[key] for key in ("name", "in", "description", "required") if key in param}
    if param.get("in") == "path":
        out["required"] = True
    if param.get("allowEmptyValue") is not None and param.get("in") == "query":
        out["allowEmptyValue"] = param["allowEmptyValue"]
    location = param.get("in")
    if param.get("type") == "array":
        fmt = str(param.get("collectionFormat", "csv"))
        if location == "query":
            # 2.0 arrays default to csv; 3.0's query default (form, exploded) would mean `multi`, so say it.
            out["style"], out["explode"] = _QUERY_STYLES.get(fmt, ("form", False))
        # In a path or header csv is 3.0's default (simple); other separators have no 3.0 spelling there.
        if fmt == "tsv" or (location in ("path", "header") and fmt in _SEPARATOR_NOTE):
            out["description"] = _note(out.get("description"), _SEPARATOR_NOTE[fmt])
    out["schema"] = _parameter_schema(param)
    if "x-example" in param:
        out["example"] = param["x-example"]
    out.update(_extensions(param))
    return out


_SEPARATOR_NOTE = {
    "tsv": "Values are separated by tabs (collectionFormat tsv).",
    "ssv": "Values are separated by spaces (collectionFormat ssv).",
    "pipes": "Values are separated by pipes (collectionFormat pipes).",
}


def _note(description: Any, note: str) -> str:
    return f"{description} {note}" if description else note


def _header(header: Any) -> Any:
    if not _is_map(header):
        return header
    out: dict[str, Any] = {"description": header["description"]} if "description" in header else {}
    out["schema"] = _parameter_schema(header)
    out.update(_extensions(header))
    return out


def _form_body(fields: list[dict[str, Any]], consumes: list[str]) -> dict[str, Any]:
    multipart = "multipart/form-data" in consumes or any(f.get("type") == "file" for f in fields)
    media = "multipart/form-data" if multipart else "application/x-www-form-urlencoded"
    properties: dict[str, Any] = {}
    required: list[str] = []
    encoding: dict[str, Any] = {}
    for param in fields:
        name = str(param.get("name", ""))
        prop = _parameter_schema(param)
        if "description" in param:
            prop["description"] = param["description"]
        prop.update(_extensions(param))
        properties[name] = prop
        if param.get("required"):
            required.append(name)
        fmt = str(param.get("collectionFormat", "csv"))
        if param.get("type") == "array" and not multipart and fmt in _QUERY_STYLES:
            # Only urlencoded bodies honour style/explode; multipart repeats a part per value anyway.
            style, explode = _QUERY_STYLES[fmt]
            encoding[name] = {"style": style, "explode": explode}
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    media_type: dict[str, Any] = {"schema": schema}
    if encoding:
        media_type["encoding"] = encoding
    body: dict[str, Any] = {"content": {media: media_type}}
    if required:
        body["required"] = True
    return body


_OAUTH_FLOWS = {
    "implicit": ("implicit", ("authorizationUrl",)),
    "password": ("password", ("tokenUrl",)),
    "application": ("clientCredentials", ("tokenUrl",)),
    "accessCode": ("authorizationCode", ("authorizationUrl", "tokenUrl")),
}


def _security_scheme(scheme: dict[str, Any]) -> dict[str, Any]:
    kind = scheme.get("type")
    out: dict[str, Any]
    if kind == "basic":
        out = {"type": "http", "scheme": "basic"}
    elif kind == "apiKey":
        out = {"type": "apiKey", "name": scheme.get("name", ""), "in": scheme.get("in", "header")}
    elif kind == "oauth2" and scheme.get("flow") in _OAUTH_FLOWS:
        flow_name, urls = _OAUTH_FLOWS[str(scheme["flow"])]
        flow: dict[str, Any] = {url: scheme.get(url, "") for url in urls}
        flow["scopes"] = scheme.get("scopes") or {}
        out = {"type": "oauth2", "flows": {flow_name: flow}}
    else:
        return scheme  # unknown: passed through for the importer to report
    if "description" in scheme:
        out["description"] = scheme["description"]
    out.update(_extensions(scheme))
    return out
