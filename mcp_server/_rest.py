"""The REST façade for agents that do not speak MCP: meta, handshake, tools, invoke.

It calls the same pipeline as the MCP handlers; only the envelope differs.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, cast

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_server._access import Access, OverClientLimit, forbidden_response, over_limit_response
from mcp_server._builtin_tools import ListedTool, LocalTools
from mcp_server._errors import Forbidden, ToolError, UnknownTool, printable_tree
from mcp_server._pipeline import Outcome, Pipeline
from mcp_server._rest_openapi import openapi_document
from mcp_server._server import SERVER_NAME
from mcp_server._version import server_version

MAX_REQUEST_BYTES = 1024 * 1024
OPENAI_DESCRIPTION_LIMIT = 1024
"""OpenAI rejects longer function descriptions; other formats keep the full text."""

STATUS_BY_CODE = {
    "INVALID_ARGUMENTS": 422,
    "AUTH_MISSING": 424,
    "AUTH_FAILED": 424,
    "RATE_LIMITED": 429,
    "UPSTREAM_ERROR": 502,
    "UPSTREAM_UNREACHABLE": 502,
    "RESPONSE_TOO_LARGE": 502,
    "BLOCKED_DESTINATION": 502,
    "CIRCUIT_OPEN": 503,
    "TIMEOUT": 504,
    "INTERNAL_ERROR": 500,
    "FORBIDDEN": 403,
}


def rest_error(status: int, error: str, message: str, **details: Any) -> JSONResponse:
    # Messages and details may quote what the client sent, lone surrogates included.
    return JSONResponse(printable_tree({"error": error, "message": message, "details": details}), status_code=status)


def _openai_parameters(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != "$schema"}


def _trim(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


TOOL_FORMATS: dict[str, Callable[[ListedTool], dict[str, Any]]] = {
    "default": lambda t: {"name": t.name, "description": t.description, "parameters": dict(t.input_schema)},
    "openai": lambda t: {
        "type": "function",
        "function": {
            "name": t.name,
            "description": _trim(t.description, OPENAI_DESCRIPTION_LIMIT),
            "parameters": _openai_parameters(dict(t.input_schema)),
        },
    },
    "anthropic": lambda t: {"name": t.name, "description": t.description, "input_schema": dict(t.input_schema)},
    "mcp": lambda t: t.mcp_tool.model_dump(by_alias=True, mode="json", exclude_none=True),
}


async def _json_body(request: Request) -> Any:
    """The request's JSON document; a `Response` to send instead when it is not one."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        return rest_error(413, "bad_request", f"Request body over {MAX_REQUEST_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            return rest_error(413, "bad_request", f"Request body over {MAX_REQUEST_BYTES} bytes")
    content_type = request.headers.get("content-type", "")
    if body and "json" not in content_type.lower():
        return rest_error(415, "bad_request", "Content-Type must be application/json")
    if not body:
        return None
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        return rest_error(400, "bad_request", f"Malformed JSON: {exc}")
    except (ValueError, RecursionError):  # not UTF-8/16/32, a number too long to convert, nesting too deep
        return rest_error(400, "bad_request", "Malformed JSON: undecodable text, an over-long number or too deep")


async def _unless_disconnected(request: Request, call: Awaitable[Outcome]) -> Outcome | None:
    """Run `call`, cancelling it (and so its upstream request) if the client goes away first."""
    result: Outcome | None = None

    async def watch(scope: anyio.CancelScope) -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                scope.cancel()
                return

    async with anyio.create_task_group() as group:
        group.start_soon(watch, group.cancel_scope)
        result = await call
        group.cancel_scope.cancel()
    return result


