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
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

__all__ = [
    "ENV_STARTUP_CACHE",
    "FileStats",
    "Handshake",
    "Inputs",
    "Snapshot",
    "canonical",
    "file_stats",
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
_KEEP = 16
"""Snapshots kept per cache directory (one per configuration), the least recently written removed first."""
_MAX_BYTES = 512 * 1024 * 1024
_MAX_WATCHED_FILES = 20_000
"""A tools directory this large is a mistake (say `--tools /`); stop listing rather than stall."""
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
    """Where the snapshot of a start with this command line, environment and code lives; None when switched off."""
    directory = _cache_dir(environ)
    if directory is None:
        return None
    key = {
        "format": FORMAT,
        "python": [sys.executable, sys.version],
        "argv": list(argv),
        "cwd": cwd,
        "environ": dict(sorted(environ.items())),
        "code": _code_stats(),
    }
    digest = hashlib.sha256(canonical(key).encode("utf-8", "surrogatepass")).hexdigest()
    return directory / f"{digest[:40]}{_SUFFIX}"


def _cache_dir(environ: Mapping[str, str]) -> Path | None:
    chosen = environ.get(ENV_STARTUP_CACHE, "").strip()
    if chosen.lower() in ("off", "0", "false", "no"):
        return None
    if chosen:
        return Path(chosen).expanduser()
    base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".cache")
    return Path(base) / "mcp-connectors" / "startup"


def _code_stats() -> FileStats:
    ours = Path(__file__).parent
    paths = [str(p) for p in sorted(ours.glob("*.py"))]
    for name in _CODE_MODULES:
        with contextlib.suppress(ImportError, ValueError):
            spec = importlib.util.find_spec(name)  # a top-level name: found, not imported
            if spec is not None and spec.origin:
                paths.append(spec.origin)
    return file_stats(paths)


def read_snapshot(path: Path) -> Snapshot | None:
    """The snapshot at `path`, or None when there is none or it cannot be used (unreadable, malformed, other format)."""
    try:
        with open(path, "rb") as file:
            data = file.read(_MAX_BYTES + 1)
    except OSError:
        return None
    if len(data) > _MAX_BYTES:
        return None
    try:
        end = data.index(b"\n")
        header = json.loads(data[:end])
        return _decode(cast(dict[str, Any], header), memoryview(data)[end + 1 :])
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _decode(header: dict[str, Any], body: memoryview) -> Snapshot | None:
    if header["format"] != FORMAT:
        return None
    offset = 0

    def blob(length: object) -> bytes:
        nonlocal offset
        if not isinstance(length, int) or length < 0 or offset + length > len(body):
            raise ValueError("truncated")
        offset += length
        return bytes(body[offset - length : offset])

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

    Raises OSError when the cache directory cannot be written.
    """
    header = {
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
    parts = [json.dumps(header, ensure_ascii=False).encode("utf-8", "surrogatepass"), b"\n", snapshot.handshake.result]
    parts += snapshot.pages.values()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.writelines(parts)
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
        found = [(entry.stat().st_mtime_ns, entry) for entry in directory.iterdir() if entry.name.endswith(_SUFFIX)]
    except OSError:
        return
    found.sort(reverse=True)
    for _, stale in found[_KEEP:]:
        remove_snapshot(stale)
