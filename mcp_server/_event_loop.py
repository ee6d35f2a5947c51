"""The event loop the server runs on: uvloop where it is installed, else asyncio's own.

Every message, upstream request and response is a handful of event-loop callbacks; uvloop runs them in C.
`MCP_CONNECTORS_EVENT_LOOP=asyncio` keeps the standard loop (to rule uvloop out when debugging).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

ENV_EVENT_LOOP = "MCP_CONNECTORS_EVENT_LOOP"
EVENT_LOOPS = ("auto", "asyncio", "uvloop")


def use_uvloop(environ: Mapping[str, str]) -> bool:
    """Raises ValueError for a value that is not one of `EVENT_LOOPS`, or `uvloop` when it is not installed."""
    choice = environ.get(ENV_EVENT_LOOP, "").strip().lower() or "auto"
    if choice not in EVENT_LOOPS:
        raise ValueError(f"{ENV_EVENT_LOOP}={choice!r}: use one of {', '.join(EVENT_LOOPS)}")
    available = importlib.util.find_spec("uvloop") is not None
    if choice == "uvloop" and not available:
        raise ValueError(f"{ENV_EVENT_LOOP}=uvloop, but uvloop is not installed (pip install uvloop)")
    return choice != "asyncio" and available
