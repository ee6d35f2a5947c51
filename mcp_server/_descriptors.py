"""What kind of file a standard descriptor is, for the stdio writers (standard library only: `_warm_start` runs
before anything else is imported)."""

from __future__ import annotations

import os
import stat


def kind(fd: int) -> str:
    """`fifo`, `socket`, `file` (a regular file) or `other` (a terminal, /dev/null, a closed descriptor)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return "other"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "file" if stat.S_ISREG(mode) else "other"


def same_file(a: int, b: int) -> bool:
    try:
        first, second = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def pipe_like(stdout: int, stdin: int) -> bool:
    """A pipe, or a socket other than stdin's: written without blocking (a socket that is stdin too shares its
    blocking flag with the reading side)."""
    out = kind(stdout)
    return out == "fifo" or (out == "socket" and not same_file(stdout, stdin))
