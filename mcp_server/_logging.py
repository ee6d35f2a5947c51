"""Logging to stderr only (stdout belongs to the protocol in stdio mode), scrubbed of in-flight secrets.

`fmt` is `text` (one line per record) or `json` (one JSON object per line, see `_observe`); both
carry the request id of the HTTP request or tool call a record belongs to.
"""

from __future__ import annotations

import logging
import sys

from mcp_server._observe import JsonFormatter, RequestIdFilter, TextFormatter
from mcp_server._redact import RedactingFilter

# These log full request URLs, query strings included, at INFO.
_CHATTY_LIBRARIES = ("httpx2", "httpx", "httpcore", "httpcore2")
LOG_FORMATS = ("auto", "json", "text")


def resolve_log_format(fmt: str, *, transport: str) -> str:
    """`auto`: JSON for the HTTP transport when stderr is not a terminal (a service), text otherwise."""
    if fmt != "auto":
        return fmt
    return "json" if transport == "http" and not sys.stderr.isatty() else "text"


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    # Neither format shows where a record was logged from, nor the thread or process: skip collecting
    # them for every record (the logging HOWTO's "Optimization" switches; one line per tool call adds up).
    logging._srcfile = None  # pyright: ignore[reportPrivateUsage]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
