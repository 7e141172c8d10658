"""Which disk the system is installed on (DESIGN §6). Pure, except the `read_*` functions.

Never a target: the installer stick (boot medium), the disk holding the seed partition, optical
drives, RAM disks, device-mapper and RAID devices, write-protected disks, disks in use (mounted,
swap) and disks smaller than `MIN_TARGET_BYTES`. Taken only when TARGET_DISK names them: loop
and network block devices and removable or USB disks (a second stick is not an internal disk).

One blank eligible disk is taken without a question. TARGET_DISK takes its disk unattended when
it is blank or ERASE_TARGET_DISK=yes. Everything else is a question on the console.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from installer.blockdev import (
    BlockDevice,
    disk_devnums,
    read_blkid_probe,
    read_mounts,
    read_swap_devnums,
    render_size,
)
from installer.errors import InstallerError

GIB = 1024**3
MIN_TARGET_BYTES = 4 * GIB
CLAWDIE_ROOT_PART_NAME = "CLAWDIE-ROOT"
CLAWDIE_ROOT_LABEL = "clawdie-root"

# Kernel names of devices that are never a target, and of those taken only when named.
_NEVER = (
    (re.compile(r"sr\d+|scd\d+"), "an optical drive"),
    (re.compile(r"z?ram\d+"), "a RAM disk"),
    (re.compile(r"fd\d+"), "a floppy drive"),
    (re.compile(r"dm-\d+|md\d+|md/.+"), "a device-mapper or RAID device, not a disk"),
)
_NAMED_ONLY = (
    (re.compile(r"loop\d+"), "a loop device (a file, not a disk)"),
    (re.compile(r"nbd\d+"), "a network block device"),
)


class TargetError(InstallerError):
    """No disk can be installed to, or TARGET_DISK names one that cannot."""


@dataclass(frozen=True)
class TargetDisk:
    """A whole disk as the installer sees it: its partitions, what a probe found on the disk
    itself ("gpt", "dos", "ext4"; "" = nothing) and whether it is in use."""

    device: BlockDevice
    partitions: tuple[BlockDevice, ...] = ()
    signature: str = ""
    mount_points: tuple[str, ...] = ()
    swap: bool = False

    @property
    def node(self) -> str:
        return self.device.node

    @property
    def blank(self) -> bool:
        return not self.partitions and not self.signature

    @property
    def holds_clawdie(self) -> bool:
        """A Clawdie installation: a partition named CLAWDIE-ROOT or an ext4 labelled so."""
        for part in (self.device, *self.partitions):
            if part.part_name.casefold() == CLAWDIE_ROOT_PART_NAME.casefold():
                return True
            if part.fs_type == "ext4" and part.fs_label == CLAWDIE_ROOT_LABEL:
                return True
        return False


@dataclass(frozen=True)
class Judgement:
    """Why a disk cannot be the target: `never` always, `unless_named` unless TARGET_DISK
    names it."""

    never: tuple[str, ...] = ()
    unless_named: tuple[str, ...] = ()

    def eligible(self, *, named: bool) -> bool:
        return not self.never and (named or not self.unless_named)

    def reasons(self, *, named: bool) -> tuple[str, ...]:
        return self.never if named else (*self.never, *self.unless_named)


@dataclass(frozen=True)
class Choice:
    """The outcome of choosing: `disk` taken without a question, or `ask` among these disks."""

    reason: str
    disk: TargetDisk | None = None
    ask: tuple[TargetDisk, ...] = field(default=())


def kernel_name(node: str) -> str:
    return node.removeprefix("/dev/")


def judge_disk(disk: TargetDisk, *, boot_disks: set[str], seed_disks: set[str]) -> Judgement:
    """Every reason `disk` is not a target (pure)."""
    device, name = disk.device, kernel_name(disk.node)
    never: list[str] = []
    unless_named: list[str] = []
    if disk.node in boot_disks:
        never.append("it is the installer stick (the medium this system started from)")
    if disk.node in seed_disks:
        never.append("it holds the seed partition (setup.txt)")
    never += [what for pattern, what in _NEVER if pattern.fullmatch(name)]
    unless_named += [what for pattern, what in _NAMED_ONLY if pattern.fullmatch(name)]
    if device.read_only:
        never.append("it is write-protected")
    if device.size < MIN_TARGET_BYTES:
        never.append(
            f"it holds {render_size(device.size)}; the system needs at least "
            f"{render_size(MIN_TARGET_BYTES)}"
        )
    if disk.mount_points:
        never.append(f"it has mounted file systems ({', '.join(disk.mount_points)})")
    if disk.swap:
        never.append("it holds active swap")
    if device.removable or device.bus == "usb":
        unless_named.append(f"it is a removable or USB disk (bus {device.bus})")
    return Judgement(tuple(never), tuple(unless_named))


def render_contents(disk: TargetDisk) -> str:
    """What is on a disk, in a few words (no file contents)."""
    if disk.blank:
        return "blank"
    if disk.partitions:
        named = [
            f"{p.fs_type or 'no file system'} {p.fs_label or p.part_name}".strip()
            for p in disk.partitions
        ]
        text = f"{len(disk.partitions)} partition(s): {', '.join(named)}"
    else:
        text = f"data ({disk.signature}), no partitions"
    return f"{text}; a Clawdie installation" if disk.holds_clawdie else text


def render_disk(disk: TargetDisk) -> str:
    """One line naming a disk well enough to recognise it: node, size, model, bus, contents."""
    device = disk.device
    return (
        f"{disk.node:<14} {render_size(device.size):>9}  {(device.model or '-')[:24]:<24} "
        f"{device.bus:<7} {render_contents(disk)}"
    )


def _render_refused(disks: Iterable[TargetDisk], judged: dict[str, Judgement]) -> str:
    lines = [
        f"  {d.node}: {'; '.join(judged[d.node].reasons(named=False))}"
        for d in disks
        if not judged[d.node].eligible(named=False)
    ]
    return "\n".join(lines) or "  (no disks at all)"


def choose_target(
    disks: Sequence[TargetDisk],
    *,
    boot_disks: set[str],
    seed_disks: set[str],
    named: str | None = None,
    erase: bool = False,
    partitions: Iterable[BlockDevice] = (),
) -> Choice:
    """Take a disk, or say which to ask about; raise TargetError when none can be (pure).

    `named` is TARGET_DISK resolved to a device node, `erase` is ERASE_TARGET_DISK=yes.
    """
    judged = {d.node: judge_disk(d, boot_disks=boot_disks, seed_disks=seed_disks) for d in disks}
    if named is not None:
        return _choose_named(disks, judged, named, erase, partitions)
    eligible = [d for d in disks if judged[d.node].eligible(named=False)]
    if not eligible:
        raise TargetError(
            "there is no disk to install to; passed over:\n" + _render_refused(disks, judged),
            "connect an internal disk of at least "
            f"{render_size(MIN_TARGET_BYTES)}, or name one with TARGET_DISK= in setup.txt",
        )
    if len(eligible) == 1 and eligible[0].blank:
        return Choice("the only eligible disk, and it is blank", disk=eligible[0])
    if len(eligible) == 1:
        return Choice(
            f"the only eligible disk holds {render_contents(eligible[0])}", ask=(eligible[0],)
        )
    return Choice(f"{len(eligible)} disks could be the target", ask=tuple(eligible))


def _choose_named(
    disks: Sequence[TargetDisk],
    judged: dict[str, Judgement],
    named: str,
    erase: bool,
    partitions: Iterable[BlockDevice],
) -> Choice:
    disk = next((d for d in disks if d.node == named), None)
    if disk is None:
        part = next((p for p in partitions if p.node == named), None)
        if part is not None:
            raise TargetError(
                f"TARGET_DISK={named} is a partition, not a disk",
                f"name the whole disk, e.g. TARGET_DISK={part.disk}",
            )
        listed = "\n".join(f"  {render_disk(d)}" for d in disks) or "  (no disks at all)"
        raise TargetError(
            f"TARGET_DISK={named} is not a disk on this machine; the disks are:\n{listed}",
            "correct TARGET_DISK= in setup.txt, or remove the line to be asked",
        )
    reasons = judged[named].reasons(named=True)
    if reasons:
        raise TargetError(
            f"TARGET_DISK={named} cannot be installed to: {'; '.join(reasons)}",
            "name another disk in TARGET_DISK=, or remove the line to be asked",
        )
    if disk.blank:
        return Choice("TARGET_DISK names it and it is blank", disk=disk)
    if erase:
        return Choice("TARGET_DISK names it and ERASE_TARGET_DISK=yes", disk=disk)
    return Choice(
        f"TARGET_DISK names it, it holds {render_contents(disk)} and ERASE_TARGET_DISK is not yes",
        ask=(disk,),
    )


def match_typed_disk(typed: str, disks: Sequence[TargetDisk]) -> TargetDisk | None:
    """The disk the operator typed ("sda" or "/dev/sda"), if it is one of `disks`."""
    text = typed.strip()
    node = text if text.startswith("/dev/") else f"/dev/{text}"
    return next((d for d in disks if d.node == node), None)


# -- reading the machine's disks ----------------------------------------------------------------


def resolve_disk_name(value: str) -> str:
    """TARGET_DISK as a device node: `sda` -> /dev/sda; by-id and other symlinks resolved."""
    path = value if value.startswith("/dev/") else f"/dev/{value}"
    return os.path.realpath(path)


def read_signature(node: str) -> str:
    """What a low-level probe finds on the whole disk: a partition table or file system type."""
    probe, error = read_blkid_probe(node)
    return probe.get("PTTYPE") or probe.get("TYPE") or (f"unrecognised: {error}" if error else "")


def read_target_disks(
    devices: Sequence[BlockDevice], only: Iterable[str] | None = None
) -> list[TargetDisk]:
    """Every whole disk (or only those in `only`) with its partitions, signature and use."""
    wanted = None if only is None else {resolve_disk_name(n) for n in only}
    mounts = read_mounts()
    swaps = read_swap_devnums()
    disks = []
    for device in devices:
        if not device.is_disk or (wanted is not None and device.node not in wanted):
            continue
        numbers = disk_devnums(device, devices)
        disks.append(
            TargetDisk(
                device=device,
                partitions=tuple(d for d in devices if d.disk == device.node and not d.is_disk),
                signature=read_signature(device.node),
                mount_points=tuple(sorted({m.mount_point for m in mounts if m.devnum in numbers})),
                swap=bool(numbers & swaps),
            )
        )
    return disks
