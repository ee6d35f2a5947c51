"""Anticipated failures and their stable codes.

Everything a user or an upstream API can get wrong is one of these; anything
else is a bug, logged with its traceback, and the client sees a generic message.

    ConnectorsError
    ├── ToolError ─────────────────── a tool call failed; an `isError` result / REST error body
    │   ├── InvalidArguments          INVALID_ARGUMENTS    (arguments break the input schema)
    │   ├── AuthMissing               AUTH_MISSING         (a referenced secret or variable is unset)
    │   ├── AuthFailed                AUTH_FAILED          (upstream answered 401)
    │   ├── RateLimited               RATE_LIMITED         (upstream answered 429, or this client is over its limit)
    │   ├── UpstreamError             UPSTREAM_ERROR       (any other non-2xx answer)
    │   ├── UpstreamUnreachable       UPSTREAM_UNREACHABLE (connect / protocol failure)
    │   ├── UpstreamTimeout           TIMEOUT
    │   ├── ResponseTooLarge          RESPONSE_TOO_LARGE
    │   ├── CircuitOpen               CIRCUIT_OPEN         (breaker open: no upstream traffic)
    │   ├── BlockedDestination        BLOCKED_DESTINATION  (SSRF guard refused the address)
    │   ├── Forbidden                 FORBIDDEN            (the HTTP client's scopes do not grant the tool)
    │   └── InternalToolError         INTERNAL_ERROR       (a bug; details are only in the log)
    ├── UnknownTool ──────────────── no such tool; JSON-RPC -32602 / REST 404
    └── VaultError ───────────────── the vault cannot be used as it is on disk
        ├── VaultCorrupted            tampered, truncated or not a vault
        ├── VaultKeyMismatch          decrypts with neither the given nor the stored key
        └── VaultBundleError          an export bundle is damaged, altered, not a bundle, or its passphrase is wrong
"""

from __future__ import annotations

from typing import Any, ClassVar


class ConnectorsError(Exception):
    """Base of every anticipated failure; its message is safe to show to a client."""

    @property
    def message(self) -> str:
        return str(self)


class ToolError(ConnectorsError):
    """A tool call that failed in a way the caller can act on."""

    error_code: ClassVar[str] = "TOOL_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details: dict[str, Any] = details

    def to_body(self) -> dict[str, Any]:
        """The wire shape of DESIGN.md: `{"success": false, "error", "error_code", "details"}`.

        Messages may quote what the client sent; a lone surrogate in it (JSON's `"\\ud800"`) is written as
        an escape, so the body can be encoded as UTF-8 on every transport."""
        body = {"success": False, "error": self.message, "error_code": self.error_code, "details": self.details}
        return printable_tree(body)


class InvalidArguments(ToolError):
    error_code = "INVALID_ARGUMENTS"


class AuthMissing(ToolError):
    error_code = "AUTH_MISSING"


class AuthFailed(ToolError):
    error_code = "AUTH_FAILED"


class RateLimited(ToolError):
    error_code = "RATE_LIMITED"


class UpstreamError(ToolError):
    error_code = "UPSTREAM_ERROR"


class UpstreamUnreachable(ToolError):
    error_code = "UPSTREAM_UNREACHABLE"


class UpstreamTimeout(ToolError):
    error_code = "TIMEOUT"


class ResponseTooLarge(ToolError):
    error_code = "RESPONSE_TOO_LARGE"


class UnknownTool(ConnectorsError):
    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown tool: {name!r}")
        self.name = name


class VaultError(ConnectorsError):
    """The vault file exists but cannot be used; the message names the file."""


class VaultCorrupted(VaultError):
    pass


class VaultKeyMismatch(VaultError):
    pass


class VaultBundleError(VaultError):
    """A bundle from `vault export` cannot be opened; nothing was imported."""


class InternalToolError(ToolError):
    """A bug, not an anticipated failure: the client gets this generic message, the log gets the traceback."""

    error_code = "INTERNAL_ERROR"


class CircuitOpen(ToolError):
    """The connector's circuit breaker is open: failing fast without upstream traffic."""

    error_code = "CIRCUIT_OPEN"


class BlockedDestination(ToolError):
    """The request or a redirect would reach a loopback, private, link-local or metadata address."""

    error_code = "BLOCKED_DESTINATION"


class Forbidden(ToolError):
    """The authenticated HTTP client's scopes do not grant this tool; nothing was sent upstream.

    Also the answer for a name that does not exist, unless the client may list every tool (see `_scopes`).
    """

    error_code = "FORBIDDEN"


def printable(text: str) -> str:
    """`text` with any lone surrogate written as a `\\udXXX` escape (everything else unchanged)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def printable_tree(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(k) if isinstance(k, str) else k: printable_tree(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list | tuple):
        return [printable_tree(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value
