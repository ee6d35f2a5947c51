"""The REST façade's OpenAPI 3.1 description: valid, complete (every /v1 route), every error described."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from mcp_server._app import build_application
from mcp_server._config import Settings
from mcp_server._http import build_http_app
from mcp_server._rest_openapi import openapi_document
from mcp_server._version import server_version
from tests.conftest import ServerProcess

DOCUMENT = openapi_document("1.2.3")
OPERATIONS = [
    (path, method, operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if method in ("get", "post", "put", "patch", "delete")
]


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        section, name = node["$ref"].removeprefix("#/components/").split("/")
        node = DOCUMENT["components"][section][name]
    return node


def test_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    assert DOCUMENT["info"]["version"] == "1.2.3"
    validate(DOCUMENT)


def test_every_v1_route_of_the_app_is_described(tmp_path: Path) -> None:
    settings = Settings(tools_dirs=(tmp_path,), vault_path=tmp_path / "vault.json")
    app = build_application(settings)
    http = build_http_app(app.pipeline, app.catalog, settings)
    routes = {
        (route.path, method.lower())
        for route in http.routes
        if isinstance(route, Route) and route.path.startswith("/v1/")
        for method in route.methods or ()
        if method != "HEAD"
    }
    described = {(path, method) for path, method, _ in OPERATIONS}
    assert routes, "no /v1 routes found"
    assert routes <= described, sorted(routes - described)


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS])
def test_every_error_response_has_the_error_schema(path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation["responses"]
    for status in ("401", "403", "421", "429", "500"):
        assert status in responses, f"{method} {path} lacks {status}"
    if method == "post":
        for status in ("400", "408", "413", "415"):
            assert status in responses, f"{method} {path} lacks {status}"
        assert "requestBody" in operation
    for status, response in responses.items():
        if int(status) < 400 or (path == "/ready" and status == "503"):
            continue
        schema = resolve(response)["content"]["application/json"]["schema"]
        names = {ref["$ref"].rsplit("/", 1)[1] for ref in schema.get("anyOf", [schema])}
        allowed = {"Error", "ToolError"} if path == "/v1/invoke" else {"Error"}
        assert names and names <= allowed, (method, path, status, names)
        if status not in ("422", "424", "502", "503", "504"):
            assert "Error" in names, (method, path, status)


def test_document_is_a_fresh_copy_each_time() -> None:
    first = openapi_document("1")
    first["paths"].clear()
    assert openapi_document("1")["paths"]


def test_served_at_v1_openapi_json(http_server: ServerProcess) -> None:
    response = httpx2.get(f"{http_server.url}/v1/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == openapi_document(server_version())
    wrong = httpx2.put(f"{http_server.url}/v1/openapi.json", timeout=10)
    assert wrong.status_code == 405 and wrong.json()["error"] == "bad_request"
