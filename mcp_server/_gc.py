"""The cyclic garbage collector, set for a long-running server (measured in docs/benchmarks/changes.md, step 14).

Nearly everything alive once the server is up lives until it exits: modules, the SDK's pydantic models, the
catalog, its schemas and validators. CPython's collector still walks all of it in each full collection, and
with many calls in flight (more young objects, more collections) that walk was a large part of the extra
CPU per call at 64 in flight over HTTP. `gc.freeze()` moves what is alive into a generation no collection
walks; a higher first threshold makes collections rarer. Reference counting still frees what is no longer
used, frozen or not; only garbage in reference cycles waits for a collection.
"""

from __future__ import annotations

import gc

__all__ = ["SERVING_THRESHOLDS", "settle_heap", "tune_for_serving"]

SERVING_THRESHOLDS = (50_000, 20, 100)
"""CPython's defaults are (700, 10, 10): a young collection every 700 net container allocations."""


def settle_heap() -> None:
    """Collect what start-up (or a catalog reload) left behind, then exempt everything still alive.

    Unfreezing first lets the collection reach what an earlier freeze exempted, such as the previous
    catalog after a reload."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def tune_for_serving() -> None:
    """Once, after start-up and before serving."""
    gc.set_threshold(*SERVING_THRESHOLDS)
    settle_heap()
