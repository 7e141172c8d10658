"""The one reader for a seed file on media or a path: a regular file within a size bound,
opened without following links and checked on the descriptor (media is hostile input). The
stick's modules (installer/media) and the seed I/O seam (installer/seed/io.py) both read
through it; it imports neither."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

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


def _too_large(shown: str, size: str, hint: str) -> SeedUnreadableError:
    return SeedUnreadableError(
        f"{shown} is {size}; a setup.txt is at most {MAX_SEED_BYTES // 1024} KiB", hint
    )


def read_seed_entry(
    path: Path, shown: str, hint: str, *, follow_links: bool = False, bound: int = MAX_SEED_BYTES
) -> bytes:
    """The bytes of the seed file `path` (`shown` names it in every refusal, e.g. "setup.txt on
    the stick CLAWDIESEED (/dev/sdb1)"): the one reader for seeds, on a mounted stick or a path.

    Only a regular file of at most `bound` bytes is read, and at most `bound + 1` bytes are ever
    read: a link to /dev/zero never ends, a FIFO blocks, opening some devices has effects. The
    entry is looked at without following it, opened with O_NOFOLLOW (unless `follow_links`: a
    path the user typed may be a link), O_NONBLOCK and O_NOCTTY, and checked again with fstat
    on the open descriptor, so an entry swapped between the look and the open is refused too.
    Raises SeedUnreadableError (FileNotFoundError when there is no such entry).
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
    with os.fdopen(fd, "rb") as handle:
        status = os.fstat(handle.fileno())
        kind = _file_kind(status.st_mode)
        if kind is not None:
            raise SeedUnreadableError(f"{shown} is not a regular file ({kind})", hint)
        if status.st_size > bound:
            raise _too_large(shown, f"{status.st_size:,} bytes", _TOO_LARGE_HINT)
        data = handle.read(bound + 1)
    if len(data) > bound:
        raise _too_large(shown, f"more than {bound:,} bytes", _TOO_LARGE_HINT)
    return data


_TOO_LARGE_HINT = "check that this is the setup.txt from the stick, not another file renamed"
