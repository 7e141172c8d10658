"""Seed I/O: every place a seed is read from or a result about it is written to.

Read: a setup.txt path (`check`, `wizard`, `--seed`), the seed partition on a stick, the copy
the disk installer keeps on the installed system and the answers given on its console. Write:
that stored copy and answers, a seed rewritten in place (SEED_SCRUB), and the receipt
SETUP-RESULT.txt (on the stick, or in a folder standing in for it). First boot, the disk
installer, `check` and `wizard` all come through here.

Nothing Linux-only is imported at module level: `check` reads files through this module on any
OS and starts cold (the stick's modules are imported only when a stick is used).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from installer.errors import InstallerError, SeedUnreadableError
from installer.fsutil import ensure_dir, write_atomic
from installer.seed.entry import RECEIPT_NAME, read_seed_entry
from installer.seed.reader import SEED_NAME, choose_seed_name

if TYPE_CHECKING:
    from collections.abc import Mapping

    from installer.media.blockdev import BlockDevice
    from installer.paths import TargetPaths

STORED_DESCRIPTION = "the installer's copy"

# Writes the receipt text somewhere; returns (written, what happened) for the log.
Receipt = Callable[[str], tuple[bool, str]]
# Puts another file (the failure's log bundle) next to the receipt: (name, bytes).
FileWriter = Callable[[str, bytes], tuple[bool, str]]


@dataclass(frozen=True)
class SeedInput:
    """A seed as read, where it came from, and where it can be written back: its partition
    (a stick) or its file (a path). `data` may hold secrets: `repr` leaves it out."""

    name: str
    data: bytes = field(repr=False)
    description: str
    device: BlockDevice | None = None
    path: Path | None = None


# --- a setup.txt path ---------------------------------------------------------------------


def read_seed_path(path: Path) -> tuple[str, bytes, list[str]]:
    """The seed's name, bytes and warnings for a file or a directory holding setup.txt.

    A missing `setup.txt` next to an existing `setup.txt.txt` is taken with a warning.
    """
    warnings: list[str] = []
    target = path
    if _is_block_device(path):  # the seed partition itself (`check /dev/sdb3`)
        return _read_seed_partition(path)
    if path.is_dir():
        chosen, warnings = choose_seed_name(p.name for p in path.iterdir())
        if chosen is None:
            raise SeedUnreadableError(
                f"{path} has no {SEED_NAME}", f"put the filled {SEED_NAME} in {path}"
            )
        target = path / chosen
    elif not path.exists() and path.name.lower() == SEED_NAME and path.parent.is_dir():
        chosen, warnings = choose_seed_name(p.name for p in path.parent.iterdir())
        if chosen is not None:
            target = path.parent / chosen
    data = _read_regular_file(path, target)
    return target.name, data, warnings


def _is_block_device(path: Path) -> bool:
    try:
        return stat.S_ISBLK(path.stat().st_mode)
    except OSError:
        return False


def _read_seed_partition(path: Path) -> tuple[str, bytes, list[str]]:
    """setup.txt read off the seed partition at `path` (a block device), through the stick's
    one reader (mtools for FAT: nothing is mounted); other devices are refused with words."""
    from installer.media.blockdev import read_block_device
    from installer.media.seed_device import judge_device, read_seed

    device = read_block_device(str(path))
    if device is None:
        raise SeedUnreadableError(f"{path} is not a disk partition we can read")
    usable, why = judge_device(device)
    if not usable:
        raise SeedUnreadableError(
            f"{path} is not a seed partition ({why})",
            "give the stick's CLAWDIESEED partition (lsblk -o NAME,LABEL shows it), or the "
            "setup.txt file itself",
        )
    seed = read_seed(device)
    return seed.name, seed.data, list(seed.warnings)


def files_beside(path: Path) -> list[str]:
    """The names of the regular files next to the seed `path` (in it, when it is a folder):
    where a restore seed's backup is looked for. Links and other entries are not listed."""
    folder = path if path.is_dir() else path.parent
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
    except OSError:
        return []


def files_with_seed(seed: SeedInput) -> list[str]:
    """The regular files next to `seed`: on its stick's seed partition, or beside its path
    (none for a seed that has neither, such as the installer's stored copy)."""
    if seed.device is not None:
        from installer.media.seed_device import seed_files

        return seed_files(seed.device)
    if seed.path is not None and not _is_block_device(seed.path):
        return files_beside(seed.path)
    return []


