"""Logging to stderr only (stdout belongs to the protocol in stdio mode), scrubbed of in-flight secrets.

`fmt` is `text` (one line per record) or `json` (one JSON object per line, see `_observe`); both
carry the request id of the HTTP request or tool call a record belongs to.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TextIO

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
    handler = CoalescingStreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


class CoalescingStreamHandler(logging.StreamHandler[TextIO]):
    """A stderr handler that writes the lines of one event-loop turn together, at the end of that turn.

    Each tool call logs a line (two over HTTP, with the access line); written one by one, every line is
    a write() system call of its own, a few percent of a call's CPU in a profile. Lines logged on the
    event loop's thread are collected and written by one callback the loop runs right after the
    current turn, so no line waits on anything but the code already running; lines from any other
    thread (or with no loop running) are written at once, after whatever was pending, in order.
    `flush()` (also run by `logging.shutdown()` at exit) writes what is pending.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._flush_scheduled_on: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)  # handle() holds self.lock around emit
        loop = _running_loop()
        if loop is None:
            self._write_pending()
        elif self._flush_scheduled_on is not loop:  # (a loop that ended before its callback ran is replaced)
            self._flush_scheduled_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self.acquire()
        try:
            self._flush_scheduled_on = None
            self._write_pending()
        finally:
            self.release()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:
            # What logging does for a failed write (a closed or broken stderr): report once per record, go on.
            self.handleError(logging.makeLogRecord({"msg": text.rstrip("\n")}))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
