"""mcp-connectors: API connectors served as MCP tools, with vault-injected credentials.

The command line (`mcp-connectors`, `python -m mcp_server`) is the main interface;
these names are for embedding the server in another program.
"""

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
