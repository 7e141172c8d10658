"""Open the seed volume for reading (or, for the receipt only, writing) without a visible mount.

The first choice is a kernel mount, read-only unless asked, in a fresh 0700 temporary directory
that is unmounted and removed on exit, also on error. When the running kernel has no driver for
the volume's file system, a FUSE helper is used the same way (`mount -t exfat-fuse`), and a FAT
volume is read with mtools straight from the device, with no mount at all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from installer.errors import CommandFailedError, SeedUnreadableError
from installer.fsutil import write_atomic
from installer.media.blockdev import BlockDevice
from installer.run import run
from installer.seed.entry import copy_seed_entry_to, open_seed_entry, read_seed_entry
from installer.seed.reader import MAX_SEED_BYTES

log = logging.getLogger("clawdie.seed")

MOUNT_TIMEOUT = 60.0
# mount(8) exit status for "mount failure"; the message tells a missing driver apart.
UNKNOWN_FS = "unknown filesystem type"
# FUSE mount helpers (`mount.<type>`) for file systems a kernel may lack.
FUSE_TYPES = {"exfat": ("exfat-fuse",), "vfat": ()}
MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1", "TZ": "UTC"}


class SeedDeviceGoneError(SeedUnreadableError):
    """The seed device disappeared between finding and reading it (stick pulled out)."""


class Volume(Protocol):
    """A seed volume opened for file access."""

    method: str

    def names(self) -> list[str]: ...

    def read(self, name: str) -> bytes: ...

    def write_atomic(self, name: str, data: bytes) -> None: ...

    def files(self) -> list[str]: ...

    def copy_out(self, name: str, dest: Path, bound: int) -> int: ...


def _verify_copy(dest: Path, name: str, device: BlockDevice, bound: int) -> int:
    """A file a stick tool wrote at `dest`, judged by the one media reader (regular, within
    `bound`): removed and refused otherwise. Returns its size."""
    try:
        with open_seed_entry(dest, _entry_words(name, device), _NOT_REGULAR_HINT, bound=bound) as f:
            return os.fstat(f.fileno()).st_size
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def _judge_size(name: str, device: BlockDevice, size: int | None, bound: int) -> None:
    if size is None or size > bound:
        raise SeedUnreadableError(
            f"{_entry_words(name, device)} is "
            + ("of unknown size" if size is None else f"{size:,} bytes")
            + f"; at most {bound:,} bytes are read",
            "check that this is the file meant, not another one renamed",
        )


def ensure_device_present(device: BlockDevice) -> None:
    """Raise SeedDeviceGoneError when `device` is no longer a block device (stick removed)."""
    try:
        present = stat.S_ISBLK(Path(device.node).stat().st_mode)
    except OSError:
        present = False
    if not present:
        raise SeedDeviceGoneError(
            f"the seed device {device.node} is gone",
            "was the stick removed? Plug it in again and retry",
        )


def stick_words(device: BlockDevice) -> str:
    """The stick as the owner knows it: its label, then its node."""
    label = device.fs_label or device.part_name
    return f"the stick {label} ({device.node})" if label else f"the stick {device.node}"


def _entry_words(name: str, device: BlockDevice) -> str:
    return f"{name} on {stick_words(device)}"


_NOT_REGULAR_HINT = "put the setup.txt file itself on the stick (not a link, folder or device)"


def read_stick_entry(path: Path, name: str, device: BlockDevice) -> bytes:
    """`name` at `path` (on the mounted stick, or a copy taken from it) through the one seed
    reader: a regular file within the bound, no link followed, every refusal with the label."""
    return read_seed_entry(path, _entry_words(name, device), _NOT_REGULAR_HINT)


def fsync_path(path: Path, flags: int = os.O_RDONLY) -> None:
    """fsync a file, folder or block device by path."""
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically: a 0600 temp file, fsync, rename, fsync the folder."""
    write_atomic(path, data, mode=0o600, exact_mode=False)


