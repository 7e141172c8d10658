"""Which disk the system is installed on (DESIGN §6). Pure, except the `read_*` functions.

Never a target: the installer stick (boot medium), the disk holding the seed partition, optical
drives, RAM disks, device-mapper and RAID devices, write-protected disks, disks in use (mounted,
swap) and disks smaller than `MIN_TARGET_BYTES`. Taken only when TARGET_DISK names them: loop
and network block devices and removable or USB disks (a second stick is not an internal disk).

Blank means provably empty: no partitions, no signature blkid knows, and the first and the last
MiB of the disk read back as zeros. Anything else is data (an encrypted volume blkid does not
know, a wiped table over old files).

One blank eligible disk is taken without a question. TARGET_DISK takes its disk unattended when
it is blank, or when it names the disk by a stable identity (`serial:…` or `/dev/disk/by-id/…`,
never a kernel name like /dev/sda that is another disk on another machine) and
ERASE_TARGET_DISK=yes: then the console counts down before erasing. Everything else is a
question on the console.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from installer.errors import InstallerError
from installer.media.blockdev import (
    BY_ID,
    BlockDevice,
    disk_devnums,
    read_blkid_probe,
    read_mounts,
    read_swap_devnums,
    render_model,
    render_size,
)
from installer.run import run

MIB = 1024**2
GIB = 1024**3
MIN_TARGET_BYTES = 4 * GIB
EDGE_BYTES = MIB  # this much at each end of a disk must read back as zeros for "blank"
SERIAL_PREFIX = "serial:"
# by-id links that name a disk by a number only (WWN, EUI): listed after the readable ones.
_NUMBER_LINKS = re.compile(r"(wwn-|nvme-eui\.|nvme-nguid\.)")
CLAWDIE_ROOT_PART_NAME = "CLAWDIE-ROOT"
CLAWDIE_ROOT_LABEL = "clawdie-root"
# The record the installer writes last, after the boot loader and a sync (flow.py), and first
# boot's own stamp: either one on the root file system says the installation finished.
INSTALL_COMPLETE_FILE = "/var/lib/clawdie-setup/install-complete.txt"
FIRSTBOOT_DONE_FILE = "/var/lib/clawdie-setup/firstboot/complete.done"
DEBUGFS_TIMEOUT_S = 60.0
# What a disk holding our partitions is: "complete" (the record is there), "unfinished" (the
# record is not: an install was cut short and the disk cannot start), "unknown" (the root file
# system could not be read), "" (not read: never taken unattended).
InstallState = Literal["", "complete", "unfinished", "unknown"]
AGAIN_LINE = "the last install on this disk did not finish: installing again"

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
class Edges:
    """Whether the first and the last MiB of a disk read back as all zeros. `error` says why
    they could not be read ("" when they were); an unread disk is never blank."""

    first_zeros: bool
    last_zeros: bool
    error: str = ""

    @property
    def zeros(self) -> bool:
        return self.first_zeros and self.last_zeros and not self.error


UNREAD = Edges(first_zeros=False, last_zeros=False, error="not read")


@dataclass(frozen=True)
class TargetDisk:
    """A whole disk as the installer sees it: its partitions, what a probe found on the disk
    itself ("gpt", "dos", "ext4"; "" = nothing), what its first and last MiB hold, and whether
    it is in use."""

    device: BlockDevice
    partitions: tuple[BlockDevice, ...] = ()
    signature: str = ""
    mount_points: tuple[str, ...] = ()
    swap: bool = False
    edges: Edges = UNREAD
    install_state: InstallState = ""
    install_detail: str = ""  # why the state is what it is, in a few words

    @property
    def node(self) -> str:
        return self.device.node

    @property
    def blank(self) -> bool:
        """Provably empty: nothing blkid knows, no partitions and zeros at both ends."""
        return not self.partitions and not self.signature and self.edges.zeros

    @property
    def holds_clawdie(self) -> bool:
        """A Clawdie installation: a partition named CLAWDIE-ROOT or an ext4 labelled so."""
        for part in (self.device, *self.partitions):
            if part.part_name.casefold() == CLAWDIE_ROOT_PART_NAME.casefold():
                return True
            if part.fs_type == "ext4" and part.fs_label == CLAWDIE_ROOT_LABEL:
                return True
        return False

    @property
    def unfinished_clawdie(self) -> bool:
        """Our partitions without the record the installer writes last: an install of ours was
        cut short here, and the disk cannot start."""
        return self.holds_clawdie and self.install_state == "unfinished"

    @property
    def root_partition(self) -> BlockDevice | None:
        """The partition named CLAWDIE-ROOT (or the ext4 labelled clawdie-root)."""
        for part in self.partitions:
            if part.part_name.casefold() == CLAWDIE_ROOT_PART_NAME.casefold() or (
                part.fs_type == "ext4" and part.fs_label == CLAWDIE_ROOT_LABEL
            ):
                return part
        return None


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
    """The outcome of choosing: `disk` taken without a question, or `ask` among these disks.

    `countdown`: `disk` holds data and is erased unattended, after the console's countdown.
    `again`: `disk` holds an install of ours that did not finish, and the seed would have erased
    it unattended: it is installed again without a question (a complete one still needs
    REINSTALL).
    """

    reason: str
    disk: TargetDisk | None = None
    ask: tuple[TargetDisk, ...] = field(default=())
    countdown: bool = False
    again: bool = False


@dataclass(frozen=True)
class TargetName:
    """TARGET_DISK and how it names a disk: by serial (`serial`), by a /dev/disk/by-id/ link, by
    a kernel name like /dev/sda, or by another link. `node` is the device node it resolves to
    ("" for a serial, which is matched against each disk's)."""

    text: str
    kind: Literal["serial", "by-id", "kernel", "link"]
    node: str = ""
    serial: str = ""

    @property
    def stable(self) -> bool:
        """Names the same disk on any machine: only these may erase unattended."""
        return self.kind in ("serial", "by-id")


def parse_target_name(value: str) -> TargetName:
    """TARGET_DISK's three forms (pure): `serial:X`, `/dev/disk/by-id/X`, a kernel name.

    `/dev/serial:X` is read as `serial:X` (a check that puts /dev/ before every name makes it).
    """
    text = value.strip()
    bare = text.removeprefix("/dev/")
    if bare.startswith(SERIAL_PREFIX):
        return TargetName(bare, "serial", serial=bare.removeprefix(SERIAL_PREFIX))
    node = text if text.startswith("/dev/") else f"/dev/{text}"
    if node.startswith(BY_ID):
        return TargetName(node, "by-id", node=node)
    return TargetName(node, "kernel" if "/" not in kernel_name(node) else "link", node=node)


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
    elif disk.signature:
        text = f"data ({disk.signature}), no partitions"
    elif disk.edges.error:
        text = f"unknown contents: the disk could not be read ({disk.edges.error})"
    else:
        ends = [
            end
            for end, zeros in (("first", disk.edges.first_zeros), ("last", disk.edges.last_zeros))
            if not zeros
        ]
        text = f"data with no signature blkid knows ({' and '.join(ends)} MiB not empty)"
    if not disk.holds_clawdie:
        return text
    if disk.install_state == "unfinished":
        return f"{text}; a Clawdie installation that did not finish (it cannot start)"
    if disk.install_state == "unknown":
        return f"{text}; a Clawdie installation ({disk.install_detail})"
    return f"{text}; a Clawdie installation"


def render_disk(disk: TargetDisk) -> str:
    """One line naming a disk well enough to recognise it: node, size, model, serial, bus,
    contents."""
    device = disk.device
    return (
        f"{disk.node:<14} {render_size(device.size):>9}  {render_model(device.model)[:24]:<24} "
        f"serial {device.serial or '(none)':<20} {device.bus:<7} {render_contents(disk)}"
    )


def render_identity(disk: TargetDisk) -> str:
    """The disk as a person finds it again: model, serial, size and its by-id name."""
    device = disk.device
    by_id = preferred_by_id(device)
    return (
        f"{render_model(device.model)}, serial {device.serial or '(none)'}, "
        f"{render_size(device.size)}, {by_id or 'no /dev/disk/by-id/ name'}"
    )


def preferred_by_id(device: BlockDevice) -> str:
    """The by-id link a person would write: a readable one (model and serial) before a WWN."""
    links = sorted(
        device.by_id, key=lambda link: (bool(_NUMBER_LINKS.match(link[len(BY_ID) :])), link)
    )
    return links[0] if links else ""


def render_stable_names(disk: TargetDisk, disks: Sequence[TargetDisk]) -> str:
    """What to write after TARGET_DISK= to name `disk` on any machine: `serial:X (or
    /dev/disk/by-id/Y)`; "" when it has neither. A serial another disk here shares is left out."""
    serial = disk.device.serial
    if serial and sum(d.device.serial == serial for d in disks) == 1:
        by_id = preferred_by_id(disk.device)
        return f"{SERIAL_PREFIX}{serial}" + (f" (or {by_id})" if by_id else "")
    return preferred_by_id(disk.device)


def render_unstable_name(name: TargetName, disk: TargetDisk, disks: Sequence[TargetDisk]) -> str:
    """Why TARGET_DISK does not erase unattended, and the name that would."""
    if name.kind == "kernel":
        head = (
            f"TARGET_DISK={name.text} is a kernel name, which can be another disk on another "
            "machine"
        )
    else:
        head = (
            f"TARGET_DISK={name.text} is a link that does not name the disk itself (only "
            "/dev/disk/by-id/… and serial:… do), so it can be another disk on another machine"
        )
    stable = render_stable_names(disk, disks)
    if stable:
        return f"{head}; to erase it unattended write TARGET_DISK={stable}"
    return (
        f"{head}, and this disk ({render_model(disk.device.model)}, "
        f"{render_size(disk.device.size)}) has no stable name (no serial, no /dev/disk/by-id/ "
        "link), so only the console can choose it"
    )


def render_erased(disk: TargetDisk) -> str:
    """What the disk held before the install erased it."""
    return "it was blank" if disk.blank else f"it held {render_contents(disk)}"


def render_listing(disks: Sequence[TargetDisk]) -> str:
    """The disks, one line each, with their by-id names below."""
    lines = []
    for disk in disks:
        lines.append(f"  {render_disk(disk)}")
        lines += [f"    {link}" for link in disk.device.by_id]
    return "\n".join(lines) or "  (no disks at all)"


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
    named: TargetName | None = None,
    erase: bool = False,
    partitions: Iterable[BlockDevice] = (),
) -> Choice:
    """Take a disk, or say which to ask about; raise TargetError when none can be (pure).

    `named` is TARGET_DISK (see `read_target_name`), `erase` is ERASE_TARGET_DISK=yes.
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
    named: TargetName,
    erase: bool,
    partitions: Iterable[BlockDevice],
) -> Choice:
    disk = _find_named(disks, named, partitions)
    reasons = judged[disk.node].reasons(named=True)
    if reasons:
        raise TargetError(
            f"TARGET_DISK={named.text} cannot be installed to: {'; '.join(reasons)}",
            "name another disk in TARGET_DISK=, or remove the line to be asked",
        )
    if disk.blank:
        return Choice("TARGET_DISK names it and it is blank", disk=disk)
    if not erase:
        return Choice(
            f"TARGET_DISK names it, it holds {render_contents(disk)} and ERASE_TARGET_DISK is "
            "not yes",
            ask=(disk,),
        )
    if not named.stable:
        return Choice(render_unstable_name(named, disk, disks), ask=(disk,))
    how = "its serial" if named.kind == "serial" else "its by-id link"
    if disk.unfinished_clawdie:
        return Choice(
            f"TARGET_DISK names it by {how} and ERASE_TARGET_DISK=yes; {AGAIN_LINE}",
            disk=disk,
            countdown=True,
            again=True,
        )
    return Choice(
        f"TARGET_DISK names it by {how} and ERASE_TARGET_DISK=yes; it holds "
        f"{render_contents(disk)}",
        disk=disk,
        countdown=True,
    )


def _find_named(
    disks: Sequence[TargetDisk], named: TargetName, partitions: Iterable[BlockDevice]
) -> TargetDisk:
    """The one disk TARGET_DISK names; TargetError naming the disks there are otherwise."""
    if named.kind == "serial":
        found = [d for d in disks if named.serial and d.device.serial == named.serial]
        if len(found) > 1:
            raise TargetError(
                f"TARGET_DISK={named.text} is the serial of {len(found)} disks "
                f"({', '.join(d.node for d in found)}); it must name one",
                "name the disk by its /dev/disk/by-id/ link instead, or remove the line to be "
                "asked",
            )
        if not found:
            raise TargetError(
                f"TARGET_DISK={named.text} is the serial of no disk on this machine; the disks "
                f"are:\n{render_listing(disks)}",
                "copy the serial exactly as listed (upper and lower case differ), or remove the "
                "line to be asked",
            )
        return found[0]
    disk = next((d for d in disks if d.node == named.node), None)
    if disk is not None:
        return disk
    part = next((p for p in partitions if p.node == named.node), None)
    if part is not None:
        raise TargetError(
            f"TARGET_DISK={named.text} is a partition, not a disk",
            f"name the whole disk, e.g. TARGET_DISK={part.disk}",
        )
    raise TargetError(
        f"TARGET_DISK={named.text} is not a disk on this machine; the disks are:\n"
        f"{render_listing(disks)}",
        "correct TARGET_DISK= in setup.txt, or remove the line to be asked",
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


def read_target_name(value: str) -> TargetName:
    """TARGET_DISK parsed, with a by-id or other link resolved to the device node it points at."""
    name = parse_target_name(value)
    return replace(name, node=os.path.realpath(name.node)) if name.node else name


def _read_exactly(fd: int, offset: int, length: int) -> bytes:
    chunks, done = [], 0
    while done < length:
        chunk = os.pread(fd, length - done, offset + done)
        if not chunk:
            raise OSError(errno.EIO, f"the disk ended at byte {offset + done}")
        chunks.append(chunk)
        done += len(chunk)
    return b"".join(chunks)


def read_edges(node: str) -> Edges:
    """Read the first and the last MiB of the disk at `node` (read-only) and say whether they
    are all zeros; a disk that cannot be read is reported with the reason, never as blank."""
    try:
        fd = os.open(node, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        return Edges(False, False, f"cannot open {node}: {err.strerror or err}")
    try:
        kind = os.fstat(fd).st_mode
        if not (stat.S_ISBLK(kind) or stat.S_ISREG(kind)):
            # Worded by us: what a read of a directory answers depends on the file system
            # (EISDIR on ext4, EINVAL on tmpfs).
            return Edges(False, False, f"{node} is not a disk (not a block device)")
        size = os.lseek(fd, 0, os.SEEK_END)
        length = min(EDGE_BYTES, size)
        first = _read_exactly(fd, 0, length)
        last = _read_exactly(fd, size - length, length)
    except OSError as err:
        return Edges(False, False, f"reading {node} failed: {err.strerror or err}")
    finally:
        os.close(fd)
    zeros = bytes(length)
    return Edges(first_zeros=first == zeros, last_zeros=last == zeros)


def read_signature(node: str) -> str:
    """What a low-level probe finds on the whole disk: a partition table or file system type."""
    probe, error = read_blkid_probe(node)
    return probe.get("PTTYPE") or probe.get("TYPE") or (f"unrecognised: {error}" if error else "")


def _debugfs_cat(node: str, path: str) -> tuple[bytes | None, str]:
    """The file at `path` in the ext4 file system on `node`, read without mounting it (debugfs
    opens it read-only): (content, "") or (None, "absent") or (None, why it could not be read)."""
    try:
        result = run(["debugfs", "-R", f"cat {path}", node], check=False, timeout=DEBUGFS_TIMEOUT_S)
    except InstallerError as err:
        return None, err.message
    errors = result.stderr.decode(errors="replace")
    if "File not found by ext2_lookup" in errors:
        return None, "absent"
    if "while trying to open" in errors or "Filesystem not open" in errors:
        reason = errors.strip().splitlines()[-1] if errors.strip() else "no reason given"
        return None, f"debugfs could not open {node}: {reason}"
    return result.stdout, ""


def read_install_state(disk: TargetDisk) -> tuple[InstallState, str]:
    """Whether the install of ours on `disk` finished: the installer's last record, or first
    boot's stamp, on the root file system. A root partition with no ext4 yet is unfinished (an
    install cut before or while making the file systems); one that cannot be read is unknown,
    and unknown is never erased unattended."""
    if not disk.holds_clawdie:
        return "", ""
    root = disk.root_partition
    if root is None or root.fs_type != "ext4":
        return "unfinished", "its root partition has no file system yet"
    for path, what in (
        (INSTALL_COMPLETE_FILE, "the installer's completion record"),
        (FIRSTBOOT_DONE_FILE, "first boot's completion stamp"),
    ):
        content, why = _debugfs_cat(root.node, path)
        if content is not None:
            return "complete", f"{what} is there"
        if why != "absent":
            return "unknown", f"whether it finished could not be read: {why}"
    return "unfinished", "its root file system has no completion record"


def read_target_disks(
    devices: Sequence[BlockDevice], only: Iterable[str] | None = None
) -> list[TargetDisk]:
    """Every whole disk (or only those in `only`) with its partitions, signature, the zeros at
    its ends and its use."""
    wanted = None if only is None else {resolve_disk_name(n) for n in only}
    mounts = read_mounts()
    swaps = read_swap_devnums()
    disks: list[TargetDisk] = []
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
                edges=read_edges(device.node),
            )
        )
        state, detail = read_install_state(disks[-1])
        disks[-1] = replace(disks[-1], install_state=state, install_detail=detail)
    return disks
