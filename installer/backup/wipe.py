"""`factory-reset --wipe` (DESIGN §9): for handing the machine over, the whole disk the system
runs from is erased, then the machine powers off.

Which disk: the one holding the root file system, found from the root directory itself (its
device number, then the kernel's own block tree: a partition's parent disk); never a name the
user gives. A root on something that is not a partition of a plain disk (a RAM file system, an
overlay, a device-mapper volume) is refused: nothing is erased.

How: the root file system is frozen first (no write reaches the disk after the erase), then

1. the whole disk is discarded (`blkdiscard --force`: every block is given back to the device;
   reads return zeros on a loop device and on drives that say so), or, where the disk does not
   support discard,
2. it is overwritten with zeros: first the first and the last MiB of the disk (the MBR, both
   GPT copies: no partition table survives even a cut overwrite) and the first and last MiB of
   each partition (file-system superblocks and encryption headers), then every byte of the disk
   from start to end.

Then the kernel is told the table is gone, and (unless told not to) the machine powers off at
once through the kernel (the frozen root cannot run a normal shutdown).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from installer.errors import InstallerError
from installer.run import run

log = logging.getLogger("clawdie.reset")

MIB = 1 << 20
_CHUNK = 4 * MIB


class WipeRefusedError(InstallerError):
    """The disk to wipe could not be made out safely: nothing was erased."""

    exit_code = 2


@dataclass(frozen=True)
class RootDisk:
    """The disk holding a root file system: its node, size in bytes, and its partitions
    (node, start and size in bytes)."""

    node: str
    size: int
    partitions: tuple[tuple[str, int, int], ...]


def _sys_block(dev: int) -> Path:
    return Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")


def root_disk(root: Path) -> RootDisk:
    """The whole disk holding the file system of `root` (see the module's note)."""
    if not os.path.ismount(root):
        raise WipeRefusedError(
            f"{root} is not where a file system is mounted: nothing was erased",
            "--wipe erases the disk of the running system: run it without --root",
        )
    dev = os.stat(root).st_dev
    where = _sys_block(dev)
    if os.major(dev) == 0 or not where.exists():
        raise WipeRefusedError(
            f"{root} is not on a disk (a RAM or overlay file system): nothing was erased",
            "run it on the installed box itself, as root",
        )
    part = where.resolve()
    if not (part / "partition").is_file():
        raise WipeRefusedError(
            f"{root} is not on a partition of a plain disk ({part.name}): nothing was erased",
            "--wipe erases the disk the appliance installed itself on; erase this one by hand",
        )
    disk = part.parent
    if (disk / "dm").exists() or not (disk / "size").is_file():
        raise WipeRefusedError(f"{root} is not on a plain disk: nothing was erased")
    node = Path("/dev") / disk.name
    if not node.exists() or not stat.S_ISBLK(node.stat().st_mode):
        raise WipeRefusedError(f"{node} is not a block device here: nothing was erased")
    return RootDisk(str(node), int((disk / "size").read_text()) * 512, _partitions(disk))


def _partitions(disk: Path) -> tuple[tuple[str, int, int], ...]:
    found = []
    for child in sorted(disk.iterdir()):
        if (child / "partition").is_file():
            start = int((child / "start").read_text()) * 512
            size = int((child / "size").read_text()) * 512
            found.append((f"/dev/{child.name}", start, size))
    return tuple(found)


def freeze(root: Path) -> bool:
    """Freeze the root file system (its last writes flushed, no more): True when frozen."""
    result = run(["fsfreeze", "--freeze", str(root)], check=False, timeout=120)
    return result.returncode == 0


def thaw(root: Path) -> None:
    run(["fsfreeze", "--unfreeze", str(root)], check=False, timeout=60)


def discard(disk: RootDisk) -> bool:
    """The whole disk discarded; False when the disk does not support discard."""
    result = run(["blkdiscard", "--force", disk.node], check=False, timeout=3600)
    if result.returncode == 0:
        return True
    why = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
    log.info("wipe: discard refused on %s (%s): overwriting instead", disk.node, why[0])
    return False


def reads_zero(disk: RootDisk) -> bool:
    """After a discard, the disk's first and last MiB read back as zeros (some drives keep the
    old data readable after a discard: then it is overwritten)."""
    fd = os.open(disk.node, os.O_RDONLY | os.O_CLOEXEC)
    try:
        edge = min(MIB, disk.size)
        ends = os.pread(fd, edge, 0) + os.pread(fd, edge, disk.size - edge)
    finally:
        os.close(fd)
    return not ends.strip(b"\0")


def _zero(fd: int, start: int, length: int) -> None:
    block = bytes(min(_CHUNK, length))
    at, end = start, start + length
    while at < end:
        at += os.pwrite(fd, block[: min(len(block), end - at)], at)


def overwrite(disk: RootDisk, progress: Callable[[str], None]) -> list[str]:
    """Zeros over the disk: the tables and each partition's ends first, then every byte."""
    fd = os.open(disk.node, os.O_WRONLY | os.O_CLOEXEC)
    try:
        edge = min(MIB, disk.size)
        _zero(fd, 0, edge)
        _zero(fd, disk.size - edge, edge)
        for _, start, size in disk.partitions:
            ends = min(MIB, size)
            _zero(fd, start, ends)
            _zero(fd, start + size - ends, ends)
        os.fsync(fd)
        done = [
            f"{disk.node}: its first and last MiB (the partition tables: MBR and both GPT "
            f"copies) and the first and last MiB of its {len(disk.partitions)} partition(s) "
            "written with zeros"
        ]
        step = max(disk.size // 10, _CHUNK)
        for at in range(0, disk.size, step):
            _zero(fd, at, min(step, disk.size - at))
            progress(f"overwriting {disk.node}: {min(100, (at + step) * 100 // disk.size)}%")
        os.fsync(fd)
    finally:
        os.close(fd)
    return [*done, f"{disk.node}: then every byte ({disk.size:,} bytes) written with zeros"]


def wipe(root: Path, say: Callable[[str], None], *, power_off: bool) -> list[str]:
    """Erase the disk holding `root` (see the module's note); returns what was done."""
    disk = root_disk(root)
    say(f"wipe: erasing the whole disk {disk.node} ({disk.size:,} bytes), which holds {root}")
    frozen = freeze(root)
    done = [f"{root}: file system frozen" if frozen else f"{root}: could not be frozen"]
    try:
        if discard(disk) and reads_zero(disk):
            done.append(f"{disk.node}: every block discarded ({disk.size:,} bytes, blkdiscard)")
        else:
            done += overwrite(disk, say)
        run(["blockdev", "--rereadpt", disk.node], check=False, timeout=60)
    finally:
        if frozen and not power_off:
            thaw(root)
    for line in done:
        say(f"wipe: {line}")
    if power_off:
        say("wipe: powering off now")
        os.sync()
        Path("/proc/sysrq-trigger").write_text("o")  # the frozen root cannot shut down
    return done
