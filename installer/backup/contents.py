"""What a backup holds (DESIGN §9): everything that makes this box itself, nothing of the OS.

Files are found and read from root's side without following a link anywhere below the target
root (the service account can write in its home: a link it planted there is kept as a link,
never followed), regular files only. Owners are kept by name: a new box's ids differ.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from installer.fsutil import UnsafePathError
from installer.paths import TargetPaths

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# The image build writes it: it says which image this is, not which box.
NOT_KEPT = frozenset({"etc/clawdie/image-version"})


@dataclass(frozen=True)
class Entry:
    """A file, link or directory of the box, by its path under the root."""

    path: str
    kind: str  # file | link | dir
    mode: int
    uid: int
    gid: int
    size: int = 0
    target: str = ""


def relative(paths: TargetPaths, path: Path) -> str:
    return str(path.relative_to(paths.root))


def trees(paths: TargetPaths) -> list[str]:
    """Directories kept whole: /etc/clawdie and the platform's data (the service account's home,
    its authorized_keys with it)."""
    return [relative(paths, paths.config_dir), relative(paths, paths.service_home)]


def single_files(paths: TargetPaths) -> list[str]:
    """Files kept one by one: host name, SSH host keys and the sshd drop-in, the TLS pair, the
    network and Wi-Fi files, the adopt code's hash and the install record."""
    wanted = [
        paths.hostname,
        paths.hosts,
        paths.sshd_dropin,
        paths.tls_key,
        paths.tls_cert,
        paths.wired_network,
        paths.wifi_network,
        paths.wifi_supplicant_conf,
        paths.wifi_unit,
        paths.wifi_udev_rule,
        paths.wifi_regdom,
        paths.adopt_code_hash,
        paths.install_record,
    ]
    if paths.ssh_dir.is_dir():
        wanted += sorted(paths.ssh_dir.glob("ssh_host_*"))
    return [relative(paths, p) for p in wanted]


@contextlib.contextmanager
def open_parent(root: Path, path: str) -> Iterator[int]:
    """The directory holding `path` (relative to `root`), each component opened without
    following a link."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in path.split("/")[:-1]:
            try:
                child = os.open(part, _DIR, dir_fd=fd)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePathError(
                        errno.ELOOP, "a link or a file on the way", path
                    ) from None
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _entry_at(dir_fd: int, name: str, path: str) -> Entry | None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(name, dir_fd=dir_fd)
        return Entry(path, "link", 0o777, st.st_uid, st.st_gid, target=target)
    if stat.S_ISDIR(st.st_mode):
        return Entry(path, "dir", mode, st.st_uid, st.st_gid)
    if stat.S_ISREG(st.st_mode):
        return Entry(path, "file", mode, st.st_uid, st.st_gid, size=st.st_size)
    return None  # a socket or a pipe: nothing to keep


def _walk(dir_fd: int, path: str, out: list[Entry]) -> None:
    for name in sorted(os.listdir(dir_fd)):
        if name.startswith(".") and ".tmp-" in name:
            continue  # a writer's temp file
        child_path = f"{path}/{name}"
        entry = _entry_at(dir_fd, name, child_path)
        if entry is None or entry.path in NOT_KEPT:
            continue
        out.append(entry)
        if entry.kind == "dir":
            child = os.open(name, _DIR, dir_fd=dir_fd)
            try:
                _walk(child, child_path, out)
            finally:
                os.close(child)


def collect(paths: TargetPaths) -> list[Entry]:
    """Every file, link and directory a backup of this box holds, parents before children."""
    out: list[Entry] = []
    for tree in trees(paths):
        try:
            with open_parent(paths.root, tree) as parent:
                top = _entry_at(parent, tree.rsplit("/", 1)[-1], tree)
                if top is None or top.kind != "dir":
                    continue
                out.append(top)
                fd = os.open(tree.rsplit("/", 1)[-1], _DIR, dir_fd=parent)
                try:
                    _walk(fd, tree, out)
                finally:
                    os.close(fd)
        except FileNotFoundError:
            continue
    for path in single_files(paths):
        try:
            with open_parent(paths.root, path) as parent:
                entry = _entry_at(parent, path.rsplit("/", 1)[-1], path)
        except FileNotFoundError:
            continue
        if entry is not None and entry.kind != "dir":
            out.append(entry)
    return out


@contextlib.contextmanager
def open_file(root: Path, entry: Entry) -> Iterator[int]:
    """The regular file `entry`, opened without following a link, still the size it was."""
    with open_parent(root, entry.path) as parent:
        fd = os.open(entry.path.rsplit("/", 1)[-1], _FILE, dir_fd=parent)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePathError(errno.EINVAL, "not a regular file", entry.path)
        yield fd
    finally:
        os.close(fd)


def allowed(paths: TargetPaths, path: str) -> bool:
    """Whether a restore may write `path`: under a kept tree, or one of the kept files (a
    backup names paths; it never chooses where they go beyond these)."""
    ssh = relative(paths, paths.ssh_dir) + "/"
    if path in single_files(paths):
        return True
    if path.startswith(ssh + "ssh_host_") and "/" not in path[len(ssh) :]:
        return True
    return any(path == tree or path.startswith(tree + "/") for tree in trees(paths))


def names_by_id(table: Path) -> dict[int, str]:
    """id -> name from a passwd or group file of the target."""
    out: dict[int, str] = {}
    try:
        text = table.read_text(encoding="utf-8")
    except (OSError, UnicodeError):
        return out
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            out.setdefault(int(fields[2]), fields[0])
    return out


def ids_by_name(table: Path) -> dict[str, int]:
    return {name: uid for uid, name in names_by_id(table).items()}


def group_file(paths: TargetPaths) -> Path:
    return paths.passwd.with_name("group")