def copy_beside_seed(seed: SeedInput, wanted: Mapping[str, Path], bound: int, what: str) -> int:
    """Each file `name` of `wanted`, next to `seed` (`files_with_seed`), copied to its path in
    root's own folder through the one media reader: a regular file of at most `bound` bytes,
    never through a link (0600, fsynced, renamed into place). Returns the bytes copied."""
    if seed.device is not None:
        from installer.media.seed_device import copy_stick_files

        return copy_stick_files(seed.device, wanted, bound, what)
    if seed.path is None:
        raise SeedUnreadableError(f"{seed.description} has no folder to take {what} from")
    from installer.seed.entry import copy_seed_entry_to

    folder = seed.path if seed.path.is_dir() else seed.path.parent
    hint = f"copy {what} next to setup.txt again (the file itself, not a link)"
    return sum(
        copy_seed_entry_to(folder / name, name, hint, dest, bound=bound)
        for name, dest in wanted.items()
    )


def read_seed_file(path: Path) -> SeedInput:
    """The seed at `path` (a file or the folder holding it), to be written back there."""
    name, data, _ = read_seed_path(path)
    return SeedInput(name, data, str(path), path=path)


def read_seed_bytes(path: Path) -> bytes:
    """The bytes of exactly the file `path`, with the same refusals as `read_seed_path`."""
    return _read_regular_file(path, path)


