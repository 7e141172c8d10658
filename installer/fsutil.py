"""Durable file writes: a file is either its old content or its new one, never half of it.

Root never follows a symbolic link planted where another user can write. Every directory and file
first boot makes is opened with `O_NOFOLLOW` and changed through its descriptor (`fchown`,
`fchmod`, `*at` calls relative to the open directory): `ensure_dir_at`, `write_atomic_at` and
`open_dir` are the one way to act inside a directory another user owns (the service account's
home); `ensure_dir` and `write_atomic` use them for every other path too.

Secrets leave no copy in freed blocks (issue 27): `remove_durably` and a `write_atomic` with
`scrub_old=True` overwrite the content they let go of before the file system frees its blocks.
The name is always changed first (unlink, or the rename of the new version in, then the
directory fsynced) and only then is the old inode overwritten, through a descriptor kept on it:
a power cut at any point leaves the old or the new version under the name, never zeros. This
works because ext4 (data=ordered, Debian's default) overwrites a file's data in place, in the
blocks it already has: it is not copy-on-write and does not journal data (nor keeps a small
file's data in its inode: the installer's mkfs.ext4 makes no `inline_data`), so after the
fsync the old bytes are in no block of the file system. (A cut between the rename and the
overwrite leaves that one old version in freed blocks; the installed system's weekly
fstrim.timer then lets an SSD drop them. An SSD's own remapping is below what any file system
can reach: disk encryption is where that ends.)
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
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


def _make_and_open_dir_at(dir_fd: int, name: str, mode: int) -> tuple[int, bool]:
    """Make directory `name` when missing and open it without following a link (a link or a
    non-directory there is replaced); returns the descriptor and whether it was made now."""
    created = False
    for _ in range(3):
        try:
            os.mkdir(name, mode, dir_fd=dir_fd)
            created = True
        except FileExistsError:
            pass
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=dir_fd), created
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                _replace_non_directory(dir_fd, name)
                continue
            if err.errno == errno.ENOENT:  # removed between mkdir and open: try again
                continue
            raise
    raise UnsafePathError(errno.ELOOP, f"{name} keeps changing under us", name)


def ensure_dir_at(dir_fd: int, name: str, mode: int, uid: int = -1, gid: int = -1) -> int:
    """Open directory `name` inside the open directory `dir_fd`, creating it if missing, without
    following a link; set its mode and owner on the descriptor. Returns the open descriptor.

    A symbolic link or a non-directory at `name` is removed and replaced by a directory.
    """
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"not a single path component: {name!r}")
    fd, created = _make_and_open_dir_at(dir_fd, name, mode)
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


def _open_to_scrub(dir_fd: int, name: str) -> int | None:
    """A descriptor to overwrite the regular file `name` through later, or None when there is
    none or it is not ours alone to overwrite (a link, a device, a second hard link)."""
    flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError:
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        return None
    return fd


def _scrub_and_close(fd: int, name: str) -> None:
    """Overwrite every byte of the open (already unlinked or replaced) file with zeros, in
    place, make that durable, and close it: the last close frees blocks that hold zeros."""
    try:
        fault_point(f"scrub:{name}")
        size = os.fstat(fd).st_size
        zeros = bytes(min(size, 1 << 16))
        done = 0
        while done < size:
            done += os.pwrite(fd, zeros[: size - done], done)
        os.fsync(fd)
        fault_point(f"scrubbed:{name}")
    finally:
        os.close(fd)


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
    scrub_old: bool = False,
) -> bool:
    """Replace `name` in the open directory `dir_fd` with `data` atomically; return False when
    it already held exactly that.

    The temp file is created with `O_EXCL | O_NOFOLLOW` and its final mode (never briefly
    world-readable), owned as asked through its descriptor, written, fsynced, renamed over
    `name` (a link at `name` is replaced, never followed), and the directory fsynced.
    `exact_mode=False` is for file systems without UNIX modes (FAT sticks refuse chmod).
    `scrub_old=True` (a file with secrets): the replaced version's content is overwritten after
    the rename, through a descriptor kept on it (see the module's note); a temp file given up
    on is overwritten too.
    """
    content = data.encode() if isinstance(data, str) else data
    if _same_at(dir_fd, name, content, mode if exact_mode else None, uid, gid):
        return False
    old_fd = _open_to_scrub(dir_fd, name) if scrub_old else None
    try:
        _write_and_rename_at(dir_fd, name, content, mode, uid, gid, exact_mode)
    except BaseException:
        if old_fd is not None:
            os.close(old_fd)
        raise
    if old_fd is not None:
        _scrub_and_close(old_fd, name)
    return True


def _write_and_rename_at(
    dir_fd: int, name: str, content: bytes, mode: int, uid: int, gid: int, exact_mode: bool
) -> None:
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
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
            _scrub_and_close(os.dup(fd), temp)
        os.close(fd)
        raise
    os.close(fd)
    os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)


def write_atomic(
    path: Path,
    data: bytes | str,
    *,
    mode: int = 0o644,
    uid: int = -1,
    gid: int = -1,
    exact_mode: bool = True,
    scrub_old: bool = False,
) -> bool:
    """Replace `path` with `data` atomically; return False when it already held exactly that.

    See `write_atomic_at`; the parent directory is created when missing (root's own tree).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    parent_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return write_atomic_at(
            parent_fd,
            path.name,
            data,
            mode=mode,
            uid=uid,
            gid=gid,
            exact_mode=exact_mode,
            scrub_old=scrub_old,
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


def remove_at(dir_fd: int, name: str) -> bool:
    """Delete `name` from the open directory (never what a link there points to), make that
    durable, then overwrite the content it had (see the module's note: the name goes first, so
    a power cut never leaves zeros under it). Returns False when there was nothing to delete."""
    fd = _open_to_scrub(dir_fd, name)
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        if fd is not None:
            os.close(fd)
        return False
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    os.fsync(dir_fd)
    if fd is not None:
        _scrub_and_close(fd, name)
    return True


def remove_durably(path: Path) -> bool:
    """Delete the file `path` and make that durable; its content is overwritten, not left in
    freed blocks (`remove_at`). Returns False when there was nothing to delete."""
    try:
        parent_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        return remove_at(parent_fd, path.name)
    finally:
        os.close(parent_fd)


def remove_stale_temps(directory: Path) -> None:
    """Delete temp files a killed writer left behind (`.NAME.tmp-PID`), overwriting them: one
    may have been half a file with secrets."""
    if directory.is_dir() and not directory.is_symlink():
        with open_dir(directory) as dir_fd:
            remove_stale_temps_at(dir_fd)


def remove_stale_temps_at(dir_fd: int) -> None:
    """`remove_stale_temps` for an open directory (one another user may write: no link is
    followed, only entries are removed)."""
    for name in os.listdir(dir_fd):
        if name.startswith(".") and ".tmp-" in name:
            with contextlib.suppress(OSError):
                remove_at(dir_fd, name)


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


def file_sha256(path: Path) -> str:
    """The SHA-256 of a whole file, hex (an image, a seed image, a disk): the one file digest."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
