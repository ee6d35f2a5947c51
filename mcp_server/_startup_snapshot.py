"""What the server answered to the last stdio handshake and tool listing, kept for the next start.

A desktop client launches the server afresh for every session and waits for `initialize` and the first
`tools/list`. Most of that wait is importing the SDK (~0.45 s) and loading the catalog (GitHub's description:
~0.4 s); the answers themselves depend only on the configuration, the manifests and the client's `initialize`
parameters. `_warm_start` answers from a snapshot of the previous start while the server loads, and
`_startup_recorder` writes the snapshot from the server's own wire bytes and checks every answer given from it.

The snapshot is only read when it was written for the same start: the key (the file name) covers the
command line, working directory, environment, Python and the installed code (ours and the SDK's); the
snapshot itself lists the stats of every file under the tools directories and of each imported OpenAPI
document, all compared before use. Where the configuration cannot be watched (a document fetched over HTTP),
none is written.

File format: one JSON header line, then the result texts back to back (their lengths are in the header).
Only standard-library imports here: this runs before the SDK is loaded.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import Any, cast

__all__ = [
    "ENV_STARTUP_CACHE",
    "FileStats",
    "Handshake",
    "Inputs",
    "Snapshot",
    "canonical",
    "file_stats",
    "private_directory",
    "read_snapshot",
    "remove_snapshot",
    "snapshot_path",
    "tree_stats",
    "write_snapshot",
]

ENV_STARTUP_CACHE = "MCP_CONNECTORS_STARTUP_CACHE"
"""Directory of start-up snapshots, or `off`; default `$XDG_CACHE_HOME/mcp-connectors/startup`."""

FORMAT = 1
_SUFFIX = ".snapshot"
_SNAPSHOT_NAME = re.compile(r"[0-9a-f]{40}\.snapshot\Z")
"""Only files named like ours are ever removed from the cache directory (it may be one the user chose)."""
_KEEP = 16
"""Snapshots kept per cache directory (one per configuration), the least recently written removed first."""
_MAX_BYTES = 512 * 1024 * 1024
_MAX_WATCHED_FILES = 20_000
"""A tools directory this large is a mistake (say `--tools /`); stop listing rather than stall."""
_KEY_BYTES = 32
_SHELL_BOOKKEEPING = frozenset({"_", "OLDPWD", "PWD", "SHLVL"})
"""Variables a shell sets as it goes, which nothing here reads: a start from another shell state is the same."""
_CODE_MODULES = ("mcp", "mcp_types", "pydantic", "pydantic_core")
"""Whose installed files (with ours) are part of the key: an upgrade may change what the SDK answers."""

FileStats = dict[str, tuple[int, int]]
"""path → (mtime_ns, size)."""


def tree_stats(directories: Iterable[Path]) -> FileStats:
    """mtime and size of every file under `directories` (recursively: OpenAPI documents may sit in subfolders)."""
    found: FileStats = {}
    for directory in directories:
        for root, dirs, files in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                if name.startswith("."):
                    continue  # editor swap files and the like
                path = os.path.join(root, name)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue
                found[path] = (stat.st_mtime_ns, stat.st_size)
                if len(found) >= _MAX_WATCHED_FILES:
                    return found
    return found


def file_stats(paths: Iterable[str]) -> FileStats:
    found: FileStats = {}
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            continue  # gone: the recorded stats will not match
        found[path] = (stat.st_mtime_ns, stat.st_size)
    return found


@dataclass(frozen=True, slots=True)
class Inputs:
    """The files a start read its catalog from, with their stats taken before reading them."""

    directories: tuple[str, ...]
    documents: tuple[str, ...]
    stats: FileStats = field(default_factory=dict[str, tuple[int, int]])

    def unchanged(self) -> bool:
        now = tree_stats(Path(d) for d in self.directories)
        now.update(file_stats(self.documents))
        return now == self.stats


@dataclass(frozen=True, slots=True)
class Handshake:
    """The `initialize` result the server gave for these exact parameters."""

    params: str
    """`canonical()` of the request's params."""
    version: str
    """The negotiated protocol version (the result's `protocolVersion`)."""
    result: bytes


