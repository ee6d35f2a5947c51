"""The webhook event store on its own: deduplication, pruning with tombstones, queries, durability, file mode."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

from mcp_server._events import EventQuery, EventStore


def add(store: EventStore, event_id: str, kind: str = "invoice.paid", at: float = 1000.0, **bounds: int) -> bool:
    """Append one event; True when it was new."""
    _, duplicate = store.append(
        "stripe",
        event_id,
        kind,
        at,
        json.dumps({"id": event_id}),
        max_events=bounds.get("max_events", 100),
        remembered_ids=bounds.get("remembered_ids", 100),
    )
    return not duplicate


def ids(store: EventStore, query: EventQuery | None = None) -> list[str]:
    return [event.event_id for event in store.query("stripe", query or EventQuery(limit=100))]


def test_duplicates_are_refused_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "data" / "events.sqlite3"
    store = EventStore(path)
    assert add(store, "evt_1") and add(store, "evt_2")
    assert not add(store, "evt_1")
    store.close()
    reopened = EventStore(path)
    assert not add(reopened, "evt_2")  # remembered on disk, not in memory
    assert ids(reopened) == ["evt_2", "evt_1"]  # newest first
    _, duplicate = reopened.append("github", "evt_1", None, 1.0, "{}", max_events=5, remembered_ids=5)
    assert not duplicate  # ids are per connector
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_pruning_keeps_the_newest_and_remembers_pruned_ids(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.sqlite3")
    for n in range(8):
        assert add(store, f"evt_{n}", max_events=5, remembered_ids=2)
    assert ids(store) == [f"evt_{n}" for n in (7, 6, 5, 4, 3)]
    assert store.count("stripe") == 5
    # evt_1 and evt_2 are tombstones (the last 2 pruned); evt_0 has been forgotten entirely.
    assert not add(store, "evt_2", max_events=5, remembered_ids=2)
    assert not add(store, "evt_1", max_events=5, remembered_ids=2)
    assert add(store, "evt_0", max_events=5, remembered_ids=2)
    assert ids(store)[0] == "evt_0" and store.count("stripe") == 5
    # seq never goes back, even after deletions: it is the SSE stream's resume point.
    seqs = [event.seq for event in store.query("stripe", EventQuery(limit=10))]
    assert seqs == sorted(seqs, reverse=True) and seqs[0] == 9


def test_queries(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.sqlite3")
    add(store, "a", "invoice.paid", at=100)
    add(store, "b", "invoice.voided", at=200)
    add(store, "c", "charge.succeeded", at=300)
    add(store, "d", "invoice.paid", at=400)
    assert ids(store, EventQuery(type_glob="invoice.*")) == ["d", "b", "a"]
    assert ids(store, EventQuery(type_glob="*.paid")) == ["d", "a"]
    assert ids(store, EventQuery(type_glob="Invoice.*")) == []  # case-sensitive, like the types themselves
    assert ids(store, EventQuery(since=200, until=300)) == ["c", "b"]
    assert ids(store, EventQuery(limit=2)) == ["d", "c"]
    newest = store.query("stripe", EventQuery(limit=2))
    assert ids(store, EventQuery(limit=2, before_seq=newest[-1].seq)) == ["b", "a"]
    assert [e.event_id for e in store.after("stripe", newest[-1].seq)] == ["d"]
    assert store.last_seq("stripe") == newest[0].seq and store.last_seq("nobody") == 0
    event = newest[0].to_json()
    assert event["id"] == "d" and event["type"] == "invoice.paid" and event["payload"] == {"id": "d"}
    assert event["time"] == "1970-01-01T00:06:40Z"


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    stores = [EventStore(path) for _ in range(4)]  # four connections, as four processes would have
    outcomes: list[bool] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(len(stores))

    def write(store: EventStore, worker: int) -> None:
        start.wait()  # every store opens the new file at the same moment, as processes starting together would
        try:
            for n in range(50):
                new = add(store, f"evt_{n % 40}_{worker % 2}", max_events=1000)  # workers 0/2 and 1/3 collide
                with lock:
                    outcomes.append(new)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(store, i)) for i, store in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(outcomes) == 200
    assert outcomes.count(True) == 80  # 40 ids x 2 groups, each stored exactly once
    assert len(set(ids(EventStore(path), EventQuery(limit=1000)))) == 80
