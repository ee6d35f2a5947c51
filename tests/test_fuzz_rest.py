"""Fuzz the REST façade with schemathesis, from the OpenAPI document the server itself serves.

A real server process with the echo connectors on the fake upstream. For every operation of
`GET /v1/openapi.json`, positive and negative examples (valid requests and requests that break the
schema: wrong types, missing fields, bad query values, unexpected bodies) are sent, and each answer
must pass `not_a_server_error`, `status_code_conformance`, `content_type_conformance` and
`response_schema_conformance`: no 5xx, and every status, content type and body as documented.

`/v1/invoke` is fuzzed deeper than its document says: the test narrows the request body to the
fast, well-behaved echo tools with each tool's own input schema (from `GET /v1/tools`), so positive
examples are real tool calls through the pipeline to the fake upstream. Tools whose documented
answer is a 5xx tool error (an upstream 5xx, a timeout, a 12 MiB body, an unreachable host) are left
out, since `not_a_server_error` would count their documented 502/504 against the server.

`MCP_CONNECTORS_FUZZ_EXAMPLES` sets the examples per operation and mode (default 50, which keeps the
module under a minute, derandomized so the normal suite is reproducible); setting it, e.g.
`MCP_CONNECTORS_FUZZ_EXAMPLES=1000 pytest tests/test_fuzz_rest.py`, makes a long, randomized run.
Counts are printed at the end of the module (`pytest -s`).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mcp_server._rest_openapi import openapi_document
from tests._upstream import FakeUpstream
from tests._wire_client import wire_server_env
from tests.conftest import ServerProcess, start_http_server, stop_process

EXAMPLES = int(os.environ.get("MCP_CONNECTORS_FUZZ_EXAMPLES", "50"))
REQUEST_TIMEOUT = 15.0
FUZZED_TOOLS = (
    "echo_get_item",
    "echo_create_item",
    "echo_create_charge",
    "echo_delete_item",
    "echo_text",
    "echo_empty",
    "noauth_whoami",
    "keyhdr_whoami",
    "keyquery_whoami",
    "keycookie_whoami",
    "basicauth_whoami",
    "hdrs_whoami",
    "envauth_whoami",
    "missing_whoami",
)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
DOCUMENT = openapi_document("0")
OPERATIONS = [
    (path, method.upper(), mode)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    # Negative examples need something to break: a parameter or a body.
    for mode in (
        [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
        if "parameters" in operation or "requestBody" in operation
        else [GenerationMode.POSITIVE]
    )
]
LONG_RUN = "MCP_CONNECTORS_FUZZ_EXAMPLES" in os.environ

COUNTS: Counter[str] = Counter()
STATUSES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, upstream_server: FakeUpstream) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("fuzz-rest")
    server = start_http_server(wire_server_env(base, upstream_server.url), base / "server.log")
    yield server
    stop_process(server.process)
    log = server.log()
    assert "Traceback" not in log, log[-4000:]
    total = sum(COUNTS.values())
    print(f"\nschemathesis: {total} requests over {len(COUNTS)} operation/mode pairs; statuses {dict(STATUSES)}")
    for key, count in sorted(COUNTS.items()):
        print(f"  {key}: {count}")


@pytest.fixture(scope="module")
def api_schema(fuzz_server: ServerProcess) -> Any:
    document = httpx2.get(f"{fuzz_server.url}/v1/openapi.json", timeout=10).json()
    tools = httpx2.get(f"{fuzz_server.url}/v1/tools", timeout=10).json()["tools"]
    by_name = {tool["name"]: tool for tool in tools}
    document["components"]["schemas"]["InvokeRequest"] = {
        "anyOf": [
            {
                "type": "object",
                "required": ["tool", "parameters"],
                "properties": {"tool": {"const": name}, "parameters": by_name[name]["parameters"]},
            }
            for name in FUZZED_TOOLS
        ]
    }
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=fuzz_server.url)
    return schema


@pytest.mark.parametrize(("path", "method", "mode"), OPERATIONS, ids=[f"{m} {p} {g.value}" for p, m, g in OPERATIONS])
def test_fuzz_rest_operation(
    api_schema: Any, fuzz_server: ServerProcess, path: str, method: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    key = f"{method} {path} {mode.value}"

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        derandomize=not LONG_RUN,  # the normal suite is reproducible; a long run explores
    )
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        response = case.call(base_url=fuzz_server.url, timeout=REQUEST_TIMEOUT)
        COUNTS[key] += 1
        STATUSES[str(response.status_code)] += 1
        case.validate_response(response, checks=CHECKS)

    fuzz()
