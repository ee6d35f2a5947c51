"""stdin/stdout for the MCP session without the SDK's per-message worker threads.

The SDK reads each line with `readline()` on a worker thread and writes each message with a `write()` and a
`flush()` on worker threads: three thread hops per request, a fifth of the server's CPU per proxied call in
the profile (docs/benchmarks). Here the SDK's `stdio_server(stdin=)` still parses every message (it takes any
async line source); replies go out through `MessageWriter`, which serializes them exactly as the SDK's writer
does, each message written whole and in order before `send` returns, so none is left queued when stdin ends.

Pipes and sockets (what a launching client gives) are watched by the event loop. A regular file or a
terminal on stdin is read by one helper thread in large chunks; on stdout it is written with plain blocking
writes (a file or a terminal takes them at once), so neither is switched to non-blocking mode under a
shell that shares it. Like the SDK, fd 0 and fd 1 point at /dev/null and stderr while serving, so a stray
`print()` or a child process cannot write into the protocol stream; both are restored afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Mapping
from types import TracebackType
from typing import Any, Protocol, Self

import anyio
import anyio.to_thread
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCResponse

from mcp_server._descriptors import kind, pipe_like

logger = logging.getLogger("mcp_server.stdio")

#: A line longer than this is dropped (the SDK answers it as unparseable input) rather than buffered
#: without bound; the HTTP transports cap a message at 4 MiB, stdio allows far more.
MAX_LINE_BYTES = 64 * 1024 * 1024
# Above this many bytes waiting for the client to read stdout, a writer waits (the client is slow).
_WRITE_HIGH_WATER = 1024 * 1024


class LineReader:
    """The lines arriving on one descriptor, decoded as the SDK does (UTF-8, bad bytes replaced)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> LineReader:
        return self

    async def __anext__(self) -> str:
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise StopAsyncIteration from None
            line = exc.partial  # a last message without its newline, as readline() would return it
        except asyncio.LimitOverrunError:
            await self._skip_line()
            return ""  # not JSON: the SDK reports it as a parse error and goes on with the next line
        return line.decode("utf-8", errors="replace")

    async def _skip_line(self) -> None:
        while True:
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as exc:
                await self._reader.readexactly(exc.consumed)
            except asyncio.IncompleteReadError:
                return


class LineWriter:
    """Where our messages go: each `write_bytes` is one whole line, `flush` waits while the client is slow."""

    _warned = False
    _broken = False  # a write failed: every later line is dropped

    def _dropped(self) -> None:
        if not self._warned:
            self._warned = True
            logger.warning("the client closed stdout: replies are dropped until it closes stdin")

    def _failed(self, exc: OSError) -> None:
        """A full disk, a hung-up terminal or socket: like a closed pipe, the replies stop."""
        self._broken = True
        logger.warning("stdout cannot be written (%s): replies are dropped", exc.strerror or exc)

    async def write(self, text: str) -> None:  # the SDK's stdout file interface (`stdio_server(stdout=)`)
        self.write_bytes(text.encode("utf-8"))

    def write_bytes(self, line: bytes) -> None:
        raise NotImplementedError

    async def flush(self) -> None:
        return None


