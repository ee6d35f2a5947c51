"""The audit log: one JSON line per tool call that used a credential, appended, never rewritten.

    {"time": "2026-11-22T15:04:05.123Z", "tool": "github_get_user", "connector": "github",
     "account": "work", "client": "stdio", "outcome": "ok", "status": 200, "duration_ms": 84.2,
     "credentials": [{"name": "github_token@work", "source": "secret", "hmac": "hmac-sha256:9f2c…"}]}

Values never appear. As in HashiCorp Vault's audit devices, each credential is identified by an HMAC of
its value under a key kept beside the log (`<log>.key`, mode 0600): an operator who holds a suspect
token can compute its HMAC (`mcp-connectors audit hash`) and find every call that used it, while the
log alone reveals nothing about the values.

Each line is written with a single `write` on a descriptor opened with `O_APPEND`, so concurrent
servers sharing one log interleave whole lines. A failed write is logged and counted, not raised:
a full disk must not take every tool down with it (see the README's audit section).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

__all__ = ["AuditLog", "CredentialUse", "follow", "format_entry", "read_tail"]

logger = logging.getLogger("mcp_server.audit")
_KEY_LEN = 32
_REOPEN_AFTER_S = 1.0


@dataclass(frozen=True, slots=True)
class CredentialUse:
    name: str
    """The vault record or environment variable the value came from (`github_token@work`)."""
    source: str
    """`secret` (vault) or `env`."""
    fingerprint: str | None
    """`hmac-sha256:<hex>` of the value under the log's key; None for a record the pipeline did not read itself."""


class AuditLog:
    """Appends audit records to `path` (created 0600 with its parent directory)."""

    def __init__(self, path: Path, *, reopen_after_s: float = _REOPEN_AFTER_S) -> None:
        self.path = Path(path)
        self._reopen_after_s = reopen_after_s
        self._key: bytes | None = None
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._fd: int | None = None
        self._opened_at = 0.0
        self.failures = 0

    @property
    def key_file(self) -> Path:
        return self.path.with_name(self.path.name + ".key")

    def open(self) -> None:
        """Create the log and its key now, so a server that cannot audit refuses to start rather than run blind."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        self._hmac_key()

    def fingerprint(self, value: str) -> str:
        digest = hmac.digest(self._hmac_key(), value.encode("utf-8"), "sha256").hex()
        return f"hmac-sha256:{digest[:32]}"

    def credential_use(self, name: str, source: str, value: str) -> CredentialUse:
        try:
            fingerprint = self.fingerprint(value)
        except OSError:
            fingerprint = None  # the write below reports the unusable log
        return CredentialUse(name=name, source=source, fingerprint=fingerprint)

    def record(
        self,
        *,
        tool: str,
        connector: str,
        account: str | None,
        client: str,
        outcome: str,
        status: int | None,
        credentials: Sequence[CredentialUse],
        duration_ms: float,
    ) -> None:
        entry: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "tool": tool,
            "connector": connector,
            "account": account,
            "client": client,
            "outcome": outcome,
            "status": status,
            "duration_ms": round(duration_ms, 1),
            "credentials": [_credential_entry(use) for use in credentials],
        }
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        try:
            self._append(line)
        except OSError as exc:
            self.failures += 1
            logger.error("audit log %s: write failed (%s); the call itself went ahead", self.path, exc.strerror or exc)

    def _append(self, line: bytes) -> None:
        with self._write_lock:
            now = time.monotonic()
            if self._fd is None or now - self._opened_at >= self._reopen_after_s:
                # Reopened by name now and then, not per line: a rotated (renamed) log is followed within a
                # second, and the lines of that second land, whole, at the end of the renamed file.
                self._close_fd()
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._opened_at = now
            try:
                os.write(self._fd, line)
            except OSError:
                self._close_fd()  # the next line tries a fresh descriptor
                raise

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _hmac_key(self) -> bytes:
        if self._key is not None:
            return self._key
        with self._lock:
            if self._key is None:
                self._key = _load_or_create_key(self.key_file)
            return self._key


def _credential_entry(use: CredentialUse) -> dict[str, str]:
    entry = {"name": use.name, "source": use.source}
    if use.fingerprint is not None:
        entry["hmac"] = use.fingerprint
    return entry


def _load_or_create_key(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = secrets.token_bytes(_KEY_LEN)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:  # another server created it first: use theirs
            return _load_or_create_key(path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64encode(key) + b"\n")
        return key
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != _KEY_LEN:
        raise OSError(f"the audit key file {path} is damaged ({_KEY_LEN} bytes of base64 expected)")
    return key


def read_tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of the log, without reading all of a large file into memory at once."""
    if lines <= 0:
        return []
    tail: deque[str] = deque(maxlen=lines)
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            tail.append(line.rstrip("\n"))
    return list(tail)


def follow(path: Path, *, poll: float = 0.5) -> Iterator[str]:
    """Lines appended after now, as they arrive (`audit tail --follow`)."""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        handle.seek(0, os.SEEK_END)
        pending = ""
        while True:
            chunk = handle.readline()
            if not chunk:
                time.sleep(poll)
                continue
            pending += chunk
            if pending.endswith("\n"):
                yield pending.rstrip("\n")
                pending = ""


def format_entry(line: str) -> str:
    """One log line for people: time, client, tool, account, outcome, status, credential names."""
    try:
        parsed: object = json.loads(line)
    except ValueError:
        return line
    if not isinstance(parsed, dict):
        return line
    entry = cast(dict[str, Any], parsed)
    uses = cast(list[Any], entry.get("credentials") if isinstance(entry.get("credentials"), list) else [])
    names = ",".join(str(cast(dict[str, Any], c).get("name")) for c in uses if isinstance(c, dict))
    status = entry.get("status")
    return (
        f"{entry.get('time')}  {entry.get('client')}  {entry.get('tool')}  account={entry.get('account') or '-'}"
        f"  {entry.get('outcome')}  status={status if status is not None else '-'}  [{names}]"
    )
