"""`clawdie-setup backup --scheduled` (clawdie-backup.timer, daily inside UPDATE_WINDOW; DESIGN
§9): the backup the owner asked for in setup.txt, made without anyone at the box.

- What and where come from root's own record (`installer.upkeep.read_settings`: BACKUP_RECIPIENT
  and BACKUP_DIR in /etc/clawdie/setup.resolved.json, read only when root alone can have written
  it), never from a file the service account can write (DESIGN §10).
- No recipient: nothing is made; the outcome says how to turn backups on.
- BACKUP_DIR, when set, must exist (a second disk that is not mounted is not silently replaced
  by the system disk's directory under it).
- A stick: a partition named `CLAWDIE-BACKUP` (GPT) or a file system labelled `CLAWDIE-BACKUP`
  or, as FAT and exFAT labels hold 11 characters at most, `CLAWDIE-BAK` (either case), found
  with pyudev like the seed; mounted read-write with nosuid,nodev,noexec (FAT: owned by root,
  umask 077) on a root-only directory under /var/lib/clawdie-setup, written, synced, unmounted;
  where the kernel has no FAT driver, written with mtools from root's own staging directory.
- Each place is rotated (7 daily, 4 weekly) by `make_backup`; the outcome (time, each place and
  size, or each failure's reason) goes to a root-only file the login screen reads.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from installer.backup.make import BackupConfig, BackupResult, make_backup
from installer.backup.rotation import keep, parse_name
from installer.errors import CommandFailedError, InstallerError
from installer.fsutil import ensure_dir
from installer.media.blockdev import BlockDevice, read_block_devices
from installer.media.seed_volume import MTOOLS_ENV, UNKNOWN_FS, fsync_path
from installer.paths import TargetPaths
from installer.run import run
from installer.upkeep import (
    OFF_NO_RECIPIENT,
    BackupOutcome,
    UpkeepPaths,
    Written,
    now_text,
    read_settings,
    record_backup,
)

log = logging.getLogger("clawdie.backup")

STICK_NAMES = ("CLAWDIE-BACKUP", "CLAWDIE-BAK")
STICK_FS_TYPES = ("vfat", "exfat", "ext4")
MOUNT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Place:
    """Where one copy goes: its words for the operator and, for a stick, its device."""

    words: str
    directory: Path | None = None
    device: BlockDevice | None = None


def is_backup_stick(device: BlockDevice) -> bool:
    """A writable volume named or labelled for backups."""
    names = {device.part_name.casefold(), device.fs_label.casefold()}
    named = any(n.casefold() in names for n in STICK_NAMES)
    return named and device.fs_type in STICK_FS_TYPES and not device.read_only


def find_sticks(devices: Iterable[BlockDevice]) -> list[BlockDevice]:
    found = [d for d in devices if is_backup_stick(d)]
    for device in found:
        log.info("backup: stick %s (%s %s)", device.node, device.fs_type, device.fs_label)
    return found


def _mount_options(fs_type: str) -> str:
    options = ["rw", "nosuid", "nodev", "noexec"]
    if fs_type in ("vfat", "exfat"):
        options += ["uid=0", "gid=0", "umask=077"]
    return ",".join(options)


@contextlib.contextmanager
def mounted(device: BlockDevice, mount_point: Path) -> Iterator[Path]:
    """`device` mounted read-write on the root-only `mount_point`; synced and unmounted after."""
    ensure_dir(mount_point.parent, 0o700, 0, 0)
    ensure_dir(mount_point, 0o700, 0, 0)
    argv = ["mount", "-w", "-t", device.fs_type, "-o", _mount_options(device.fs_type)]
    run([*argv, device.node, str(mount_point)], timeout=MOUNT_TIMEOUT)
    try:
        yield mount_point
    finally:
        os.sync()  # the backup and the stick's file system, before it is unmounted
        done = run(["umount", str(mount_point)], check=False, timeout=MOUNT_TIMEOUT)
        if done.returncode != 0:
            log.warning("backup: umount %s failed; detaching it lazily", mount_point)
            run(["umount", "--lazy", str(mount_point)], check=False, timeout=MOUNT_TIMEOUT)


def places(
    backup_dir: str | None, root: Path, devices: Callable[[], Sequence[BlockDevice]]
) -> list[Place]:
    found = []
    if backup_dir:
        found.append(Place(f"BACKUP_DIR {backup_dir}", TargetPaths(root).root / backup_dir[1:]))
    for device in find_sticks(devices()):
        found.append(Place(f"the {STICK_NAMES[0]} stick {device.node}", device=device))
    return found


def _write_stick(config: BackupConfig, device: BlockDevice, mount_point: Path) -> BackupResult:
    """Onto the stick mounted; a kernel without the FAT driver: through mtools (`_by_mtools`)."""
    try:
        with mounted(device, mount_point) as directory:
            return make_backup(replace(config, to=directory))
    except CommandFailedError as err:
        if not (UNKNOWN_FS in err.stderr_tail and device.fs_type == "vfat"):
            raise
        with contextlib.suppress(OSError):
            mount_point.rmdir()
        log.info("backup: no vfat driver here; writing %s with mtools", device.node)
        return _by_mtools(config, device, mount_point.with_name("backup-stage"))


def _by_mtools(config: BackupConfig, device: BlockDevice, stage: Path) -> BackupResult:
    """Made in root's own staging directory (it is encrypted), copied onto the stick under a
    temp name and renamed (a cut leaves the old file or the new one), rotated there."""
    ensure_dir(stage, 0o700, 0, 0)
    result = make_backup(replace(config, to=stage, rotate=False))
    node, name = device.node, result.path.name
    try:
        _mtools("mcopy", "-o", "-i", node, str(result.path), f"::/.{name}.tmp")
    finally:
        result.path.unlink(missing_ok=True)
    if name in _mtools_names(node):
        _mtools("mdel", "-i", node, f"::/{name}")
    _mtools("mren", "-i", node, f"::/.{name}.tmp", f"::/{name}")
    found = {day: n for n in _mtools_names(node) if (day := parse_name(n, result.manifest.host))}
    kept = keep(found)
    removed = sorted(found[day] for day in found if day not in kept)
    for old in removed:
        _mtools("mdel", "-i", node, f"::/{old}")
    fsync_path(Path(node))
    return replace(result, path=Path(name), removed=tuple(removed))


def _mtools(*argv: str) -> bytes:
    return run([*argv], env=MTOOLS_ENV, timeout=MOUNT_TIMEOUT).stdout


def _mtools_names(node: str) -> list[str]:
    listing = _mtools("mdir", "-b", "-i", node, "::/").decode(errors="replace")
    return [line.removeprefix("::/") for line in listing.splitlines() if line.startswith("::/")]


def _write(config: BackupConfig, place: Place, mount_point: Path) -> Written:
    if place.device is not None:
        result = _write_stick(config, place.device, mount_point)
    else:
        assert place.directory is not None  # noqa: S101 - a place is a directory or a device
        if not place.directory.is_dir():
            raise InstallerError(
                "the directory does not exist",
                "mount its disk, make the directory, or change BACKUP_DIR",
            )
        result = make_backup(replace(config, to=place.directory))
    return Written(place.words, result.path.name, result.size)


def run_scheduled(
    root: Path,
    admin_conninfo: str,
    devices: Callable[[], Sequence[BlockDevice]] = read_block_devices,
    now: datetime | None = None,
) -> BackupOutcome:
    """One scheduled backup to every place; its outcome, recorded."""
    paths = TargetPaths(root)
    settings = read_settings(paths)
    when = now_text(now or datetime.now(UTC))
    if not settings.recipients:
        outcome = BackupOutcome(when, "off", note=OFF_NO_RECIPIENT)
    else:
        outcome = _to_places(
            paths, settings.recipients, settings.backup_dir, admin_conninfo, devices, when
        )
    record_backup(paths, outcome)
    return outcome


def _to_places(
    paths: TargetPaths,
    recipients: tuple[str, ...],
    backup_dir: str | None,
    admin_conninfo: str,
    devices: Callable[[], Sequence[BlockDevice]],
    when: str,
) -> BackupOutcome:
    targets = places(backup_dir, paths.root, devices)
    if not targets:
        note = f"nowhere to write: no {STICK_NAMES[0]} stick plugged in and no BACKUP_DIR"
        return BackupOutcome(when, "skipped", note=note)
    config = BackupConfig(
        root=paths.root, admin_conninfo=admin_conninfo, recipients=recipients, to=paths.root
    )
    written, failures = [], []
    for place in targets:
        try:
            written.append(_write(config, place, UpkeepPaths(paths.root).backup_mount))
        except (InstallerError, OSError) as err:
            reason = _reason(err)
            log.error("backup: %s: %s", place.words, reason)
            failures.append(f"{place.words}: {reason}")
    return BackupOutcome(when, "failed" if failures else "ok", tuple(written), tuple(failures))


def _reason(err: InstallerError | OSError) -> str:
    """A failure in the operator's words, on one line."""
    if isinstance(err, InstallerError):
        text = f"{err.message} ({err.hint})" if err.hint else err.message
    else:
        text = f"{err.strerror or type(err).__name__}: {err.filename or ''}".rstrip(": ")
    return " ".join(text.split())[:300]
