"""The REST façade's own OpenAPI 3.1 description, served at `GET /v1/openapi.json`.

Written by hand as a dict: the routes of `_rest.py`, `/v1/events/{connector}` (`_webhooks.py`),
`/v1/status`, `/ready`, `/health` and `/metrics`.
Every response a route can give is listed, errors included: the façade's error shape
(`{"error", "message", "details"}`) for protocol-level failures and the tool error body for a
failed tool call. `tests/test_fuzz_rest.py` fuzzes the running server from this document with
schemathesis, so a route or status added without being described here fails that test.
"""

from __future__ import annotations

import copy
from typing import Any, Final

ERROR_NAMES: Final = ("bad_request", "unauthorized", "forbidden", "not_found", "rate_limit_exceeded", "internal_error")
TOOL_FORMAT_NAMES: Final = ("default", "openai", "anthropic", "mcp")
TOOL_ERROR_STATUSES: Final = {
    "422": "INVALID_ARGUMENTS: the parameters do not match the tool's input schema.",
    "424": "AUTH_MISSING or AUTH_FAILED: the credential is not in the vault, or the API refused it.",
    "502": "UPSTREAM_ERROR, UPSTREAM_UNREACHABLE, RESPONSE_TOO_LARGE or BLOCKED_DESTINATION.",
    "503": "CIRCUIT_OPEN: the connector's circuit breaker is open; `details.retry_after` says for how long.",
    "504": "TIMEOUT: the call ran out of time (`details.phase` says where).",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json(_ref("Error"))}


_SCHEMAS: Final[dict[str, Any]] = {
    "Error": {
        "type": "object",
        "description": "Every error of the façade itself (as opposed to a failed tool call).",
        "required": ["error", "message", "details"],
        "properties": {
            "error": {"type": "string", "enum": list(ERROR_NAMES)},
            "message": {"type": "string", "description": "One human-readable sentence."},
            "details": {"type": "object", "description": "Machine-readable specifics; may be empty."},
        },
    },
    "ToolError": {
        "type": "object",
        "description": "A tool call that ran and failed; `error_code` is stable, `error` is for people.",
        "required": ["success", "error", "error_code", "details"],
        "properties": {
            "success": {"const": False},
            "error": {"type": "string"},
            "error_code": {
                "type": "string",
                "examples": ["INVALID_ARGUMENTS", "AUTH_MISSING", "UPSTREAM_ERROR", "RATE_LIMITED", "TIMEOUT"],
            },
            "details": {"type": "object"},
        },
    },
    "Meta": {
        "type": "object",
        "required": ["server", "version", "capabilities"],
        "properties": {
            "server": {"type": "string", "const": "mcp-connectors"},
            "version": {"type": "string"},
            "capabilities": {"type": "array", "items": {"type": "string"}},
        },
    },
    "ClientInfo": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
    },
    "HandshakeRequest": {
        "type": "object",
        "properties": {"client": _ref("ClientInfo")},
    },
    "HandshakeResponse": {
        "type": "object",
        "required": ["server", "session_id"],
        "properties": {
            "server": {
                "type": "object",
                "required": ["name", "version"],
                "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
            },
            "session_id": {
                "type": "string",
                "minLength": 16,
                "description": "For the client's own bookkeeping; the façade is stateless and never asks for it.",
            },
        },
    },
    "DefaultTool": {
        "type": "object",
        "required": ["name", "description", "parameters"],
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "parameters": {"type": "object", "description": "The tool's input JSON Schema (draft 2020-12)."},
        },
    },
    "OpenAITool": {
        "type": "object",
        "required": ["type", "function"],
        "properties": {
            "type": {"const": "function"},
            "function": {
                "type": "object",
                "required": ["name", "description", "parameters"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                    "description": {"type": "string", "maxLength": 1024},
                    "parameters": {"type": "object"},
                },
            },
        },
    },
    "AnthropicTool": {
        "type": "object",
        "required": ["name", "description", "input_schema"],
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "input_schema": {"type": "object"},
        },
    },
    "McpTool": {
        "type": "object",
        "description": "An MCP `Tool` object exactly as `tools/list` serves it.",
        "required": ["name", "inputSchema"],
        "properties": {
            "name": {"type": "string"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "inputSchema": {"type": "object"},
            "annotations": {"type": "object"},
        },
    },
    "ToolList": {
        "type": "object",
        "required": ["tools"],
        "properties": {
            "tools": {
                "type": "array",
                "items": {"anyOf": [_ref("DefaultTool"), _ref("OpenAITool"), _ref("AnthropicTool"), _ref("McpTool")]},
            }
        },
    },
    "InvokeRequest": {
        "type": "object",
        "required": ["tool"],
        "properties": {
            "tool": {
                "type": "string",
                "description": "A tool name from `GET /v1/tools`.",
                "examples": ["github_get_user"],
            },
            "parameters": {
                "type": ["object", "null"],
                "description": "The tool's arguments, checked against its input schema; absent or null means {}.",
                "examples": [{"username": "octocat"}],
            },
        },
    },
    "InvokeSuccess": {
        "type": "object",
        "required": ["success", "result"],
        "properties": {
            "success": {"const": True},
            "result": {"description": "The API's JSON body, or its text when it is not JSON."},
            "note": {"type": "string", "description": "Present when the result was trimmed, saying how."},
        },
    },
    "Status": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "examples": ["ok", "draining"]}},
    },
    "Readiness": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "unavailable"]},
            "tools": {"type": "integer", "minimum": 0},
            "reasons": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string"},
            "connectors": {"type": "integer", "minimum": 0},
            "tools": {"type": "integer", "minimum": 0},
            "manifest_faults": {"type": "integer", "minimum": 0},
        },
    },
}

