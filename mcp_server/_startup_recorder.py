"""Keeps the start-up snapshot true: written from the server's own answers, checked against what was sent.

Over stdio it watches the first messages each way (`lines` on stdin, `outgoing` on stdout):

- the client's `initialize` and its `tools/list` requests, and the SDK's answers to them. Once it has the
  handshake and a complete walk of the listing (first page to the one without `nextCursor`), it writes the
  snapshot, unless the catalog was reloaded meanwhile or the snapshot on disk already says the same;
- the private requests `_warm_start` handed over: their answers are not sent (the client already had them
  from the snapshot) but compared. A page that differs means the tools changed since the snapshot was written
  in a way its file stats did not show; the client gets `notifications/tools/list_changed` (and asks again),
  and the snapshot is rewritten. A differing `initialize` result cannot be taken back: it is logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

from mcp_types import JSONRPCError, JSONRPCNotification, JSONRPCResponse

from mcp_server._startup_snapshot import Handshake, Inputs, Snapshot, canonical, write_snapshot
from mcp_server._warm_start import Handover

__all__ = ["StartupRecorder"]

logger = logging.getLogger("mcp_server.startup")

_WATCHED_LINES = 256
"""Client messages looked at for the handshake and listing; a client that has not walked the listing by then
is not typical of the next start."""
_MAX_PAGES = 10_000

_LIST_CHANGED = (
    JSONRPCNotification(jsonrpc="2.0", method="notifications/tools/list_changed")
    .model_dump_json(by_alias=True, exclude_unset=True)
    .encode()
    + b"\n"
)

_IdKey = tuple[bool, int | str]


class StartupRecorder:
    """Writes `path`'s snapshot from what this session says; see the module docstring."""

    def __init__(
        self,
        path: Path,
        inputs: Inputs | None,
        handover: Handover,
        *,
        still_current: Callable[[], bool],
    ) -> None:
        self._path = path
        self._inputs = inputs
        self._on_disk = handover.on_disk
        self._still_current = still_current
        self._expected = dict(handover.expected)
        self._requests: dict[_IdKey, tuple[str, str | None]] = {}
        self._handshake: Handshake | None = None
        self._pages: dict[str | None, tuple[bytes, object]] = {}
        self._lines_left = _WATCHED_LINES
        self._done = False
        self._announced = False
        self.active = True
        """False once nothing is left to watch: the writer stops calling `outgoing`."""

    async def lines(self, source: AsyncIterator[str]) -> AsyncIterator[str]:
        async for line in source:
            if self._lines_left > 0:
                self._saw(line)
            yield line

    def _saw(self, line: str) -> None:
        self._lines_left -= 1
        if '"initialize"' in line or '"tools/list"' in line:
            self._note_request(line)
        self._settle()

    def _note_request(self, line: str) -> None:
        try:
            message: object = json.loads(line)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        message = cast(dict[str, Any], message)
        key = _id_key(message.get("id"))
        method, params = message.get("method"), message.get("params")
        if key is None:
            return
        if method == "initialize" and isinstance(params, dict):
            self._requests[key] = ("initialize", canonical(cast(object, params)))
        elif method == "tools/list":
            cursor: object = cast(dict[str, Any], params).get("cursor") if isinstance(params, dict) else None
            if cursor is None or isinstance(cursor, str):
                self._requests[key] = ("page", cursor)

    def outgoing(self, message: object, line: bytes) -> bytes:
        """The line to send for `message` (serialized as `line`): itself, nothing, or a notification instead."""
        if not isinstance(message, JSONRPCResponse | JSONRPCError):
            return line
        key = _id_key(message.id)
        found = self._requests.pop(key, None) if key is not None else None
        private = isinstance(message.id, str) and message.id in self._expected
        if found is None:
            return line
        if isinstance(message, JSONRPCError):
            out = line
            if private:
                del self._expected[cast(str, message.id)]
                self._on_disk = None  # whatever it said, it is rewritten
                logger.warning("start-up snapshot: the server refused a request answered from it; it is replaced")
                out = self._corrected(found[0])
            self._settle()
            return out
        result = _result_text(message, line)
        kind, argument = found
        fields = message.result
        if kind == "initialize":
            version = fields.get("protocolVersion")
            if isinstance(version, str) and argument is not None:
                self._handshake = Handshake(argument, version, result)
        else:
            self._pages[argument] = (result, fields.get("nextCursor"))
        out = line
        if private:
            out = b""
            if self._expected.pop(cast(str, message.id)) != result:
                self._on_disk = None
                if kind == "initialize":
                    logger.warning(
                        "start-up snapshot: the initialize result sent from it differs from the server's; "
                        "it is replaced"
                    )
                out = self._corrected(kind)
        self._record()
        self._settle()
        return out

    def _corrected(self, kind: str) -> bytes:
        """What replaces the dropped answer to a private request whose original answer was wrong: for a page, the
        client is told to list again (once); an `initialize` result cannot be taken back."""
        if kind != "page" or self._announced:
            return b""
        self._announced = True
        return _LIST_CHANGED

    def _record(self) -> None:
        if self._done or self._inputs is None or self._handshake is None:
            return
        chain: dict[str | None, bytes] = {}
        cursor: object = None
        while True:
            if not isinstance(cursor, str | None) or cursor in chain or len(chain) > _MAX_PAGES:
                return
            page = self._pages.get(cursor)
            if page is None:
                return
            chain[cursor] = page[0]
            cursor = page[1]
            if cursor is None:
                break
        self._done = True
        snapshot = Snapshot(self._inputs, self._handshake, chain)
        on_disk, self._on_disk, self._pages = self._on_disk, None, {}  # nothing more to compare or record
        if snapshot == on_disk or not self._still_current():
            return
        try:
            write_snapshot(self._path, snapshot)
        except OSError as exc:
            logger.warning("start-up snapshot not written to %s: %s", self._path.parent, exc.strerror or exc)

    def _settle(self) -> None:
        watching = self._lines_left > 0 and not self._done
        self.active = bool(self._expected) or watching or (bool(self._requests) and not self._done)


def _id_key(request_id: object) -> _IdKey | None:
    if isinstance(request_id, bool):
        return None
    if isinstance(request_id, int | str):
        return (isinstance(request_id, str), request_id)
    return None


def _result_text(message: JSONRPCResponse, line: bytes) -> bytes:
    """The `result` member of `line`: the response's last member, after its envelope."""
    envelope = message.model_dump_json(by_alias=True, exclude_unset=True, exclude={"result"})
    return line[len(envelope[:-1].encode()) + len(b',"result":') : -2]
