"""A platform release on an adopt stick (DESIGN §9, §10): one signed release (`FILE` and
`FILE.minisig`, installer/update/signed.py) next to an `INSTALL_MODE=adopt` seed is applied once
the seed passed the adopt gate (the box's fingerprint AND its adopt code) and adopt's own keys
were applied: a stick that fails the gate never has its release read.

The stick is hostile media: only the names next to setup.txt are listed, then the release and its
signature are copied into root's own state (regular files within the bound, never through a
link, through the one media reader) and the copy is what the update reads. The update itself is
the update room's, the same run as `clawdie-setup update FILE`; adopt does not import it: the
command gives it as an `Updater` (installer/commands/firstboot.py, adopt.py), as the factory
reset is given (reset_stick.py). Its outcome is one line on the receipt, the console, the
journal and to the Telegram admin: `update: <name> <old> → <new> applied`, `update refused:
<reason>` or `rolled back: <cause>`.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from installer.errors import InstallerError
from installer.fsutil import ensure_dir
from installer.paths import TargetPaths
from installer.seed.entry import MAX_BACKUP_BYTES
from installer.seed.io import SeedInput, copy_beside_seed, files_with_seed

log = logging.getLogger("clawdie.adopt")

SIGNATURE_SUFFIX = ".minisig"  # as the update room's signed.py names it
RELEASE_SUFFIX = ".tar"  # a release without its signature is still named as one
# FAT32's largest file; the update's own copy checks its bound (signed.BUNDLE_LIMIT) again
RELEASE_BOUND = MAX_BACKUP_BYTES
_ONE_RELEASE_HINT = (
    "leave one release (FILE and FILE.minisig, as the publisher made them) next to setup.txt"
)


@dataclass(frozen=True)
class ReleaseOutcome:
    """How the stick's release ended: `applied`, `refused` (nothing changed), `rolled back` or
    `failed`, and its one line for the receipt (`line`)."""

    status: str
    line: str

    @property
    def failed(self) -> bool:
        """Not applied: something for the owner to look at (the run's status is degraded)."""
        return self.status in ("refused", "rolled back", "failed")


def refused(reason: str) -> ReleaseOutcome:
    return ReleaseOutcome("refused", f"update refused: {reason.removeprefix('refused: ')}")


# Applies the release at the path (its signature beside it) as `clawdie-setup update FILE`
# does; the update room's run, given by the command.
Updater = Callable[[Path], ReleaseOutcome]


def parse_releases(names: Iterable[str]) -> list[str]:
    """The releases among the files next to a seed (pure): each `.minisig`'s file, and a `.tar`
    without one (refused later, by name). Names are compared as FAT does, without case."""
    listed = {name.casefold(): name for name in names}
    found: dict[str, str] = {}
    for folded, name in listed.items():
        if folded.endswith(SIGNATURE_SUFFIX):
            release = folded[: -len(SIGNATURE_SUFFIX)]
            found[release] = listed.get(release, name[: -len(SIGNATURE_SUFFIX)])
        elif folded.endswith(RELEASE_SUFFIX):
            found.setdefault(folded, name)
    return sorted(found.values())


def _signature_of(name: str, names: Iterable[str]) -> str | None:
    wanted = (name + SIGNATURE_SUFFIX).casefold()
    return next((n for n in names if n.casefold() == wanted), None)


def release_folder(paths: TargetPaths) -> Path:
    """Where the stick's release is copied (root's own, 0700), removed once it was applied."""
    return paths.adopt_dir / "release"


def apply_stick_release(
    paths: TargetPaths,
    seed: SeedInput,
    updater: Updater,
    started: Callable[[str], object] = print,
) -> ReleaseOutcome | None:
    """The one release next to `seed`, copied into root's state and applied by `updater`; None
    when there is none. Called only after the adopt gate passed; `started(name)` once the
    release is taken."""
    try:
        names = files_with_seed(seed)
    except InstallerError as err:
        return refused(f"cannot list the files next to {seed.name}: {err.message}")
    except OSError as err:  # the stick went, or cannot be read
        return refused(f"cannot list the files next to {seed.name}: {err.strerror}")
    releases = parse_releases(names)
    if not releases:
        return None
    if len(releases) > 1:
        listed = ", ".join(releases)
        return refused(f"the stick holds {len(releases)} releases ({listed}); {_ONE_RELEASE_HINT}")
    name = releases[0]
    signature = _signature_of(name, names)
    if name not in names:
        return refused(
            f"the stick holds {signature} but no regular file {name} (a link or a folder is "
            f"never followed); {_ONE_RELEASE_HINT}"
        )
    if signature is None:
        return refused(
            f"{name} has no signature next to it ({name}{SIGNATURE_SUFFIX}); a release comes "
            "as two files, FILE and FILE.minisig, made by its publisher"
        )
    started(name)
    folder = release_folder(paths)
    try:
        return _copied_and_applied(seed, folder, name, signature, updater)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if paths.adopt_dir.is_dir() and not any(paths.adopt_dir.iterdir()):
            paths.adopt_dir.rmdir()


def _copied_and_applied(
    seed: SeedInput, folder: Path, name: str, signature: str, updater: Updater
) -> ReleaseOutcome:
    shutil.rmtree(folder, ignore_errors=True)  # what a cut run left
    ensure_dir(folder.parent, 0o700, 0, 0)
    ensure_dir(folder, 0o700, 0, 0)
    copy = folder / name
    wanted = {name: copy, signature: folder / (name + SIGNATURE_SUFFIX)}
    try:
        copied = copy_beside_seed(seed, wanted, RELEASE_BOUND, "the release")
    except FileNotFoundError:
        return refused(f"{name} or its signature went from the stick while it was read")
    except InstallerError as err:
        return refused(err.message)
    except OSError as err:
        return refused(f"cannot copy {name} off the stick: {err.strerror}")
    log.info("adopt: copied the release %s (%s bytes) off the stick", name, f"{copied:,}")
    try:
        outcome = updater(copy)
    except InstallerError as err:
        outcome = ReleaseOutcome("failed", f"update failed: {err.message}")
    log.info("adopt: %s", outcome.line)
    return outcome
