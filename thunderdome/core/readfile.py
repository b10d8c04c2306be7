"""Reading files someone handed us, within bounds.

Invariant: ``read_limited`` never blocks on a FIFO, never reads a device or a
file past its limit, and answers within a second with one line saying why a
file was refused; what it returns is at most ``limit`` bytes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from thunderdome.core.errors import ThunderdomeError

MIB = 1024 * 1024


class FileRefused(ThunderdomeError):
    """A file cannot be read as asked: missing, not a regular file, too
    large, unreadable. The message is one line naming the file."""


def _size(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n < 1024 * MIB else f"{n / (1024 * MIB):.1f} GiB"


def open_limited(path: str | Path, limit: int, what: str) -> BinaryIO:
    """An open regular file of at most ``limit`` bytes (by its size now; a
    reader that must hold to the limit counts what it reads). ``what`` names
    the file's role in errors ("a task file is at most 1.0 MiB")."""
    name = str(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileRefused(f"{name}: file not found") from None
    except IsADirectoryError:
        raise FileRefused(f"{name}: is a directory, expected {what}") from None
    except OSError as exc:
        raise FileRefused(f"{name}: cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise FileRefused(f"{name}: is a directory, expected {what}")
        if not stat.S_ISREG(info.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a regular file"
            raise FileRefused(f"{name}: is {kind}, expected {what}")
        if info.st_size > limit:
            raise FileRefused(f"{name}: is {_size(info.st_size)}; {what} is at most {_size(limit)}")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_limited(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (see ``open_limited``)."""
    with open_limited(path, limit, what) as fh:
        try:
            data = fh.read(limit + 1)  # the size can lie (/proc) or grow while we read
        except OSError as exc:
            raise FileRefused(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise FileRefused(f"{path}: is larger than {_size(limit)}; {what} is at most that")
    return data


__all__ = ["MIB", "FileRefused", "open_limited", "read_limited"]
