"""Durable file writes: a file is either its old content or its new one, never half of it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from installer.faults import fault_point


def fsync_dir(path: Path) -> None:
    """Make a directory entry change (create, rename) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path, mode: int = 0o755, uid: int = -1, gid: int = -1) -> None:
    """Create `path` (and parents) if missing; set its mode and owner; make the entry durable."""
    created = not path.is_dir()
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if uid != -1 or gid != -1:
        os.chown(path, uid, gid)
    if created:
        fsync_dir(path.parent)


def write_atomic(
    path: Path,
    data: bytes | str,
    *,
    mode: int = 0o644,
    uid: int = -1,
    gid: int = -1,
    exact_mode: bool = True,
) -> bool:
    """Replace `path` with `data` atomically; return False when it already held exactly that.

    The temp file is created with its final mode (never briefly world-readable), owned as
    asked, written, fsynced, renamed over `path`, and the directory fsynced. `exact_mode=False`
    is for file systems without UNIX modes (FAT sticks refuse chmod): the mode is only asked for
    at creation.
    """
    content = data.encode() if isinstance(data, str) else data
    if _same(path, content, mode if exact_mode else None, uid, gid):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        if exact_mode:
            os.fchmod(fd, mode)  # the umask may have narrowed it; never widened
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
        half = len(content) // 2
        os.write(fd, content[:half])
        fault_point(f"mid-write:{path.name}")
        os.write(fd, content[half:])
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    os.close(fd)
    os.replace(temp, path)
    fsync_dir(path.parent)
    return True


def _same(path: Path, content: bytes, mode: int | None, uid: int, gid: int) -> bool:
    try:
        st = path.lstat()
        if not path.is_file() or (mode is not None and (st.st_mode & 0o7777) != mode):
            return False
        if (uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid):
            return False
        return path.read_bytes() == content
    except OSError:
        return False


def remove_stale_temps(directory: Path) -> None:
    """Delete temp files a killed writer left behind (`.NAME.tmp-PID`)."""
    if directory.is_dir():
        for leftover in directory.glob(".*.tmp-*"):
            with contextlib.suppress(OSError):
                leftover.unlink()


def symlink_atomic(path: Path, target: str) -> bool:
    """Point symlink `path` at `target` atomically; return False when it already did."""
    if path.is_symlink() and os.readlink(path) == target:
        return False
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, temp)
    os.replace(temp, path)
    fsync_dir(path.parent)
    return True
