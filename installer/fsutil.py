"""Durable file writes: a file is either its old content or its new one, never half of it.

Root never follows a symbolic link planted where another user can write. Every directory and file
first boot makes is opened with `O_NOFOLLOW` and changed through its descriptor (`fchown`,
`fchmod`, `*at` calls relative to the open directory): `ensure_dir_at`, `write_atomic_at` and
`open_dir` are the one way to act inside a directory another user owns (the service account's
home); `ensure_dir` and `write_atomic` use them for every other path too.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from installer.faults import fault_point

log = logging.getLogger("clawdie.fsutil")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePathError(OSError):
    """A path where root expected a real directory or file is something else (a link, a
    device); nothing was changed through it."""


def fsync_dir(path: Path) -> None:
    """Make a directory entry change (create, rename) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_non_directory(dir_fd: int, name: str) -> None:
    """`name` in `dir_fd` is a link or a file where a directory belongs: remove the entry itself
    (never what a link points to). Only used for names inside a directory root owns or is
    making for an account, so the entry is that account's doing."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a directory"
    log.warning("%s was %s where a directory belongs: replaced by a directory", name, kind)
    os.unlink(name, dir_fd=dir_fd)


def ensure_dir_at(dir_fd: int, name: str, mode: int, uid: int = -1, gid: int = -1) -> int:
    """Open directory `name` inside the open directory `dir_fd`, creating it if missing, without
    following a link; set its mode and owner on the descriptor. Returns the open descriptor.

    A symbolic link or a non-directory at `name` is removed and replaced by a directory.
    """
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"not a single path component: {name!r}")
    created = False
    for _ in range(3):
        try:
            os.mkdir(name, mode, dir_fd=dir_fd)
            created = True
        except FileExistsError:
            pass
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                _replace_non_directory(dir_fd, name)
                continue
            if err.errno == errno.ENOENT:  # removed between mkdir and open: try again
                continue
            raise
        break
    else:
        raise UnsafePathError(errno.ELOOP, f"{name} keeps changing under us", name)
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise UnsafePathError(errno.ENOTDIR, "not a directory", name)
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        if created:
            os.fsync(dir_fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def open_dir(path: Path, mode: int | None = None, uid: int = -1, gid: int = -1) -> Iterator[int]:
    """The directory `path` opened without following a link at its last component (created
    with its parents when `mode` is given, and then given that mode and owner).

    The parents are trusted: they belong to root (the target root's /etc, /var/lib).
    """
    parent = path.parent
    if mode is not None:
        parent.mkdir(parents=True, exist_ok=True)
    parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if mode is None:
            fd = os.open(path.name, _DIR_FLAGS, dir_fd=parent_fd)
        else:
            fd = ensure_dir_at(parent_fd, path.name, mode, uid, gid)
    finally:
        os.close(parent_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def ensure_dir(path: Path, mode: int = 0o755, uid: int = -1, gid: int = -1) -> None:
    """Create `path` (and parents) if missing; set its mode and owner on the open directory
    (never through a link); make the entry durable."""
    with open_dir(path, mode, uid, gid):
        pass


def _same_at(dir_fd: int, name: str, content: bytes, mode: int | None, uid: int, gid: int) -> bool:
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != len(content):
            return False
        if mode is not None and (st.st_mode & 0o7777) != mode:
            return False
        if (uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid):
            return False
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks) == content
    finally:
        os.close(fd)


def write_atomic_at(
    dir_fd: int,
    name: str,
    data: bytes | str,
    *,
    mode: int = 0o644,
    uid: int = -1,
    gid: int = -1,
    exact_mode: bool = True,
) -> bool:
    """Replace `name` in the open directory `dir_fd` with `data` atomically; return False when
    it already held exactly that.

    The temp file is created with `O_EXCL | O_NOFOLLOW` and its final mode (never briefly
    world-readable), owned as asked through its descriptor, written, fsynced, renamed over
    `name` (a link at `name` is replaced, never followed), and the directory fsynced.
    `exact_mode=False` is for file systems without UNIX modes (FAT sticks refuse chmod).
    """
    content = data.encode() if isinstance(data, str) else data
    if _same_at(dir_fd, name, content, mode if exact_mode else None, uid, gid):
        return False
    temp = f".{name}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp, dir_fd=dir_fd)  # left by a killed run with the same pid
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temp, flags, mode, dir_fd=dir_fd)
    try:
        if exact_mode:
            os.fchmod(fd, mode)  # the umask may have narrowed it; never widened
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
        half = len(content) // 2
        os.write(fd, content[:half])
        fault_point(f"mid-write:{name}")
        os.write(fd, content[half:])
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
    os.close(fd)
    os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)
    return True


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

    See `write_atomic_at`; the parent directory is created when missing (root's own tree).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    parent_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return write_atomic_at(
            parent_fd, path.name, data, mode=mode, uid=uid, gid=gid, exact_mode=exact_mode
        )
    finally:
        os.close(parent_fd)


def _untrusted(status: os.stat_result) -> str | None:
    """Why root cannot trust a file with this status (someone else could have written it)."""
    if status.st_uid not in (0, os.geteuid()):
        return f"owned by uid {status.st_uid}, not root"
    if status.st_mode & 0o022:
        return f"writable by others than its owner (mode {stat.S_IMODE(status.st_mode):04o})"
    return None


def read_bytes_at(dir_fd: int, name: str, limit: int = 1 << 20, *, trusted: bool = False) -> bytes:
    """The regular file `name` in the open directory `dir_fd`, never through a link (ELOOP) nor
    from a device or a pipe (no blocking open); at most `limit` bytes (more is an error).
    `trusted`: only a file no one but root (or this reader) can have written: owned by root
    and writable by its owner only; anything else is an UnsafePathError (EPERM)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as err:
        if err.errno == errno.ELOOP:
            why = "a symbolic link, which root does not follow"
            raise UnsafePathError(errno.ELOOP, why, name) from None
        raise
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise UnsafePathError(errno.EINVAL, "not a regular file", name)
        untrusted = _untrusted(status) if trusted else None
        if untrusted is not None:
            raise UnsafePathError(errno.EPERM, f"{untrusted}: root does not trust it", name)
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 16):
            size += len(chunk)
            if size > limit:
                raise UnsafePathError(errno.EFBIG, f"larger than {limit} bytes", name)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_bytes_nofollow(path: Path, limit: int = 1 << 20, *, trusted: bool = False) -> bytes:
    """`read_bytes_at` for a path whose parents root trusts (its own /etc, /var/lib)."""
    parent_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return read_bytes_at(parent_fd, path.name, limit, trusted=trusted)
    finally:
        os.close(parent_fd)


def remove_durably(path: Path) -> bool:
    """Delete the file `path` (never what a link there points to) and make that durable.
    Returns False when there was nothing to delete."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def remove_stale_temps(directory: Path) -> None:
    """Delete temp files a killed writer left behind (`.NAME.tmp-PID`)."""
    if directory.is_dir() and not directory.is_symlink():
        for leftover in directory.glob(".*.tmp-*"):
            with contextlib.suppress(OSError):
                leftover.unlink()


def remove_stale_temps_at(dir_fd: int) -> None:
    """`remove_stale_temps` for an open directory (one another user may write: no link is
    followed, only entries are removed)."""
    for name in os.listdir(dir_fd):
        if name.startswith(".") and ".tmp-" in name:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dir_fd)


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
