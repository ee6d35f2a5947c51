"""The stderr handler: lines of one event-loop turn written together, in order, none lost."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import Iterator

import pytest

from mcp_server._logging import CoalescingStreamHandler


class CountingStream(io.StringIO):
    """Records each write() call, as each would be one system call on a real stderr."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, CountingStream, CoalescingStreamHandler]]:
    stream = CountingStream()
    handler = CoalescingStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("test_logging.coalescing")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield logger, stream, handler
    logger.removeHandler(handler)


def test_lines_of_one_turn_are_one_write_after_the_turn(
    logged: tuple[logging.Logger, CountingStream, CoalescingStreamHandler],
) -> None:
    logger, stream, _ = logged

    async def turn() -> list[str]:
        for i in range(5):
            logger.info("line %d", i)
        before_the_turn_ends = list(stream.writes)
        await asyncio.sleep(0)  # the loop runs the flush scheduled by the first line
        return before_the_turn_ends

    assert asyncio.run(turn()) == []
    assert stream.writes == ["line 0\nline 1\nline 2\nline 3\nline 4\n"]


def test_many_turns_lose_and_reorder_nothing(
    logged: tuple[logging.Logger, CountingStream, CoalescingStreamHandler],
) -> None:
    logger, stream, _ = logged

    async def worker(n: int) -> None:
        for i in range(50):
            logger.info("w%d-%d", n, i)
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(worker(n) for n in range(4)))
        await asyncio.sleep(0)

    asyncio.run(main())
    lines = stream.getvalue().splitlines()
    assert len(lines) == 200
    for n in range(4):
        assert [line for line in lines if line.startswith(f"w{n}-")] == [f"w{n}-{i}" for i in range(50)]
    assert len(stream.writes) < 200


def test_without_a_loop_each_line_is_written_at_once(
    logged: tuple[logging.Logger, CountingStream, CoalescingStreamHandler],
) -> None:
    logger, stream, _ = logged
    logger.info("first")
    assert stream.getvalue() == "first\n"
    thread = threading.Thread(target=logger.info, args=("from a thread",))
    thread.start()
    thread.join()
    assert stream.getvalue() == "first\nfrom a thread\n"


def test_a_line_from_another_thread_comes_after_what_the_loop_had_pending(
    logged: tuple[logging.Logger, CountingStream, CoalescingStreamHandler],
) -> None:
    logger, stream, _ = logged

    async def main() -> None:
        logger.info("on the loop")
        thread = threading.Thread(target=logger.info, args=("from a thread",))
        thread.start()
        thread.join()  # blocks the loop: its flush has not run
        assert stream.getvalue() == "on the loop\nfrom a thread\n"

    asyncio.run(main())


def test_a_loop_that_ended_before_its_flush_does_not_stall_the_next(
    logged: tuple[logging.Logger, CountingStream, CoalescingStreamHandler],
) -> None:
    logger, stream, handler = logged
    first = asyncio.new_event_loop()

    async def log_and_stop() -> None:
        logger.info("last line of the first loop")

    first.run_until_complete(log_and_stop())  # ends before the scheduled flush runs
    first.close()

    async def second() -> None:
        logger.info("second loop")
        await asyncio.sleep(0)

    asyncio.run(second())
    assert stream.getvalue() == "last line of the first loop\nsecond loop\n"
    handler.flush()
    assert stream.getvalue() == "last line of the first loop\nsecond loop\n"


def test_flush_writes_what_is_pending(logged: tuple[logging.Logger, CountingStream, CoalescingStreamHandler]) -> None:
    logger, stream, handler = logged

    async def main() -> None:
        logger.info("pending")
        handler.flush()  # what logging.shutdown() does at exit
        assert stream.getvalue() == "pending\n"

    asyncio.run(main())
    assert stream.getvalue() == "pending\n"


def test_a_broken_stream_is_reported_not_raised(
    logged: tuple[logging.Logger, CountingStream, CoalescingStreamHandler], capsys: pytest.CaptureFixture[str]
) -> None:
    logger, stream, _ = logged
    stream.close()

    async def main() -> None:
        logger.info("into a closed stream")
        await asyncio.sleep(0)

    asyncio.run(main())
    assert "into a closed stream" in capsys.readouterr().err  # logging's own "--- Logging error ---" report
