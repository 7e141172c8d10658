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
from installer.seed.reader import MAX_SEED_BYTES

log = logging.getLogger("clawdie.seed")

MOUNT_TIMEOUT = 60.0
# mount(8) exit status for "mount failure"; the message tells a missing driver apart.
_UNKNOWN_FS = "unknown filesystem type"
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


def _too_large(name: str, size: int, device: BlockDevice) -> SeedUnreadableError:
    return SeedUnreadableError(
        f"{name} on {device.node} is {size:,} bytes; a setup.txt is at most "
        f"{MAX_SEED_BYTES // 1024} KiB",
        "check that this is the setup.txt from the stick, not another file renamed",
    )


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
        path = self.directory / name
        size = path.stat().st_size
        if size > MAX_SEED_BYTES:
            raise _too_large(name, size, self.device)
        return path.read_bytes()

    def write_atomic(self, name: str, data: bytes) -> None:
        write_private_file(self.directory / name, data)


class MtoolsVolume:
    """A FAT volume read and written in place by mtools: no mount, no driver needed."""

    method = "mtools"

    def __init__(self, device: BlockDevice, staging: Path) -> None:
        self.device, self.staging = device, staging

    def _run(self, *argv: str) -> bytes:
        return run([*argv], env=MTOOLS_ENV, timeout=MOUNT_TIMEOUT).stdout

    def names(self) -> list[str]:
        listing = self._run("mdir", "-b", "-a", "-i", self.device.node, "::/")
        lines = listing.decode(errors="replace").splitlines()
        return sorted(line.removeprefix("::/") for line in lines if line.startswith("::/"))

    def read(self, name: str) -> bytes:
        local = self.staging / "read"
        self._run("mcopy", "-n", "-i", self.device.node, f"::/{name}", str(local))
        try:
            size = local.stat().st_size
            if size > MAX_SEED_BYTES:
                raise _too_large(name, size, self.device)
            return local.read_bytes()
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
            if _UNKNOWN_FS in err.stderr_tail:
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
    raise SeedUnreadableError(
        f"this system cannot read the {device.fs_type} volume on {device.node}: "
        "the kernel has no driver for it",
        "copy setup.txt to a FAT32 stick labelled CLAWDIESEED",
    )
