"""Webhook events: a durable, bounded store (SQLite) and the in-process wake-ups of its readers.

Why SQLite (the standard library's) rather than JSON lines: deduplication by event id must survive
restarts and pruning must drop the oldest events per connector; a unique index and one transaction per
delivery give both, where a JSON-lines file would need a rewrite to prune and a full scan (or a second
index file) to deduplicate. Concurrent deliveries and a second process reading (`serve` over stdio
listing events) are SQLite's business, with WAL so readers never block the writer.

One table, `webhook_events`:

    seq          INTEGER PRIMARY KEY AUTOINCREMENT   never reused, so it is the SSE event id (Last-Event-ID)
    connector    TEXT
    event_id     TEXT       UNIQUE with connector: a second delivery of an id is a duplicate
    event_type   TEXT       (nullable)
    occurred_at  REAL       the event's own time (unix seconds), else when it arrived
    received_at  REAL
    payload      TEXT       the JSON body; NULL once pruned

Pruning keeps `max_events` events per connector; a pruned event's row stays as a tombstone (payload
NULL) so a replay of its id is still refused, and tombstones beyond `remembered_ids` are deleted.
The file is created 0600 in a 0700 directory (payloads are the sender's data), `synchronous=FULL` so a
delivery answered 200 is on disk, and every write is one `BEGIN IMMEDIATE` transaction: a failed
delivery changes nothing.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from mcp_server._model import Catalog, Connector

logger = logging.getLogger("mcp_server.events")

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000
"""Another process holding the write lock is waited for this long before a delivery fails (503)."""
OPEN_RETRY_S = 0.02
"""Between attempts to open a store another process is setting up at the same moment."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    connector TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT,
    occurred_at REAL NOT NULL,
    received_at REAL NOT NULL,
    payload TEXT,
    UNIQUE (connector, event_id)
);
CREATE INDEX IF NOT EXISTS webhook_events_live ON webhook_events (connector, seq) WHERE payload IS NOT NULL;
CREATE INDEX IF NOT EXISTS webhook_events_time ON webhook_events (connector, occurred_at) WHERE payload IS NOT NULL;
"""
_COLUMNS = "seq, connector, event_id, event_type, occurred_at, received_at, payload"


class EventStoreError(Exception):
    """The event store cannot be used (unwritable, not a database, locked too long); the message names the file."""


def iso_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    connector: str
    event_id: str
    event_type: str | None
    occurred_at: float
    received_at: float
    payload: str
    """The JSON text as stored."""

    def to_json(self) -> dict[str, Any]:
        """The shape every reader sees: `list_events`, `events://<connector>`, the SSE stream."""
        return {
            "seq": self.seq,
            "id": self.event_id,
            "type": self.event_type,
            "time": iso_time(self.occurred_at),
            "received_at": iso_time(self.received_at),
            "payload": json.loads(self.payload),
        }


@dataclass(frozen=True, slots=True)
class EventQuery:
    type_glob: str | None = None
    """SQLite GLOB over the event type: `*`, `?`, `[abc]`; case-sensitive."""
    since: float | None = None
    until: float | None = None
    before_seq: int | None = None
    limit: int = 20


class EventStore:
    """The SQLite file; every method blocks (the async callers run them in a worker thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                self._db = self._open()
                return self._db
            except (OSError, sqlite3.Error) as exc:
                # Several processes opening a new store at once: SQLite answers "database is locked" at once,
                # without waiting, where waiting could deadlock (switching to WAL, two schema writers). Again.
                locked = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
                if not locked or time.monotonic() > deadline:
                    raise EventStoreError(f"event store {self.path} cannot be opened: {exc}") from None
            time.sleep(OPEN_RETRY_S)

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created 0600 before SQLite opens it; SQLite gives its -wal and -shm files the same mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                newer = f"event store {self.path} was written by a newer mcp-connectors (schema {version})"
                raise EventStoreError(newer)
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def append(
        self,
        connector: str,
        event_id: str,
        event_type: str | None,
        occurred_at: float,
        payload: str,
        *,
        max_events: int,
        remembered_ids: int,
        received_at: float | None = None,
    ) -> tuple[StoredEvent, bool]:
        """Store one event and prune; (the event, False), or (the stored one, True) when its id is known already."""
        received = time.time() if received_at is None else received_at
        with self._lock:
            db = self._connection()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    cursor = db.execute(
                        "INSERT OR IGNORE INTO webhook_events (connector, event_id, event_type, occurred_at, "
                        "received_at, payload) VALUES (?, ?, ?, ?, ?, ?)",
                        (connector, event_id, event_type, occurred_at, received, payload),
                    )
                    if cursor.rowcount == 0:
                        db.execute("ROLLBACK")
                        return self._existing(db, connector, event_id), True
                    seq = int(cursor.lastrowid or 0)
                    self._prune(db, connector, max_events, remembered_ids)
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise EventStoreError(f"event store {self.path}: {exc}") from None
        return StoredEvent(seq, connector, event_id, event_type, occurred_at, received, payload), False

    @staticmethod
    def _existing(db: sqlite3.Connection, connector: str, event_id: str) -> StoredEvent:
        sql = f"SELECT {_COLUMNS} FROM webhook_events WHERE connector = ? AND event_id = ?"  # noqa: S608 - constant
        row = db.execute(sql, (connector, event_id)).fetchone()
        return _event((*row[:6], row[6] if row[6] is not None else "null"))  # a pruned event's payload is gone

    @staticmethod
    def _prune(db: sqlite3.Connection, connector: str, max_events: int, remembered_ids: int) -> None:
        # The seq of the newest event past the bound; it and everything older lose their payload.
        db.execute(
            "UPDATE webhook_events SET payload = NULL WHERE connector = ?1 AND payload IS NOT NULL AND seq <= ("
            " SELECT seq FROM webhook_events WHERE connector = ?1 AND payload IS NOT NULL"
            " ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
            (connector, max_events),
        )
        db.execute(
            "DELETE FROM webhook_events WHERE connector = ?1 AND payload IS NULL AND seq <= ("
            " SELECT seq FROM webhook_events WHERE connector = ?1 AND payload IS NULL"
            " ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
            (connector, remembered_ids),
        )

    def query(self, connector: str, query: EventQuery) -> list[StoredEvent]:
        """Kept events of `connector` matching `query`, newest first."""
        clauses = ["connector = ?", "payload IS NOT NULL"]
        values: list[Any] = [connector]
        if query.type_glob is not None:
            clauses.append("event_type GLOB ?")
            values.append(query.type_glob)
        if query.since is not None:
            clauses.append("occurred_at >= ?")
            values.append(query.since)
        if query.until is not None:
            clauses.append("occurred_at <= ?")
            values.append(query.until)
        if query.before_seq is not None:
            clauses.append("seq < ?")
            values.append(query.before_seq)
        # Only constant clauses are joined; every value is a bound parameter.
        where = " AND ".join(clauses)
        sql = f"SELECT {_COLUMNS} FROM webhook_events WHERE {where} ORDER BY seq DESC LIMIT ?"  # noqa: S608
        return self._select(sql, (*values, query.limit))

    def after(self, connector: str, seq: int, limit: int = 100) -> list[StoredEvent]:
        """Kept events of `connector` after `seq`, oldest first (an SSE stream catching up)."""
        sql = (
            f"SELECT {_COLUMNS} FROM webhook_events "  # noqa: S608 - a constant column list
            "WHERE connector = ? AND payload IS NOT NULL AND seq > ? ORDER BY seq LIMIT ?"
        )
        return self._select(sql, (connector, seq, limit))

    def last_seq(self, connector: str) -> int:
        """The newest seq of `connector` (0 when it has none): where a stream without Last-Event-ID starts."""
        with self._lock:
            try:
                row = (
                    self._connection()
                    .execute("SELECT MAX(seq) FROM webhook_events WHERE connector = ?", (connector,))
                    .fetchone()
                )
            except sqlite3.Error as exc:
                raise EventStoreError(f"event store {self.path}: {exc}") from None
        return int(row[0] or 0)

    def count(self, connector: str) -> int:
        with self._lock:
            try:
                row = (
                    self._connection()
                    .execute(
                        "SELECT COUNT(*) FROM webhook_events WHERE connector = ? AND payload IS NOT NULL", (connector,)
                    )
                    .fetchone()
                )
            except sqlite3.Error as exc:
                raise EventStoreError(f"event store {self.path}: {exc}") from None
        return int(row[0])

    def _select(self, sql: str, values: tuple[Any, ...]) -> list[StoredEvent]:
        with self._lock:
            try:
                rows = self._connection().execute(sql, values).fetchall()
            except sqlite3.Error as exc:
                raise EventStoreError(f"event store {self.path}: {exc}") from None
        return [_event(row) for row in rows]


def _event(row: tuple[Any, ...]) -> StoredEvent:
    seq, connector, event_id, event_type, occurred_at, received_at, payload = row
    return StoredEvent(int(seq), connector, event_id, event_type, float(occurred_at), float(received_at), payload)


# ---------------------------------------------------------------------------------------------- the hub

Listener = Callable[[str], Awaitable[None]]
"""Called with a connector name after new events of it were stored (coalesced: once per burst)."""


class EventHub:
    """The store plus who wants to hear about new events: SSE streams (per-connector wake-ups, reading the store
    themselves, so a slow reader loses nothing) and listeners such as MCP resource notifications (run by one worker
    task, so a slow MCP client never delays the webhook's answer)."""

    def __init__(self, store: EventStore, catalog: Callable[[], Catalog]) -> None:
        """`catalog` returns the catalog served now (a reload replaces it)."""
        self.store = store
        self._catalog = catalog
        self.listeners: list[Listener] = []
        self._wakeups: dict[str, anyio.Event] = {}
        self._dirty: set[str] = set()
        self._work = anyio.Event()
        self.closed = False
        self._source: Catalog | None = None
        self._connectors: dict[str, Connector] = {}

    def connectors(self) -> Mapping[str, Connector]:
        """Loaded connectors with a `webhooks:` block, by name; a new mapping whenever a reload changed the catalog.

        From the catalog, not the registry: `--include-tools`/`--exclude-tools` choose which tools are served, not
        which deliveries are accepted."""
        catalog = self._catalog()
        if catalog is not self._source:
            self._connectors = {c.name: c for c in catalog.connectors if c.webhooks is not None}
            self._source = catalog
        return self._connectors

    def known(self, name: str) -> bool:
        """Whether a connector of that name is loaded at all (with or without webhooks)."""
        return any(c.name == name for c in self._catalog().connectors)

    def wakeup(self, connector: str) -> anyio.Event:
        """Set at the next new event of `connector` (or at shutdown); take it *before* reading the store."""
        event = self._wakeups.get(connector)
        if event is None:
            event = self._wakeups[connector] = anyio.Event()
            if self.closed:
                event.set()
        return event

    async def record(
        self, connector: Connector, event_id: str, event_type: str | None, occurred_at: float, payload: str
    ) -> tuple[StoredEvent, bool]:
        """Store one event (in a worker thread) and wake its readers; raises `EventStoreError`."""
        spec = connector.webhooks
        assert spec is not None
        stored, duplicate = await anyio.to_thread.run_sync(
            lambda: self.store.append(
                connector.name,
                event_id,
                event_type,
                occurred_at,
                payload,
                max_events=spec.max_events,
                remembered_ids=spec.remembered_ids,
            )
        )
        if not duplicate:
            self.changed(connector.name)
        return stored, duplicate

    def changed(self, connector: str) -> None:
        wakeup = self._wakeups.pop(connector, None)
        if wakeup is not None:
            wakeup.set()
        if self.listeners:
            self._dirty.add(connector)
            self._work.set()

    async def _notify(self) -> None:
        while True:
            await self._work.wait()
            self._work = anyio.Event()
            dirty, self._dirty = self._dirty, set()
            for connector in sorted(dirty):
                for listener in list(self.listeners):
                    try:
                        await listener(connector)
                    except Exception:  # notifications are advisory; one failing must not stop the others
                        logger.exception("notifying about new events of %s failed", connector)

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[None]:
        """The notification worker, for as long as the HTTP app runs; the store is closed afterwards."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._notify)
            try:
                yield
            finally:
                self.close()
                group.cancel_scope.cancel()
        self.store.close()

    def close(self) -> None:
        """End every SSE stream (shutdown): they wake up, see `closed` and return."""
        self.closed = True
        wakeups, self._wakeups = self._wakeups, {}
        for event in wakeups.values():
            event.set()
