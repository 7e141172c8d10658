"""First boot of a restore seed (INSTALL_MODE=restore, DESIGN §9): the box becomes the backed-up
one as a service instead of being set up new.

Steps, on the one run skeleton (installer/steps.py), in order:

1. `seed`: the restore seed read and checked (BACKUP_IDENTITY, the backup); the seed copy and
   the backup kept in root's first-boot state (0600 in a 0700 folder, deleted with the seed
   copy once first boot is complete, like every other secret of a seed);
2. `restore`: the backup restored (`Restorer`, the backup room's `restore_backup`): read whole
   and checked first, so a wrong identity, a changed byte or a backup from a newer installer or
   platform is refused before anything on the box changes - the reason on the receipt and the
   screen; then the service account, files (host name, SSH host keys, TLS pair, adopt code
   hash, /etc/clawdie, the platform's data), every database row, the fingerprint record;
3. `machine`: what must be this machine's own: its machine id stays the one made here; the
   platform's database address is this box's; the platform unit runs as the restored
   account; time zone, locale and keyboard as the backed-up box had them;
4. the report (the summary and the receipt list what was restored; no new adopt code: the
   backed-up box's stays), `complete`, the platform's start.

A run cut anywhere (a power cut) is finished by the next first boot: the seed step keeps its
copy of the seed and the backup; the restore takes up a restore of the same backup cut part way
(installer/backup/restore.py: files put back again, a database restored is kept, one cut inside
its transaction is made again) or gives the result of one finished before its stamp; the steps
after it are stamped as a fresh box's are. A restore that fails part way (not a cut) is taken up
the same way by the next start; the receipt says so.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import SecretStr

from installer import faults, redact
from installer.envfile import read_env_file, render_env_file
from installer.errors import InstallerError, SeedUnreadableError
from installer.firstboot.context import UNITS_CHANGED
from installer.firstboot.platform_db import DB_PASSWORD_KEY, database_url
from installer.firstboot.runner import (
    PLATFORM_START_TIMEOUT_S as PLATFORM_START_S,
)
from installer.firstboot.runner import (
    PLATFORM_STEP,
    REPORT_STEP,
    Boot,
)
from installer.firstboot.steps.identity import render_keyboard, render_locale_gen
from installer.firstboot.steps.platform_env import render_unit_dropin
from installer.fsutil import ensure_dir, symlink_atomic, write_atomic
from installer.passwd import read_account
from installer.run import run
from installer.seed.ask import SeedInvalidError
from installer.seed.entry import MAX_BACKUP_BYTES, copy_seed_entry_to
from installer.seed.io import (
    STORED_DESCRIPTION,
    files_beside,
    keep_backup_name,
    kept_backup_name,
    read_first_boot_seed,
    write_stored_seed,
)
from installer.seed.resolve import SeedCheck, check_restore_seed_bytes
from installer.seed.rules import check_backup_identity
from installer.seed.stored import SEED_STEP
from installer.stamps import COMPLETE, StepRecord
from installer.steps import Step

RESTORE_STEP = "restore"
MACHINE_STEP = "machine"
CUT_HINT = (
    "the box is part restored: restart it and first boot goes on where the restore stopped; "
    "if it stops again the same way, run `clawdie-setup factory-reset` on it and restart (first "
    "boot restores again from the stick's backup)"
)


class RestoreBoot(Boot):
    """First boot of a restore seed: the steps above instead of a new box's."""

    makes_adopt_code = False  # the backed-up box's adopt code hash is restored

    def boot_steps(self) -> list[Step[Boot]]:
        return [
            Step(SEED_STEP, "reading the restore seed and the backup", 900.0, _read, False),
            Step(RESTORE_STEP, "restoring the backup", 7200.0, _restore),
            Step(MACHINE_STEP, "this machine's own settings", 60.0, _own_machine),
            Step(REPORT_STEP, "the report", 120.0, Boot.report),
            Step(COMPLETE, None, 60.0, Boot.complete, stamped=False),
            Step(PLATFORM_STEP, "starting the platform", PLATFORM_START_S, Boot.start, False),
        ]

    def look_online(self) -> None:
        """The restored box's own platform reports to its admin; first boot sends nothing."""

    def identity(self) -> SecretStr:
        restore_check = self.restore_check
        if restore_check is None:
            raise RuntimeError("the restore ran before the seed was read")
        value = check_backup_identity(restore_check.given["BACKUP_IDENTITY"].value)
        redact.register(value)
        return SecretStr(value)

    restore_check: SeedCheck | None = None


def _as_restore(boot: Boot) -> RestoreBoot:
    if not isinstance(boot, RestoreBoot):
        raise TypeError("a restore step in a first boot that does not restore")
    return boot


def _read(boot: Boot) -> StepRecord | None:
    """Step 1: the restore seed and its backup, kept in root's first-boot state."""
    restoring = _as_restore(boot)
    paths, stamps = boot.paths, boot.stamps
    if stamps.done(SEED_STEP):
        data = paths.seed_copy.read_bytes()
        restoring.restore_check = _checked(data, paths.seed_copy.name, None)
        return stamps.record(SEED_STEP)
    source = read_first_boot_seed(boot.config.seed, paths)
    stored = source.description == STORED_DESCRIPTION
    if not stored and boot.config.seed is None:
        raise SeedUnreadableError(
            "a restore seed on a stick is carried into the system by the installer",
            "boot the installer stick with this setup.txt and the backup next to it",
        )
    beside = None if stored or boot.config.seed is None else files_beside(boot.config.seed)
    check = restoring.restore_check = _checked(source.data, source.name, beside)
    if not stored:
        assert boot.config.seed is not None  # noqa: S101 (checked above)
        folder = boot.config.seed if boot.config.seed.is_dir() else boot.config.seed.parent
        _keep_backup(paths.stored_backup, folder / str(check.backup_name))
        keep_backup_name(paths, str(check.backup_name))
    if not paths.stored_backup.is_file():
        raise SeedUnreadableError(
            f"the backup is missing from {paths.seed_dir}",
            "install again from the stick with the restore seed and its backup",
        )
    faults.fault_point(f"effects:{SEED_STEP}")
    write_stored_seed(paths, source.data, {})
    record = StepRecord(created=(f"restore seed read from {source.description}",))
    stamps.mark(SEED_STEP, record)
    faults.fault_point(f"stamped:{SEED_STEP}")
    return record