_RETRY_AFTER: Final = {
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "string"}}
}

_RESPONSES: Final[dict[str, Any]] = {
    "BadRequest": _error("The request is malformed: bad JSON, a body of the wrong shape, an unknown option."),
    "Unauthorized": _error("The server requires a client credential and none (or a wrong one) was given."),
    "Forbidden": _error("The Origin header is not allowed (DNS-rebinding protection), or the client may not do this."),
    "NotFound": _error("No such tool (or route)."),
    "RequestTimeout": _error("The request body did not arrive in time."),
    "PayloadTooLarge": _error("The request body is over the limit (1 MiB on the façade)."),
    "UnsupportedMediaType": _error("The request body is not `application/json`."),
    "MisdirectedRequest": _error("The Host header is not one of this server's names (DNS-rebinding protection)."),
    "TooManyRequests": {**_error("This client is over its request rate."), "headers": _RETRY_AFTER},
    "InternalError": _error("An unexpected failure; the server log has the details, the client never does."),
}


def _responses(ok: dict[str, Any], *, body: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """`ok` plus every error any route can answer; routes that read a body add the body errors."""
    responses: dict[str, Any] = {
        **ok,
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "403": {"$ref": "#/components/responses/Forbidden"},
        "421": {"$ref": "#/components/responses/MisdirectedRequest"},
        "429": {"$ref": "#/components/responses/TooManyRequests"},
        "500": {"$ref": "#/components/responses/InternalError"},
    }
    if body:
        responses |= {
            "400": {"$ref": "#/components/responses/BadRequest"},
            "408": {"$ref": "#/components/responses/RequestTimeout"},
            "413": {"$ref": "#/components/responses/PayloadTooLarge"},
            "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
        }
    responses |= extra or {}
    return dict(sorted(responses.items()))


def _invoke_responses() -> dict[str, Any]:
    tool_errors: dict[str, Any] = {
        status: {"description": description, "content": _json(_ref("ToolError"))}
        for status, description in TOOL_ERROR_STATUSES.items()
    }
    either = {"anyOf": [_ref("ToolError"), _ref("Error")]}
    return _responses(
        {"200": {"description": "The tool ran and succeeded.", "content": _json(_ref("InvokeSuccess"))}},
        body=True,
        extra={
            **tool_errors,
            "403": {
                "description": "The tool is outside this client's scopes, or the Origin is not allowed "
                "(façade errors); FORBIDDEN (a tool error).",
                "content": _json(either),
            },
            "404": {"$ref": "#/components/responses/NotFound"},
            "429": {
                "description": "RATE_LIMITED (a tool error: the connector's or the API's limit), "
                "or this client is over its own request rate (a façade error).",
                "headers": _RETRY_AFTER,
                "content": _json(either),
            },
            "500": {
                "description": "INTERNAL_ERROR (a tool error), or an unexpected failure of the façade.",
                "content": _json(either),
            },
        },
    )


def _paths() -> dict[str, Any]:
    return {
        "/v1/meta": {
            "get": {
                "operationId": "meta",
                "summary": "Server name, version and capabilities",
                "responses": _responses(
                    {"200": {"description": "Who this is.", "content": _json(_ref("Meta"))}}, body=False
                ),
            }
        },
        "/v1/handshake": {
            "post": {
                "operationId": "handshake",
                "summary": "Say hello; get the server's name and a session id",
                "requestBody": {"required": False, "content": _json(_ref("HandshakeRequest"))},
                "responses": _responses(
                    {"200": {"description": "Hello back.", "content": _json(_ref("HandshakeResponse"))}}, body=True
                ),
            }
        },
        "/v1/tools": {
            "get": {
                "operationId": "list_tools",
                "summary": "Every tool, in the format an agent framework expects",
                "parameters": [
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "description": "default: {name, description, parameters}; openai: Chat Completions "
                        "function tools; anthropic: {name, description, input_schema}; mcp: MCP Tool objects.",
                        "schema": {"type": "string", "enum": list(TOOL_FORMAT_NAMES), "default": "default"},
                    }
                ],
                "responses": _responses(
                    {"200": {"description": "The tools.", "content": _json(_ref("ToolList"))}},
                    body=False,
                    extra={"400": {"$ref": "#/components/responses/BadRequest"}},
                ),
            }
        },
        "/v1/invoke": {
            "post": {
                "operationId": "invoke",
                "summary": "Call one tool",
                "requestBody": {"required": True, "content": _json(_ref("InvokeRequest"))},
                "responses": _invoke_responses(),
            }
        },
        "/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": _responses(
                    {"200": {"description": "OpenAPI 3.1.", "content": _json({"type": "object"})}}, body=False
                ),
            }
        },
        "/v1/events/{connector}": {
            "get": {
                "operationId": "events",
                "summary": "A server-sent event stream of the connector's incoming webhook events",
                "parameters": [
                    {
                        "name": "connector",
                        "in": "path",
                        "required": True,
                        "description": "A connector whose manifest has a `webhooks` block.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "description": "Resume after this event (its seq); the stream's own `id:` values.",
                        "schema": {"type": "string", "pattern": "^[0-9]+$"},
                    },
                    {
                        "name": "last_event_id",
                        "in": "query",
                        "required": False,
                        "description": "The same, for clients that cannot set headers.",
                        "schema": {"type": "string", "pattern": "^[0-9]+$"},
                    },
                ],
                "responses": _responses(
                    {
                        "200": {
                            "description": "`text/event-stream`: `id:` the event's seq, `data:` its JSON; open-ended.",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        }
                    },
                    body=False,
                    extra={
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        "403": _error(
                            "This client may not read the connector's events; to a client that may not read every "
                            "connector's events, a connector without webhooks looks the same."
                        ),
                        "404": _error(
                            "The connector receives no webhooks or does not exist (told only to a client that may "
                            "read every connector's events)."
                        ),
                        "503": _error("The event store cannot be read."),
                    },
                ),
            }
        },
        "/v1/status": {
            "get": {
                "operationId": "status",
                "summary": "What is loaded and how it is doing: connectors, manifest faults, vault, audit log",
                "responses": _responses(
                    {"200": {"description": "The server's state.", "content": _json(_ref("Status"))}}, body=False
                ),
            }
        },
        "/ready": {
            "get": {
                "operationId": "ready",
                "summary": "Readiness: the catalog loaded and the vault opens, and the server is not shutting down",
                "responses": _responses(
                    {
                        "200": {"description": "Ready to serve.", "content": _json(_ref("Readiness"))},
                        "503": {"description": "Not ready, and why.", "content": _json(_ref("Readiness"))},
                    },
                    body=False,
                ),
            }
        },
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness: the process is up and what it loaded",
                "responses": _responses({"200": {"description": "Up.", "content": _json(_ref("Health"))}}, body=False),
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "responses": _responses(
                    {
                        "200": {
                            "description": "Prometheus text exposition format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                    body=False,
                ),
            }
        },
    }


def openapi_document(version: str) -> dict[str, Any]:
    """The whole description; `version` is the server's. A fresh copy each call (callers may mutate it)."""
    return copy.deepcopy(
        {
            "openapi": "3.1.0",
            "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
            "info": {
                "title": "mcp-connectors REST façade",
                "version": version,
                "description": "Handshake, list tools and invoke them without speaking MCP. The same tools and "
                "pipeline as the MCP endpoints (/mcp, /sse); only the envelope differs. Request bodies are limited "
                "to 1 MiB and must arrive within 30 s.",
            },
            "servers": [{"url": "/"}],
            "paths": _paths(),
            "components": {"schemas": _SCHEMAS, "responses": _RESPONSES},
        }
    )