class RestApi:
    def __init__(self, pipeline: Pipeline, access: Access | None = None, local: LocalTools | None = None) -> None:
        """`access` applies the HTTP client's scopes and limits (`_access`); without it everything is served.
        `local`: the built-in tools (`_builtin_tools`), listed after the registry's and invoked without the pipeline."""
        self._pipeline = pipeline
        self._access = access or Access(pipeline)
        self._local = local
        self._openapi: bytes | None = None

    def routes(self) -> list[Route]:
        return [
            Route("/v1/meta", self.meta, methods=["GET"]),
            Route("/v1/handshake", self.handshake, methods=["POST"]),
            Route("/v1/tools", self.tools, methods=["GET"]),
            Route("/v1/invoke", self.invoke, methods=["POST"]),
            Route("/v1/openapi.json", self.openapi, methods=["GET"]),
        ]

    async def openapi(self, request: Request) -> Response:
        """This façade's OpenAPI 3.1 description (`_rest_openapi.py`)."""
        if self._openapi is None:
            self._openapi = json.dumps(openapi_document(server_version()), ensure_ascii=False).encode()
        return Response(self._openapi, media_type="application/json")

    async def meta(self, request: Request) -> Response:
        return JSONResponse(
            {
                "server": SERVER_NAME,
                "version": server_version(),
                "capabilities": ["handshake", "list_tools", "invoke", "schema", "sse"],
            }
        )

    async def handshake(self, request: Request) -> Response:
        payload = await _json_body(request)
        if isinstance(payload, Response):
            return payload
        if payload is not None and not isinstance(payload, dict):
            return rest_error(400, "bad_request", "Body must be a JSON object")
        client: Any = cast(dict[str, Any], payload or {}).get("client", {})
        if not isinstance(client, dict) or not all(
            isinstance(cast(dict[str, Any], client).get(k, ""), str) for k in ("name", "version")
        ):
            return rest_error(400, "bad_request", '"client" must be {"name": str, "version": str}')
        return JSONResponse(
            {"server": {"name": SERVER_NAME, "version": server_version()}, "session_id": secrets.token_urlsafe(16)}
        )

    async def tools(self, request: Request) -> Response:
        fmt = request.query_params.get("format", "default")
        if fmt not in TOOL_FORMATS:
            return rest_error(400, "bad_request", f"Unknown format {fmt!r}", allowed=sorted(TOOL_FORMATS))
        # Only what this client may call; cached per scope set, and dropped when a reload swaps the registry.
        principal = self._access.principal(request)
        view = self._access.view(principal)
        listing = view.listings.get(fmt)
        if listing is None:
            convert = TOOL_FORMATS[fmt]
            builtins = self._local.listed(principal) if self._local is not None else []  # same scopes: same cache
            tools = [convert(tool) for tool in (*view.registry, *builtins)]
            listing = view.listings[fmt] = json.dumps({"tools": tools}, ensure_ascii=False).encode()
        return Response(listing, media_type="application/json")

    async def invoke(self, request: Request) -> Response:
        payload = await _json_body(request)
        if isinstance(payload, Response):
            return payload
        request_body = cast(dict[str, Any], payload) if isinstance(payload, dict) else {}
        tool_name = request_body.get("tool")
        if not isinstance(tool_name, str):
            return rest_error(400, "bad_request", 'Body must be {"tool": str, "parameters": object}')
        parameters: Any = request_body.get("parameters")
        if parameters is None:
            parameters = {}
        if not isinstance(parameters, dict):
            return rest_error(400, "bad_request", '"parameters" must be a JSON object')
        principal = self._access.principal(request)
        if self._local is not None and self._local.serves(tool_name):  # built-ins never reach the HTTP pipeline
            return _local_response(
                await _unless_disconnected(
                    request,
                    self._local.call(principal, tool_name, cast(dict[str, Any], parameters), transport="rest"),
                )
            )
        try:
            refusal = self._access.check(principal, tool_name)  # before the task group, which would wrap errors
        except UnknownTool as exc:
            self._pipeline.metrics.observe_unknown_tool()
            return rest_error(404, "not_found", exc.message, tool=tool_name)
        if refusal is not None:
            return forbidden_response(refusal)
        try:
            with self._access.limiter.admit(principal) as rate:
                outcome = await _unless_disconnected(
                    request,
                    self._pipeline.invoke(tool_name, cast(dict[str, Any], parameters), caller=principal.caller("rest")),
                )
        except OverClientLimit as over:
            return over_limit_response(over)
        if outcome is None:
            return Response(status_code=499)  # nobody is listening; the upstream request was aborted
        headers: dict[str, str] = rate.headers() if rate is not None else {}  # X-RateLimit-*
        if isinstance(outcome, ToolError):
            status = STATUS_BY_CODE.get(outcome.error_code, 500)
            retry_after = outcome.details.get("retry_after")
            if status == 429 and retry_after is not None:
                headers["Retry-After"] = str(retry_after)
            return JSONResponse(outcome.to_body(), status_code=status, headers=headers)
        body: dict[str, Any] = {"success": True, "result": outcome.value if outcome.is_json else outcome.text}
        if outcome.note:
            body["note"] = outcome.note
        return JSONResponse(body, headers=headers)


def _local_response(outcome: Outcome | None) -> Response:
    """A built-in's outcome as /v1/invoke answers any tool's (the client limits' own 403/429 shapes included)."""
    if outcome is None:
        return Response(status_code=499)  # nobody is listening; the calls in flight were cancelled
    if isinstance(outcome, OverClientLimit):
        return over_limit_response(outcome)
    if isinstance(outcome, Forbidden):
        return forbidden_response(outcome)
    if isinstance(outcome, ToolError):
        return JSONResponse(outcome.to_body(), status_code=STATUS_BY_CODE.get(outcome.error_code, 500))
    body: dict[str, Any] = {"success": True, "result": outcome.value if outcome.is_json else outcome.text}
    if outcome.note:
        body["note"] = outcome.note
    return JSONResponse(body)
