"""Load connector manifests into the frozen model, refusing bad ones one by one.

A manifest is checked in three passes: it parses (YAML or JSON), it satisfies
`schemas/connector.schema.json`, and its parts agree with each other (path
templates, unique names, the 64-character tool-name limit). A fault refuses only
that manifest; the catalog keeps every other connector.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from mcp_server._model import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_PAGES,
    PATH_PLACEHOLDER,
    ApiKeyAuth,
    Argument,
    Auth,
    BasicAuth,
    BearerAuth,
    Body,
    BreakerPolicy,
    CallPolicy,
    Catalog,
    ClientCertificate,
    Connector,
    DynamicAuth,
    ErrorFormat,
    HeadersAuth,
    HmacAuth,
    JwtAuth,
    ManifestFault,
    NoAuth,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    Operation,
    Pagination,
    Parameter,
    PropertyEncoding,
    RateLimit,
    SigV4Auth,
    Timeouts,
    Variant,
)
from mcp_server._resources import bundled_dir
from mcp_server._secrets import ValueRef
from mcp_server._violations import violations
from mcp_server._webhook_model import EVENTS_TOOL_OPERATION, WebhookSpec, WebhookSpecError, webhook_spec

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_YAML_LOADER: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml parses a 5,000-operation manifest in a second where PyYAML's pure-Python SafeLoader took 30 s."""
MAX_TOOL_NAME_LENGTH = 64


class _Fault(Exception):
    def __init__(self, json_path: str, reason: str) -> None:
        super().__init__(reason)
        self.json_path = json_path
        self.reason = _one_line(reason)  # names and paths from the manifest can be arbitrarily long


