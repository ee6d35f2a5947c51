"""`load_catalog` / `load_manifest`: real manifest files in a temporary directory, good and bad."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from mcp_server._catalog import _Fault, load_catalog, load_manifest
from mcp_server._model import (
    ApiKeyAuth,
    BearerAuth,
    Catalog,
    ClientCertificate,
    HeadersAuth,
    HmacAuth,
    JwtAuth,
    ManifestFault,
    NoAuth,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    PropertyEncoding,
    SigV4Auth,
    Timeouts,
)
from mcp_server._resources import bundled_dir
from mcp_server._secrets import ValueRef

GITHUB_OPERATIONS = [
    "get_authenticated_user",
    "get_user",
    "list_user_repos",
    "list_org_repos",
    "get_repo",
    "search_repos",
    "list_issues",
    "get_issue",
    "create_issue",
    "create_issue_comment",
    "list_pull_requests",
]
MAX_REASON = 250


# ------------------------------------------------------------------ helpers


def operation(name: str = "get_item", method: str = "GET", path: str = "/items", **extra: Any) -> dict[str, Any]:
    return {"name": name, "method": method, "path": path, **extra}


def manifest(name: str | None = "demo", **overrides: Any) -> dict[str, Any]:
    """A valid manifest; keyword arguments replace (or, with value None, remove) top-level keys."""
    document: dict[str, Any] = {"name": name, "base_url": "https://api.example.com/v1", "operations": [operation()]}
    for key, value in {"name": name, **overrides}.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return document


def write(directory: Path, filename: str, content: str | bytes | dict[str, Any] | list[Any]) -> Path:
    """Write a manifest file: text and bytes as given, data as YAML or JSON according to the suffix."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(content, indent=2), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return path


def names(catalog: Catalog) -> list[str]:
    return [connector.name for connector in catalog.connectors]


def only_fault(catalog: Catalog) -> ManifestFault:
    assert len(catalog.faults) == 1, [str(f) for f in catalog.faults]
    return catalog.faults[0]


def assert_one_line(reason: str) -> None:
    assert reason
    assert "\n" not in reason and "\r" not in reason
    assert len(reason) <= MAX_REASON, len(reason)


# ------------------------------------------------------------------ the bundled connectors


def test_bundled_tools_load_without_faults() -> None:
    catalog = load_catalog([bundled_dir("tools")])
    assert catalog.faults == ()
    github = next(c for c in catalog.connectors if c.name == "github")
    assert [op.name for op in github.operations] == GITHUB_OPERATIONS
    assert github.base_url == "https://api.github.com"
    assert github.auth == BearerAuth(token=ValueRef("secret", "github_token"))
    assert github.headers["X-GitHub-Api-Version"] == ValueRef("literal", "2022-11-28")
    assert github.policy.timeouts.total == 30.0 and github.policy.timeouts.read == 30.0
    assert github.source == bundled_dir("tools") / "github.yaml"


# ------------------------------------------------------------------ formats, discovery and order


def test_yaml_json_and_yml_manifests_all_load(tmp_path: Path) -> None:
    write(tmp_path, "one.yaml", manifest("one"))
    write(tmp_path, "two.json", manifest("two"))
    write(tmp_path, "three.yml", manifest("three"))
    catalog = load_catalog([tmp_path])
    assert catalog.faults == ()
    assert sorted(names(catalog)) == ["one", "three", "two"]
    by_name = {c.name: c for c in catalog.connectors}
    assert by_name["two"].source == tmp_path / "two.json"
    assert by_name["three"].operations[0].name == "get_item"


def test_load_manifest_builds_the_model(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "demo.yaml",
        manifest(
            base_url="https://api.example.com/v1/",
            title="Demo API",
            description="Demo.",
            auth={"type": "api_key", "in": "query", "name": "key", "value": {"env": "DEMO_KEY"}},
            headers={"Accept": "application/json", "X-Tenant": {"secret": "tenant"}},
            timeout=12,
            operations=[
                operation(
                    "create_item",
                    "POST",
                    "/items/{kind}",
                    title="Create",
                    timeout=3,
                    parameters=[{"name": "kind", "in": "path", "schema": {"type": "string"}, "description": "Kind."}],
                    body={"schema": {"type": "object", "properties": {"title": {"type": "string"}}}},
                    annotations={"idempotentHint": True},
                )
            ],
        ),
    )
    connector, partial = load_manifest(path)
    assert partial == []
    assert connector.name == "demo"
    assert connector.base_url == "https://api.example.com/v1"  # trailing slash dropped
    assert connector.title == "Demo API"
    assert connector.auth == ApiKeyAuth(location="query", name="key", value=ValueRef("env", "DEMO_KEY"))
    assert dict(connector.headers) == {
        "Accept": ValueRef("literal", "application/json"),
        "X-Tenant": ValueRef("secret", "tenant"),
    }
    assert connector.policy.timeouts.total == 12.0
    assert connector.source == path
    (op,) = connector.operations
    assert (op.name, op.method, op.path, op.title, op.policy.timeouts.total) == (
        "create_item",
        "POST",
        "/items/{kind}",
        "Create",
        3,
    )
    assert dict(op.annotations) == {"idempotentHint": True}
    (param,) = op.parameters
    assert (param.name, param.location, param.required, param.description) == ("kind", "path", True, "Kind.")
    assert op.body is not None
    assert op.body.content_type == "application/json"
    assert op.body.required is False