class PipeWriter(LineWriter):
    """A pipe or socket written without a thread: asyncio buffers what the pipe cannot take yet.

    A client that closes our stdout gets no more replies; the server keeps going until stdin closes too
    (which ends the session cleanly) instead of failing with a broken pipe.
    """

    def __init__(self, transport: asyncio.WriteTransport, protocol: _WriteProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def write_bytes(self, line: bytes) -> None:
        if self._transport.is_closing():
            self._dropped()
            return
        self._transport.write(line)

    async def flush(self) -> None:
        await self._protocol.drained()


class ThreadWriter(LineWriter):
    """stdout the same socket as stdin (inetd, socat, systemd socket units): blocking writes on a worker thread,
    in order, so a slow reader never stalls the event loop. asyncio's pipe writer cannot be used on a socket
    we also read, since it takes the socket becoming readable for a hang-up. (A separate socket per
    descriptor, as Node gives a child, is written by the pipe writer.)"""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending: list[bytes] = []
        self._lock = asyncio.Lock()

    def write_bytes(self, line: bytes) -> None:
        if self._broken:
            self._dropped()
            return
        self._pending.append(line)

    async def flush(self) -> None:
        async with self._lock:  # one batch at a time: lines leave in the order they were written
            if not self._pending or self._broken:
                self._pending.clear()
                return
            batch, self._pending = b"".join(self._pending), []
            try:
                await anyio.to_thread.run_sync(_write_all, self._fd, batch)
            except OSError as exc:
                self._failed(exc)

    def write_pending(self) -> None:
        """Write what is still queued, blocking (the session is over; nothing else waits on the loop)."""
        batch, self._pending = b"".join(self._pending), []
        if batch and not self._broken:
            with contextlib.suppress(OSError):
                _write_all(self._fd, batch)


def _write_all(fd: int, data: bytes) -> None:
    """Blocking, even on a descriptor in non-blocking mode: the socket stdin also is, once the event loop reads it."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [])


class FileWriter(LineWriter):
    """A regular file or a terminal, written with blocking writes (they take a line at once)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write_bytes(self, line: bytes) -> None:
        if self._broken:
            self._dropped()
            return
        try:
            _write_all(self._fd, line)
        except OSError as exc:
            self._failed(exc)


class OutgoingWatch(Protocol):
    """Sees each message before it is written while `active` (`_startup_recorder.StartupRecorder`)."""

    active: bool

    def outgoing(self, message: object, line: bytes) -> bytes:
        """The line to write instead of `line` (empty: none)."""
        ...


class MessageWriter:
    """The server's write stream (the SDK's `WriteStream` protocol): each message one JSON line on stdout.

    Serialized exactly as the SDK's stdio writer does (`model_dump_json(by_alias=True, exclude_unset=True)`),
    except a response whose result `prebuilt` already has as JSON text (a cached `tools/list` page): its
    envelope is serialized the same way and the text put in as the `result`, the envelope's last member.
    Messages are written in the order they are sent, each whole.
    """

    def __init__(
        self,
        sink: LineWriter,
        prebuilt: Callable[[Mapping[str, Any]], bytes | None],
        watch: OutgoingWatch | None = None,
    ) -> None:
        self._sink = sink
        self._prebuilt = prebuilt
        self._watch = watch
        self._closed = False

    async def send(self, item: SessionMessage, /) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        line = wire_line(item, self._prebuilt)
        if self._watch is not None:
            if self._watch.active:
                line = self._watch.outgoing(item.message, line)
            else:
                self._watch = None
        if line:
            self._sink.write_bytes(line)
            await self._sink.flush()

    async def aclose(self) -> None:
        self._closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc_val: BaseException | None, exc_tb: TracebackType | None
    ) -> bool | None:
        await self.aclose()
        return None


def wire_line(item: SessionMessage, prebuilt: Callable[[Mapping[str, Any]], bytes | None]) -> bytes:
    """One message as the line the SDK's stdio writer would send for it."""
    message = item.message
    if isinstance(message, JSONRPCResponse):
        result = prebuilt(message.result)
        if result is not None:
            envelope = message.model_dump_json(by_alias=True, exclude_unset=True, exclude={"result"})
            return b"".join((envelope[:-1].encode(), b',"result":', result, b"}\n"))
    return message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"


class _WriteProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self._paused = False
        self._waiters: list[asyncio.Future[None]] = []
        self._lost = False

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def drained(self) -> None:
        if self._lost or not self._paused:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter


class _Claim:
    """fd moved to a private descriptor, with stderr (else /dev/null, opened with `flags`) in its place until
    `release()`."""

    def __init__(self, fd: int, flags: int, *, use_stderr: bool) -> None:
        self.fd = fd
        self.private = _dup_above_std(fd)
        try:
            diversion = os.dup(2) if use_stderr else os.open(os.devnull, flags)
        except OSError:
            diversion = os.open(os.devnull, flags)
        try:
            os.dup2(diversion, fd)
        finally:
            os.close(diversion)

    def release(self, *, close: bool = True) -> None:
        with contextlib.suppress(OSError):
            os.dup2(self.private, self.fd)
        if close:
            with contextlib.suppress(OSError):
                os.close(self.private)


def _dup_above_std(fd: int) -> int:
    """A close-on-exec copy of `fd` numbered 3 or above, so diverting 0 and 1 never lands on it."""
    if sys.platform == "win32":  # pragma: no cover - stdio on Windows keeps the SDK's own files (_stdio.py)
        raise OSError("not used on Windows")
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)


