"""OpenAPI document → a connector manifest (plain data, the same shape a hand-written manifest has).

The result feeds the catalog exactly like a YAML manifest, and `import-openapi`
writes it out for review. One broken operation (a dangling `$ref`, an unsupported
construct) becomes a fault naming the operation and its JSON pointer; every other
operation still converts.

Choices, where OpenAPI leaves room:
- base URL: the first server, variables at their defaults, relative URLs joined to
  the document's own URL; a manifest's `base_url` always wins. An operation's own
  `servers` (else its path item's) become the operation's `base_url` the same way, when
  they name another URL than the document's (a server that gives no usable absolute URL
  is passed over for the next level).
- auth: the first global security requirement whose scheme we can inject (else the
  first declared scheme), mapped to manifest auth with vault references named
  after the connector (`<name>_token`, `<name>_api_key`, ...) for the user to fill.
- bodies: JSON (or `+json`) first, then form, multipart, text, then binary. Form bodies are
  written the OpenAPI way (`form_style: openapi`: each property a query parameter of style
  `form`, exploded), and the media type's `encoding` is copied for form and multipart bodies
  (`style`/`explode` for form bodies only, `contentType` as its first concrete media type).
- a parameter described by `content` instead of `schema` keeps its media type (`content_type`):
  its value is sent as one JSON text (for JSON types), not in a style.
- header parameters named Accept, Content-Type or Authorization are ignored, as the
  OpenAPI specification says.
- a query parameter may not be sent empty (`q=`) unless it sets `allowEmptyValue`, so its
  declared string schema gets `minLength: 1` (an enum or const says for itself).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urljoin

from mcp_server._model import PATH_PLACEHOLDER
from mcp_server._naming import assign_names, fallback_name, snake_case
from mcp_server._openapi_document import Document, OpenAPIError
from mcp_server._openapi_schema import translate_schema

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})
MAX_DESCRIPTION = 1000
# Each applied to a media type's essence (lower case, parameters dropped), best first.
_BODY_PREFERENCE: tuple[Callable[[str], bool], ...] = (
    lambda media: media == "application/json",
    lambda media: media.endswith("+json"),
    lambda media: media == "application/x-www-form-urlencoded",
    lambda media: media == "multipart/form-data",
    lambda media: media.startswith("text/"),
    lambda media: True,
)
_MEDIA_TYPE = re.compile(r"^[a-z]+/[a-z0-9.+-]+$")
_STYLES = frozenset({"simple", "label", "matrix", "form", "spaceDelimited", "pipeDelimited", "deepObject"})
_FORM_STYLES = frozenset({"form", "spaceDelimited", "pipeDelimited", "deepObject"})
"""The styles an encoding entry of a form body may have: the query ones."""
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
_SERVER_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
"""What the manifest schema accepts as a base URL."""


def _essence(media_type: str) -> str:
    """`Application/JSON; charset=utf-8` → `application/json`."""
    return media_type.split(";")[0].strip().lower()


@dataclass(frozen=True, slots=True)
class Selection:
    """Which operations to keep: by tag, operationId (or generated name) and path glob.

    An operation is kept when it matches any `include` entry (or `include` is empty)
    and no `exclude` entry. `overrides` maps an operationId or generated operation
    name to replacement `name`, `title` and/or `description`.
    """

    include: Mapping[str, Sequence[str]] = field(default_factory=dict[str, Sequence[str]])
    exclude: Mapping[str, Sequence[str]] = field(default_factory=dict[str, Sequence[str]])
    overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict[str, Mapping[str, str]])


@dataclass(frozen=True, slots=True)
class Converted:
    manifest: dict[str, Any]
    """`name`, `title`, `description`, `base_url` (when known), `auth`, `operations`."""
    faults: tuple[tuple[str, str], ...]
    """(JSON pointer, reason) for each operation that could not be converted."""


@dataclass(slots=True)
class _Candidate:
    pointer: str
    operation_id: str | None
    raw_name: str
    tags: tuple[str, ...]
    path: str
    entry: dict[str, Any]


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def _text(value: Any, limit: int = MAX_DESCRIPTION) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dialect(document: Document) -> str:
    return "3.1" if document.root.get("openapi", "").startswith("3.1") else "3.0"


class _Converter:
    def __init__(self, document: Document, name: str) -> None:
        self.document = document
        self.name = name
        self.dialect = _dialect(document)
        self.faults: list[tuple[str, str]] = []
        self.document_base_url = self.base_url()

    def deref(self, value: Any, base_uri: str) -> tuple[Any, str]:
        """Follow `$ref`s on a non-schema object (parameter, request body, path item), up to a sane chain."""
        for _ in range(32):
            if isinstance(value, dict) and isinstance(cast(dict[str, Any], value).get("$ref"), str):
                value, base_uri = self.document.resolve(cast(dict[str, Any], value)["$ref"], base_uri)
            else:
                return cast(Any, value), base_uri
        raise OpenAPIError("a chain of $ref longer than 32 links")

    def schema(self, schema: Any, base_uri: str) -> dict[str, Any]:
        return translate_schema(
            schema,
            base_uri=base_uri,
            resolve=self.document.resolve,
            dialect=self.dialect,  # type: ignore[arg-type]
        ).schema

    # ------------------------------------------------------------------ the document as a whole

    def base_url(self) -> str | None:
        return self.server_url(self.document.root.get("servers"))

    def server_url(self, servers: Any) -> str | None:
        """The first server of a `servers` list as an absolute URL, variables at their defaults; None if there is
        none (or it is relative and the document was read from a file)."""
        if not isinstance(servers, list) or not servers or not isinstance(servers[0], dict):
            return None
        server = cast(dict[str, Any], servers[0])
        url = server.get("url")
        if not isinstance(url, str):
            return None
        for variable, spec in cast(dict[str, Any], server.get("variables") or {}).items():
            default = cast(dict[str, Any], spec).get("default") if isinstance(spec, dict) else None
            url = url.replace("{" + variable + "}", str(default if default is not None else ""))
        scheme = re.match(r"^(https?)://", url, re.IGNORECASE)
        if scheme is not None:
            url = scheme.group(1).lower() + url[len(scheme.group(1)) :]  # `HTTPS://` is still absolute
        elif not self.document.uri.startswith(("http://", "https://")):
            return None
        else:
            url = urljoin(self.document.uri, url)
        return url.rstrip("/")

    def auth(self) -> dict[str, Any]:
        components = cast(dict[str, Any], self.document.root.get("components") or {})
        schemes = cast(dict[str, Any], components.get("securitySchemes") or {})
        ordered: list[str] = []
        for requirement in cast(list[Any], self.document.root.get("security") or []):
            if isinstance(requirement, dict):
                ordered.extend(cast(dict[str, Any], requirement))
        ordered.extend(schemes)
        for scheme_name in ordered:
            scheme = schemes.get(scheme_name)
            try:
                scheme, _ = self.deref(scheme, self.document.uri)
            except OpenAPIError:
                continue
            mapped = self._auth_for(scheme_name, scheme)
            if mapped is not None:
                return mapped
        return {"type": "none"}

    def _auth_for(self, scheme_name: str, scheme: Any) -> dict[str, Any] | None:
        if not isinstance(scheme, dict):
            return None
        spec = cast(dict[str, Any], scheme)
        kind = spec.get("type")
        if kind == "apiKey" and str(spec.get("x-amazon-apigateway-authtype", "")).lower() == "awssigv4":
            return self._sigv4_auth()
        if kind == "apiKey" and spec.get("in") in ("header", "query", "cookie") and spec.get("name"):
            secret = f"{self.name}_{snake_case(scheme_name)}"[:128]
            return {"type": "api_key", "in": spec["in"], "name": spec["name"], "value": {"secret": secret}}
        if kind == "http" and str(spec.get("scheme", "")).lower() == "basic":
            return {
                "type": "basic",
                "username": {"secret": f"{self.name}_username"},
                "password": {"secret": f"{self.name}_password"},
            }
        if kind == "http" and str(spec.get("scheme", "")).lower() == "bearer":
            return {"type": "bearer", "token": {"secret": f"{self.name}_token"}}
        if kind == "oauth2":
            flows = cast(dict[str, Any], spec.get("flows") if isinstance(spec.get("flows"), dict) else {})
            mapped = self._oauth_flow(flows)
            if mapped is not None:
                return mapped
        if kind in ("oauth2", "openIdConnect"):
            # Implicit/password flows and OpenID discovery: a token the user obtains elsewhere still works.
            return {"type": "bearer", "token": {"secret": f"{self.name}_token"}}
        return None

    def _oauth_flow(self, flows: dict[str, Any]) -> dict[str, Any] | None:
        """Client credentials when the API offers it (no user in the loop), else authorization code + PKCE."""
        supported = (("clientCredentials", "client_credentials"), ("authorizationCode", "authorization_code"))
        for flow_name, kind in supported:
            flow = flows.get(flow_name)
            if not isinstance(flow, dict):
                continue
            spec = cast(dict[str, Any], flow)
            token_url = self._absolute(spec.get("tokenUrl"))
            authorization_url = self._absolute(spec.get("authorizationUrl"))
            if token_url is None or (kind == "authorization_code" and authorization_url is None):
                continue
            scopes = sorted(str(s) for s in cast(dict[str, Any], spec.get("scopes") or {}) if " " not in str(s))
            auth: dict[str, Any] = {
                "type": f"oauth2_{kind}",
                "token_url": token_url,
                "client_id": {"secret": f"{self.name}_client_id"},
                "client_secret": {"secret": f"{self.name}_client_secret"},
            }
            if authorization_url is not None and kind == "authorization_code":
                auth["authorization_url"] = authorization_url
            if scopes:
                auth["scopes"] = scopes
            return auth
        return None

    def _absolute(self, url: Any) -> str | None:
        if not isinstance(url, str) or not url:
            return None
        if not re.match(r"^https?://", url, re.IGNORECASE):
            if not self.document.uri.startswith(("http://", "https://")):
                return None
            url = urljoin(self.document.uri, url)
        return url if re.match(r"^https?://[^\s/?#]+(/[^\s#]*)?$", url) else None

    def _sigv4_auth(self) -> dict[str, Any]:
        """AWS descriptions (aws2openapi) put the region in a server variable and the signing name before it."""
        region, service = "us-east-1", self.name
        servers = cast(list[Any], self.document.root.get("servers") or [])
        first = cast(dict[str, Any], servers[0]) if servers and isinstance(servers[0], dict) else {}
        variables = cast(dict[str, Any], first.get("variables") or {})
        region_spec = variables.get("region")
        if isinstance(region_spec, dict) and isinstance(cast(dict[str, Any], region_spec).get("default"), str):
            region = cast(dict[str, Any], region_spec)["default"]
        host = re.sub(r"^[a-z]+://", "", str(first.get("url", "")), flags=re.IGNORECASE).split("/", 1)[0]
        labels = host.split(".")
        if "{region}" in labels and labels.index("{region}") > 0:
            service = labels[labels.index("{region}") - 1]
        elif labels and re.fullmatch(r"[a-z0-9-]+", labels[0]):
            service = labels[0]
        return {
            "type": "aws_sigv4",
            "access_key_id": {"secret": "aws_access_key_id"},
            "secret_access_key": {"secret": "aws_secret_access_key"},
            "region": region if re.fullmatch(r"[a-z0-9-]+", region) else "us-east-1",
            "service": service if re.fullmatch(r"[a-z0-9-]+", service) else self.name.replace("_", "-"),
        }

    # ------------------------------------------------------------------ operations

    def candidates(self, selection: Selection) -> Iterator[_Candidate]:
        """The selected operations, converted; an operation the selection leaves out is never converted, so its
        faults are not reported (excluding a broken operation is how a user silences it)."""
        paths = self.document.root.get("paths")
        if not isinstance(paths, dict):
            return
        for path, raw_item in cast(dict[str, Any], paths).items():
            if path.startswith("x-"):
                continue  # a specification extension of the Paths object, not a path
            item_pointer = _pointer("paths", path)
            try:
                item, item_uri = self.deref(raw_item, self.document.uri)
            except OpenAPIError as exc:
                self.faults.append((item_pointer, exc.message))
                continue
            if not isinstance(item, dict):
                self.faults.append((item_pointer, "a path item must be an object"))
                continue
            path_item = cast(dict[str, Any], item)
            for method in HTTP_METHODS:
                operation = path_item.get(method)
                if not isinstance(operation, dict):
                    continue
                op = cast(dict[str, Any], operation)
                pointer = _pointer("paths", path, method)
                operation_id = op.get("operationId") if isinstance(op.get("operationId"), str) else None
                raw_name = snake_case(operation_id) if operation_id else fallback_name(method, path)
                tags = tuple(t for t in cast(list[Any], op.get("tags") or []) if isinstance(t, str))
                candidate = _Candidate(pointer, operation_id, raw_name, tags, path, {})
                if not _selected(candidate, selection):
                    continue
                try:
                    candidate.entry = self.operation(path, method, op, path_item, item_uri)
                except OpenAPIError as exc:
                    where = f"{pointer} ({exc.pointer})" if exc.pointer else pointer
                    self.faults.append((where, f"{method.upper()} {path}: {exc.message}"))
                    continue
                yield candidate

    def operation(
        self, path: str, method: str, op: dict[str, Any], path_item: dict[str, Any], base_uri: str
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {"method": method.upper(), "path": path}
        summary = _text(op.get("summary"), 200)
        description = _text(op.get("description"))
        if summary:
            entry["title"] = summary
        parts = [part for part in (summary, description) if part]
        if len(parts) == 2 and description and summary and description.startswith(summary.rstrip(".")):
            parts = [description]
        text = " ".join(part if part[-1] in ".!?:" else f"{part}." for part in parts)
        if op.get("deprecated") is True:  # trimmed before the marker is added, so a long description keeps it
            text = f"{_text(text, MAX_DESCRIPTION - len(' Deprecated.'))} Deprecated." if text else "Deprecated."
        if text:
            entry["description"] = _text(text, MAX_DESCRIPTION)
        parameters = self.parameters(
            [*cast(list[Any], path_item.get("parameters") or []), *cast(list[Any], op.get("parameters") or [])],
            base_uri,
        )
        declared_path = {p["name"] for p in parameters if p["in"] == "path"}
        for placeholder in PATH_PLACEHOLDER.findall(path):
            if placeholder not in declared_path:  # many real documents forget to declare one
                parameters.append({"name": placeholder, "in": "path", "required": True, "schema": {"type": "string"}})
                declared_path.add(placeholder)
        parameters = [p for p in parameters if p["in"] != "path" or p["name"] in PATH_PLACEHOLDER.findall(path)]
        if parameters:
            entry["parameters"] = parameters
        # OpenAPI 3: an operation's servers win over its path item's, which win over the document's.
        for servers in (op.get("servers"), path_item.get("servers")):
            url = self.server_url(servers)
            if url is not None and _SERVER_URL.match(url):
                if url != self.document_base_url:
                    entry["base_url"] = url
                break
        if op.get("requestBody") is not None:
            body = self.request_body(op["requestBody"], base_uri)
            if body is not None:
                entry["body"] = body
        return entry

    def parameters(self, raw: list[Any], base_uri: str) -> list[dict[str, Any]]:
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for item in raw:
            parameter, parameter_uri = self.deref(item, base_uri)
            if not isinstance(parameter, dict):
                raise OpenAPIError("a parameter must be an object")
            spec = cast(dict[str, Any], parameter)
            name, location = spec.get("name"), spec.get("in")
            if not isinstance(name, str) or location not in ("path", "query", "header", "cookie"):
                raise OpenAPIError(f"parameter {name!r} has no valid name/in")
            if location == "header" and name.lower() in IGNORED_HEADERS:
                continue
            converted: dict[str, Any] = {"name": name, "in": location}
            if spec.get("required") is True or location == "path":
                converted["required"] = True
            described = _text(spec.get("description"))
            if described:
                converted["description"] = described
            schema: Any = spec.get("schema")
            content_type: str | None = None
            if schema is None and isinstance(spec.get("content"), dict) and spec["content"]:
                # `content` has exactly one entry: the value is sent as one text of that media type.
                declared_type, media = next(iter(cast(dict[str, Any], spec["content"]).items()))
                schema = cast(dict[str, Any], media).get("schema") if isinstance(media, dict) else None
                content_type = _essence(declared_type)
                if not _MEDIA_TYPE.match(content_type):
                    content_type = "application/json"  # `*/*` or malformed: JSON, as for bodies
            converted["schema"] = self.schema(schema if schema is not None else {"type": "string"}, parameter_uri)
            # A `content` value is never empty text: even "" is sent as `""` in JSON.
            if (
                location == "query"
                and content_type is None
                and schema is not None
                and spec.get("allowEmptyValue") is not True
            ):
                converted["schema"] = _not_empty(converted["schema"])
            if content_type is not None:
                converted["content_type"] = content_type
            else:
                # Only values the manifest schema accepts: anything else would make an imported manifest invalid.
                if spec.get("style") in _STYLES:
                    converted["style"] = spec["style"]
                if isinstance(spec.get("explode"), bool):
                    converted["explode"] = spec["explode"]
            merged[(name, location)] = converted  # an operation's parameter replaces the path item's
        return list(merged.values())

    def request_body(self, raw: Any, base_uri: str) -> dict[str, Any] | None:
        body, body_uri = self.deref(raw, base_uri)
        if not isinstance(body, dict):
            raise OpenAPIError("requestBody must be an object")
        spec = cast(dict[str, Any], body)
        content = spec.get("content")
        if not isinstance(content, dict) or not content:
            return None
        declared = cast(dict[str, Any], content)
        media_types = [m for m in declared if _MEDIA_TYPE.match(m.split(";")[0].strip().lower())]
        chosen = next((m for prefer in _BODY_PREFERENCE for m in media_types if prefer(_essence(m))), None)
        # `*/*`, `application/*` or a malformed type ("applicationjson"): JSON is what such APIs take.
        sent_as = chosen.split(";")[0].strip().lower() if chosen else "application/json"
        media = declared[chosen] if chosen else next(iter(declared.values()))
        schema: Any = cast(dict[str, Any], media).get("schema") if isinstance(media, dict) else None
        converted: dict[str, Any] = {
            "content_type": sent_as,
            "schema": self.schema(schema if schema is not None else {}, body_uri),
        }
        if sent_as == _FORM:
            converted["form_style"] = "openapi"  # the document's rules, not the Stripe-style brackets
        if chosen is not None and sent_as in (_FORM, _MULTIPART) and isinstance(media, dict):
            encoding = _encoding(cast(dict[str, Any], media).get("encoding"), form=sent_as == _FORM)
            if encoding:
                converted["encoding"] = encoding
        if spec.get("required") is True:
            converted["required"] = True
        described = _text(spec.get("description"))
        if described:
            converted["description"] = described
        return converted


def _encoding(raw: Any, *, form: bool) -> dict[str, dict[str, Any]]:
    """A media type's `encoding` in manifest terms: what the manifest schema can hold, nothing else.

    `style`/`explode` only for form bodies (OpenAPI ignores them in multipart ones); `contentType`, which may
    list several types or a wildcard, as its first concrete media type. `headers` and `allowReserved` are not
    kept (the first only matters in multipart parts; the second only spares characters from percent-encoding).
    """
    if not isinstance(raw, dict):
        return {}
    converted: dict[str, dict[str, Any]] = {}
    for name, entry in cast(dict[str, Any], raw).items():
        if not isinstance(entry, dict):
            continue
        spec = cast(dict[str, Any], entry)
        kept: dict[str, Any] = {}
        content_type = spec.get("contentType")
        if isinstance(content_type, str):
            media = next((m for m in map(_essence, content_type.split(",")) if _MEDIA_TYPE.match(m)), None)
            if media is not None:
                kept["content_type"] = media
        if form and spec.get("style") in _FORM_STYLES:
            kept["style"] = spec["style"]
        if form and isinstance(spec.get("explode"), bool):
            kept["explode"] = spec["explode"]
        if kept:
            converted[name] = kept
    return converted


def _not_empty(schema: dict[str, Any]) -> dict[str, Any]:
    """A string schema that refuses "": OpenAPI's `allowEmptyValue` is false by default, so `q=` does not conform."""
    kind = schema.get("type")
    is_string = kind == "string" or (isinstance(kind, list) and "string" in kind)
    if is_string and not schema.get("minLength") and "enum" not in schema and "const" not in schema:
        return {**schema, "minLength": 1}
    return schema