def test_defaults_when_optional_keys_are_absent(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "demo.yaml",
        manifest(operations=[operation(parameters=[{"name": "q", "in": "query"}])]),
    )
    connector, _ = load_manifest(path)
    assert connector.auth == NoAuth()
    assert connector.policy.timeouts == Timeouts()
    assert dict(connector.headers) == {}
    (param,) = connector.operations[0].parameters
    assert param.schema == {"type": "string"}
    assert param.required is False


def test_headers_auth_mixes_literals_and_secrets(tmp_path: Path) -> None:
    auth = {"type": "headers", "headers": {"X-Tenant": "acme", "X-Auth": {"secret": "acme_auth"}}}
    connector, _ = load_manifest(write(tmp_path, "demo.yaml", manifest(auth=auth)))
    assert connector.auth == HeadersAuth(
        headers={"X-Tenant": ValueRef("literal", "acme"), "X-Auth": ValueRef("secret", "acme_auth")}
    )


def test_load_manifest_raises_on_a_bad_manifest(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", manifest(name="Bad-Name"))
    with pytest.raises(_Fault) as caught:
        load_manifest(path)
    assert caught.value.json_path == "$.name"
    assert "Bad-Name" in caught.value.reason


def test_non_manifest_files_are_ignored(tmp_path: Path) -> None:
    write(tmp_path, "demo.yaml", manifest("demo"))
    write(tmp_path, "README.md", "# not a manifest\n")
    write(tmp_path, "notes.txt", "name: nope\n")
    write(tmp_path, "demo.yaml.bak", "{{{ broken")
    write(tmp_path, "Makefile", "all:\n\ttrue\n")
    (tmp_path / "folder.yaml").mkdir()  # a directory with a manifest suffix
    write(tmp_path / "nested", "inner.yaml", manifest("inner"))  # subdirectories are not searched
    catalog = load_catalog([tmp_path])
    assert catalog.faults == ()
    assert names(catalog) == ["demo"]


def test_files_load_in_name_order(tmp_path: Path) -> None:
    # Connector names run against the file names, so the order seen is the files'.
    write(tmp_path, "3.yml", manifest("alpha"))
    write(tmp_path, "1.yaml", manifest("gamma"))
    write(tmp_path, "2.json", manifest("beta"))
    assert names(load_catalog([tmp_path])) == ["gamma", "beta", "alpha"]


def test_directories_load_in_the_order_given(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write(first, "z.yaml", manifest("one"))
    write(second, "a.yaml", manifest("two"))
    assert names(load_catalog([first, second])) == ["one", "two"]
    assert names(load_catalog([second, first])) == ["two", "one"]


def test_empty_directory_is_an_empty_catalog(tmp_path: Path) -> None:
    assert load_catalog([tmp_path]) == Catalog(connectors=(), faults=())


def test_missing_tools_directory_is_a_fault_and_others_still_load(tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist"
    good = tmp_path / "good"
    write(good, "demo.yaml", manifest("demo"))
    catalog = load_catalog([missing, good])
    fault = only_fault(catalog)
    assert fault.file == missing
    assert fault.json_path == "$"
    assert "does not exist" in fault.reason
    assert names(catalog) == ["demo"]


# ------------------------------------------------------------------ one bad manifest among good ones

LONG_NAME = "c" * 32

BAD_MANIFESTS: list[tuple[str, str, str | bytes | dict[str, Any] | list[Any], str, list[str]]] = [
    # id, filename, content, JSON path, substrings of the reason
    (
        "invalid-yaml",
        "bad.yaml",
        "name: demo\nbase_url: https://api.example.com\noperations:\n  - name: get_item\n    method: GET\n"
        "   path: /items\n",
        "$",
        ["invalid YAML", "line 6"],
    ),
    ("invalid-yaml-tab", "bad.yaml", "name: demo\n\tbase_url: x\n", "$", ["invalid YAML", "line 2"]),
    ("invalid-json", "bad.json", '{"name": "demo",\n "base_url": }', "$", ["invalid JSON", "line 2"]),
    ("yaml-in-json-file", "bad.json", "name: demo\n", "$", ["invalid JSON", "line 1"]),
    ("empty-file", "bad.yaml", "", "$", ["None is not of type 'object'"]),
    ("empty-json-file", "bad.json", "", "$", ["invalid JSON"]),
    ("top-level-list", "bad.yaml", [manifest()], "$", ["is not of type 'object'"]),
    ("top-level-scalar", "bad.yaml", "just a string\n", "$", ["'just a string' is not of type 'object'"]),
    ("missing-name", "bad.yaml", manifest(name=None), "$", ["'name' is a required property"]),
    ("bad-name-pattern", "bad.yaml", manifest(name="Bad-Name"), "$.name", ["'Bad-Name' does not match"]),
    (
        "name-not-string",
        "bad.yaml",
        "name: 12\nbase_url: https://x.io\noperations: [{name: a, method: GET, path: /}]\n",
        "$.name",
        ["12 is not of type 'string'"],
    ),
    ("missing-base-url", "bad.yaml", manifest(base_url=None), "$", ["'base_url' is a required property"]),
    ("base-url-ftp", "bad.yaml", manifest(base_url="ftp://files.example.com"), "$.base_url", ["'ftp://files"]),
    ("base-url-relative", "bad.yaml", manifest(base_url="/api"), "$.base_url", ["'/api' does not match"]),
    ("missing-operations", "bad.yaml", manifest(operations=None), "$", ["'operations' is a required property"]),
    ("no-operations", "bad.yaml", manifest(operations=[]), "$.operations", ["should be non-empty"]),
    (
        "unknown-top-level-key",
        "bad.yaml",
        {"name": "demo", "base_url": "https://api.example.com", "operation": [operation()]},
        "$",
        ["'operation' was unexpected"],
    ),
    ("auth-type-unknown", "bad.yaml", manifest(auth={"type": "oauth"}), "$.auth.type", ["'oauth' is not one of"]),
    ("bearer-without-token", "bad.yaml", manifest(auth={"type": "bearer"}), "$.auth", ["'token' is a required"]),
    (
        "api-key-in-body",
        "bad.yaml",
        manifest(auth={"type": "api_key", "in": "body", "name": "key", "value": "v"}),
        "$.auth.in",
        ["'body' is not one of"],
    ),
    (
        "bearer-with-extra-key",
        "bad.yaml",
        manifest(auth={"type": "bearer", "token": "t", "username": "u"}),
        "$.auth",
        ["'username' was unexpected"],
    ),
    (
        "secret-bad-name",
        "bad.yaml",
        manifest(auth={"type": "bearer", "token": {"secret": "bad name!"}}),
        "$.auth.token.secret",
        ["'bad name!' does not match"],
    ),
    (
        "header-name-not-a-string",
        "bad.yaml",
        "name: demo\nbase_url: https://x.io\nheaders: {1: one}\noperations: [{name: a, method: GET, path: /}]\n",
        "$.headers",
        ["1 is not of type 'string'"],
    ),
    (
        "header-value-not-a-string",
        "bad.yaml",
        manifest(headers={"X-Version": 2}),
        "$.headers['X-Version']",
        ["2 is not valid under any of the given schemas"],
    ),
    (
        "bad-method",
        "bad.yaml",
        manifest(operations=[operation(method="FETCH")]),
        "$.operations[0].method",
        ["'FETCH' is not one of"],
    ),
    (
        "duplicate-operation-names",
        "bad.yaml",
        manifest(operations=[operation(), operation(path="/other")]),
        "$.operations[1].name",
        ["duplicate operation name 'get_item'"],
    ),
    (
        "duplicate-parameter",
        "bad.yaml",
        manifest(operations=[operation(parameters=[{"name": "q", "in": "query"}, {"name": "q", "in": "query"}])]),
        "$.operations[0].parameters[1]",
        ["duplicate query parameter 'q'"],
    ),
    (
        "placeholder-without-parameter",
        "bad.yaml",
        manifest(operations=[operation(path="/items/{item_id}")]),
        "$.operations[0].path",
        ["{item_id} has no parameter with in: path"],
    ),
    (
        "placeholder-with-query-parameter-only",
        "bad.yaml",
        manifest(operations=[operation(path="/items/{item_id}", parameters=[{"name": "item_id", "in": "query"}])]),
        "$.operations[0].path",
        ["{item_id} has no parameter with in: path"],
    ),
    (
        "path-parameter-not-in-path",
        "bad.yaml",
        manifest(operations=[operation(parameters=[{"name": "item_id", "in": "path"}])]),
        "$.operations[0].parameters",
        ["path parameter 'item_id' does not appear in the path"],
    ),
    (
        "parameter-schema-invalid",
        "bad.yaml",
        manifest(operations=[operation(parameters=[{"name": "q", "in": "query", "schema": {"type": 12}}])]),
        "$.operations[0].parameters[0].schema",
        ["not a valid JSON Schema"],
    ),
    (
        "parameter-schema-dangling-ref",
        "bad.yaml",
        manifest(
            operations=[operation(parameters=[{"name": "q", "in": "query", "schema": {"$ref": "#/$defs/Missing"}}])]
        ),
        "$.operations[0].parameters[0].schema",
        ["#/$defs/Missing"],
    ),
    (
        "body-schema-invalid",
        "bad.yaml",
        manifest(operations=[operation(method="POST", body={"schema": {"type": "object", "properties": 5}})]),
        "$.operations[0].body.schema",
        ["not a valid JSON Schema", "5 is not of type 'object'"],
    ),
    (
        "body-schema-dangling-ref",
        "bad.yaml",
        manifest(
            operations=[
                operation(
                    method="POST",
                    body={"schema": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/A"}}}},
                )
            ]
        ),
        "$.operations[0].body.schema",
        ["#/components/schemas/A"],
    ),
    (
        "body-without-schema",
        "bad.yaml",
        manifest(operations=[operation(method="POST", body={"required": True})]),
        "$.operations[0].body",
        ["'schema' is a required property"],
    ),
    (
        "tool-name-over-64",
        "bad.yaml",
        manifest(name=LONG_NAME, operations=[operation("o" * 32)]),
        "$.operations[0].name",
        [f"'{LONG_NAME}_{'o' * 32}' is 65 characters; the limit is 64"],
    ),
    (
        "schema-alias-cycle",
        "bad.yaml",
        "name: demo\nbase_url: https://x.io\noperations: [{name: a, method: GET, path: /, parameters: "
        "[{name: q, in: query, schema: &s {type: object, properties: {a: *s}}}]}]\n",
        "$.operations[0].parameters[0].schema",
        ["contains itself"],
    ),
    (
        "schema-alias-cycle-outside-keywords",
        "bad.yaml",
        "name: demo\nbase_url: https://x.io\noperations: [{name: a, method: POST, path: /, "
        "body: {schema: &s {type: object, default: *s}}}]\n",
        "$.operations[0].body.schema",
        ["contains itself"],
    ),
    ("deeply-nested-yaml", "bad.yaml", "[" * 5000 + "]" * 5000, "$", ["nested too deeply"]),
    ("deeply-nested-json", "bad.json", "[" * 100000 + "]" * 100000, "$", ["nested too deeply"]),
    ("binary-file", "x.yaml", b"\xff\xfe\x00\x81name: \x9c\n", "$", ["cannot read file"]),
]


@pytest.mark.parametrize(
    ("filename", "content", "json_path", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_MANIFESTS],
)
def test_bad_manifest_is_refused_and_the_others_still_load(
    tmp_path: Path,
    filename: str,
    content: str | bytes | dict[str, Any] | list[Any],
    json_path: str,
    expected: list[str],
) -> None:
    # Good manifests on both sides of the bad one in name order.
    write(tmp_path, "aaa.yaml", manifest("first"))
    bad = write(tmp_path, filename, content)
    write(tmp_path, "zzz.json", manifest("last"))
    catalog = load_catalog([tmp_path])
    fault = only_fault(catalog)
    assert fault.file == bad
    assert fault.json_path == json_path
    for fragment in expected:
        assert fragment in fault.reason
    assert_one_line(fault.reason)
    assert str(fault) == f"{bad}: at {json_path}: {fault.reason}"
    assert names(catalog) == ["first", "last"]


def test_tool_name_of_exactly_64_characters_is_accepted(tmp_path: Path) -> None:
    write(tmp_path, "long.yaml", manifest(LONG_NAME, operations=[operation("o" * 31)]))
    catalog = load_catalog([tmp_path])
    assert catalog.faults == ()
    assert len(f"{LONG_NAME}_{catalog.connectors[0].operations[0].name}") == 64


def test_long_reasons_stay_one_short_line(tmp_path: Path) -> None:
    placeholder = "p" * 400
    write(tmp_path, "a.yaml", manifest("a", operations=[operation(path=f"/items/{{{placeholder}}}")]))
    huge_type = [f"type{i}" for i in range(200)]
    write(
        tmp_path,
        "b.yaml",
        manifest("b", operations=[operation(parameters=[{"name": "q", "in": "query", "schema": {"type": huge_type}}])]),
    )
    write(tmp_path, "c.yaml", manifest("c", description="x" * 5000))
    write(tmp_path, "d.yaml", "name: d\nbase_url: https://x.io\nop" + "e" * 500 + ": 1\noperations: []\n")
    catalog = load_catalog([tmp_path])
    assert [f.file.name for f in catalog.faults] == ["a.yaml", "b.yaml", "c.yaml", "d.yaml"]
    assert [f.json_path for f in catalog.faults] == [
        "$.operations[0].path",
        "$.operations[0].parameters[0].schema",
        "$.description",
        "$",
    ]
    for fault in catalog.faults:
        assert_one_line(fault.reason)
    assert catalog.faults[0].reason.startswith("{ppp")
    assert catalog.faults[1].reason.startswith("not a valid JSON Schema: ")


def test_same_connector_name_in_two_files_refuses_the_second(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", manifest("demo"))
    second = write(tmp_path, "b.json", manifest("demo", operations=[operation("other")]))
    catalog = load_catalog([tmp_path])
    fault = only_fault(catalog)
    assert fault.file == second
    assert fault.json_path == "$.name"
    assert fault.reason == f"connector 'demo' is already defined in {first}"
    assert [(c.name, c.source) for c in catalog.connectors] == [("demo", first)]


def test_same_connector_name_across_directories_keeps_the_first_directory(tmp_path: Path) -> None:
    first = write(tmp_path / "one", "z.yaml", manifest("demo"))
    second = write(tmp_path / "two", "a.yaml", manifest("demo"))
    catalog = load_catalog([tmp_path / "one", tmp_path / "two"])
    fault = only_fault(catalog)
    assert fault.file == second
    assert str(first) in fault.reason
    assert [c.source for c in catalog.connectors] == [first]


def test_colliding_tool_names_refuse_the_later_connector(tmp_path: Path) -> None:
    # a + b_c and a_b + c both make the tool name a_b_c.
    first = write(tmp_path, "a.yaml", manifest("a", operations=[operation("x"), operation("b_c")]))
    second = write(tmp_path, "a_b.yaml", manifest("a_b", operations=[operation("c")]))
    write(tmp_path, "b.yaml", manifest("b"))
    catalog = load_catalog([tmp_path])
    fault = only_fault(catalog)
    assert fault.file == second
    assert fault.json_path == "$.operations[0].name"
    assert fault.reason == f"tool name 'a_b_c' is already used by {first}"
    assert names(catalog) == ["a", "b"]


def test_a_refused_connector_does_not_claim_its_names(tmp_path: Path) -> None:
    # The first file is refused (bad operation) after its name was read; the second may still use the name.
    write(tmp_path, "1.yaml", manifest("demo", operations=[operation(), operation()]))
    good = write(tmp_path, "2.yaml", manifest("demo"))
    catalog = load_catalog([tmp_path])
    assert only_fault(catalog).file == tmp_path / "1.yaml"
    assert [c.source for c in catalog.connectors] == [good]


# ------------------------------------------------------------------ parameters


def test_path_parameters_are_always_required(tmp_path: Path) -> None:
    params = [
        {"name": "item_id", "in": "path", "required": False, "schema": {"type": "integer"}},
        {"name": "kind", "in": "path"},
        {"name": "q", "in": "query"},
        {"name": "limit", "in": "query", "required": True},
        {"name": "X-Trace", "in": "header", "required": False},
    ]
    write(tmp_path, "demo.yaml", manifest(operations=[operation(path="/items/{kind}/{item_id}", parameters=params)]))
    catalog = load_catalog([tmp_path])
    assert catalog.faults == ()
    parameters = catalog.connectors[0].operations[0].parameters
    assert [(p.name, p.location, p.required) for p in parameters] == [
        ("item_id", "path", True),
        ("kind", "path", True),
        ("q", "query", False),
        ("limit", "query", True),
        ("X-Trace", "header", False),
    ]


def test_same_parameter_name_in_different_locations_is_allowed(tmp_path: Path) -> None:
    params = [{"name": "id", "in": "path"}, {"name": "id", "in": "query"}, {"name": "id", "in": "header"}]
    write(tmp_path, "demo.yaml", manifest(operations=[operation(path="/items/{id}", parameters=params)]))
    catalog = load_catalog([tmp_path])
    assert catalog.faults == ()
    assert [p.location for p in catalog.connectors[0].operations[0].parameters] == ["path", "query", "header"]


def test_parameter_schema_with_local_defs_is_accepted(tmp_path: Path) -> None:
    schema = {"$ref": "#/$defs/State", "$defs": {"State": {"type": "string", "enum": ["open", "closed"]}}}
    write(
        tmp_path,
        "demo.yaml",
        manifest(operations=[operation(parameters=[{"name": "state", "in": "query", "schema": schema}])]),
    )
    catalog = load_catalog([tmp_path])
    assert catalog.faults == ()


# ------------------------------------------------------------------ nothing escapes load_catalog


def test_many_faulty_manifests_never_raise(tmp_path: Path) -> None:
    write(tmp_path, "binary.yaml", bytes(range(256)))
    write(tmp_path, "latin1.yml", "name: caf\xe9\n".encode("latin-1"))
    write(tmp_path, "nul.json", b"\x00\x00\x00")
    write(tmp_path, "recursive.yaml", "name: r\nbase_url: https://x.io\nheaders: &h {X: *h}\noperations: []\n")
    write(
        tmp_path,
        "date.yaml",
        "name: d\nbase_url: https://x.io\ntimeout: 2020-01-01\noperations: [{name: a, method: GET, path: /}]\n",
    )
    write(tmp_path, "nulls.yaml", "name: n\nbase_url: https://x.io\noperations: [null]\nauth: null\n")
    write(tmp_path, "deep.json", "[" * 5000 + "]" * 5000)
    write(tmp_path, "tag.yaml", "!!python/object/apply:os.system ['echo pwned']\n")
    write(tmp_path, "ok.yaml", manifest("ok"))
    catalog = load_catalog([tmp_path])
    assert names(catalog) == ["ok"]
    assert sorted(f.file.name for f in catalog.faults) == [
        "binary.yaml",
        "date.yaml",
        "deep.json",
        "latin1.yml",
        "nul.json",
        "nulls.yaml",
        "recursive.yaml",
        "tag.yaml",
    ]
    for fault in catalog.faults:
        assert_one_line(fault.reason)


# ------------------------------------------------------------------ send-time auth schemes

_SECRET = {"secret": "s"}


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (
            {"type": "oauth2_client_credentials", "token_url": "https://id.example/token", "client_id": "app",
             "client_secret": _SECRET, "scopes": ["a", "b"], "audience": "api"},
            OAuth2ClientCredentials(
                "https://id.example/token", ValueRef("literal", "app"), ValueRef("secret", "s"), ("a", "b"), "api"
            ),
        ),
        (
            {"type": "oauth2_authorization_code", "authorization_url": "https://id.example/auth",
             "token_url": "https://id.example/token", "client_id": "app"},
            OAuth2AuthorizationCode(
                "https://id.example/auth", "https://id.example/token", ValueRef("literal", "app"), "demo_oauth"
            ),
        ),
        (
            {"type": "jwt", "algorithm": "ES256", "key": _SECRET, "claims": {"iss": "me"}, "scheme": None},
            JwtAuth("ES256", ValueRef("secret", "s"), {"iss": "me"}, scheme=None),
        ),
        (
            {"type": "hmac", "key_id": "k", "secret": _SECRET, "canonical": "{method}:{path}",
             "headers": {"key": None, "signature": "X-Sig"}, "prefix": "v1="},
            HmacAuth(ValueRef("literal", "k"), ValueRef("secret", "s"), canonical="{method}:{path}", key_header=None,
                     signature_header="X-Sig", signature_prefix="v1="),
        ),
        (
            {"type": "aws_sigv4", "access_key_id": _SECRET, "secret_access_key": _SECRET, "region": "eu-west-1",
             "service": "s3"},
            SigV4Auth(ValueRef("secret", "s"), ValueRef("secret", "s"), "eu-west-1", "s3"),
        ),
    ],
)  # fmt: skip
def test_send_time_auth_schemes_load(tmp_path: Path, auth: dict[str, Any], expected: object) -> None:
    write(tmp_path, "demo.yaml", manifest(auth=auth))
    catalog = load_catalog([tmp_path])
    assert not catalog.faults, [str(f) for f in catalog.faults]
    assert catalog.connectors[0].auth == expected


def test_mtls_is_a_client_certificate_beside_any_auth(tmp_path: Path) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    (tmp_path / "ca.pem").write_text(pem)
    write(
        tmp_path / "a", "a.yaml", manifest("a", auth={"type": "mtls", "certificate": _SECRET, "private_key": _SECRET})
    )
    cert = {"certificate": {"env": "CERT"}, "private_key": _SECRET}
    write(tmp_path / "b", "b.yaml", manifest("b", client_certificate=cert, ca_certificate="../ca.pem",
                                             auth={"type": "bearer", "token": _SECRET}))  # fmt: skip
    catalog = load_catalog([tmp_path / "a", tmp_path / "b"])
    assert not catalog.faults, [str(f) for f in catalog.faults]
    first, second = catalog.connectors
    assert isinstance(first.auth, NoAuth) and first.client_certificate == ClientCertificate(
        ValueRef("secret", "s"), ValueRef("secret", "s")
    )
    assert isinstance(second.auth, BearerAuth) and second.ca_certificate == pem
    assert second.client_certificate is not None and second.client_certificate.certificate == ValueRef("env", "CERT")


@pytest.mark.parametrize(
    ("overrides", "json_path", "words"),
    [
        ({"auth": {"type": "hmac", "key_id": "k", "secret": _SECRET, "canonical": "{method}{body}"}},
         "$.auth.canonical", "body"),
        ({"auth": {"type": "oauth2_client_credentials", "client_id": "a", "client_secret": _SECRET}},
         "$.auth", "token_url"),
        ({"auth": {"type": "jwt", "algorithm": "HS256", "key": _SECRET, "claims": {"exp": 1}}}, "$.auth.claims", ""),
        ({"auth": {"type": "jwt", "algorithm": "none", "key": _SECRET}}, "$.auth.algorithm", ""),
        ({"auth": {"type": "mtls", "certificate": _SECRET, "private_key": _SECRET},
          "client_certificate": {"certificate": _SECRET, "private_key": _SECRET}}, "$.client_certificate", "not both"),
        ({"ca_certificate": "missing.pem"}, "$.ca_certificate", "cannot read"),
    ],
)  # fmt: skip
def test_bad_send_time_auth_is_a_fault_with_its_path(
    tmp_path: Path, overrides: dict[str, Any], json_path: str, words: str
) -> None:
    write(tmp_path, "demo.yaml", manifest(**overrides))
    fault = only_fault(load_catalog([tmp_path]))
    assert fault.json_path == json_path, str(fault)
    assert words in fault.reason
    assert_one_line(fault.reason)


# ------------------------------------------------------------------ OpenAPI fidelity: body encoding


def test_body_form_style_and_encoding_are_built(tmp_path: Path) -> None:
    body = {
        "content_type": "application/x-www-form-urlencoded",
        "form_style": "openapi",
        "encoding": {
            "filter": {"style": "deepObject", "explode": True},
            "meta": {"content_type": "application/json"},
            "tags": {"explode": False},
        },
        "schema": {"type": "object"},
    }
    path = write(tmp_path, "demo.yaml", manifest(operations=[operation(method="POST", body=body)]))
    built = load_manifest(path)[0].operations[0].body
    assert built is not None
    assert built.form_style == "openapi"
    assert dict(built.encoding) == {
        "filter": PropertyEncoding(style="deepObject", explode=True),
        "meta": PropertyEncoding(content_type="application/json"),
        "tags": PropertyEncoding(explode=False),
    }


def test_hand_written_form_bodies_keep_the_bracket_style(tmp_path: Path) -> None:
    body = {"content_type": "application/x-www-form-urlencoded", "schema": {"type": "object"}}
    path = write(tmp_path, "demo.yaml", manifest(operations=[operation(method="POST", body=body)]))
    built = load_manifest(path)[0].operations[0].body
    assert built is not None
    assert built.form_style == "brackets"
    assert dict(built.encoding) == {}


# ------------------------------------------------------------------ OpenAPI fidelity: content parameters


def test_parameter_content_type_is_built(tmp_path: Path) -> None:
    parameters = [
        {"name": "filter", "in": "query", "content_type": "application/json", "schema": {"type": "object"}},
        {"name": "q", "in": "query"},
    ]
    path = write(tmp_path, "demo.yaml", manifest(operations=[operation(parameters=parameters)]))
    content, plain = load_manifest(path)[0].operations[0].parameters
    assert content.content_type == "application/json"
    assert content.schema == {"type": "object"}
    assert plain.content_type is None


# ------------------------------------------------------------------ OpenAPI fidelity: an operation's own server


def test_operation_base_url_is_built(tmp_path: Path) -> None:
    operations = [operation(base_url="https://uploads.example.com/v2/"), operation(name="other")]
    own, other = load_manifest(write(tmp_path, "demo.yaml", manifest(operations=operations)))[0].operations
    assert own.base_url == "https://uploads.example.com/v2"
    assert other.base_url is None


SERVERS_DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "Servers", "version": "1"},
    "servers": [{"url": "https://api.example.com"}],
    "paths": {
        "/assets": {
            "post": {
                "operationId": "upload",
                "servers": [{"url": "https://uploads.example.com"}],
                "responses": {"200": {"description": "ok"}},
            }
        }
    },
}


def test_openapi_manifest_keeps_operation_servers(tmp_path: Path) -> None:
    write(tmp_path, "spec.json", SERVERS_DOCUMENT)
    path = write(tmp_path, "demo.yaml", {"name": "demo", "openapi": "spec.json"})
    connector, _ = load_manifest(path)
    assert connector.base_url == "https://api.example.com"
    assert connector.operations[0].base_url == "https://uploads.example.com"


def test_openapi_manifest_base_url_replaces_every_server_of_the_document(tmp_path: Path) -> None:
    """Pointed at a staging or mock server, no call may still reach a host the document names."""
    write(tmp_path, "spec.json", SERVERS_DOCUMENT)
    own = operation(name="mine", base_url="https://elsewhere.example.com")
    path = write(
        tmp_path,
        "demo.yaml",
        {"name": "demo", "openapi": "spec.json", "base_url": "https://staging.example.com", "operations": [own]},
    )
    connector, _ = load_manifest(path)
    assert connector.base_url == "https://staging.example.com"
    generated, hand_written = connector.operations
    assert generated.base_url is None
    assert hand_written.base_url == "https://elsewhere.example.com"  # written in the manifest itself: kept


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": "(["},  # jsonschema-rs does not check formats; Python's re must
        {"type": "object", "patternProperties": {"[a-": {"type": "string"}}},
        {"type": "strin"},
        {"type": "object", "properties": {"a": {"minLength": -1}}},
    ],
)
def test_the_fast_metaschema_check_never_lets_a_bad_schema_through(tmp_path: Path, schema: dict[str, Any]) -> None:
    parameter = {"name": "q", "in": "query", "schema": schema}
    write(tmp_path, "demo.yaml", manifest(operations=[operation(parameters=[parameter])]))
    fault = only_fault(load_catalog([tmp_path]))
    assert fault.json_path == "$.operations[0].parameters[0].schema" and "not a valid JSON Schema" in fault.reason


# ------------------------------------------------------------------ base_url from the environment, error formats


def test_base_url_from_the_environment(tmp_path: Path) -> None:
    write(tmp_path, "demo.yaml", manifest(base_url={"env": "DEMO_URL"}))
    (set_,) = load_catalog([tmp_path], environ={"DEMO_URL": "https://erp.example.org/"}).connectors
    assert set_.base_url == "https://erp.example.org" and set_.base_url_unset is None
    (unset,) = load_catalog([tmp_path], environ={}).connectors
    assert unset.base_url_unset == "DEMO_URL" and unset.base_url.endswith(".invalid")  # listed; calls say what to set
    write(tmp_path, "demo.yaml", manifest(base_url={"env": "DEMO_URL", "default": "https://fallback.example.com"}))
    (defaulted,) = load_catalog([tmp_path], environ={}).connectors
    assert defaulted.base_url == "https://fallback.example.com" and defaulted.base_url_unset is None
    fault = only_fault(load_catalog([tmp_path], environ={"DEMO_URL": "ftp://nope"}))
    assert fault.json_path == "$.base_url" and "DEMO_URL is not an absolute http(s) URL" in fault.reason


def test_error_format_is_built_and_reserved_detail_names_are_refused(tmp_path: Path) -> None:
    fmt = {
        "message": ["/error/message", "/message"],
        "code": "/error/code",
        "details": {"decline_code": "/error/decline_code"},
    }
    write(tmp_path, "demo.yaml", manifest(error_format=fmt))
    (connector,) = load_catalog([tmp_path]).connectors
    assert connector.error_format is not None
    assert connector.error_format.message == ("/error/message", "/message")
    assert connector.error_format.code == ("/error/code",) and connector.error_format.type == ()
    assert connector.error_format.details == {"decline_code": ("/error/decline_code",)}
    write(tmp_path, "demo.yaml", manifest(error_format={**fmt, "details": {"status": "/s"}}))
    assert only_fault(load_catalog([tmp_path])).json_path.startswith("$.error_format")
    write(tmp_path, "demo.yaml", manifest(error_format={"message": "error.message"}))  # not a JSON pointer
    assert only_fault(load_catalog([tmp_path])).json_path.startswith("$.error_format")


# ------------------------------------------------------------------ output schemas, pagination, arguments, variants

CHARGE = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
PAGED = {"style": "cursor", "items": "/data", "cursor_param": "starting_after", "cursor_field": "/id"}
AFTER = {"name": "starting_after", "in": "query"}


def test_output_schema_inline_beside_the_manifest_and_bundled(tmp_path: Path) -> None:
    write(tmp_path / "schemas", "charge.json", {"$schema": "http://json-schema.org/draft-07/schema#", **CHARGE})
    operations = [
        operation(name="inline", output_schema=CHARGE),
        operation(name="beside", output_schema="schemas/charge.json"),
        operation(name="listed", output_schema="schemas/charge.json", parameters=[AFTER], pagination=PAGED),
    ]
    write(tmp_path, "demo.yaml", manifest(operations=operations))
    (connector,) = load_catalog([tmp_path]).connectors
    inline, beside, listed = connector.operations
    assert inline.output_schema == CHARGE
    assert beside.output_schema == CHARGE  # `$schema` dropped: clients would read a draft-07 marker as draft 7
    assert listed.pagination is not None and listed.pagination.cursor_param == "starting_after"
    assert listed.pagination.max_items == 1000 and listed.pagination.max_pages == 10


def test_output_schema_from_the_bundled_schemas_directory(tmp_path: Path) -> None:
    bundled = bundled_dir("schemas") / "connector.schema.json"
    assert bundled.is_file()
    write(tmp_path, "demo.yaml", manifest(operations=[operation(output_schema="connector.schema.json")]))
    (connector,) = load_catalog([tmp_path]).connectors
    assert connector.operations[0].output_schema is not None
    assert "$id" not in connector.operations[0].output_schema  # an `$id` would move the base of its `$ref`s


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"output_schema": "missing.json"}, "no schema file 'missing.json'"),
        ({"output_schema": {"type": "array"}}, "must describe an object"),
        ({"output_schema": {"type": "object", "properties": {"a": {"$ref": "other.json"}}}}, "leaves the schema"),
        ({"output_schema": {"type": "object", "properties": {"a": {"$ref": "#/$defs/x"}}}}, "points nowhere"),
        ({"output_schema": {"type": "objet"}}, "not a valid JSON Schema"),
    ],
)
def test_bad_output_schemas(tmp_path: Path, extra: dict[str, Any], reason: str) -> None:
    write(tmp_path, "demo.yaml", manifest(operations=[operation(**extra)]))
    fault = only_fault(load_catalog([tmp_path]))
    assert fault.json_path == "$.operations[0].output_schema" and reason in fault.reason, fault.reason
    assert_one_line(fault.reason)


