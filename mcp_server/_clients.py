"""Static client tokens for the HTTP transports: the clients file and token lookup.

File format (UTF-8 JSON, mode 0600, replaced atomically; writers serialise on ``<file>.lock``)::

    {"version": 1,
     "clients": {"alice": {"token_sha256": "<hex>", "scopes": ["tools:github:*"], "tenant": "alice",
                           "accounts": {"stripe": "test"}, "created_at": "2025-01-01T00:00:00Z",
                           "expires_at": null, "rate_limit": "60/60", "max_concurrent": 4}}}

A token is ``mcpc_`` and 256 random bits (base64url). Only its SHA-256 is stored. A fast hash is enough
here, unlike for passwords: slow hashes (bcrypt, scrypt, Argon2) exist to make guessing a low-entropy
secret expensive, and guessing a 256-bit random value is out of reach at any hashing speed, so a stolen
file yields no token. It also makes lookup a dictionary hit on the hash, with no per-client comparison
whose timing could say anything about a stored token.

The server re-reads the file whenever its (mtime, size, inode) changes, so `clients revoke` and an
expiry take effect on the next request without a restart. A file that cannot be parsed refuses every
static token (fail closed) until it is fixed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from filelock import FileLock, Timeout

from mcp_server._config import RateSpec, parse_accounts
from mcp_server._scopes import is_scope
from mcp_server._vault import write_private_file

__all__ = ["ClientRecord", "ClientsFile", "ClientsFileError", "hash_token", "new_token"]

logger = logging.getLogger("mcp_server.clients")

TOKEN_PREFIX = "mcpc_"  # noqa: S105 - a prefix secret scanners can match, not a secret
FILE_VERSION = 1
CLIENT_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_LOCK_TIMEOUT_S = 10.0


class ClientsFileError(Exception):
    """The clients file cannot be read or written; the message names it."""


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """One client as the file describes it (never its token)."""

    name: str
    token_sha256: str = field(repr=False)
    scopes: tuple[str, ...]
    accounts: Mapping[str, str] = field(default_factory=dict[str, str])
    """Connector (or `*`, the tenant) → vault account of this client's calls; empty: the server's accounts."""
    created_at: float = 0.0
    expires_at: float | None = None
    rate_limit: RateSpec | None = None
    """None: the server default; see `rate_limit_off`."""
    rate_limit_off: bool = False
    max_concurrent: int | None = None
    """None: the server default; 0: unbounded."""

    @property
    def tenant(self) -> str | None:
        return self.accounts.get("*")

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def to_json(self) -> dict[str, Any]:
        accounts = {k: v for k, v in self.accounts.items() if k != "*"}
        rate: str | None = "off" if self.rate_limit_off else (str(self.rate_limit) if self.rate_limit else None)
        return {
            "token_sha256": self.token_sha256,
            "scopes": list(self.scopes),
            "tenant": self.tenant,
            "accounts": accounts,
            "created_at": _now_iso(self.created_at),
            "expires_at": _now_iso(self.expires_at) if self.expires_at is not None else None,
            "rate_limit": rate,
            "max_concurrent": self.max_concurrent,
        }

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> ClientRecord:
        if not CLIENT_NAME_RE.fullmatch(name):
            raise ValueError(f"client name {name!r} is not 1 to 64 letters, digits, _ . -")
        digest = data.get("token_sha256")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"client {name!r}: token_sha256 is not a SHA-256 hex digest")
        scopes = data.get("scopes")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in cast(list[Any], scopes)):
            raise ValueError(f"client {name!r}: scopes must be a list of strings")
        raw_accounts: object = data.get("accounts") or {}
        if not isinstance(raw_accounts, dict):
            raise ValueError(f"client {name!r}: accounts must be an object")
        pairs = [f"{k}={v}" for k, v in cast(dict[str, Any], raw_accounts).items()]
        tenant = data.get("tenant")
        if tenant is not None:
            pairs.append(f"*={tenant}")
        accounts = parse_accounts(pairs)
        rate_text = data.get("rate_limit")
        rate = RateSpec.parse(str(rate_text)) if rate_text is not None else None
        concurrent = data.get("max_concurrent")
        if concurrent is not None and (not isinstance(concurrent, int) or concurrent < 0):
            raise ValueError(f"client {name!r}: max_concurrent must be a whole number")
        expires = data.get("expires_at")
        return cls(
            name=name,
            token_sha256=digest,
            scopes=tuple(cast(list[str], scopes)),
            accounts=accounts,
            created_at=_parse_time(str(data["created_at"])) if data.get("created_at") else 0.0,
            expires_at=_parse_time(str(expires)) if expires else None,
            rate_limit=rate,
            rate_limit_off=rate_text is not None and rate is None,
            max_concurrent=concurrent,
        )


@dataclass(frozen=True, slots=True)
class _Snapshot:
    stamp: tuple[int, int, int] | None
    by_hash: Mapping[str, ClientRecord]
    error: str | None = None


class ClientsFile:
    """The clients file: lookups for the server (lock-free, re-read on change), edits for the CLI (locked)."""

    def __init__(self, path: Path, *, clock: Any = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._snapshot: _Snapshot | None = None

    @property
    def lock_file(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def exists(self) -> bool:
        return self.path.exists()

    # -- reading ---------------------------------------------------------------------------------------

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _current(self) -> _Snapshot:
        stamp = self._stamp()
        snapshot = self._snapshot
        if snapshot is not None and snapshot.stamp == stamp:
            return snapshot
        if stamp is None:
            snapshot = _Snapshot(None, {})
        else:
            try:
                records = self._read()
                snapshot = _Snapshot(stamp, {r.token_sha256: r for r in records.values()})
            except ClientsFileError as exc:
                logger.error("%s; every client token is refused until it is fixed", exc)
                snapshot = _Snapshot(stamp, {}, error=str(exc))
        self._snapshot = snapshot
        return snapshot

    def lookup(self, token: str) -> ClientRecord | None:
        """The client whose token this is, expired or not; None for an unknown or revoked token."""
        return self._current().by_hash.get(hash_token(token))

    def records(self) -> dict[str, ClientRecord]:
        """Every client, by name; raises `ClientsFileError` for a file that cannot be used."""
        return self._read()

    def _read(self) -> dict[str, ClientRecord]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ClientsFileError(f"cannot read the clients file {self.path}: {exc.strerror or exc}") from None
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict) or cast(dict[str, Any], doc).get("version") != FILE_VERSION:
                raise ValueError(f"not a version {FILE_VERSION} clients file")
            clients: object = cast(dict[str, Any], doc).get("clients", {})
            if not isinstance(clients, dict):
                raise ValueError('"clients" must be an object')
            entries = cast(dict[str, Any], clients)
            if not all(isinstance(data, dict) for data in entries.values()):
                raise ValueError("every client must be an object")
            return {name: ClientRecord.from_json(name, cast(Mapping[str, Any], data)) for name, data in entries.items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise ClientsFileError(f"the clients file {self.path} is not valid: {exc}") from None

    # -- writing ---------------------------------------------------------------------------------------

    def add(
        self,
        name: str,
        *,
        scopes: Sequence[str],
        accounts: Mapping[str, str] | None = None,
        expires_in_days: float | None = None,
        rate_limit: str | None = None,
        max_concurrent: int | None = None,
    ) -> str:
        """Create client `name` and return its token (the only time it exists outside the caller)."""
        if not CLIENT_NAME_RE.fullmatch(name):
            raise ValueError(f"client name {name!r} must be 1 to 64 letters, digits, _ . -")
        unknown = [s for s in scopes if not is_scope(s)]
        if unknown:
            raise ValueError(
                f"not a scope: {', '.join(map(repr, unknown))}; use tools:*, tools:*:read, tools:CONNECTOR:*, "
                "tools:CONNECTOR:read, tools:TOOL or operator"
            )
        if expires_in_days is not None and not expires_in_days > 0:
            raise ValueError("--expires must be a positive number of days")
        rate = RateSpec.parse(rate_limit) if rate_limit is not None else None
        token = new_token()
        now = self._clock()
        record = ClientRecord(
            name=name,
            token_sha256=hash_token(token),
            scopes=tuple(dict.fromkeys(scopes)),
            accounts=dict(accounts or {}),
            created_at=now,
            expires_at=now + expires_in_days * 86400 if expires_in_days is not None else None,
            rate_limit=rate,
            rate_limit_off=rate_limit is not None and rate is None,
            max_concurrent=max_concurrent,
        )
        with self._locked():
            records = self._read()
            if name in records:
                raise ValueError(f"client {name!r} already exists; `mcp-connectors clients revoke {name}` first")
            records[name] = record
            self._write(records)
        return token

    def revoke(self, name: str) -> bool:
        """Remove client `name`; False if there was none. Its token stops working on the next request."""
        with self._locked():
            records = self._read()
            if records.pop(name, None) is None:
                return False
            self._write(records)
        return True

    def _write(self, records: Mapping[str, ClientRecord]) -> None:
        doc = {"version": FILE_VERSION, "clients": {name: r.to_json() for name, r in sorted(records.items())}}
        data = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            write_private_file(self.path, data)
        except OSError as exc:
            raise ClientsFileError(f"could not write the clients file {self.path}: {exc.strerror or exc}") from None

    @contextlib.contextmanager
    def _locked(self) -> Generator[None]:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock = FileLock(self.lock_file, timeout=_LOCK_TIMEOUT_S, mode=0o600)
            lock.acquire()
        except Timeout:
            raise ClientsFileError(
                f"the clients file {self.path} is locked by another process ({self.lock_file}); retry"
            ) from None
        except OSError as exc:
            raise ClientsFileError(f"cannot lock the clients file {self.path}: {exc.strerror or exc}") from None
        try:
            yield
        finally:
            lock.release()