@dataclass(frozen=True, slots=True)
class Snapshot:
    inputs: Inputs
    handshake: Handshake
    pages: Mapping[str | None, bytes]
    """`tools/list` result texts at `handshake.version`, by cursor (None: the first page)."""


def canonical(params: object) -> str:
    """One text per JSON value, whatever the member order or spacing it arrived with."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def snapshot_path(argv: Sequence[str], environ: Mapping[str, str], cwd: str) -> Path | None:
    """Where the snapshot of a start with this command line, environment and code lives; None when switched off
    or when the cache directory cannot be made private to this user.

    The name is an HMAC of all that under a random key kept in the directory (`.key`, owner-only): the
    environment may hold a vault passphrase or an API token, and a plain hash in a file name would let anyone
    who can list the directory test guesses of them.
    """
    directory = _cache_dir(environ)
    if directory is None:
        return None
    salt = _salt(directory)
    if salt is None:
        return None
    key = {
        "format": FORMAT,
        "python": [sys.executable, sys.version],
        "argv": list(argv),
        "cwd": cwd,
        "environ": {name: value for name, value in sorted(environ.items()) if name not in _SHELL_BOOKKEEPING},
        "code": _code_stats(),
        "distributions": _distributions(),
    }
    digest = hmac.new(salt, canonical(key).encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return directory / f"{digest[:40]}{_SUFFIX}"


def _salt(directory: Path) -> bytes | None:
    """The directory's key: made whole before it appears (a server starting at the same moment reads all of it
    or none), and replaced when it is damaged (a crash while writing it in an older version, a full disk)."""
    path = directory / ".key"
    with contextlib.suppress(OSError):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not private_directory(directory):
        return None
    data = _read_private(path, 64)
    if data is not None and len(data) == _KEY_BYTES:
        return data
    try:
        fresh = _private_temporary(path, os.urandom(_KEY_BYTES))
    except OSError:
        return None
    try:
        if data is None:
            with contextlib.suppress(FileExistsError):
                os.link(fresh, path)  # no clobber: another server's key, made meanwhile, wins
        else:
            os.replace(fresh, path)  # there, but damaged: ours instead
    except OSError:
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(fresh)
    data = _read_private(path, 64)
    return data if data is not None and len(data) == _KEY_BYTES else None


def _private_temporary(path: Path, data: bytes) -> Path:
    """A new owner-only file beside `path` holding `data` (never through a planted link)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return temporary


def _cache_dir(environ: Mapping[str, str]) -> Path | None:
    chosen = environ.get(ENV_STARTUP_CACHE, "").strip()
    if chosen.lower() in ("off", "0", "false", "no"):
        return None
    if chosen:
        return Path(chosen).expanduser()
    base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".cache")
    return Path(base) / "mcp-connectors" / "startup"


def _distributions() -> list[str]:
    """Names (with versions) of the installed distributions: `serverInfo.version` is read from ours, and an
    upgrade of the SDK or pydantic may change what the SDK answers."""
    found: set[str] = set()
    for entry in sys.path:
        with contextlib.suppress(OSError):
            found.update(name for name in os.listdir(entry or ".") if name.endswith((".dist-info", ".egg-info")))
    return sorted(found)


def _code_stats() -> FileStats:
    ours = Path(__file__).parent
    paths = [str(p) for p in sorted(ours.glob("*.py"))]
    for name in _CODE_MODULES:
        with contextlib.suppress(ImportError, ValueError):
            spec = importlib.util.find_spec(name)  # a top-level name: found, not imported
            if spec is not None and spec.origin:
                paths.append(spec.origin)
    return file_stats(paths)


def private_directory(directory: Path) -> bool:
    """Whether `directory` is ours alone: owned by this user, writable by no one else, not a symbolic link.

    A snapshot is what the client is told the tools are: one planted by another user could describe any tools.
    """
    try:
        stat = os.lstat(directory)
    except OSError:
        return False
    return S_ISDIR(stat.st_mode) and stat.st_uid == os.getuid() and not stat.st_mode & 0o022


