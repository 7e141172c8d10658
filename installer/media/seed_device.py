"""Find the seed partition on real block devices, read setup.txt from it, write the receipt.

DESIGN §3 "Where it lives": GPT partition name `CLAWDIE-SEED` or file-system label `CLAWDIESEED`,
either case, on a FAT, exFAT or ISO 9660 volume. Every device looked at is logged with the reason
it was taken or passed over. The seed is opened read-only (see `seed_volume`), only for as long
as it takes to copy the file, and released also on error.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from installer.errors import CommandFailedError, InstallerError, SeedUnreadableError
from installer.media import receipt_file
from installer.media.blockdev import (
    BlockDevice,
    disk_of_devnum,
    read_block_devices,
    read_mounts,
    render_size,
)
from installer.media.bundle_file import write_bundle_in_place
from installer.media.seed_volume import (
    SeedDeviceGoneError,
    Volume,
    ensure_device_present,
    open_volume,
    write_private_file,
)
from installer.seed.entry import RECEIPT_NAME
from installer.seed.reader import SEED_NAME, choose_seed_name

log = logging.getLogger("clawdie.seed")

SEED_PART_NAME = "CLAWDIE-SEED"
SEED_FS_LABEL = "CLAWDIESEED"
SEED_FS_TYPES = ("vfat", "exfat", "iso9660")
# Where Debian live-boot mounts the medium it booted from.
LIVE_MEDIUM_MOUNTS = ("/run/live/medium", "/lib/live/mount/medium")


class SeedNotFoundError(InstallerError):
    """No seed partition, or several and no way to tell which one is meant."""


@dataclass(frozen=True)
class Looked:
    """One device the finder looked at and its verdict (`taken` or why it was passed over)."""

    node: str
    fs_type: str
    fs_label: str
    part_name: str
    taken: bool
    reason: str

    def render(self) -> str:
        label = self.fs_label or "-"
        name = self.part_name or "-"
        fs = self.fs_type or "no file system known"
        verdict = "TAKEN" if self.taken else "passed"
        return f"{self.node}: {fs}, label {label}, partition name {name}: {verdict} ({self.reason})"


@dataclass(frozen=True)
class SeedSearch:
    """What the finder saw: the candidates and every device with its verdict."""

    candidates: tuple[BlockDevice, ...]
    looked: tuple[Looked, ...]


@dataclass(frozen=True)
class SeedRead:
    """The seed file read from a device. `data` may hold secrets: never log it."""

    device: BlockDevice
    name: str
    data: bytes
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class ReceiptResult:
    """Whether SETUP-RESULT.txt was written, and why not when it was not."""

    written: bool
    message: str


def judge_device(device: BlockDevice) -> tuple[bool, str]:
    """Is `device` a seed candidate? The verdict and its reason, for the log."""
    name_match = device.part_name.casefold() == SEED_PART_NAME.casefold()
    label_match = device.fs_label.casefold() == SEED_FS_LABEL.casefold()
    if not name_match and not label_match and device.probe_error:
        return False, f"could not look inside: {device.probe_error}"
    if not name_match and not label_match:
        return False, f"neither partition name {SEED_PART_NAME} nor label {SEED_FS_LABEL}"
    if device.fs_type not in SEED_FS_TYPES:
        found = device.fs_type or "none found"
        return False, f"seed name matches but its file system ({found}) is not one of " + (
            ", ".join(SEED_FS_TYPES)
        )
    return True, "partition name matches" if name_match else "file-system label matches"


def parse_search(devices: Iterable[BlockDevice]) -> SeedSearch:
    """Judge every device; whole disks holding a seed partition are not candidates themselves."""
    candidates, looked = [], []
    for device in devices:
        taken, reason = judge_device(device)
        looked.append(
            Looked(device.node, device.fs_type, device.fs_label, device.part_name, taken, reason)
        )
        if taken:
            candidates.append(device)
    return SeedSearch(tuple(candidates), tuple(looked))


def render_candidate(device: BlockDevice) -> str:
    """One line naming a candidate well enough for the operator to recognise the stick."""
    what = device.model or device.bus
    return f"{device.node} ({device.fs_type}, label {device.fs_label or '-'}, {what}, " + (
        f"{render_size(device.size)})"
    )


def choose_candidate(search: SeedSearch, boot_disks: set[str]) -> BlockDevice:
    """The one seed to use: the only candidate, else the one on the boot medium."""
    if not search.candidates:
        seen = "\n".join(f"  {item.render()}" for item in search.looked) or "  (no block devices)"
        raise SeedNotFoundError(
            f"no seed partition found; looked at:\n{seen}",
            f"plug in the install stick (partition name {SEED_PART_NAME} or "
            f"label {SEED_FS_LABEL}), or put setup.txt on a FAT stick labelled {SEED_FS_LABEL}",
        )
    if len(search.candidates) == 1:
        return search.candidates[0]
    on_boot = [c for c in search.candidates if c.disk in boot_disks]
    if len(on_boot) == 1:
        return on_boot[0]
    listed = "\n".join(f"  {render_candidate(c)}" for c in search.candidates)
    raise SeedNotFoundError(
        f"found {len(search.candidates)} seed partitions and cannot tell which one to use:\n"
        f"{listed}",
        "remove the sticks you do not mean, or relabel their seed partitions",
    )


def read_boot_disks() -> set[str]:
    """Disks holding the medium this system booted from (a live system's ISO 9660 mount)."""
    disks: set[str] = set()
    for mount in read_mounts():
        if mount.fs_type == "iso9660" or mount.mount_point in LIVE_MEDIUM_MOUNTS:
            disks |= disk_of_devnum(mount.devnum)
    return disks


def find_seed(
    devices: Iterable[BlockDevice] | None = None, boot_disks: set[str] | None = None
) -> tuple[BlockDevice, SeedSearch]:
    """Find the seed partition; log every device looked at. Raises SeedNotFoundError."""
    search = parse_search(read_block_devices() if devices is None else devices)
    for item in search.looked:  # the journal keeps each (debug), the serial console does not
        log.debug("seed: %s", item.render())
    if not search.candidates:
        log.info(
            "seed: no seed partition among %d device(s) looked at (each one in the journal at "
            "debug level)",
            len(search.looked),
        )
    chosen = choose_candidate(search, read_boot_disks() if boot_disks is None else boot_disks)
    log.info("seed: using %s", render_candidate(chosen))
    return chosen, search


def read_seed_file(volume: Volume, device: BlockDevice) -> SeedRead:
    """Read setup.txt (or setup.txt.txt) from an open seed volume; ignores macOS `._*` files."""
    name, warnings = choose_seed_name(volume.names())
    if name is None:
        raise SeedUnreadableError(
            f"the seed partition {device.node} has no {SEED_NAME}",
            f"copy setup.txt.example there as {SEED_NAME} and fill it in",
        )
    data = volume.read(name)
    for warning in warnings:
        log.warning("seed: %s", warning)
    return SeedRead(device, name, data, tuple(warnings))


def read_seed(device: BlockDevice) -> SeedRead:
    """Open the seed read-only, read its setup.txt, release it."""
    try:
        with open_volume(device) as volume:
            log.debug("seed: reading %s through %s", device.node, volume.method)
            return read_seed_file(volume, device)
    except (OSError, CommandFailedError) as err:
        ensure_device_present(device)
        reason = err.strerror if isinstance(err, OSError) else err.message
        raise SeedUnreadableError(
            f"cannot read the seed on {device.node}: {reason}",
            "check the stick in another computer; it may need repairing",
        ) from None


def seed_files(device: BlockDevice) -> list[str]:
    """The names of the regular files on the seed volume (where a restore seed's backup is)."""
    with open_volume(device) as volume:
        return volume.files()


def copy_backup(device: BlockDevice, name: str, dest: Path) -> int:
    """A restore seed's backup `name` copied off the stick to `dest` (0600) through the one
    media reader: a regular file of at most MAX_BACKUP_BYTES (FAT32's largest file)."""
    from installer.seed.entry import MAX_BACKUP_BYTES

    copied = copy_stick_files(device, {name: dest}, MAX_BACKUP_BYTES, "the backup")
    log.info("restore: copied the backup %s (%s bytes) from %s", name, f"{copied:,}", device.node)
    return copied


def copy_stick_files(
    device: BlockDevice, wanted: Mapping[str, Path], bound: int, what: str = "the file"
) -> int:
    """Each file `name` of `wanted` copied off the stick to its path (0600, in root's own
    folder) through the one media reader, the volume opened once: regular files of at most
    `bound` bytes, no link followed. Returns the bytes copied."""
    copied = 0
    try:
        with open_volume(device) as volume:
            for name, dest in wanted.items():
                copied += volume.copy_out(name, dest, bound)
    except (OSError, CommandFailedError) as err:
        ensure_device_present(device)
        reason = err.strerror if isinstance(err, OSError) else err.message
        raise SeedUnreadableError(
            f"cannot copy {what} {', '.join(wanted)} off {device.node}: {reason}",
            f"check the stick in another computer; copy {what} onto it again",
        ) from None
    return copied


def copy_seed(device: BlockDevice, dest: Path) -> SeedRead:
    """Read the seed from `device` and store it at `dest` (0600, written atomically)."""
    seed = read_seed(device)
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private_file(dest, seed.data)
    log.info("seed: copied %s from %s to %s", seed.name, device.node, dest)
    return seed


def _receipt_blocker(device: BlockDevice) -> str | None:
    """Why a receipt cannot be written on `device`, or None when it is worth trying."""
    try:
        ensure_device_present(device)
    except SeedDeviceGoneError:
        return f"the seed device {device.node} is gone (stick removed?)"
    if device.fs_type == "iso9660":
        return f"{device.node} is an ISO 9660 volume, which is read-only"
    ro_flag = Path(device.sys_path) / "ro"
    with contextlib.suppress(OSError):
        if ro_flag.read_text().strip() == "1":
            return f"{device.node} is write-protected"
    return None


def write_seed_volume_file(device: BlockDevice, name: str, text: str | bytes) -> ReceiptResult:
    """Write `name` on the seed partition atomically; report, never raise, when it cannot.

    The partition is opened read-write only for this write and released right after.
    """

    def write() -> str:
        with open_volume(device, writable=True) as volume:
            volume.write_atomic(name, text.encode("utf-8") if isinstance(text, str) else text)
        return f"wrote {name} on {device.node}"

    return _reported(device, name, write)


def _in_place(device: BlockDevice) -> bool:
    """A FAT seed partition: its files are rewritten in place (receipt_file.py)."""
    return device.fs_type == "vfat" and shutil.which("mshowfat") is not None


def _write_fat_file(
    device: BlockDevice, name: str, write: Callable[[str, Path], str]
) -> ReceiptResult:
    """`write(node, staging)` on the FAT seed partition; report, never raise, when it cannot."""

    def staged() -> str:
        with tempfile.TemporaryDirectory(prefix="clawdie-stick-") as staging:
            return write(device.node, Path(staging))

    return _reported(device, name, staged)


def _reported(device: BlockDevice, name: str, write: Callable[[], str]) -> ReceiptResult:
    """Run `write` (it says what it did) unless the stick cannot be written; every way it
    fails is a result in words, logged, never raised: the stick is a report, not the work."""
    blocker = _receipt_blocker(device)
    how = ""
    if blocker is None:
        try:
            how = write()
        except InstallerError as err:
            blocker = f"cannot write {name} on {device.node}: {err.message}"
        except OSError as err:
            blocker = f"writing {name} on {device.node} failed: {err.strerror}"
    if blocker is not None:
        log.warning("seed: %s not written on the stick: %s", name, blocker)
        return ReceiptResult(False, blocker)
    log.info("seed: %s", how)
    return ReceiptResult(True, how)


def write_bundle_file(device: BlockDevice, name: str, data: bytes) -> ReceiptResult:
    """The log bundle `name` on the seed partition: on FAT into one of the two fixed bundle
    files, in place (bundle_file.py); elsewhere as `write_seed_volume_file` does."""
    if not _in_place(device):
        return write_seed_volume_file(device, name, data)

    def write(node: str, staging: Path) -> str:
        target = write_bundle_in_place(node, data, staging)
        return f"wrote {name} on {node} as {target} (the newer of the two bundles kept there)"

    return _write_fat_file(device, name, write)


def write_seed_in_place(
    device: BlockDevice, name: str, before: bytes, after: bytes
) -> ReceiptResult:
    """The seed `name` rewritten from `before` to `after` (the same length): on FAT in place,
    the changed bytes only (receipt_file.rewrite_changed); elsewhere as `write_seed_volume_file`
    does."""
    if not _in_place(device):
        return write_seed_volume_file(device, name, after)

    def write(node: str, staging: Path) -> str:
        count = receipt_file.rewrite_changed(node, name, before, after, staging)
        return f"rewrote {name} on {node} in place ({count} bytes)"

    return _write_fat_file(device, name, write)


def write_receipt(device: BlockDevice, text: str) -> ReceiptResult:
    """Write SETUP-RESULT.txt on the seed partition: on FAT in place, so that a power cut at any
    moment leaves the file system consistent and a whole receipt (media/receipt_file.py); on
    anything else as `write_seed_volume_file` does."""
    if not _in_place(device):
        return write_seed_volume_file(device, RECEIPT_NAME, text)

    def write(node: str, staging: Path) -> str:
        receipt_file.write_in_place(node, RECEIPT_NAME, text, staging)
        return f"wrote {RECEIPT_NAME} on {node}"

    return _write_fat_file(device, RECEIPT_NAME, write)
