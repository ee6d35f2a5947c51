"""Logging to stderr only (stdout belongs to the protocol in stdio mode), scrubbed of in-flight secrets."""

from __future__ import annotations

import logging
import sys

from mcp_server._redact import RedactingFilter

# These log full request URLs, query strings included, at INFO.
_CHATTY_LIBRARIES = ("httpx2", "httpx", "httpcore", "httpcore2")


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