def _read_private(path: Path, limit: int) -> bytes | None:
    """The file's bytes if it is a regular file of this user's that no one else may write (not a link, a FIFO
    or a device, which could block or never end) and at most `limit` bytes long."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        stat = os.fstat(fd)
        if not S_ISREG(stat.st_mode) or stat.st_uid != os.getuid() or stat.st_mode & 0o022:
            return None
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) <= limit else None


def read_snapshot(path: Path) -> Snapshot | None:
    """The snapshot at `path`, or None when there is none or it cannot be used: unreadable, damaged (its digest),
    malformed, another format, or not private to this user (see `_read_private`, `private_directory`)."""
    if not private_directory(path.parent):
        return None
    data = _read_private(path, _MAX_BYTES)
    if data is None:
        return None
    try:
        end = data.index(b"\n")
        header = cast(dict[str, Any], json.loads(data[:end]))
        body = memoryview(data)[end + 1 :]
        if not hmac.compare_digest(str(header["sha256"]), hashlib.sha256(body).hexdigest()):
            return None
        return _decode(header, body)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _decode(header: dict[str, Any], body: memoryview) -> Snapshot | None:
    if header["format"] != FORMAT:
        return None
    offset = 0

    def blob(length: object) -> bytes:
        """One result text: a JSON object on one line (it is written into the protocol stream as it is)."""
        nonlocal offset
        if not isinstance(length, int) or length < 2 or offset + length > len(body):
            raise ValueError("truncated")
        offset += length
        text = bytes(body[offset - length : offset])
        if not (text.startswith(b"{") and text.endswith(b"}")) or b"\n" in text or b"\r" in text:
            raise ValueError("not one JSON object on one line")
        return text

    raw_inputs, raw_handshake = header["inputs"], header["handshake"]
    stats: FileStats = {}
    for path, (mtime, size) in raw_inputs["stats"].items():
        if not (isinstance(path, str) and isinstance(mtime, int) and isinstance(size, int)):
            return None
        stats[path] = (mtime, size)
    inputs = Inputs(_strings(raw_inputs["directories"]), _strings(raw_inputs["documents"]), stats)
    params, version = raw_handshake["params"], raw_handshake["version"]
    if not (isinstance(params, str) and isinstance(version, str)):
        return None
    handshake = Handshake(params, version, blob(raw_handshake["length"]))
    pages: dict[str | None, bytes] = {}
    for cursor, length in header["pages"]:
        if cursor is not None and not isinstance(cursor, str):
            return None
        pages[cursor] = blob(length)
    if offset != len(body):
        return None
    return Snapshot(inputs, handshake, pages)


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in cast(list[object], value)):
        raise ValueError("not a list of strings")
    return tuple(cast(list[str], value))


def write_snapshot(path: Path, snapshot: Snapshot) -> None:
    """Write atomically (readers see the old file or the new one), owner-only; keep the newest `_KEEP` per directory.

    Raises OSError when the cache directory cannot be written or is not private to this user (`private_directory`).
    """
    header: dict[str, object] = {
        "format": FORMAT,
        "inputs": {
            "directories": list(snapshot.inputs.directories),
            "documents": list(snapshot.inputs.documents),
            "stats": {p: list(s) for p, s in snapshot.inputs.stats.items()},
        },
        "handshake": {
            "params": snapshot.handshake.params,
            "version": snapshot.handshake.version,
            "length": len(snapshot.handshake.result),
        },
        "pages": [[cursor, len(text)] for cursor, text in snapshot.pages.items()],
    }
    body = [snapshot.handshake.result, *snapshot.pages.values()]
    digest = hashlib.sha256()
    for part in body:
        digest.update(part)
    header["sha256"] = digest.hexdigest()
    parts = [json.dumps(header, ensure_ascii=False).encode("utf-8", "surrogatepass"), b"\n", *body]
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not private_directory(path.parent):
        raise PermissionError(errno.EPERM, "not private to this user (another owner, or writable by others)")
    temporary = _private_temporary(path, b"".join(parts))
    try:
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _evict(path.parent)


def remove_snapshot(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _evict(directory: Path) -> None:
    try:
        found = [(entry.stat().st_mtime_ns, entry) for entry in directory.iterdir() if _SNAPSHOT_NAME.match(entry.name)]
    except OSError:
        return
    found.sort(reverse=True)
    for _, stale in found[_KEEP:]:
        remove_snapshot(stale)