def _matches(candidate: _Candidate, rules: Mapping[str, Sequence[str]]) -> bool:
    keys = {candidate.raw_name, *([candidate.operation_id] if candidate.operation_id else [])}
    return (
        any(tag in rules.get("tags", ()) for tag in candidate.tags)
        or any(key in rules.get("operations", ()) for key in keys)
        or any(fnmatch.fnmatchcase(candidate.path, pattern) for pattern in rules.get("paths", ()))
    )


def _selected(candidate: _Candidate, selection: Selection) -> bool:
    included = not any(selection.include.values()) or _matches(candidate, selection.include)
    return included and not _matches(candidate, selection.exclude)


def convert_document(document: Document, *, name: str, selection: Selection | None = None) -> Converted:
    selection = selection or Selection()
    converter = _Converter(document, name)
    kept = list(converter.candidates(selection))
    for candidate in kept:
        override = selection.overrides.get(candidate.operation_id or "") or selection.overrides.get(candidate.raw_name)
        if override:
            if override.get("name"):
                candidate.raw_name = snake_case(override["name"])
            for key in ("title", "description"):
                if override.get(key):
                    candidate.entry[key] = override[key]
    names = assign_names([c.raw_name for c in kept], connector=name)
    operations = [{"name": op_name, **candidate.entry} for op_name, candidate in zip(names, kept, strict=True)]

    info = cast(dict[str, Any], document.root.get("info") or {})
    manifest: dict[str, Any] = {"name": name}
    title = _text(info.get("title"), 200)
    if title:
        manifest["title"] = title
    description = _text(info.get("description"), 4000)
    if description:
        manifest["description"] = description
    base_url = converter.base_url()
    if base_url:
        manifest["base_url"] = base_url
    manifest["auth"] = converter.auth()
    manifest["operations"] = operations
    return Converted(manifest=manifest, faults=tuple(converter.faults))
