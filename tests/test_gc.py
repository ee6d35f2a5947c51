"""`_gc`: the collector settings the server runs with, checked in a fresh interpreter (they are process-wide)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip()


def test_serving_freezes_what_is_alive_and_raises_the_thresholds() -> None:
    out = run(
        """
        import gc
        import mcp_server._cli  # what a server has loaded by then: the SDK, pydantic, our modules
        from mcp_server._gc import SERVING_THRESHOLDS, tune_for_serving
        before = gc.get_freeze_count()
        tune_for_serving()
        print(gc.get_threshold() == SERVING_THRESHOLDS, before == 0, gc.get_freeze_count() > 10_000)
        """
    )
    assert out == "True True True"


def test_a_cycle_frozen_at_start_up_is_collected_when_the_heap_is_settled_again() -> None:
    out = run(
        """
        import gc, weakref
        from mcp_server._gc import settle_heap, tune_for_serving

        class Node:
            pass

        old = Node()
        old.me = old  # a reference cycle, like an old catalog's
        alive = weakref.ref(old)
        tune_for_serving()
        del old
        gc.collect()
        print(alive() is not None)  # frozen: no collection reaches it
        settle_heap()  # what a catalog reload does
        print(alive() is None)
        """
    )
    assert out.split() == ["True", "True"]
