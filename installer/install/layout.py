"""The target disk's layout: GPT with a BIOS boot partition, an EFI system partition and the
root file system; the file systems on them; /etc/fstab by UUID.

    p1  1 MiB    EF02  BIOS-BOOT     (grub's core image on BIOS machines)
    p2  256 MiB  EF00  CLAWDIE-EFI   FAT32, label CLAWDIEEFI, mounted at /boot/efi
    p3  the rest 8300  CLAWDIE-ROOT  ext4, label clawdie-root, mounted at /
"""

from __future__ import annotations

import logging
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from installer.errors import InstallerError
from installer.media.blockdev import read_blkid_probe
from installer.run import run

log = logging.getLogger("clawdie.install")

PARTITION_WAIT_S = 30.0
ESP_LABEL = "CLAWDIEEFI"
ROOT_LABEL = "clawdie-root"
# udevd's control socket: present only when udev runs (not in containers or early boot).
UDEV_CONTROL = Path("/run/udev/control")


@dataclass(frozen=True)
class PartitionSpec:
    number: int
    size: str  # sgdisk end: "+1M", or "0" for the rest of the disk
    type_code: str
    name: str


PARTITIONS = (
    PartitionSpec(1, "+1M", "EF02", "BIOS-BOOT"),
    PartitionSpec(2, "+256M", "EF00", "CLAWDIE-EFI"),
    PartitionSpec(3, "0", "8300", "CLAWDIE-ROOT"),
)
BIOS_PART, ESP_PART, ROOT_PART = (p.number for p in PARTITIONS)


@dataclass(frozen=True)
class Layout:
    """The target disk once formatted: its partition nodes and the file systems' UUIDs."""

    disk: str
    esp: str
    root: str
    esp_uuid: str
    root_uuid: str


class PartitionError(InstallerError):
    """The new partitions did not appear, or a file system could not be made."""


def partition_node(disk: str, number: int) -> str:
    """The node of partition `number`: /dev/vda1, but /dev/nvme0n1p1, /dev/loop0p1, mmcblk0p1."""
    return f"{disk}p{number}" if disk[-1].isdigit() else f"{disk}{number}"


def render_sgdisk_argv(disk: str) -> list[str]:
    """One sgdisk call creating the whole table (the old one is zapped before)."""
    argv = ["sgdisk"]
    for p in PARTITIONS:
        argv += [f"--new={p.number}:0:{p.size}", f"--typecode={p.number}:{p.type_code}"]
        argv += [f"--change-name={p.number}:{p.name}"]
    return [*argv, disk]


def render_fstab(root_uuid: str, esp_uuid: str) -> str:
    """/etc/fstab of the installed system: both file systems by UUID."""
    return (
        "# Written by clawdie-setup install. <file system> <mount point> <type> <options> "
        "<dump> <pass>\n"
        f"UUID={root_uuid} / ext4 errors=remount-ro 0 1\n"
        f"UUID={esp_uuid} /boot/efi vfat umask=0077 0 2\n"
    )


def write_partition_table(disk: str) -> None:
    """Erase every signature on the disk and write the new GPT."""
    log.info("layout: erasing the signatures and the partition table of %s", disk)
    run(["wipefs", "--all", "--force", disk], timeout=120)
    run(["sgdisk", "--zap-all", disk], timeout=120)
    run(render_sgdisk_argv(disk), timeout=120)


SYS_BLOCK = Path("/sys/class/block")
Extent = tuple[int, int, int]  # partition number, first sector, sectors


def read_disk_table(disk: str) -> set[Extent]:
    """The partitions the table on the disk holds (`partx --raw`), in 512-byte sectors."""
    result = run(["partx", "--raw", "-g", "-o", "NR,START,SECTORS", disk], check=False)
    extents: set[Extent] = set()
    for line in result.stdout.decode(errors="replace").splitlines():
        fields = line.split()
        if len(fields) == 3 and all(f.isdigit() for f in fields):
            extents.add((int(fields[0]), int(fields[1]), int(fields[2])))
    return extents