KEYSET = {
    "style": "keyset",
    "items": "/data",
    "keys": ["/modified", "/name"],
    "start": [{"argument": "since"}, ""],
    "set": {"filters": [["modified", ">=", {"key": 0}]]},
    "limit_param": "limit",
    "default_limit": 20,
}
KEYSET_PARAMETERS = [{"name": "filters", "in": "query"}, {"name": "limit", "in": "query"}]
SINCE = [{"name": "since"}]


@pytest.mark.parametrize(
    ("extra", "where", "reason"),
    [
        ({"pagination": {**PAGED, "cursor_param": "after"}}, ".pagination.cursor_param", "not a parameter"),
        ({"pagination": {**PAGED, "cursor_field": None}}, ".pagination", "cursor_field or next_cursor"),
        ({"pagination": {**PAGED, "next_cursor": "/next"}}, ".pagination", "cursor_field or next_cursor"),
        ({"pagination": {"style": "offset", "offset_param": "starting_after"}}, ".pagination", "required property"),
        ({"pagination": {**PAGED, "set": {"nope": 1}}}, ".pagination.set", "'nope' is not a parameter"),
        ({"pagination": PAGED, "parameters": [AFTER, {"name": "all_pages", "in": "query"}]}, ".pagination", "gains"),
        ({"pagination": {**PAGED, "max_pages": 0}}, ".pagination.max_pages", ""),
        ({"pagination": {**KEYSET, "start": [""]}}, ".pagination.start", "one start value per key"),
        ({"pagination": {**KEYSET, "set": {"filters": {"key": 2}}}}, ".pagination.set.filters", "names no key"),
        ({"pagination": {**KEYSET, "start": [{"argument": "x"}, ""]}}, ".pagination.start[0]", "names no argument"),
        ({"pagination": {**KEYSET, "cursor_param": "since"}}, ".pagination.cursor_param", "clashes"),
        ({"arguments": [{"name": "starting_after"}]}, ".arguments[0].name", "clashes"),
        ({"arguments": [{"name": "x", "schema": {"type": "nope"}}]}, ".arguments[0].schema", "not a valid"),
    ],
)
def test_bad_pagination_and_arguments(tmp_path: Path, extra: dict[str, Any], where: str, reason: str) -> None:
    base: dict[str, Any] = {"parameters": [AFTER]}
    if extra.get("pagination", {}).get("style") == "keyset":
        base = {"parameters": KEYSET_PARAMETERS, "arguments": SINCE}
    spec = {**base, **extra}
    if isinstance(spec.get("pagination"), dict):
        spec["pagination"] = {k: v for k, v in spec["pagination"].items() if v is not None}
    write(tmp_path, "demo.yaml", manifest(operations=[operation(**spec)]))
    fault = only_fault(load_catalog([tmp_path]))
    assert fault.json_path.startswith(f"$.operations[0]{where}"), fault
    assert reason in fault.reason, fault.reason
    assert_one_line(fault.reason)


