"""The installed distribution's version, for serverInfo, /v1/meta and the User-Agent."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version


@cache
def server_version() -> str:
    try:
        return version("mcp-connectors")
    except PackageNotFoundError:
        return "0.0.0"
