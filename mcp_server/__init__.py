"""mcp-connectors: API connectors served as MCP tools, with vault-injected credentials.

The command line (`mcp-connectors`, `python -m mcp_server`) is the main interface;
these names are for embedding the server in another program. They are imported on first use, so
`python -m mcp_server serve` over stdio never loads the HTTP stack it does not serve.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_server._app import Application, build_application
    from mcp_server._catalog import load_catalog
    from mcp_server._config import Settings
    from mcp_server._errors import ConnectorsError, ToolError
    from mcp_server._http import build_http_app
    from mcp_server._pipeline import Pipeline
    from mcp_server._registry import Registry
    from mcp_server._server import build_server
    from mcp_server._vault import Vault

__all__ = [
    "Application",
    "ConnectorsError",
    "Pipeline",
    "Registry",
    "Settings",
    "ToolError",
    "Vault",
    "build_application",
    "build_http_app",
    "build_server",
    "load_catalog",
]

_HOMES = {
    "Application": "_app",
    "build_application": "_app",
    "load_catalog": "_catalog",
    "Settings": "_config",
    "ConnectorsError": "_errors",
    "ToolError": "_errors",
    "build_http_app": "_http",
    "Pipeline": "_pipeline",
    "Registry": "_registry",
    "build_server": "_server",
    "Vault": "_vault",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mcp_server' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mcp_server.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