class MountedVolume:
    """A volume mounted in a private directory."""

    def __init__(self, device: BlockDevice, directory: Path, method: str) -> None:
        self.device, self.directory, self.method = device, directory, method

    def names(self) -> list[str]:
        return sorted(entry.name for entry in self.directory.iterdir())

    def read(self, name: str) -> bytes:
        return read_stick_entry(self.directory / name, name, self.device)

    def write_atomic(self, name: str, data: bytes) -> None:
        write_private_file(self.directory / name, data)

    def files(self) -> list[str]:
        return sorted(
            e.name for e in os.scandir(self.directory) if e.is_file(follow_symlinks=False)
        )

    def copy_out(self, name: str, dest: Path, bound: int) -> int:
        words = _entry_words(name, self.device)
        return copy_seed_entry_to(
            self.directory / name, words, _NOT_REGULAR_HINT, dest, bound=bound
        )


class MtoolsVolume:
    """A FAT volume read and written in place by mtools: no mount, no driver needed."""

    method = "mtools"

    def __init__(self, device: BlockDevice, staging: Path) -> None:
        self.device, self.staging = device, staging

    def _run(self, *argv: str) -> bytes:
        return run([*argv], env=MTOOLS_ENV, timeout=MOUNT_TIMEOUT).stdout

    def _listing(self) -> list[str]:
        """Entries of the root as mdir names them: a folder ends with "/"."""
        listing = self._run("mdir", "-b", "-a", "-i", self.device.node, "::/")
        lines = listing.decode(errors="replace").splitlines()
        return [line.removeprefix("::/") for line in lines if line.startswith("::/")]

    def names(self) -> list[str]:
        return sorted(entry.removesuffix("/") for entry in self._listing())

    def files(self) -> list[str]:
        return sorted(entry for entry in self._listing() if not entry.endswith("/"))

    def copy_out(self, name: str, dest: Path, bound: int) -> int:
        """FAT holds no links or devices: the listing says folder or file and its size, then
        mcopy writes it where it goes and the one media reader judges the copy."""
        if name not in self.files():
            raise SeedUnreadableError(f"{_entry_words(name, self.device)} is not a file here")
        listing = self._run("mdir", "-a", "-i", self.device.node, f"::/{name}")
        _judge_size(name, self.device, parse_mdir_size(listing.decode(errors="replace")), bound)
        dest.unlink(missing_ok=True)
        self._run("mcopy", "-n", "-i", self.device.node, f"::/{name}", str(dest))
        os.chmod(dest, 0o600)
        return _verify_copy(dest, name, self.device, bound)

    def read(self, name: str) -> bytes:
        """FAT holds no links, FIFOs or devices; a folder or a file over the bound is refused
        from the listing, before anything is copied off the stick."""
        if f"{name}/" in self._listing():
            raise SeedUnreadableError(
                f"{_entry_words(name, self.device)} is not a regular file (a directory)",
                _NOT_REGULAR_HINT,
            )
        listing = self._run("mdir", "-a", "-i", self.device.node, f"::/{name}")
        size = parse_mdir_size(listing.decode(errors="replace"))
        if size is None or size > MAX_SEED_BYTES:
            raise SeedUnreadableError(
                f"{_entry_words(name, self.device)} is "
                + ("of unknown size" if size is None else f"{size:,} bytes")
                + f"; a setup.txt is at most {MAX_SEED_BYTES // 1024} KiB",
                "check that this is the setup.txt from the stick, not another file renamed",
            )
        local = self.staging / "read"
        self._run("mcopy", "-n", "-i", self.device.node, f"::/{name}", str(local))
        try:
            return read_stick_entry(local, name, self.device)
        finally:
            local.unlink(missing_ok=True)

    def write_atomic(self, name: str, data: bytes) -> None:
        """Write a temp file, drop the old one, rename: a cut leaves the old or the new file."""
        local = self.staging / "write"
        write_private_file(local, data)
        tmp, node = f"::/.{name}.tmp", self.device.node
        self._run("mcopy", "-o", "-i", node, str(local), tmp)
        if name in self.names():
            self._run("mdel", "-i", node, f"::/{name}")
        self._run("mren", "-i", node, tmp, f"::/{name}")
        fsync_path(Path(node))