def _checked(data: bytes, name: str, beside: list[str] | None) -> SeedCheck:
    check = check_restore_seed_bytes(data, name, beside)
    identity = check.given.get("BACKUP_IDENTITY")
    if identity is not None:
        redact.register(identity.value)
    if not check.valid:
        first = check.problems[0]
        raise SeedInvalidError(
            f"the restore seed is not valid: {first.key or name}: {first.message}",
            first.hint or f"check it with: clawdie-setup check {name}",
            check,
        )
    return check


def _keep_backup(target: Path, backup: Path) -> None:
    """The backup copied into root's state (0600, 0700 folder) through the one media reader."""
    ensure_dir(target.parent, 0o700, 0, 0)
    hint = "copy the .backup.age file next to setup.txt again"
    copy_seed_entry_to(backup, backup.name, hint, target, bound=MAX_BACKUP_BYTES)


def _restore(boot: Boot) -> StepRecord:
    """Step 2: the backup onto this box; refused before anything changes."""
    restoring = _as_restore(boot)
    restorer = boot.inputs.restorer
    if restorer is None:
        raise InstallerError(
            "this first boot cannot restore a backup", "run it as `clawdie-setup firstboot`"
        )
    try:
        check = restoring.restore_check
        name = (check.backup_name if check else None) or kept_backup_name(boot.paths) or ""
        lines = restorer(boot.config, boot.paths.stored_backup, name, restoring.identity())
    except InstallerError as err:
        if getattr(err, "nothing_changed", False):  # refused before the box was touched
            raise
        raise InstallerError(err.message, CUT_HINT) from None
    return StepRecord(created=tuple(lines))


def _own_machine(boot: Boot) -> StepRecord:
    """Step 3: what is this machine's own after the restore (see the module's note)."""
    paths, db = boot.paths, boot.config.db
    env = read_env_file(paths.system_env)
    role, password = env.get("PLATFORM_DB_ROLE", "clawdie"), env.get(DB_PASSWORD_KEY, "")
    redact.register(password)
    for key, database in (
        ("DATABASE_URL", "system_ops"),
        ("SYSTEM_BRAIN_DATABASE_URL", "system_brain"),
        ("SYSTEM_SKILLS_DATABASE_URL", "system_skills"),
    ):
        env[key] = database_url(role, password, db, database)
    env["HOST_DB_READINESS_TIMEOUT_MS"] = str(db.readiness_timeout_ms or 60000)
    account = read_account(paths.passwd, role)
    gid = account.gid if account is not None else 0
    write_atomic(paths.system_env, render_env_file(env), mode=0o640, uid=0, gid=gid, scrub_old=True)
    dropin = render_unit_dropin(role)
    changed = not paths.platform_unit_dropin.is_file() or (
        paths.platform_unit_dropin.read_text() != dropin
    )
    if changed:
        write_atomic(paths.units_reload_marker, "the platform's unit drop-in changed\n", mode=0o600)
    ensure_dir(paths.platform_unit_dropin.parent, 0o755)
    write_atomic(paths.platform_unit_dropin, dropin, mode=0o644)
    done = [
        "machine id: this machine's own (made here, not restored)",
        f"the platform's databases: on this box ({db.host}, port {db.port}) as {role}",
        *_host_settings(boot),
    ]
    return StepRecord(
        created=tuple(done),
        facts={UNITS_CHANGED: "yes" if paths.units_reload_marker.exists() else "no"},
    )


def _host_settings(boot: Boot) -> list[str]:
    """Time zone, locale and keyboard as the backed-up box had them (its resolution record);
    the host name is restored: made live here on the running system."""
    paths = boot.paths
    try:
        doc = json.loads(paths.resolved_json.read_text(encoding="utf-8"))
        settings = {str(s["key"]): str(s["value"]) for s in doc["settings"] if s.get("value")}
    except (OSError, ValueError, KeyError, TypeError):
        return ["time zone, locale, keyboard: the system's (no record of the backed-up box's)"]
    zone = settings.get("TIMEZONE", "UTC")
    locale, keymap = settings.get("LOCALE", "en_US.UTF-8"), settings.get("KEYMAP", "us")
    write_atomic(paths.timezone, f"{zone}\n")
    symlink_atomic(paths.localtime, f"/usr/share/zoneinfo/{zone}")
    write_atomic(paths.default_locale, f"LANG={locale}\n")
    if paths.locale_gen.exists():
        write_atomic(paths.locale_gen, render_locale_gen(paths.locale_gen.read_text(), locale))
    keyboard = paths.default_keyboard.read_text() if paths.default_keyboard.exists() else ""
    write_atomic(paths.default_keyboard, render_keyboard(keyboard, keymap))
    hostname = paths.hostname.read_text().strip() if paths.hostname.is_file() else ""
    if paths.is_live_system and hostname:
        run(["hostname", hostname])
    return [
        f"host name {hostname} (restored)",
        f"time zone {zone}, locale {locale}, console keyboard {keymap} (as the backed-up box)",
    ]
