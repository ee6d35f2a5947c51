"""Settings of the built-in tools (`batch_invoke`, `<connector>_list_events`) and the webhook event store.

A leaf module, so `_config.Settings` can carry them without importing the modules that use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENV_EVENTS_DB = "MCP_CONNECTORS_EVENTS_DB"
ENV_BATCH_MAX_CALLS = "MCP_CONNECTORS_BATCH_MAX_CALLS"
ENV_BATCH_CONCURRENCY = "MCP_CONNECTORS_BATCH_CONCURRENCY"
DEFAULT_BATCH_MAX_CALLS = 20
DEFAULT_BATCH_CONCURRENCY = 4
BATCH_MAX_CALLS_CEILING = 1000
EVENTS_FILE = "events.sqlite3"


def _whole_number(environ: Mapping[str, str], name: str, default: int, ceiling: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= ceiling:
        raise ValueError(f"{name}={text!r}: write a whole number from 1 to {ceiling}")
    return int(text)


@dataclass(frozen=True, slots=True)
class LocalToolSettings:
    events_db: Path | None = None
    """`MCP_CONNECTORS_EVENTS_DB`: the webhook event store; None means `events.sqlite3` beside the vault."""

    batch_max_calls: int = DEFAULT_BATCH_MAX_CALLS
    """`MCP_CONNECTORS_BATCH_MAX_CALLS`: calls one `batch_invoke` may carry."""

    batch_concurrency: int = DEFAULT_BATCH_CONCURRENCY
    """`MCP_CONNECTORS_BATCH_CONCURRENCY`: calls of one batch running at once."""

    def events_path(self, vault_path: Path) -> Path:
        return self.events_db if self.events_db is not None else vault_path.with_name(EVENTS_FILE)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> LocalToolSettings:
        """ValueError (naming the variable) for a malformed value."""
        events = environ.get(ENV_EVENTS_DB, "").strip()
        return cls(
            events_db=Path(events).expanduser() if events else None,
            batch_max_calls=_whole_number(
                environ, ENV_BATCH_MAX_CALLS, DEFAULT_BATCH_MAX_CALLS, BATCH_MAX_CALLS_CEILING
            ),
            batch_concurrency=_whole_number(
                environ, ENV_BATCH_CONCURRENCY, DEFAULT_BATCH_CONCURRENCY, BATCH_MAX_CALLS_CEILING
            ),
        )