_MDIR_ONE_FILE = re.compile(r"^\s*1 file\s+([\d ]+?) bytes\s*$", re.MULTILINE)


def parse_mdir_size(listing: str) -> int | None:
    """The size `mdir` reports for one file (its digits are grouped with spaces), or None."""
    match = _MDIR_ONE_FILE.search(listing)
    return int(match.group(1).replace(" ", "")) if match else None


# `xorriso -lsl` lines: type and mode, links, owner, group, size (or "major,minor"), date, 'name'.
_LSL_LINE = re.compile(
    r"^(?P<type>\S)\S{9}\s+\d+\s+\S+\s+\S+\s+(?P<size>[\d,]+)\s[^']*'(?P<name>[^']*)'"
)
_LSL_KINDS = {
    "d": "a directory",
    "l": "a symbolic link",
    "p": "a named pipe (FIFO)",
    "c": "a character device",
    "b": "a block device",
    "s": "a socket",
}


class XorrisoVolume:
    """An ISO 9660 volume read with xorriso where the kernel has no iso9660 driver: each entry
    is judged from the Rock Ridge listing (kind and size) before it is extracted, then the copy
    goes through the one seed reader. Read-only, as the medium is."""

    method = "xorriso"

    def __init__(self, device: BlockDevice, staging: Path) -> None:
        self.device, self.staging = device, staging
        self._entries: dict[str, tuple[str, int]] | None = None

    def _run(self, *argv: str) -> bytes:
        indev = ["-indev", f"stdio:{self.device.node}"]
        return run(["xorriso", "-abort_on", "FAILURE", *indev, *argv], timeout=MOUNT_TIMEOUT).stdout

    def entries(self) -> dict[str, tuple[str, int]]:
        if self._entries is None:
            found: dict[str, tuple[str, int]] = {}
            for line in self._run("-lsl", "/").decode(errors="replace").splitlines():
                match = _LSL_LINE.match(line)
                if match is not None:
                    size = match["size"]
                    found[match["name"]] = (match["type"], -1 if "," in size else int(size))
            self._entries = found
        return self._entries

    def names(self) -> list[str]:
        return sorted(self.entries())

    def read(self, name: str) -> bytes:
        kind, size = self.entries().get(name, ("-", 0))
        if kind != "-":
            raise SeedUnreadableError(
                f"{_entry_words(name, self.device)} is not a regular file "
                f"({_LSL_KINDS.get(kind, 'not a file')})",
                _NOT_REGULAR_HINT,
            )
        if size > MAX_SEED_BYTES:
            raise SeedUnreadableError(
                f"{_entry_words(name, self.device)} is {size:,} bytes; a setup.txt is at most "
                f"{MAX_SEED_BYTES // 1024} KiB",
                "check that this is the setup.txt from the stick, not another file renamed",
            )
        local = self.staging / "read"
        self._run("-osirrox", "on", "-extract", f"/{name}", str(local))
        try:
            return read_stick_entry(local, name, self.device)
        finally:
            local.unlink(missing_ok=True)

    def write_atomic(self, name: str, data: bytes) -> None:  # noqa: ARG002 (read-only volume)
        raise SeedUnreadableError(f"{stick_words(self.device)} is ISO 9660, which is read-only")

    def files(self) -> list[str]:
        return sorted(name for name, (kind, _) in self.entries().items() if kind == "-")

    def copy_out(self, name: str, dest: Path, bound: int) -> int:
        kind, size = self.entries().get(name, ("?", 0))
        if kind != "-":
            raise SeedUnreadableError(
                f"{_entry_words(name, self.device)} is not a regular file", _NOT_REGULAR_HINT
            )
        _judge_size(name, self.device, size, bound)
        dest.unlink(missing_ok=True)
        self._run("-osirrox", "on", "-extract", f"/{name}", str(dest))
        os.chmod(dest, 0o600)
        return _verify_copy(dest, name, self.device, bound)