def test_keyset_pagination_loads(tmp_path: Path) -> None:
    write(
        tmp_path,
        "demo.yaml",
        manifest(operations=[operation(parameters=KEYSET_PARAMETERS, arguments=SINCE, pagination=KEYSET)]),
    )
    (connector,) = load_catalog([tmp_path]).connectors
    (op,) = connector.operations
    assert op.pagination is not None and op.pagination.cursor_param == "cursor"  # the default cursor argument
    assert op.pagination.keys == ("/modified", "/name") and op.pagination.start == ({"argument": "since"}, "")
    assert [a.name for a in op.arguments] == ["since"] and op.arguments[0].schema == {"type": "string"}


VARIANT_BASE = {
    "method": "DELETE",
    "path": "/subscriptions/{id}",
    "parameters": [{"name": "id", "in": "path"}],
    "arguments": [{"name": "later", "schema": {"type": "boolean", "default": False}}],
}
LATER = {"when": {"later": True}, "method": "POST", "body": {"schema": {"type": "object", "properties": {"c": {}}}}}


def test_variants_load_as_whole_operations(tmp_path: Path) -> None:
    write(
        tmp_path,
        "demo.yaml",
        manifest(operations=[operation(**VARIANT_BASE, variants=[{**LATER, "set": {"c": True}}])]),
    )
    (connector,) = load_catalog([tmp_path]).connectors
    (variant,) = connector.operations[0].variants
    assert variant.when == {"later": True} and variant.set == {"c": True}
    assert variant.operation.method == "POST" and variant.operation.path == "/subscriptions/{id}"
    assert [p.name for p in variant.operation.parameters] == ["id"] and variant.operation.body is not None


@pytest.mark.parametrize(
    ("variant", "where", "reason"),
    [
        ({**LATER, "when": {"sooner": True}}, ".variants[0].when", "not an argument declared"),
        ({**LATER, "when": {"later": "yes"}}, ".variants[0].when.later", "not a value of the argument"),
        ({**LATER, "set": {"d": 1}}, ".variants[0].set", "'d' is not a parameter"),
        ({**LATER, "path": "/subscriptions/{sub}"}, ".variants[0].path", "{sub} has no parameter"),
    ],
)
def test_bad_variants(tmp_path: Path, variant: dict[str, Any], where: str, reason: str) -> None:
    write(tmp_path, "demo.yaml", manifest(operations=[operation(**VARIANT_BASE, variants=[variant])]))
    fault = only_fault(load_catalog([tmp_path]))
    assert fault.json_path.startswith(f"$.operations[0]{where}"), fault
    assert reason in fault.reason, fault.reason


def test_the_bundled_manifest_schema_is_a_valid_2020_12_schema() -> None:
    schema = json.loads((bundled_dir("schemas") / "connector.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)  # the server no longer checks it at start-up
