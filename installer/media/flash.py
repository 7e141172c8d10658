"""Which devices an image may be written to, and why the others are refused (DESIGN §5).

Refused: anything that is not a whole disk, the disk holding the running system, a disk with a
mounted partition or active swap, a non-removable disk (unless `allow_non_removable`: USB-SATA
adapters and card readers that claim to be fixed, loop devices in tests), a write-protected disk,
and a disk smaller than the image. Only the non-removable refusal can be overridden.
"""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from installer.errors import InstallerError, UsageError
from installer.media.blockdev import (
    BlockDevice,
    Mount,
    disk_devnums,
    disk_of_devnum,
    read_block_device,
    read_block_devices,
    read_mounts,
    read_swap_devnums,
    render_size,
)

# The running system lives on the disks behind these mount points.
SYSTEM_MOUNTS = ("/", "/usr", "/boot", "/boot/efi", "/var")


class FlashRefusedError(InstallerError):
    """The target device is not safe to overwrite; the message lists every reason."""


@dataclass(frozen=True)
class Refusal:
    """One reason not to write to a device; `override` names the flag that lifts it, if any."""

    reason: str
    override: str | None = None


@dataclass(frozen=True)
class DiskState:
    """A disk as the flasher judges it: the device, its mounts and whether it holds the system."""

    device: BlockDevice
    mount_points: tuple[str, ...]
    swap: bool
    system: bool


def parse_refusals(
    state: DiskState, image_size: int, *, allow_non_removable: bool
) -> list[Refusal]:
    """Every reason to refuse writing `image_size` bytes to the disk in `state` (pure)."""
    device, refusals = state.device, []
    if not device.is_disk:
        refusals.append(Refusal(f"{device.node} is a partition; give the whole disk {device.disk}"))
    if state.system:
        refusals.append(Refusal(f"{device.disk} holds the running system"))
    if state.mount_points and not state.system:
        where = ", ".join(state.mount_points)
        refusals.append(Refusal(f"{device.disk} has mounted file systems ({where}); unmount them"))
    if state.swap:
        refusals.append(Refusal(f"{device.disk} holds active swap; swapoff it first"))
    if not device.removable and not allow_non_removable:
        refusals.append(
            Refusal(
                f"{device.disk} is not a removable disk (bus {device.bus}); internal disks are "
                "refused",
                "--allow-non-removable",
            )
        )
    if device.read_only:
        refusals.append(Refusal(f"{device.node} is write-protected"))
    if device.size < image_size:
        refusals.append(
            Refusal(
                f"{device.node} holds {render_size(device.size)}, the image needs "
                f"{render_size(image_size)}"
            )
        )
    return refusals


def read_system_disks(mounts: Iterable[Mount]) -> set[str]:
    """Whole-disk nodes behind the running system's mount points."""
    disks: set[str] = set()
    for mount in mounts:
        if mount.mount_point in SYSTEM_MOUNTS:
            disks |= disk_of_devnum(mount.devnum)
    return disks


def read_disk_state(device: BlockDevice, devices: list[BlockDevice]) -> DiskState:
    """Mounts, swap and system role of the disk holding `device`."""
    disk = next((d for d in devices if d.node == device.disk), device)
    numbers = disk_devnums(disk, devices)
    mounts = read_mounts()
    mount_points = tuple(sorted({m.mount_point for m in mounts if m.devnum in numbers}))
    swap = bool(numbers & read_swap_devnums())
    system = device.disk in read_system_disks(mounts)
    return DiskState(device, mount_points, swap, system)


def read_disk_states() -> list[DiskState]:
    """Every whole disk with a medium, judged."""
    devices = read_block_devices()
    return [read_disk_state(d, devices) for d in devices if d.is_disk]


def read_target(node: str) -> DiskState:
    """The device the operator named, judged; UsageError when it is not a block device."""
    path = Path(node)
    try:
        is_block = stat.S_ISBLK(path.stat().st_mode)
    except OSError:
        raise UsageError(
            f"{node} does not exist", "run `clawdie-setup flash IMAGE` to list disks"
        ) from None
    device = read_block_device(node) if is_block else None
    if device is None:
        raise UsageError(
            f"{node} is not a disk with a medium in it",
            "run `clawdie-setup flash IMAGE` to list disks",
        )
    return read_disk_state(device, read_block_devices())