def _mount_types(fs_type: str) -> list[str]:
    """The mount types to try: the kernel driver, then FUSE helpers that are installed."""
    helpers = [t for t in FUSE_TYPES.get(fs_type, ()) if shutil.which(f"mount.{t}")]
    return [fs_type, *helpers]


def _mount_options(fs_type: str, writable: bool) -> str:
    options = ["rw" if writable else "ro", "nosuid", "nodev", "noexec"]
    if fs_type in ("vfat", "exfat", "exfat-fuse"):
        options += ["uid=0", "gid=0", "umask=077"]
    return ",".join(options)


def try_mount(device: BlockDevice, directory: Path, writable: bool) -> str | None:
    """Mount `device` on `directory`; the type that worked, or None when no driver exists."""
    for mount_type in _mount_types(device.fs_type):
        argv = ["mount", "-w" if writable else "-r", "-t", mount_type]
        argv += ["-o", _mount_options(mount_type, writable), device.node, str(directory)]
        try:
            run(argv, timeout=MOUNT_TIMEOUT)
        except CommandFailedError as err:
            ensure_device_present(device)
            if UNKNOWN_FS in err.stderr_tail:
                log.debug("seed: no %s driver here", mount_type)
                continue
            raise SeedUnreadableError(
                f"cannot mount the seed partition {device.node}: {err.stderr_tail}",
                "check the stick in another computer; it may need repairing",
            ) from None
        return mount_type
    return None


def release_mount(mount_point: Path) -> None:
    """Unmount `mount_point`; fall back to a lazy unmount so nothing stays attached."""
    result = run(["umount", str(mount_point)], check=False, timeout=MOUNT_TIMEOUT)
    if result.returncode != 0:
        log.warning("seed: umount %s failed; detaching it lazily", mount_point)
        run(["umount", "--lazy", str(mount_point)], check=False, timeout=MOUNT_TIMEOUT)


@contextlib.contextmanager
def _mount_point() -> Iterator[Path]:
    """A fresh 0700 directory, removed with rmdir (never recursively: it may hold a mount)."""
    directory = Path(tempfile.mkdtemp(prefix="clawdie-seed-"))
    try:
        yield directory
    finally:
        with contextlib.suppress(OSError):
            directory.rmdir()


@contextlib.contextmanager
def open_volume(device: BlockDevice, *, writable: bool = False) -> Iterator[Volume]:
    """The seed volume, read-only unless `writable`; released on exit, also on error."""
    ensure_device_present(device)
    with _mount_point() as mount_point:
        mounted_as = try_mount(device, mount_point, writable)
        if mounted_as is not None:
            mode = "rw" if writable else "ro"
            log.debug("seed: mounted %s as %s (%s)", device.node, mounted_as, mode)
            try:
                yield MountedVolume(device, mount_point, f"mount -t {mounted_as}")
            finally:
                release_mount(mount_point)
            return
    if device.fs_type == "vfat" and shutil.which("mcopy"):
        log.debug("seed: this kernel has no vfat driver; reading %s with mtools", device.node)
        with tempfile.TemporaryDirectory(prefix="clawdie-seed-") as staging:
            yield MtoolsVolume(device, Path(staging))
        return
    if device.fs_type == "iso9660" and not writable and shutil.which("xorriso"):
        log.debug("seed: this kernel has no iso9660 driver; reading %s with xorriso", device.node)
        with tempfile.TemporaryDirectory(prefix="clawdie-seed-") as staging:
            yield XorrisoVolume(device, Path(staging))
        return
    raise SeedUnreadableError(
        f"this system cannot read the {device.fs_type} volume on {device.node}: "
        "the kernel has no driver for it",
        "copy setup.txt to a FAT32 stick labelled CLAWDIESEED",
    )
