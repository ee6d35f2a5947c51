"""stdin/stdout as asyncio pipes, handed to the SDK's `stdio_server` in place of its thread-backed files.

The SDK reads each line with `readline()` on a worker thread and writes each message with a `write()` and a
`flush()` on worker threads: three thread hops per request, a fifth of the server's CPU per proxied call in
the profile (docs/benchmarks). The SDK's `stdio_server(stdin=, stdout=)` takes any async line source and
sink, so the parsing and serialization of every message stay the SDK's; only the byte plumbing is ours.

Used when both descriptors are pipes or sockets (what desktop clients give a server they launch); a
terminal or a redirected regular file keeps the SDK's own files, which handle those. Like the SDK, fd 0
and fd 1 are pointed at /dev/null and stderr while serving, so a stray `print()` or a child process cannot
write into the protocol stream, and are restored afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import stat
from collections.abc import AsyncGenerator, Callable, Mapping
from types import TracebackType
from typing import Any, Self

import anyio
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCResponse

logger = logging.getLogger("mcp_server.stdio")

#: A line longer than this is dropped (the SDK answers it as unparseable input) rather than buffered
#: without bound; the HTTP transports cap a message at 4 MiB, stdio allows far more.
MAX_LINE_BYTES = 64 * 1024 * 1024
# Above this many bytes waiting for the client to read stdout, a writer waits (the client is slow).
_WRITE_HIGH_WATER = 1024 * 1024


def _is_pipe_or_socket(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def pipes_available() -> bool:
    """True when stdin and stdout are both pipes or sockets, which asyncio can watch without threads."""
    return _is_pipe_or_socket(0) and _is_pipe_or_socket(1)


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
    """Messages written to one descriptor without a thread: asyncio buffers what the pipe cannot take yet.

    A client that closes our stdout gets no more replies; the server keeps going until stdin closes too
    (which ends the session cleanly) instead of failing with a broken pipe.
    """

    def __init__(self, transport: asyncio.WriteTransport, protocol: _WriteProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._warned = False

    async def write(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._protocol.drained()

    def write_bytes(self, line: bytes) -> None:
        if self._transport.is_closing():
            if not self._warned:
                self._warned = True
                logger.warning("the client closed stdout: replies are dropped until it closes stdin")
            return
        self._transport.write(line)


class MessageWriter:
    """The server's write stream (the SDK's `WriteStream` protocol): each message one JSON line on stdout.

    Serialized exactly as the SDK's stdio writer does (`model_dump_json(by_alias=True, exclude_unset=True)`),
    except a response whose result `prebuilt` already has as JSON text (a cached `tools/list` page): its
    envelope is serialized the same way and the text put in as the `result`, the envelope's last member.
    Messages are written in the order they are sent, each whole.
    """

    def __init__(self, sink: LineWriter, prebuilt: Callable[[Mapping[str, Any]], bytes | None]) -> None:
        self._sink = sink
        self._prebuilt = prebuilt
        self._closed = False

    async def send(self, item: SessionMessage, /) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        self._sink.write_bytes(wire_line(item, self._prebuilt))
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
    """fd moved to a private descriptor, with `diversion` put in its place until `release()`."""

    def __init__(self, fd: int, diversion_path: str, diversion_flags: int, *, use_stderr: bool) -> None:
        self.fd = fd
        self.private = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
        try:
            diversion = os.dup(2) if use_stderr else os.open(diversion_path, diversion_flags)
        except OSError:
            diversion = os.open(diversion_path, diversion_flags)
        try:
            os.dup2(diversion, fd)
        finally:
            os.close(diversion)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.dup2(self.private, self.fd)
        with contextlib.suppress(OSError):
            os.close(self.private)


@contextlib.asynccontextmanager
async def stdio_pipes() -> AsyncGenerator[tuple[LineReader, LineWriter]]:
    """Line reader for the client's requests and writer for our messages, over private copies of fd 0 and 1."""
    loop = asyncio.get_running_loop()
    stdin = _Claim(0, os.devnull, os.O_RDONLY, use_stderr=False)
    stdout: _Claim | None = None
    read_transport: asyncio.BaseTransport | None = None
    write_transport: asyncio.WriteTransport | None = None
    try:
        stdout = _Claim(1, os.devnull, os.O_WRONLY, use_stderr=True)
        # Non-blocking mode is a property of the shared open file: restored on the way out for the client.
        blocking = {fd: os.get_blocking(fd) for fd in (stdin.private, stdout.private)}
        reader = asyncio.StreamReader(limit=MAX_LINE_BYTES, loop=loop)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader, loop=loop),
            os.fdopen(stdin.private, "rb", buffering=0, closefd=False),
        )
        protocol = _WriteProtocol()
        write_transport, _ = await loop.connect_write_pipe(
            lambda: protocol, os.fdopen(stdout.private, "wb", buffering=0, closefd=False)
        )
        write_transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        try:
            yield LineReader(reader), LineWriter(write_transport, protocol)
        finally:
            await _flush(write_transport)
            for fd, was_blocking in blocking.items():
                with contextlib.suppress(OSError):
                    os.set_blocking(fd, was_blocking)
    finally:
        if read_transport is not None:
            read_transport.close()
        if write_transport is not None:
            write_transport.close()
        if stdout is not None:
            stdout.release()
        stdin.release()


async def _flush(transport: asyncio.WriteTransport) -> None:
    """What is still buffered reaches the client before we close, unless it stopped reading for 5 s."""
    deadline = asyncio.get_running_loop().time() + 5
    while transport.get_write_buffer_size() and not transport.is_closing():
        if asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.01)