def ensure_target_allowed(state: DiskState, image_size: int, *, allow_non_removable: bool) -> None:
    """Raise FlashRefusedError naming every reason the target is refused."""
    refusals = parse_refusals(state, image_size, allow_non_removable=allow_non_removable)
    if not refusals:
        return
    reasons = "\n".join(f"  - {r.reason}" for r in refusals)
    overrides = sorted({r.override for r in refusals if r.override})
    only_overridable = all(r.override for r in refusals)
    hint = (
        f"if you are sure this is the stick, add {' '.join(overrides)}"
        if only_overridable
        else "pick another device: run `clawdie-setup flash IMAGE` to list them"
    )
    raise FlashRefusedError(f"refusing to write to {state.device.node}:\n{reasons}", hint)


def render_disk_line(state: DiskState, image_size: int, *, allow_non_removable: bool) -> str:
    """One line of the device list: node, size, model, bus, removable, mounts and the verdict."""
    device = state.device
    refusals = parse_refusals(state, image_size, allow_non_removable=allow_non_removable)
    verdict = "ok" if not refusals else "refused: " + "; ".join(r.reason for r in refusals)
    mounted = ", ".join(state.mount_points) or "-"
    return (
        f"{device.node:<14} {render_size(device.size):>9}  {(device.model or '-')[:24]:<24} "
        f"{device.bus:<8} {'yes' if device.removable else 'no':<9} {mounted:<20} {verdict}"
    )


def render_disk_table(states: list[DiskState], image_size: int, *, allow: bool) -> str:
    """The device list shown when no DEVICE is given."""
    header = f"{'DEVICE':<14} {'SIZE':>9}  {'MODEL':<24} {'BUS':<8} {'REMOVABLE':<9} "
    header += f"{'MOUNTED':<20} VERDICT"
    lines = [header] + [render_disk_line(s, image_size, allow_non_removable=allow) for s in states]
    return "\n".join(lines)


def parse_sha256_file(text: str, image_name: str) -> str | None:
    """The digest for `image_name` in `sha256sum` output text (or a bare digest), else None."""
    for line in text.splitlines():
        fields = line.split()
        if not fields or len(fields[0]) != 64:
            continue
        name = fields[1].lstrip("*") if len(fields) > 1 else None
        if name is None or Path(name).name == image_name:
            return fields[0].lower()
    return None


def read_expected_sha256(image: Path) -> str | None:
    """The digest in IMAGE.sha256 next to the image, when that file exists."""
    checksum = image.with_name(image.name + ".sha256")
    if not checksum.is_file():
        return None
    digest = parse_sha256_file(checksum.read_text(errors="replace"), image.name)
    if digest is None:
        raise UsageError(f"{checksum} holds no SHA-256 for {image.name}")
    return digest


def read_image_size(image: Path) -> int:
    """The image's size in bytes; UsageError when it is missing, empty or not a file."""
    try:
        st = image.stat()
    except OSError:
        raise UsageError(
            f"{image} does not exist", "give the path of the downloaded image"
        ) from None
    if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
        raise UsageError(f"{image} is not an image file")
    return st.st_size


SEEDED_NEXT_STEP = (
    "Your setup.txt is on the stick's CLAWDIESEED drive. Next: start the machine from the stick."
)


def write_seed_onto(node: str, seed: bytes, partitions_known: bool) -> str:
    """Put the operator's checked setup.txt on the seed partition of the stick just flashed
    (written as the receipt's writer writes: mtools on FAT, nothing mounted); the closing line
    to print. Raises a worded error when the seed could not be written: the image is fine, the
    operator copies the file by hand."""
    from installer.media.blockdev import read_block_devices
    from installer.media.seed_device import judge_device, write_seed_volume_file
    from installer.run import run
    from installer.seed.reader import SEED_NAME

    by_hand = f"copy your {SEED_NAME} onto the stick's CLAWDIESEED drive by hand"
    if not partitions_known:
        raise InstallerError(
            f"the image is written and verified, but {SEED_NAME} was not: the kernel has not "
            f"re-read {node}'s partitions",
            f"unplug the stick and plug it in again, then {by_hand}",
        )
    with contextlib.suppress(InstallerError):  # no udev here: the devices are read as they are
        run(["udevadm", "settle", "--timeout=30"], timeout=40)
    seeds = [
        d for d in read_block_devices() if d.disk == node and d.node != node and judge_device(d)[0]
    ]
    if len(seeds) != 1:
        raise InstallerError(
            f"the image is written and verified, but {SEED_NAME} was not: "
            f"{len(seeds)} seed partitions found on {node}",
            by_hand,
        )
    result = write_seed_volume_file(seeds[0], SEED_NAME, seed)
    if not result.written:
        raise InstallerError(
            f"the image is written and verified, but {SEED_NAME} was not: {result.message}", by_hand
        )
    return SEEDED_NEXT_STEP