def write_seed_file(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, readable by its owner only (it holds secrets).

    Created 0600 with no chmod afterwards: FAT sticks refuse chmod.
    """
    write_atomic(path, text, mode=0o600, exact_mode=False)


def _read_regular_file(path: Path, target: Path) -> bytes:
    """`target` read by `read_seed_entry`, following a link the user gave (`check`, `--seed`)."""
    try:
        return read_seed_entry(
            target, str(target), "give the path of the setup.txt file itself", follow_links=True
        )
    except FileNotFoundError:
        raise SeedUnreadableError(
            f"{path} does not exist", "give the path of the setup.txt to check"
        ) from None
    except OSError as err:
        raise SeedUnreadableError(f"cannot read {target}: {err.strerror}") from None


# --- the stick ----------------------------------------------------------------------------


def read_seed_on_stick() -> SeedInput:
    """setup.txt on the seed partition (the one the finder takes)."""
    from installer.media.seed_device import find_seed, read_seed

    device, _ = find_seed()
    read = read_seed(device)
    return SeedInput(read.name, read.data, f"the seed partition {device.node}", device)


def read_install_seed(path: Path | None) -> SeedInput:
    """The disk installer's seed: `path` (--seed FILE), else setup.txt on the seed partition."""
    return read_seed_file(path) if path is not None else read_seed_on_stick()


def write_seed_back(seed: SeedInput, text: str | bytes) -> tuple[bool, str]:
    """Replace the seed where it was read (its partition or its file) with `text`; never
    raises: returns (written, what happened). Bytes of the seed's own length are written in
    place on a FAT stick (the changed bytes only: a power cut loses no line of it)."""
    if seed.device is not None:
        from installer.media.seed_device import write_seed_in_place, write_seed_volume_file

        if isinstance(text, bytes) and len(text) == len(seed.data):
            result = write_seed_in_place(seed.device, seed.name, seed.data, text)
        else:
            result = write_seed_volume_file(seed.device, seed.name, text)
        return result.written, result.message
    if seed.path is not None:
        try:
            write_atomic(seed.path, text, mode=0o600)
        except (OSError, InstallerError) as err:
            return False, f"cannot rewrite {seed.path}: {err}"
        return True, f"rewrote {seed.path}"
    return False, "the seed has no file to rewrite"


# --- the stored copy on the installed system ------------------------------------------------


def read_first_boot_seed(path: Path | None, paths: TargetPaths) -> SeedInput:
    """First boot's seed: `path` (--seed FILE), else the copy the installer placed, else the
    seed partition (only on the running system: a sandbox root has no stick)."""
    if path is not None:
        name, data, _ = read_seed_path(path)
        return SeedInput(name, data, str(path))
    if paths.seed_copy.is_file():
        return SeedInput(SEED_NAME, read_stored_seed_copy(paths), STORED_DESCRIPTION)
    if not paths.is_live_system:
        raise SeedUnreadableError(
            f"no seed: {paths.seed_copy} does not exist", "give one with --seed FILE"
        )
    return read_seed_on_stick()


def read_stored_seed_copy(paths: TargetPaths) -> bytes:
    return paths.seed_copy.read_bytes()


def read_stored_answers(paths: TargetPaths) -> dict[str, str]:
    """The answers given on the console, as stored next to the seed copy ({} when none)."""
    from installer.envfile import parse_env_file

    if not paths.wizard_answers.is_file():
        return {}
    return parse_env_file(paths.wizard_answers.read_text(encoding="utf-8"))


def write_stored_seed(paths: TargetPaths, data: bytes, answers: Mapping[str, str]) -> None:
    """Keep the seed (0600, folder 0700, root's own) and the console answers on the target."""
    from installer.envfile import render_env_file

    ensure_dir(paths.seed_dir, 0o700, 0, 0)
    write_atomic(paths.seed_copy, data, mode=0o600, scrub_old=True)
    if answers:
        write_atomic(paths.wizard_answers, render_env_file(answers), mode=0o600, scrub_old=True)


def keep_backup_name(paths: TargetPaths, name: str) -> None:
    """The owner's file name of the restore seed's backup, kept beside its copy: a first boot
    that reads the stored seed (carried by the installer, or taken up after a cut) says it."""
    write_atomic(paths.stored_backup_name, f"{name}\n", mode=0o600)


def kept_backup_name(paths: TargetPaths) -> str | None:
    """That name, when one was kept and is a backup file's name; None else."""
    from installer.seed.rules import check_backup_file

    try:
        return check_backup_file(paths.stored_backup_name.read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError, ValueError):
        return None


# --- receipts -----------------------------------------------------------------------------


def receipt_on_device(device: BlockDevice) -> Receipt:
    """SETUP-RESULT.txt on this seed partition."""

    def write(text: str) -> tuple[bool, str]:
        from installer.media.seed_device import write_receipt

        result = write_receipt(device, text)
        return result.written, result.message

    return write


def files_on_device(device: BlockDevice) -> FileWriter:
    """A log bundle on this seed partition, next to the receipt (on FAT in one of the two
    fixed bundle files, rewritten in place: media/bundle_file.py)."""

    def write(name: str, data: bytes) -> tuple[bool, str]:
        from installer.media.seed_device import write_bundle_file

        result = write_bundle_file(device, name, data)
        return result.written, result.message

    return write


def _find_stick() -> tuple[BlockDevice | None, str]:
    from installer.media.seed_device import find_seed

    try:
        device, _ = find_seed()
    except InstallerError as err:
        return None, f"no seed stick present ({err.message})"
    return device, ""


def receipt_on_stick() -> Receipt:
    """SETUP-RESULT.txt on the seed partition, if a stick is present and writable when the
    receipt is written. The live receipt is rewritten at every step: the stick found first is
    kept (each write checks it is still there); until one is found, each write looks again."""
    found: list[BlockDevice] = []

    def write(text: str) -> tuple[bool, str]:
        if not found:
            device, why = _find_stick()
            if device is None:
                return False, why
            found.append(device)
        return receipt_on_device(found[0])(text)

    return write


def files_on_stick() -> FileWriter:
    """A file next to the receipt on the seed partition, if a stick is present."""

    def write(name: str, data: bytes) -> tuple[bool, str]:
        device, why = _find_stick()
        return files_on_device(device)(name, data) if device is not None else (False, why)

    return write


def receipt_in_directory(directory: Path) -> Receipt:
    """A receipt into a plain directory standing in for the mounted stick (sandbox runs)."""

    def write(text: str) -> tuple[bool, str]:
        if not directory.is_dir():
            return False, f"{directory} is not there"
        try:
            write_atomic(directory / RECEIPT_NAME, text, mode=0o600)
        except OSError as err:
            return False, f"{directory} is not writable ({err.strerror})"
        return True, f"wrote {RECEIPT_NAME} in {directory}"

    return write


def files_in_directory(directory: Path) -> FileWriter:
    """A file next to the receipt in the directory standing in for the stick."""

    def write(name: str, data: bytes) -> tuple[bool, str]:
        if not directory.is_dir():
            return False, f"{directory} is not there"
        try:
            write_atomic(directory / name, data, mode=0o600)
        except OSError as err:
            return False, f"{directory} is not writable ({err.strerror})"
        return True, f"wrote {name} in {directory}"

    return write