def read_kernel_table(disk: str, sys_block: Path = SYS_BLOCK) -> set[Extent]:
    """The partitions the kernel has for `disk` now (sysfs: partition, start, size)."""
    extents: set[Extent] = set()
    base = sys_block / Path(disk).name
    if not base.is_dir():
        return extents
    for entry in base.iterdir():
        try:
            number = int((entry / "partition").read_text())
            start = int((entry / "start").read_text())
            size = int((entry / "size").read_text())
        except (OSError, ValueError):
            continue
        extents.add((number, start, size))
    return extents


def kernel_has_table(disk: str) -> bool:
    """Whether the kernel already uses the table on the disk (sgdisk told it): then there is
    nothing to re-read, and a re-read of a disk in use would only log a BLKRRPART warning."""
    on_disk = read_disk_table(disk)
    return bool(on_disk) and read_kernel_table(disk) == on_disk


def reread_partitions(disk: str) -> None:
    """Tell the kernel about the new table (unless it has it already), and let udev catch up
    when it runs."""
    if kernel_has_table(disk):
        log.debug("layout: the kernel already has the new table of %s; no re-read", disk)
        result = None
    elif shutil.which("partprobe"):
        result = run(["partprobe", disk], check=False, timeout=60)
    else:
        result = run(["blockdev", "--rereadpt", disk], check=False, timeout=60)
    if result is not None and result.returncode != 0:
        log.warning(
            "layout: re-reading the partition table of %s failed: %s",
            disk,
            result.stderr.decode(errors="replace").strip(),
        )
    if UDEV_CONTROL.exists() and shutil.which("udevadm"):
        run(["udevadm", "settle", "--timeout=30"], check=False, timeout=40)


def _is_block(node: str) -> bool:
    try:
        return stat.S_ISBLK(Path(node).stat().st_mode)
    except OSError:
        return False


def wait_for_partitions(disk: str, timeout: float = PARTITION_WAIT_S) -> list[str]:
    """The partition nodes of the new table, once they are all there (bounded wait)."""
    nodes = [partition_node(disk, p.number) for p in PARTITIONS]
    started = time.monotonic()

    def missing() -> list[str]:
        gone = [n for n in nodes if not _is_block(n)]
        if gone:
            # The kernel may have kept the old table (the disk was busy): add the new entries.
            run(["partx", "--update", disk], check=False, timeout=30)
        return gone

    retrying = Retrying(
        retry=retry_if_result(bool),
        stop=stop_after_delay(timeout),
        wait=wait_fixed(0.2),
        before_sleep=lambda _: log.debug("layout: waiting for %s", ", ".join(nodes)),
    )
    try:
        retrying(missing)
    except RetryError as err:
        absent = err.last_attempt.result()
        raise PartitionError(
            f"the new partitions of {disk} did not appear within {timeout:g} s "
            f"(missing {', '.join(absent)})",
            "the disk may be in use or failing; restart the machine and try again",
        ) from None
    log.info("layout: partitions of %s ready after %.1f s", disk, time.monotonic() - started)
    return nodes


def read_uuid(node: str) -> str:
    probe, error = read_blkid_probe(node)
    uuid = probe.get("UUID", "")
    if not uuid:
        raise PartitionError(
            f"the new file system on {node} has no UUID ({error or 'blkid found none'})",
            "the disk may be failing; try another disk",
        )
    return uuid


def make_file_systems(disk: str, nodes: list[str]) -> Layout:
    """Wipe old signatures inside the new partitions, make FAT32 and ext4, read their UUIDs."""
    for node in nodes:
        run(["wipefs", "--all", "--force", node], timeout=120)
    esp, root = nodes[ESP_PART - 1], nodes[ROOT_PART - 1]
    run(["mkfs.vfat", "-F", "32", "-n", ESP_LABEL, esp], timeout=300)
    run(["mkfs.ext4", "-q", "-F", "-L", ROOT_LABEL, root], timeout=1800)
    return Layout(disk, esp, root, read_uuid(esp), read_uuid(root))
