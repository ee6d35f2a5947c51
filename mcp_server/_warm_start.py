"""Answer a stdio client's handshake and tool listing from the last start's snapshot while this one loads.

`python -m mcp_server serve` (stdio) starts this before it imports anything else. When a snapshot of the
same start exists and its files are unchanged (`_startup_snapshot`), a thread reads the first messages on
stdin while the main thread imports the SDK and loads the catalog, and answers:

- `initialize` whose params are exactly those the snapshot was recorded for, with the result the server gave
  them then (the SDK's own bytes);
- `tools/list` pages the snapshot holds, after that `initialize`;
- `notifications/initialized` needs no answer.

Anything else (another method, other params, a page not in the snapshot, a line that is not one JSON-RPC
message) stops the thread before that message; it and everything after it are left to the SDK, in order.

`handover()` (called once the SDK server is built, before it reads stdin) gives the SDK what the thread read:
the client's `initialize` and `notifications/initialized`, replayed under a private request id so the SDK
negotiates the session exactly as if it had answered, one private `tools/list` per page served, then the
unanswered rest. `_startup_recorder` drops the SDK's answers to the private ids, compares each with what the
thread sent, and tells the client `notifications/tools/list_changed` if a page differs (the snapshot is then
rewritten). Standard-library imports only.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from mcp_server._descriptors import kind, pipe_like
from mcp_server._startup_snapshot import (
    FileStats,
    Inputs,
    Snapshot,
    canonical,
    file_stats,
    read_snapshot,
    snapshot_path,
    tree_stats,
)

__all__ = ["Handover", "WarmStart"]

_POLL_S = 0.02
"""How often the reading thread looks for the signal to stop while stdin is quiet."""
_MAX_BUFFER = 4 * 1024 * 1024
"""A first message larger than this is not the handshake: left to the SDK."""
_REQUEST_KEYS = frozenset({"jsonrpc", "id", "method", "params"})
_LIST_PARAMS = frozenset({"cursor", "_meta"})


@dataclass(frozen=True, slots=True)
class Handover:
    """What the SDK reads before stdin, and the answers it will give to the private requests in it."""

    prefix: bytes
    eof: bool = False
    """stdin ended after `prefix` (a terminal's end of input is not seen twice: it must be handed over)."""
    unsent: bytes = b""
    """The end of an answer stdout would not take without waiting (the client was not reading): it goes out
    first, through the server's own writer, which never blocks."""
    expected: Mapping[str, bytes] = field(default_factory=dict[str, bytes])
    """Private request id → the result text the client was already sent for it."""
    on_disk: Snapshot | None = None
    """The snapshot read at start (answered from or not): the recorder need not write the same again."""


class WarmStart:
    """The start-up snapshot of one `serve` (stdio): its path, the snapshot if usable, and the answering thread."""

    def __init__(self, path: Path, snapshot: Snapshot | None, *, stdin: int = 0, stdout: int = 1) -> None:
        self.path = path
        self.snapshot = snapshot
        self.inputs: Inputs | None = None
        """Set by the server as it loads the catalog; None when what it loads cannot be watched."""
        self._directories: tuple[str, ...] = ()
        self._stats: FileStats = {}
        self._front = _Front(snapshot, stdin, stdout) if snapshot is not None else None
        if self._front is not None:
            self._front.start()

    @classmethod
    def begin(cls, argv: Sequence[str], environ: Mapping[str, str]) -> WarmStart | None:
        """For `serve` only, and never raises: a start-up aid must not stop the server from starting."""
        if not _serves_stdio(argv) or sys.platform == "win32":
            return None
        try:
            path = snapshot_path(argv, environ, os.getcwd())
            if path is None:
                return None
            snapshot = read_snapshot(path)
            # A terminal, or the socket stdin also is, gets no early answers: both are written blocking.
            answerable = pipe_like(1, 0) or kind(1) == "file"
            if snapshot is not None and not (snapshot.inputs.unchanged() and answerable):
                snapshot = None
            return cls(path, snapshot)
        except Exception:
            return None

    def before_load(self, directories: Iterable[Path]) -> None:
        """Stats of the tools directories, taken before the catalog is read from them."""
        self._directories = tuple(str(d) for d in directories)
        self._stats = tree_stats(Path(d) for d in self._directories)

    def after_load(self, documents: Iterable[str | None]) -> None:
        """The imported OpenAPI documents (`Connector.document`); one fetched over HTTP turns recording off."""
        paths: list[str] = []
        for uri in documents:
            if uri is None:
                continue
            parts = urlsplit(uri)
            if parts.scheme != "file":
                self.inputs = None
                return
            paths.append(unquote(parts.path))  # POSIX only: the front never runs on Windows
        self.inputs = Inputs(self._directories, tuple(paths), {**self._stats, **file_stats(paths)})

    @property
    def answered(self) -> bool:
        """Whether the client was sent anything from the snapshot."""
        return self._front is not None and self._front.initialize is not None

    def close(self) -> None:
        """Stop answering, when the server ends before it could take over (an error, a signal); safe after
        `handover`. The client has had answers and sees stdin's end, as from a server that failed to start."""
        front, self._front = self._front, None
        if front is not None:
            front.stop()

    def handover(self) -> Handover:
        """Stop answering; what the SDK must read first. Call once, before anything else reads stdin."""
        front, self._front = self._front, None
        on_disk, self.snapshot = self.snapshot, None  # the recorder holds it only as long as it needs it
        if front is None:
            return Handover(b"", on_disk=on_disk)
        front.stop()
        return replace(front.handover(), on_disk=on_disk)


class _Front:
    """The reading and answering thread."""

    def __init__(self, snapshot: Snapshot, stdin: int, stdout: int) -> None:
        self._thread = threading.Thread(target=self._run, name="warm-start", daemon=True)
        self._snapshot = snapshot
        self._stdin = stdin
        self._stdout = stdout
        self._stop_reading = threading.Event()
        self._buffer = b""
        self.initialize: dict[str, Any] | None = None
        self._initialized: list[bytes] = []
        self._served: list[str | None] = []
        self._blocking: bool | None = None
        self._unsent = b""
        self._broken = False
        self.eof = False

    def start(self) -> None:
        # A pipe or socket is written without blocking (as the server's own writer does), so a client that sends
        # everything before it reads anything cannot wedge this thread; a regular file takes writes at once.
        self._blocking = os.get_blocking(self._stdout) if pipe_like(self._stdout, self._stdin) else None
        if self._blocking:
            os.set_blocking(self._stdout, False)
        self._thread.start()

    def stop(self) -> None:
        self._stop_reading.set()
        self._thread.join()
        if self._blocking:
            os.set_blocking(self._stdout, True)

    def _run(self) -> None:
        """Read stdin and write answers as each side is ready: an answer larger than the pipe goes out as the
        client reads it, and a client that sends everything before it reads anything is still read."""
        with contextlib.suppress(Exception):  # whatever happens, what was read is handed over, unanswered
            while not self._stop_reading.is_set() and not self._broken:
                if not self._answer_lines():
                    return  # a line that is not ours: it and all after it are the SDK's
                reading = not self.eof and len(self._buffer) <= _MAX_BUFFER
                if not reading and not self._unsent:
                    return
                readable, writable, _ = select.select(
                    [self._stdin] if reading else [], [self._stdout] if self._unsent else [], [], _POLL_S
                )
                if writable:
                    self._flush()
                if readable:
                    chunk = os.read(self._stdin, 1 << 16)
                    self._buffer += chunk
                    self.eof = not chunk  # handed over with the bytes before it

    def _answer_lines(self) -> bool:
        """Answer complete lines in turn while the last answer is out; False at the first one that is not ours
        to answer (left buffered)."""
        while not self._unsent and (end := self._buffer.find(b"\n")) >= 0:
            if not self._answer(self._buffer[: end + 1]):
                return False
            self._buffer = self._buffer[end + 1 :]
        return True

    def _answer(self, line: bytes) -> bool:
        try:  # as strictly as the SDK reads: UTF-8 only, no byte-order mark
            message: object = json.loads(line.decode("utf-8"))
        except ValueError:
            return False
        if not isinstance(message, dict) or cast(dict[str, Any], message).get("jsonrpc") != "2.0":
            return False
        message = cast(dict[str, Any], message)
        if not message.keys() <= _REQUEST_KEYS:
            return False
        method, params = message.get("method"), message.get("params")
        if "id" not in message:
            if method != "notifications/initialized" or self.initialize is None or not _meta_only(params):
                return False
            self._initialized.append(line)
            return True
        request_id = _id_text(message["id"])
        if request_id is None:
            return False
        if method == "initialize" and self.initialize is None:
            handshake = self._snapshot.handshake
            if not isinstance(params, dict) or canonical(cast(object, params)) != handshake.params:
                return False
            self._send(request_id, handshake.result)
            self.initialize = message
            return True
        if method == "tools/list" and self.initialize is not None:
            plain, cursor = _cursor(params)
            if not plain or (page := self._snapshot.pages.get(cursor)) is None:
                return False
            self._send(request_id, page)
            self._served.append(cursor)
            return True
        return False

    def _send(self, request_id: bytes, result: bytes) -> None:
        self._unsent = b"".join((b'{"jsonrpc":"2.0","id":', request_id, b',"result":', result, b"}\n"))
        self._flush()

    def _flush(self) -> None:
        """Write what stdout takes now (all of it when stdout blocks: a regular file)."""
        view = memoryview(self._unsent)
        try:
            while view:
                view = view[os.write(self._stdout, view) :]
        except BlockingIOError:
            pass
        except OSError:  # the client closed stdout (or a disk filled): no one reads what follows
            self._broken = True
            view = memoryview(b"")
        self._unsent = bytes(view)

    def handover(self) -> Handover:
        if self.initialize is None:
            return Handover(self._buffer, self.eof)
        tag = f"mcp-connectors-warm-start-{os.urandom(8).hex()}"
        expected: dict[str, bytes] = {f"{tag}-initialize": self._snapshot.handshake.result}
        lines = [_request(f"{tag}-initialize", "initialize", self.initialize["params"]), *self._initialized]
        for n, cursor in enumerate(dict.fromkeys(self._served)):
            private = f"{tag}-list-{n}"
            expected[private] = self._snapshot.pages[cursor]
            lines.append(_request(private, "tools/list", None if cursor is None else {"cursor": cursor}))
        return Handover(b"".join(lines) + self._buffer, self.eof, self._unsent, expected)


def _serves_stdio(argv: Sequence[str]) -> bool:
    """`serve` over stdio, as far as a glance can tell (an abbreviated `--trans http` still counts: the HTTP
    server then only looks for a snapshot, and finds none, since only a stdio start writes one)."""
    if not argv or argv[0] != "serve" or "-h" in argv or "--help" in argv:
        return False
    for index, arg in enumerate(argv):
        if arg == "--transport" and argv[index + 1 : index + 2] != ["stdio"]:
            return False
        if arg.startswith("--transport=") and arg != "--transport=stdio":
            return False
    return True


def _request(request_id: str, method: str, params: object) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"


def _id_text(request_id: object) -> bytes | None:
    """The id as the SDK writes it back; None for ids whose spelling could differ (left to the SDK)."""
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        return str(request_id).encode()
    if not isinstance(request_id, str) or not (request_id.isascii() and request_id.isprintable()):
        return None
    if '"' in request_id or "\\" in request_id:
        return None
    return f'"{request_id}"'.encode()


def _meta_only(params: object) -> bool:
    """No params, or nothing in them: anything else (a `_meta` of the 2026-07-28 envelope) is the SDK's to judge."""
    return params is None or params == {}


def _cursor(params: object) -> tuple[bool, str | None]:
    """Whether `params` ask for a plain page (the SDK could read anything else differently), and its cursor.

    `_meta` only with a string or integer `progressToken`: its other members (the 2026-07-28 envelope) or
    other types change what the SDK answers, or whether it answers at all."""
    if params is None:
        return True, None
    if not isinstance(params, dict) or not cast(dict[str, Any], params).keys() <= _LIST_PARAMS:
        return False, None
    fields = cast(dict[str, Any], params)
    if "_meta" in fields and not _plain_meta(fields["_meta"]):
        return False, None
    cursor: object = fields.get("cursor")
    if cursor is None or isinstance(cursor, str):
        return True, cursor
    return False, None


def _plain_meta(meta: object) -> bool:
    if not isinstance(meta, dict) or not cast(dict[str, Any], meta).keys() <= {"progressToken"}:
        return False
    token: object = cast(dict[str, Any], meta).get("progressToken", 0)
    return isinstance(token, str) or (isinstance(token, int) and not isinstance(token, bool))