def _owned_copy(fd: int, mode: str) -> Any:
    """A file object on a fresh copy of `fd` for an event-loop transport, which closes it when it is done (uvloop
    closes the descriptor it was given whatever the file object says; a copy keeps ours, and its number, intact)."""
    return os.fdopen(_dup_above_std(fd), mode, buffering=0)


@contextlib.asynccontextmanager
async def stdio_streams(
    prefix: bytes = b"", *, ended: bool = False, unsent: bytes = b""
) -> AsyncGenerator[tuple[LineReader, LineWriter]]:
    """Line reader for the client's requests and writer for our messages, over private copies of fd 0 and 1.

    What `_warm_start` did before handing over: `prefix` is read before stdin (and nothing after it when stdin
    `ended`), `unsent` written before anything else.
    """
    loop = asyncio.get_running_loop()
    stdin = _Claim(0, os.O_RDONLY, use_stderr=False)
    stdout: _Claim | None = None
    read_transport: asyncio.BaseTransport | None = None
    write_transport: asyncio.WriteTransport | None = None
    fed_by_thread = False
    try:
        stdout = _Claim(1, os.O_WRONLY, use_stderr=True)
        # Non-blocking mode is a property of the shared open file: restored on the way out for the client.
        blocking = {fd: os.get_blocking(fd) for fd in (stdin.private, stdout.private)}
        reader = asyncio.StreamReader(limit=MAX_LINE_BYTES, loop=loop)
        if prefix:
            reader.feed_data(prefix)
        if ended:
            reader.feed_eof()
        elif kind(stdin.private) in ("fifo", "socket"):
            read_transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader, loop=loop), _owned_copy(stdin.private, "rb")
            )
        else:
            threading.Thread(target=_feed, args=(stdin.private, reader, loop), name="stdin", daemon=True).start()
            fed_by_thread = True
        sink: LineWriter
        if pipe_like(stdout.private, stdin.private):
            protocol = _WriteProtocol()
            write_transport, _ = await loop.connect_write_pipe(lambda: protocol, _owned_copy(stdout.private, "wb"))
            write_transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
            sink = PipeWriter(write_transport, protocol)
        elif (
            kind(stdout.private) == "socket"
        ):  # the very socket we read: asyncio's pipe writer would take a request for EOF
            sink = ThreadWriter(stdout.private)
        else:
            sink = FileWriter(stdout.private)
        if unsent:  # only ever left by a pipe or socket writer, whose transport sends it without waiting
            sink.write_bytes(unsent)
        try:
            yield LineReader(reader), sink
        finally:
            if write_transport is not None:
                await _flush(write_transport)
            if isinstance(sink, ThreadWriter):
                sink.write_pending()  # replies whose sender was cancelled as stdin ended
            for fd, was_blocking in blocking.items():
                with contextlib.suppress(OSError):
                    os.set_blocking(fd, was_blocking)
    finally:
        if read_transport is not None:
            read_transport.close()
        if write_transport is not None:
            if write_transport.get_write_buffer_size():
                write_transport.abort()  # the client stopped reading: drop what it would not take
            else:
                write_transport.close()
        if stdout is not None:
            stdout.release()
        # A thread may still be blocked reading a terminal: its descriptor must not be closed and reused under it.
        stdin.release(close=not fed_by_thread)


def _feed(fd: int, reader: asyncio.StreamReader, loop: asyncio.AbstractEventLoop) -> None:
    """Read a file or terminal in a thread (the event loop cannot watch those) and hand the bytes over."""
    try:
        while chunk := os.read(fd, 1 << 16):
            loop.call_soon_threadsafe(reader.feed_data, chunk)
        loop.call_soon_threadsafe(reader.feed_eof)
    except (OSError, RuntimeError):  # the descriptor went away, or the loop closed as the server exited
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(reader.feed_eof)


async def _flush(transport: asyncio.WriteTransport) -> None:
    """What is still buffered reaches the client before we close, unless it stopped reading for 5 s."""
    deadline = asyncio.get_running_loop().time() + 5
    while transport.get_write_buffer_size() and not transport.is_closing():
        if asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.01)
