"""The one reader for a seed file on media or a path: a regular file within a size bound,
opened without following links and checked on the descriptor (media is hostile input). The
stick's modules (installer/media) and the seed I/O seam (installer/seed/io.py) both read
through it; it imports neither."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from installer.errors import SeedUnreadableError
from installer.seed.reader import MAX_SEED_BYTES

RECEIPT_NAME = "SETUP-RESULT.txt"


def _file_kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    kinds = (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    if stat.S_ISREG(mode):
        return None
    return next((words for test, words in kinds if test(mode)), "not a file")


# A backup on the stick: the seed partition is FAT32, whose largest file is 4 GiB less a byte.
MAX_BACKUP_BYTES = (4 << 30) - 1


def _too_large(shown: str, size: str, bound: int, hint: str) -> SeedUnreadableError:
    what = "a setup.txt" if bound == MAX_SEED_BYTES else "this file"
    return SeedUnreadableError(f"{shown} is {size}; {what} is at most {_size(bound)}", hint)


def _size(count: int) -> str:
    return f"{count // 1024} KiB" if count < 1 << 30 else f"{(count + 1) / (1 << 30):.0f} GiB"


def open_seed_entry(
    path: Path, shown: str, hint: str, *, follow_links: bool = False, bound: int = MAX_SEED_BYTES
) -> BinaryIO:
    """The seed file `path` (`shown` names it in every refusal, e.g. "setup.txt on the stick
    CLAWDIESEED (/dev/sdb1)") opened for reading: the one way a file on media or a path is
    opened (a seed, a restore's backup).

    Only a regular file of at most `bound` bytes is opened: a link to /dev/zero never ends, a
    FIFO blocks, opening some devices has effects. The entry is looked at without following it,
    opened with O_NOFOLLOW (unless `follow_links`: a path the user typed may be a link),
    O_NONBLOCK and O_NOCTTY, and checked again with fstat on the open descriptor, so an entry
    swapped between the look and the open is refused too. The caller reads at most `bound + 1`
    bytes. Raises SeedUnreadableError (FileNotFoundError when there is no such entry).
    """
    kind = _file_kind(path.stat().st_mode if follow_links else path.lstat().st_mode)
    if kind is not None:
        raise SeedUnreadableError(f"{shown} is not a regular file ({kind})", hint)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_BINARY", 0) | (0 if follow_links else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(path, flags)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise SeedUnreadableError(
                f"{shown} is not a regular file (a symbolic link)", hint
            ) from None
        raise
    handle = os.fdopen(fd, "rb")
    try:
        status = os.fstat(handle.fileno())
        kind = _file_kind(status.st_mode)
        if kind is not None:
            raise SeedUnreadableError(f"{shown} is not a regular file ({kind})", hint)
        if status.st_size > bound:
            raise _too_large(shown, f"{status.st_size:,} bytes", bound, _TOO_LARGE_HINT)
    except BaseException:
        handle.close()
        raise
    return handle


def read_seed_entry(
    path: Path, shown: str, hint: str, *, follow_links: bool = False, bound: int = MAX_SEED_BYTES
) -> bytes:
    """The bytes of the seed file `path`, read through `open_seed_entry`: at most `bound + 1`
    bytes are ever read. Raises SeedUnreadableError (FileNotFoundError: no such entry)."""
    with open_seed_entry(path, shown, hint, follow_links=follow_links, bound=bound) as handle:
        data = handle.read(bound + 1)
    if len(data) > bound:
        raise _too_large(shown, f"more than {bound:,} bytes", bound, _TOO_LARGE_HINT)
    return data


def copy_seed_entry(
    path: Path, shown: str, hint: str, write: Callable[[bytes], object], *, bound: int
) -> int:
    """Stream the file `path` (opened by `open_seed_entry`) to `write` in 1 MiB pieces, never
    more than `bound` bytes; returns how many were copied (a restore's backup)."""
    copied = 0
    with open_seed_entry(path, shown, hint, bound=bound) as handle:
        while chunk := handle.read(1 << 20):
            copied += len(chunk)
            if copied > bound:
                raise _too_large(shown, f"more than {bound:,} bytes", bound, _TOO_LARGE_HINT)
            write(chunk)
    return copied


_TOO_LARGE_HINT = "check that this is the setup.txt from the stick, not another file renamed"


def copy_seed_entry_to(path: Path, shown: str, hint: str, dest: Path, *, bound: int) -> int:
    """`copy_seed_entry` into the new file `dest` (0600, never through a link, fsynced, renamed
    into place: a cut leaves no half file under the name). Returns the bytes copied."""
    temp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temp, flags | getattr(os, "O_BINARY", 0), 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=False) as out:
            copied = copy_seed_entry(path, shown, hint, out.write, bound=bound)
            out.flush()
            os.fsync(fd)
    except BaseException:
        temp.unlink()
        raise
    finally:
        os.close(fd)
    os.replace(temp, dest)
    with contextlib.suppress(OSError):  # the folder's entry made durable (not on Windows)
        dir_fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return copied
