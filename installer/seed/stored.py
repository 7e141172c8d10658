"""The seed as the target keeps it (root's state directory): the sealed copy and the console
answers, written once by the installer or first boot's step 2 and read by every later run."""

from __future__ import annotations

from collections.abc import Mapping

from installer import redact
from installer.fsutil import ensure_dir, remove_durably, remove_stale_temps
from installer.paths import TargetPaths
from installer.seed.ask import SeedInvalidError, register_secrets
from installer.seed.io import read_stored_answers, read_stored_seed_copy, write_stored_seed
from installer.seed.reader import SEED_NAME
from installer.seed.resolve import SeedCheck, apply_answers, check_seed_bytes
from installer.stamps import Stamps, StepRecord

SEED_STEP = "seed"


def ensure_setup_state(paths: TargetPaths) -> None:
    """Root's state directory: 0700, root's own (never inside the service account's home)."""
    ensure_dir(paths.setup_state_dir, 0o700, 0, 0)


def forget_seed(paths: TargetPaths) -> list[str]:
    """Delete the seed copy, the console answers and a restore's backup (after the complete
    stamp): from then on
    the secrets live only where they are used. Returns what was deleted."""
    kept = (paths.seed_copy, paths.wizard_answers, paths.stored_backup, paths.stored_backup_name)
    gone = [p.name for p in kept if remove_durably(p)]
    if paths.seed_dir.is_dir() and not paths.seed_dir.is_symlink():
        remove_stale_temps(paths.seed_dir)
        paths.seed_dir.rmdir()
    return gone


def read_stored_seed(paths: TargetPaths, name: str = SEED_NAME) -> SeedCheck:
    """The seed as step 2 kept it: the copy on the target plus the console answers (their
    passwords as the hashes `store_seed` derived). `name` is the file it was read from."""
    check = check_seed_bytes(read_stored_seed_copy(paths), name, sealed=True)
    stored = read_stored_answers(paths)
    if stored:
        redact.register(*stored.values())
        check = apply_answers(check, stored, sealed=True)
    register_secrets(check)
    if not check.valid:
        raise SeedInvalidError(
            "the stored seed copy no longer validates",
            f"check {paths.seed_copy} with clawdie-setup check",
            check,
        )
    return check


def store_seed(
    paths: TargetPaths,
    stamps: Stamps,
    data: bytes,
    answers: Mapping[str, str],
    description: str,
    check: SeedCheck,
) -> None:
    """Keep the seed (0600, folder 0700) and the console answers on the target; stamp step 2.
    `check` is the valid result of `data` with `answers`: the passwords are stored only as
    what first boot needs of them (`sealed.seal`), derived before anything is written.

    After this, first boot reads only what is stored here and never asks or reads a stick again.
    """
    from installer.seed.sealed import seal

    sealed_data, sealed_answers = seal(data, answers, check)
    ensure_setup_state(paths)
    write_stored_seed(paths, sealed_data, sealed_answers)
    stamps.mark(
        SEED_STEP,
        StepRecord(
            created=(f"seed read from {description}",),
            notes=tuple(f"answered on the console: {k}" for k in answers),
        ),
    )