@cache
def manifest_validator() -> Draft202012Validator:
    # The bundled schema is ours and fixed: tests check it against the metaschema, not every start-up
    # (that check was ~0.1 s of each server start and CLI command).
    schema = json.loads((bundled_dir("schemas") / "connector.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def find_manifests(directories: Iterable[Path]) -> list[Path]:
    """Manifest files of each directory in name order; directories keep the order given."""
    found: list[Path] = []
    for directory in directories:
        if directory.is_dir():
            found.extend(sorted(p for p in directory.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file()))
    return found


def load_catalog(directories: Sequence[Path], *, environ: Mapping[str, str] | None = None) -> Catalog:
    """Every valid connector of `directories`, plus one fault per refused manifest or missing directory.

    `environ` (default: the process environment) supplies `base_url: {env: NAME}`.
    """
    connectors: list[Connector] = []
    faults: list[ManifestFault] = []
    owners: dict[str, Path] = {}  # connector and tool names already taken -> the file that took them
    for directory in directories:
        if not directory.is_dir():
            faults.append(ManifestFault(directory, "$", "tools directory does not exist"))
    for path in find_manifests(directories):
        try:
            connector, partial = load_manifest(path, environ=environ)
            _claim_names(connector, owners)
            faults.extend(ManifestFault(path, fault.json_path, fault.reason) for fault in partial)
        except _Fault as fault:
            faults.append(ManifestFault(path, fault.json_path, fault.reason))
            continue
        except RecursionError:
            # Absurdly deep nesting: the YAML/JSON parsers and the schema validators recurse.
            faults.append(ManifestFault(path, "$", "manifest is nested too deeply to load"))
            continue
        connectors.append(connector)
    return Catalog(connectors=tuple(connectors), faults=tuple(faults))


def load_manifest(path: Path, *, environ: Mapping[str, str] | None = None) -> tuple[Connector, list[_Fault]]:
    """Parse, validate and convert one manifest.

    Raises `_Fault` when the manifest as a whole is unusable. Returns the connector and,
    for an `openapi:` manifest, one fault per document operation that could not be
    converted (the others are in the connector).
    """
    document = _parse(path)
    found = violations(manifest_validator(), document)
    if found:
        raise _Fault(found[0].json_path, _one_line(found[0].message))
    manifest = cast(dict[str, Any], document)
    if "openapi" not in manifest:
        for key in ("base_url", "operations"):
            if key not in manifest:  # checked after the schema so a misspelt key is reported as such
                raise _Fault("$", f"{key!r} is a required property")
        return _build_connector(manifest, path, environ=environ), []
    expanded, generated, partial, document = _expand_openapi(manifest, path)
    return _build_connector(expanded, path, generated=generated, environ=environ, document=document), partial


def _expand_openapi(manifest: Mapping[str, Any], path: Path) -> tuple[dict[str, Any], int, list[_Fault], str]:
    """The manifest with the document's operations in front of its own; the manifest's keys win.

    Returns the expanded manifest, how many leading operations were generated (their
    schemas come from the translator, valid by construction, so they skip the per-schema
    check that would cost seconds on a large API), the per-operation faults and the document's URI.
    """
    # Imported here: the OpenAPI machinery costs start-up time only when a manifest uses it.
    from mcp_server._openapi_convert import Selection, convert_document
    from mcp_server._openapi_document import OpenAPIError, load_document

    try:
        document = load_document(manifest["openapi"], path.parent)
    except OpenAPIError as exc:
        raise _Fault("$.openapi", _one_line(f"{manifest['openapi']}: {exc.message}")) from None
    selection = Selection(
        include=manifest.get("include", {}),
        exclude=manifest.get("exclude", {}),
        overrides=manifest.get("overrides", {}),
    )
    converted = convert_document(document, name=manifest["name"], selection=selection)
    own = {k: v for k, v in manifest.items() if k not in ("openapi", "include", "exclude", "overrides", "operations")}
    expanded: dict[str, Any] = {**converted.manifest, **own}
    generated = converted.manifest["operations"]
    if "base_url" in own:
        # The manifest's base_url replaces every server of the document, an operation's own included: pointed at a
        # staging or mock server, no call should still reach a production host the document names.
        generated = [{key: value for key, value in op.items() if key != "base_url"} for op in generated]
    expanded["operations"] = [*generated, *manifest.get("operations", [])]
    if "base_url" not in expanded:
        raise _Fault("$.base_url", "the OpenAPI document names no absolute server URL; set base_url in the manifest")
    if not expanded["operations"]:
        raise _Fault("$.openapi", "no operation of the document was selected or could be converted")
    partial = [_Fault(pointer, _one_line(reason)) for pointer, reason in converted.faults]
    return expanded, len(generated), partial, document.uri


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _Fault("$", f"cannot read file: {exc}") from None
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader, libyaml's when available
    except json.JSONDecodeError as exc:
        raise _Fault("$", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise _Fault("$", f"invalid YAML{where}: {problem}") from None


def _one_line(text: str, limit: int = 240) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _value_ref(raw: Any) -> ValueRef:
    if isinstance(raw, str):
        return ValueRef("literal", raw)
    mapping = cast(Mapping[str, str], raw)
    if "secret" in mapping:
        return ValueRef("secret", mapping["secret"])
    return ValueRef("env", mapping["env"])


def _value_map(raw: Mapping[str, Any] | None) -> dict[str, ValueRef]:
    return {name: _value_ref(value) for name, value in (raw or {}).items()}


def _optional_ref(raw: Any) -> ValueRef | None:
    return None if raw is None else _value_ref(raw)


def _build_auth(raw: Mapping[str, Any] | None, connector: str) -> tuple[Auth, ClientCertificate | None]:
    """The connector's auth, and the client certificate when `type: mtls` asks for one and nothing else."""
    if raw is None or raw["type"] == "none":
        return NoAuth(), None
    kind = raw["type"]
    if kind == "bearer":
        return BearerAuth(token=_value_ref(raw["token"]), scheme=raw.get("scheme", "Bearer")), None
    if kind == "api_key":
        return ApiKeyAuth(location=raw["in"], name=raw["name"], value=_value_ref(raw["value"])), None
    if kind == "basic":
        return BasicAuth(username=_value_ref(raw["username"]), password=_value_ref(raw["password"])), None
    if kind == "headers":
        return HeadersAuth(headers=_value_map(raw["headers"])), None
    if kind == "mtls":
        return NoAuth(), _client_certificate(raw)
    return _build_dynamic_auth(raw, connector), None


def _build_dynamic_auth(raw: Mapping[str, Any], connector: str) -> DynamicAuth:
    kind = raw["type"]
    if kind == "oauth2_client_credentials":
        return OAuth2ClientCredentials(
            token_url=raw["token_url"],
            client_id=_value_ref(raw["client_id"]),
            client_secret=_value_ref(raw["client_secret"]),
            scopes=tuple(raw.get("scopes", ())),
            audience=raw.get("audience"),
            client_auth=raw.get("client_auth", "basic"),
            extra_params=dict(raw.get("params", {})),
        )
    if kind == "oauth2_authorization_code":
        return OAuth2AuthorizationCode(
            authorization_url=raw["authorization_url"],
            token_url=raw["token_url"],
            client_id=_value_ref(raw["client_id"]),
            token_secret=raw.get("token_secret", f"{connector}_oauth"),
            client_secret=_optional_ref(raw.get("client_secret")),
            scopes=tuple(raw.get("scopes", ())),
            client_auth=raw.get("client_auth", "body"),
            redirect_port=raw.get("redirect_port", 0),
            extra_params=dict(raw.get("params", {})),
        )
    if kind == "jwt":
        return JwtAuth(
            algorithm=raw["algorithm"],
            key=_value_ref(raw["key"]),
            claims=dict(raw.get("claims", {})),
            lifetime=raw.get("lifetime", 300),
            key_id=raw.get("key_id"),
            header=raw.get("header", "Authorization"),
            scheme=raw.get("scheme", "Bearer"),
        )
    if kind == "hmac":
        headers = raw.get("headers", {})
        auth = HmacAuth(
            key_id=_value_ref(raw["key_id"]),
            secret=_value_ref(raw["secret"]),
            algorithm=raw.get("algorithm", "sha256"),
            key_header=headers.get("key", "X-API-Key"),
            timestamp_header=headers.get("timestamp", "X-Timestamp"),
            signature_header=headers.get("signature", "X-Signature"),
            nonce_header=headers.get("nonce"),
            signature_encoding=raw.get("encoding", "hex"),
            signature_prefix=raw.get("prefix", ""),
            timestamp_format=raw.get("timestamp_format", "unix"),
        )
        if "canonical" in raw:
            from mcp_server._signing import check_hmac_template

            try:
                check_hmac_template(raw["canonical"])
            except ValueError as exc:
                raise _Fault("$.auth.canonical", str(exc)) from None
            auth = replace(auth, canonical=raw["canonical"])
        return auth
    assert kind == "aws_sigv4", kind  # the schema admits no other type
    return SigV4Auth(
        access_key_id=_value_ref(raw["access_key_id"]),
        secret_access_key=_value_ref(raw["secret_access_key"]),
        region=raw["region"],
        service=raw["service"],
        session_token=_optional_ref(raw.get("session_token")),
    )


def _ca_certificate(raw: str | None, manifest: Path) -> str | None:
    if raw is None or raw.lstrip().startswith("-----BEGIN"):
        return raw
    file = manifest.parent / Path(raw).expanduser()
    try:
        text = file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _Fault(
            "$.ca_certificate", f"cannot read the CA file {file}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise _Fault("$.ca_certificate", f"{file} holds no PEM certificate")
    return text


def _client_certificate(raw: Mapping[str, Any]) -> ClientCertificate:
    return ClientCertificate(
        certificate=_value_ref(raw["certificate"]),
        private_key=_value_ref(raw["private_key"]),
        password=_optional_ref(raw.get("password")),
    )


def _check_schema(schema: Mapping[str, Any], json_path: str) -> None:
    _check_refs(schema, schema, json_path, set())
    if _passes_fast_check(schema):
        return
    # The authority, and the one with readable messages: jsonschema validates the arguments later.
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise _Fault(json_path, f"not a valid JSON Schema: {_one_line(exc.message)}") from None


@cache
def _fast_metaschema() -> Any:
    """The 2020-12 metaschema in jsonschema-rs: some 300x faster than jsonschema, whose `$dynamicRef` resolution
    made start-up with 5,000 hand-written tools take 44 s. None where the wheel is unavailable."""
    try:
        import jsonschema_rs
    except ImportError:  # pragma: no cover - a platform without a wheel; the slow check still runs
        return None
    return jsonschema_rs.Draft202012Validator(Draft202012Validator.META_SCHEMA)


def _passes_fast_check(schema: Mapping[str, Any]) -> bool:
    """True only when the schema certainly passes `check_schema`: metaschema-valid by jsonschema-rs (which does not
    check formats) and every `pattern` compiles with Python's `re` (the `regex` format check_schema applies)."""
    fast = _fast_metaschema()
    if fast is None:
        return False
    try:
        return bool(fast.is_valid(schema)) and _patterns_compile(schema)
    except Exception:  # a value jsonschema-rs cannot take (a YAML date, say): let jsonschema decide
        return False


def _patterns_compile(node: Any) -> bool:
    if isinstance(node, list):
        return all(_patterns_compile(item) for item in cast(list[Any], node))
    if not isinstance(node, Mapping):
        return True
    for key, value in cast(Mapping[str, Any], node).items():
        if key == "pattern" and isinstance(value, str) and not _compiles(value):
            return False
        names: list[Any] = (
            list(cast(Mapping[Any, Any], value)) if key == "patternProperties" and isinstance(value, Mapping) else []
        )
        if not all(_compiles(str(name)) for name in names):
            return False
        if not _patterns_compile(value):
            return False
    return True


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return False
    return True


def _check_refs(node: Any, root: Mapping[str, Any], json_path: str, active: set[int]) -> None:
    """Refuse a schema that contains itself (a YAML alias cycle) or whose local `$ref` points nowhere.

    Either would load, then fail on every call (unresolvable reference) or on every
    listing (a cyclic structure cannot be serialized).
    """
    if not isinstance(node, Mapping | list):
        return
    key = id(cast(object, node))
    if key in active:
        raise _Fault(json_path, "the schema contains itself through a YAML alias; use $ref instead")
    active.add(key)
    children: Iterable[Any]
    if isinstance(node, Mapping):
        mapping = cast(Mapping[str, Any], node)
        ref = mapping.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/") and not _resolves(root, ref):
            raise _Fault(json_path, f"$ref {ref!r} points nowhere in this schema")
        children = mapping.values()
    else:
        children = cast(list[Any], node)
    for child in children:
        _check_refs(child, root, json_path, active)
    active.discard(key)


def _resolves(root: Mapping[str, Any], ref: str) -> bool:
    """Whether the JSON pointer of a `#/...` reference names something inside `root`."""
    node: Any = root
    for raw in ref[2:].split("/"):
        token = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and token in node:
            node = cast(Mapping[str, Any], node)[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(cast(list[Any], node)):
            node = cast(list[Any], node)[int(token)]
        else:
            return False
    return True


def _merge_policy(raw: Mapping[str, Any], base: CallPolicy) -> CallPolicy:
    """`base` with the policy keys of a manifest or operation object applied on top.

    `timeout: N` is shorthand for a read timeout and a whole-call deadline of N seconds
    (connect capped at N too); the finer `timeouts:` object wins over it.
    """
    timeouts = base.timeouts
    if "timeout" in raw:
        seconds = float(raw["timeout"])
        timeouts = Timeouts(connect=min(timeouts.connect, seconds), read=seconds, total=seconds)
    if "timeouts" in raw:
        timeouts = replace(timeouts, **{k: float(v) for k, v in raw["timeouts"].items()})
    retry = replace(base.retry, **raw["retry"]) if "retry" in raw else base.retry
    return CallPolicy(
        timeouts=timeouts,
        retry=retry,
        max_response_bytes=int(raw.get("max_response_bytes", base.max_response_bytes)),
        max_result_chars=int(raw.get("max_result_chars", base.max_result_chars)),
    )


def _build_operation(
    raw: Mapping[str, Any],
    json_path: str,
    connector_policy: CallPolicy,
    *,
    check_schemas: bool = True,
    manifest_dir: Path | None = None,
) -> Operation:
    parameters: list[Parameter] = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(raw.get("parameters", [])):
        item_path = f"{json_path}.parameters[{index}]"
        key = (item["name"], item["in"])
        if key in seen:
            raise _Fault(item_path, f"duplicate {item['in']} parameter {item['name']!r}")
        seen.add(key)
        schema = item.get("schema", {"type": "string"})
        if check_schemas:
            _check_schema(schema, f"{item_path}.schema")
        parameters.append(
            Parameter(
                name=item["name"],
                location=item["in"],
                schema=schema,
                # Path parameters are always required: an empty path segment is never what the caller meant.
                required=item["in"] == "path" or bool(item.get("required", False)),
                description=item.get("description"),
                style=item.get("style"),
                explode=item.get("explode"),
                content_type=item.get("content_type"),
            )
        )
    placeholders = PATH_PLACEHOLDER.findall(raw["path"])
    path_params = {p.name for p in parameters if p.location == "path"}
    for placeholder in placeholders:
        if placeholder not in path_params:
            raise _Fault(f"{json_path}.path", f"{{{placeholder}}} has no parameter with in: path")
    for name in sorted(path_params - set(placeholders)):
        raise _Fault(f"{json_path}.parameters", f"path parameter {name!r} does not appear in the path")

    body = None
    if "body" in raw:
        raw_body = raw["body"]
        if check_schemas:
            _check_schema(raw_body["schema"], f"{json_path}.body.schema")
        body = Body(
            schema=raw_body["schema"],
            content_type=raw_body.get("content_type", "application/json"),
            required=bool(raw_body.get("required", False)),
            description=raw_body.get("description"),
            form_style=raw_body.get("form_style", "brackets"),
            encoding={
                name: PropertyEncoding(
                    content_type=spec.get("content_type"), style=spec.get("style"), explode=spec.get("explode")
                )
                for name, spec in raw_body.get("encoding", {}).items()
            },
        )
    operation = Operation(
        name=raw["name"],
        method=raw["method"],
        path=raw["path"],
        title=raw.get("title"),
        description=raw.get("description"),
        parameters=tuple(parameters),
        body=body,
        headers=_value_map(raw.get("headers")),
        annotations=dict(raw.get("annotations", {})),
        policy=_merge_policy(raw, connector_policy),
        base_url=raw["base_url"].rstrip("/") if "base_url" in raw else None,
    )
    if not any(key in raw for key in _EXTENSION_KEYS):
        return operation
    return _with_extensions(operation, raw, json_path, connector_policy, manifest_dir)


_EXTENSION_KEYS = ("output_schema", "pagination", "arguments", "variants")
ALL_PAGES_ARGUMENT = "all_pages"
"""The argument every paginated tool gains; no parameter or argument of such an operation may take the name."""
DEFAULT_KEYSET_CURSOR = "cursor"
_BASE_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
_UNSET_BASE_URL = "https://unset.invalid"
"""Where a connector whose `{env: NAME}` base URL is unset points: `.invalid` never resolves (RFC 6761), and the
call is refused with AUTH_MISSING before anything is sent anyway."""


def _with_extensions(
    operation: Operation,
    raw: Mapping[str, Any],
    json_path: str,
    connector_policy: CallPolicy,
    manifest_dir: Path | None,
) -> Operation:
    """`operation` with its output schema, pagination, extra arguments and variants, each checked against the rest.

    Checked here rather than at call time so that a typo in a parameter name refuses the manifest with its JSON path
    instead of failing on every call.
    """
    names = request_argument_names(operation)
    arguments = _arguments(raw.get("arguments", []), f"{json_path}.arguments", names)
    declared = {argument.name: argument for argument in arguments}
    pagination = None
    if "pagination" in raw:
        pagination = _pagination(raw["pagination"], f"{json_path}.pagination", names, declared)
    output_schema = None
    if "output_schema" in raw:
        output_schema = _output_schema(
            raw["output_schema"], f"{json_path}.output_schema", manifest_dir, paged=pagination is not None
        )
    variants = tuple(
        _variant(item, f"{json_path}.variants[{index}]", raw, connector_policy, declared)
        for index, item in enumerate(raw.get("variants", []))
    )
    return replace(
        operation, output_schema=output_schema, pagination=pagination, arguments=arguments, variants=variants
    )


def request_argument_names(operation: Operation) -> set[str]:
    """Names the request itself gives arguments: parameters, and an object body's properties (else `body`)."""
    names = {parameter.name for parameter in operation.parameters}
    if operation.body is not None:
        properties = operation.body.schema.get("properties")
        if operation.body.schema.get("type") == "object" and isinstance(properties, Mapping) and properties:
            names.update(str(name) for name in cast(Mapping[str, Any], properties))
        else:
            names.add("body")
    return names


def _arguments(raw: Sequence[Mapping[str, Any]], json_path: str, taken: set[str]) -> tuple[Argument, ...]:
    arguments: list[Argument] = []
    for index, item in enumerate(raw):
        item_path = f"{json_path}[{index}]"
        name = item["name"]
        if name in taken or name == ALL_PAGES_ARGUMENT or any(a.name == name for a in arguments):
            raise _Fault(f"{item_path}.name", f"argument {name!r} clashes with another argument of this tool")
        schema = item.get("schema", {"type": "string"})
        _check_schema(schema, f"{item_path}.schema")
        arguments.append(
            Argument(
                name=name,
                schema=schema,
                required=bool(item.get("required", False)),
                description=item.get("description"),
            )
        )
    return tuple(arguments)


def _pagination(
    raw: Mapping[str, Any], json_path: str, names: set[str], declared: Mapping[str, Argument]
) -> Pagination:
    style = raw["style"]
    if ALL_PAGES_ARGUMENT in names:
        raise _Fault(json_path, f"a paginated tool gains the argument {ALL_PAGES_ARGUMENT!r}; rename that parameter")

    def parameter(key: str) -> str | None:
        value = raw.get(key)
        if value is not None and value not in names:
            raise _Fault(f"{json_path}.{key}", f"{value!r} is not a parameter of this operation")
        return value

    cursor_param = raw.get("cursor_param") if style == "keyset" else parameter("cursor_param")
    if style == "cursor" and ("cursor_field" in raw) == ("next_cursor" in raw):
        raise _Fault(json_path, "a cursor pagination reads its cursor from cursor_field or next_cursor: give one")
    keys = tuple(raw.get("keys", ()))
    if style == "keyset":
        cursor_param = cursor_param or DEFAULT_KEYSET_CURSOR
        if cursor_param in names or cursor_param in declared or cursor_param == ALL_PAGES_ARGUMENT:
            raise _Fault(f"{json_path}.cursor_param", f"the cursor argument {cursor_param!r} clashes with another")
        if len(raw["start"]) != len(keys):
            raise _Fault(f"{json_path}.start", f"give one start value per key ({len(keys)})")
        for index, value in enumerate(raw["start"]):
            _check_template(value, f"{json_path}.start[{index}]", 0, declared)
    for name, value in raw.get("set", {}).items():
        if name not in names:
            raise _Fault(f"{json_path}.set", f"{name!r} is not a parameter or body property of this operation")
        _check_template(value, f"{json_path}.set.{name}", len(keys), declared)
    return Pagination(
        style=style,
        items=raw.get("items", ""),
        cursor_param=cursor_param,
        cursor_field=raw.get("cursor_field"),
        next_cursor=raw.get("next_cursor"),
        has_more=raw.get("has_more"),
        offset_param=parameter("offset_param"),
        limit_param=parameter("limit_param"),
        default_limit=raw.get("default_limit"),
        lookahead=bool(raw.get("lookahead", False)),
        keys=keys,
        start=tuple(raw.get("start", ())),
        set=dict(raw.get("set", {})),
        max_items=int(raw.get("max_items", DEFAULT_MAX_ITEMS)),
        max_pages=int(raw.get("max_pages", DEFAULT_MAX_PAGES)),
    )


def placeholder(value: Any) -> tuple[str, Any] | None:
    """`("key", N)` or `("argument", NAME)` when `value` is a pagination placeholder, else None."""
    if isinstance(value, Mapping) and len(cast(Mapping[str, Any], value)) == 1:
        ((kind, target),) = cast(Mapping[str, Any], value).items()
        if (kind == "key" and type(target) is int) or (kind == "argument" and isinstance(target, str)):
            return kind, target
    return None


def _check_template(value: Any, json_path: str, keys: int, declared: Mapping[str, Argument]) -> None:
    found = placeholder(value)
    if found is not None:
        kind, target = found
        if kind == "key" and not 0 <= target < keys:
            raise _Fault(json_path, f"{{key: {target}}} names no key (the keyset has {keys})")
        if kind == "argument" and target not in declared:
            raise _Fault(json_path, f"{{argument: {target}}} names no argument declared under `arguments`")
        return
    children: Iterable[Any] = ()
    if isinstance(value, Mapping):
        children = cast(Mapping[str, Any], value).values()
    elif isinstance(value, list):
        children = cast(list[Any], value)
    for child in children:
        _check_template(child, json_path, keys, declared)


def _output_schema(raw: Any, json_path: str, manifest_dir: Path | None, *, paged: bool) -> dict[str, Any]:
    schema = _schema_file(raw, json_path, manifest_dir) if isinstance(raw, str) else dict(cast(Mapping[str, Any], raw))
    # Clients compile outputSchema by its own `$schema` and resolve `$ref`s within it alone: a draft-07 marker or an
    # `$id` that moves the base URI would make them read it differently from the server, which checks 2020-12.
    schema = {key: value for key, value in schema.items() if key not in ("$schema", "$id")}
    _check_schema(schema, json_path)
    _check_local_refs(schema, json_path)
    if not paged and schema.get("type") != "object":
        raise _Fault(json_path, "an output schema must describe an object (type: object); a list takes `pagination`")
    return schema


def _schema_file(name: str, json_path: str, manifest_dir: Path | None) -> dict[str, Any]:
    """A schema file beside the manifest, else among the bundled `schemas/` (so `stripe/charge.json` works from any
    tools directory)."""
    candidates = [*([manifest_dir / name] if manifest_dir is not None else []), bundled_dir("schemas") / name]
    file = next((candidate for candidate in candidates if candidate.is_file()), None)
    if file is None:
        raise _Fault(json_path, f"no schema file {name!r} beside the manifest or in the bundled schemas/")
    try:
        document = json.loads(file.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Fault(json_path, f"cannot read the schema {file}: {exc}") from None
    if not isinstance(document, dict):
        raise _Fault(json_path, f"{file} holds no JSON Schema object")
    return cast(dict[str, Any], document)


def _check_local_refs(node: Any, json_path: str) -> None:
    if isinstance(node, Mapping):
        mapping = cast(Mapping[str, Any], node)
        ref = mapping.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            raise _Fault(json_path, f"$ref {ref!r} leaves the schema; clients resolve output schemas on their own")
        for child in mapping.values():
            _check_local_refs(child, json_path)
    elif isinstance(node, list):
        for child in cast(list[Any], node):
            _check_local_refs(child, json_path)


def _variant(
    raw: Mapping[str, Any],
    json_path: str,
    base: Mapping[str, Any],
    connector_policy: CallPolicy,
    declared: Mapping[str, Argument],
) -> Variant:
    for name, value in raw["when"].items():
        if name not in declared:
            raise _Fault(f"{json_path}.when", f"{name!r} is not an argument declared under `arguments`")
        found = violations(Draft202012Validator(dict(declared[name].schema)), value)
        if found:
            raise _Fault(f"{json_path}.when.{name}", f"not a value of the argument: {found[0].message}")
    inherited = {key: value for key, value in base.items() if key not in (*_EXTENSION_KEYS, "body", "parameters")}
    request = {**inherited, **{k: base[k] for k in ("parameters", "body") if k in base}}
    request.update({key: raw[key] for key in ("method", "path", "parameters", "body") if key in raw})
    operation = _build_operation(request, json_path, connector_policy)
    names = request_argument_names(operation)
    for name in raw.get("set", {}):
        if name not in names:
            raise _Fault(f"{json_path}.set", f"{name!r} is not a parameter or body property of this request")
    return Variant(when=dict(raw["when"]), operation=operation, set=dict(raw.get("set", {})))


def _base_url(raw: Any, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """The base URL, and the variable's name when `{env: NAME}` was unset with no default."""
    if isinstance(raw, str):
        return raw.rstrip("/"), None
    spec = cast(Mapping[str, str], raw)
    value = environ.get(spec["env"], "").strip()
    if value:
        if not _BASE_URL.match(value):
            raise _Fault("$.base_url", f"{spec['env']} is not an absolute http(s) URL: {value[:100]!r}")
        return value.rstrip("/"), None
    if "default" in spec:
        return spec["default"].rstrip("/"), None
    return _UNSET_BASE_URL, spec["env"]


def _pointers(raw: Any) -> tuple[str, ...]:
    return (raw,) if isinstance(raw, str) else tuple(cast(list[str], raw))


def _error_format(raw: Mapping[str, Any]) -> ErrorFormat:
    return ErrorFormat(
        message=_pointers(raw["message"]),
        code=_pointers(raw["code"]) if "code" in raw else (),
        type=_pointers(raw["type"]) if "type" in raw else (),
        details={name: _pointers(value) for name, value in raw.get("details", {}).items()},
    )


def _build_connector(
    manifest: Mapping[str, Any],
    path: Path,
    *,
    generated: int = 0,
    environ: Mapping[str, str] | None = None,
    document: str | None = None,
) -> Connector:
    name = manifest["name"]
    policy = _merge_policy(manifest, CallPolicy())
    operations: list[Operation] = []
    seen: set[str] = set()
    for index, raw in enumerate(manifest["operations"]):
        json_path = f"$.operations[{index}]"
        if raw["name"] in seen:
            raise _Fault(f"{json_path}.name", f"duplicate operation name {raw['name']!r}")
        seen.add(raw["name"])
        tool_name = f"{name}_{raw['name']}"
        if len(tool_name) > MAX_TOOL_NAME_LENGTH:
            raise _Fault(
                f"{json_path}.name",
                f"tool name {tool_name!r} is {len(tool_name)} characters; the limit is {MAX_TOOL_NAME_LENGTH}",
            )
        operations.append(
            _build_operation(raw, json_path, policy, check_schemas=index >= generated, manifest_dir=path.parent)
        )
    auth, client_certificate = _build_auth(manifest.get("auth"), name)
    if "client_certificate" in manifest:
        if client_certificate is not None:
            raise _Fault("$.client_certificate", "give the certificate here or in `auth: {type: mtls}`, not both")
        client_certificate = _client_certificate(manifest["client_certificate"])
    ca_certificate = _ca_certificate(manifest.get("ca_certificate"), path)
    webhooks = _webhooks(manifest, seen)
    base_url, base_url_unset = _base_url(manifest["base_url"], os.environ if environ is None else environ)
    return Connector(
        name=name,
        base_url=base_url,
        base_url_unset=base_url_unset,
        error_format=_error_format(manifest["error_format"]) if "error_format" in manifest else None,
        operations=tuple(operations),
        title=manifest.get("title"),
        description=manifest.get("description"),
        auth=auth,
        client_certificate=client_certificate,
        ca_certificate=ca_certificate,
        headers=_value_map(manifest.get("headers")),
        policy=policy,
        rate_limit=RateLimit(**manifest["rate_limit"]) if "rate_limit" in manifest else None,
        breaker=BreakerPolicy(**manifest.get("circuit_breaker", {})),
        allow_networks=tuple(manifest.get("network", {}).get("allow", ())),
        webhooks=webhooks,
        source=path,
        document=document,
    )


def _webhooks(manifest: Mapping[str, Any], operations: set[str]) -> WebhookSpec | None:
    """The `webhooks:` block; its events are listed by the tool `<name>_list_events`, so no operation may take
    that name (it would shadow the tool, or the tool it)."""
    raw = manifest.get("webhooks")
    if raw is None:
        return None
    if EVENTS_TOOL_OPERATION in operations:
        raise _Fault(
            "$.webhooks",
            f"the operation {EVENTS_TOOL_OPERATION!r} would clash with the webhook events tool "
            f"{manifest['name']}_{EVENTS_TOOL_OPERATION}; rename the operation (or exclude it)",
        )
    try:
        return webhook_spec(raw, _value_ref(raw["secret"]))
    except WebhookSpecError as exc:
        raise _Fault(f"$.webhooks.{exc.key}", str(exc)) from None


def _claim_names(connector: Connector, owners: dict[str, Path]) -> None:
    """Refuse a connector whose name or any tool name an earlier manifest already holds."""
    assert connector.source is not None
    key = f"connector:{connector.name}"
    if key in owners:
        raise _Fault("$.name", f"connector {connector.name!r} is already defined in {owners[key]}")
    tool_keys = [f"tool:{connector.name}_{op.name}" for op in connector.operations]
    for index, tool_key in enumerate(tool_keys):
        if tool_key in owners:
            raise _Fault(
                f"$.operations[{index}].name",
                f"tool name {tool_key.removeprefix('tool:')!r} is already used by {owners[tool_key]}",
            )
    if connector.webhooks is not None:  # its events tool is a tool name like any other
        events_key = f"tool:{connector.name}_{EVENTS_TOOL_OPERATION}"
        if events_key in owners:
            raise _Fault(
                "$.webhooks",
                f"the events tool {events_key.removeprefix('tool:')!r} clashes with a tool of {owners[events_key]}",
            )
        tool_keys.append(events_key)
    for claimed in (key, *tool_keys):
        owners[claimed] = connector.source
