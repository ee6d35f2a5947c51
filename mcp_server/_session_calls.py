"""A handshake-era session's `tools/call`, judged and answered as the SDK's path would, for the transports that
take such calls themselves: Streamable HTTP sessions (`_http_session_fastpath`) and legacy HTTP+SSE
(`_sse_fastpath`).

`call_params` says whether the SDK would run a call in that session: a `tools/call` request on a connection
whose `initialize` the SDK accepted, without a progress token (its notifications need the SDK's request
context) or the 2026-07-28 envelope (which the SDK's handshake loop refuses), while the handler `build_server`
registered is still the one in place, with params valid for the negotiated version. `answer_call` runs the call
through that handler and returns the JSON-RPC answer the SDK's dispatcher would write for it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.server.connection import Connection
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data, progress_token_from_params
from mcp_types import PROTOCOL_VERSION_META_KEY, methods
from pydantic import ValidationError
from starlette.requests import Request

from mcp_server._changes import ConnectorServer

if TYPE_CHECKING:
    from mcp_server._server import DirectCall

__all__ = ["Answer", "answer_call", "call_params"]

logger = logging.getLogger(__name__)

Answer = types.JSONRPCResponse | types.JSONRPCError


def call_params(
    server: ConnectorServer, message: types.JSONRPCMessage, connection: Connection | None
) -> types.CallToolRequestParams | None:
    """The params of a `tools/call` the SDK would run on `connection`; None for anything else."""
    if not isinstance(message, types.JSONRPCRequest) or message.method != "tools/call":
        return None
    if connection is None or not connection.initialize_accepted:
        return None
    params = message.params
    if progress_token_from_params(params) is not None or _has_modern_envelope(params):
        return None
    if server.live_direct_call() is None:
        return None
    try:
        methods.validate_client_request("tools/call", connection.protocol_version, params)
        return types.CallToolRequestParams.model_validate({} if params is None else params, by_name=False)
    except (KeyError, ValueError):  # pydantic's ValidationError is a ValueError
        return None


def _has_modern_envelope(params: Mapping[str, Any] | None) -> bool:
    """The SDK's own test (`runner._has_modern_envelope`, private): the reserved version key in `_meta`."""
    meta = params.get("_meta") if params else None
    return isinstance(meta, Mapping) and PROTOCOL_VERSION_META_KEY in meta


async def answer_call(
    direct: DirectCall,
    request: Request,
    request_id: types.RequestId,
    version: str,
    params: types.CallToolRequestParams,
) -> Answer:
    """Run the call; the JSON-RPC answer the SDK's dispatcher would write for it.

    `request` is what `Access.principal` reads the caller from, as from an SDK `ctx.request`.
    """
    try:
        principal = direct.access.principal(request)
        result = await direct.call(principal, params, None)
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        try:
            shaped = methods.serialize_server_result("tools/call", version, dumped)
        except ValidationError:
            logger.exception("handler for 'tools/call' returned an invalid result")
            raise MCPError(code=types.INTERNAL_ERROR, message="Handler returned an invalid result") from None
        return types.JSONRPCResponse(jsonrpc="2.0", id=request_id, result=shaped)
    except Exception as exc:
        error = handler_exception_to_error_data(exc)
        if error is None:
            logger.exception("handler for 'tools/call' raised")
            error = types.ErrorData(code=0, message=str(exc))  # the SDK dispatcher's catch-all, kept as is
        return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=error)
