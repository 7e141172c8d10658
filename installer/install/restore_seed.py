"""The disk installer's part of a restore (INSTALL_MODE=restore, DESIGN §9): the seed is checked
as a restore seed (the owner's identity, the backup next to setup.txt), the disk is chosen as
for any install, and the seed and the backup are carried into the installed system's root-only
first-boot state (0600 in a 0700 folder, deleted once first boot completes), where first boot
restores the backup instead of setting a new box up (installer/firstboot/restore_boot.py)."""

from __future__ import annotations

import logging

from installer.fsutil import ensure_dir
from installer.paths import TargetPaths
from installer.seed.ask import SeedInvalidError
from installer.seed.entry import MAX_BACKUP_BYTES, copy_seed_entry_to
from installer.seed.io import SeedInput, files_beside, keep_backup_name, write_stored_seed
from installer.seed.resolve import SeedCheck, check_restore_seed_bytes
from installer.seed.rules import DEFAULT_HOSTNAME, SeedValueError, check_yes_no

log = logging.getLogger("clawdie.install")

# The name the new box has until first boot restores the backed-up box's.
RESTORE_HOSTNAME = DEFAULT_HOSTNAME
# The receipt's word on a restore seed left on the stick (not "can install further machines":
# each install from it is another copy of the backed-up box, and it holds the owner's key).
RESTORE_SEED_KEPT = (
    "setup.txt on this stick still holds the owner's backup identity (BACKUP_IDENTITY): delete "
    "setup.txt once the box is restored, or set SEED_SCRUB=yes. Installing another machine "
    "from it makes a second copy of this box."
)


def restore_line(check: SeedCheck) -> str:
    """The receipt's and the console's line saying this install is a restore."""
    return (
        f"Restore: first boot restores the backup {check.backup_name}; this box becomes the "
        "backed-up one (host name, SSH host keys, operator, every database row)."
    )


def check_restore_install_seed(seed: SeedInput) -> SeedCheck:
    """The restore seed checked with the files next to it (on the stick, or by the path)."""
    if seed.device is not None:
        from installer.media.seed_device import seed_files

        beside: list[str] | None = seed_files(seed.device)
    elif seed.path is not None:
        beside = files_beside(seed.path)
    else:
        beside = None
    check = check_restore_seed_bytes(seed.data, seed.name, beside)
    if not check.valid:
        first = check.problems[0]
        raise SeedInvalidError(
            f"the restore seed is not valid: {first.key or seed.name}: {first.message} "
            "(no disk was touched)",
            first.hint or f"check it with: clawdie-setup check {seed.name}",
            check,
        )
    return check


def _yes(check: SeedCheck, key: str) -> bool:
    given = check.given.get(key)
    try:
        return bool(given is not None and check_yes_no(given.value))
    except SeedValueError:
        return False


def disk_wish(check: SeedCheck) -> tuple[str | None, bool]:
    """TARGET_DISK and ERASE_TARGET_DISK of a restore seed (their rules passed in the check)."""
    named = check.given.get("TARGET_DISK")
    return (named.value.strip() if named else None), _yes(check, "ERASE_TARGET_DISK")


def wants_scrub(check: SeedCheck) -> bool:
    """SEED_SCRUB=yes: BACKUP_IDENTITY goes from the stick once the install carried it."""
    return _yes(check, "SEED_SCRUB")


def store_restore_seed(paths: TargetPaths, seed: SeedInput, check: SeedCheck) -> str:
    """The seed and its backup in the installed system's first-boot state; returns a line for
    the install's log."""
    name = str(check.backup_name)
    ensure_dir(paths.seed_dir, 0o700, 0, 0)
    if seed.device is not None:
        from installer.media.seed_device import copy_backup

        copied = copy_backup(seed.device, name, paths.stored_backup)
    else:
        folder = seed.path if seed.path is not None and seed.path.is_dir() else None
        folder = folder or (seed.path.parent if seed.path is not None else None)
        if folder is None:
            raise SeedInvalidError("the restore seed has no folder to take its backup from")
        hint = "copy the .backup.age file next to setup.txt again"
        source = folder / name
        copied = copy_seed_entry_to(source, name, hint, paths.stored_backup, bound=MAX_BACKUP_BYTES)
    write_stored_seed(paths, seed.data, {})
    keep_backup_name(paths, name)
    return f"restore seed and backup {name} ({copied:,} bytes) kept for first boot"
