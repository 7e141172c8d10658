"""First boot: DESIGN §4's steps in order against a target root.

Each step checks before it acts and is stamped only after its effects are durable, so a run
killed at any point (a power cut) is finished by the next run. Once the `complete` stamp exists,
first boot does nothing and never reads a seed again.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from installer import faults, redact
from installer.errors import InstallerError, SeedUnreadableError, UsageError
from installer.firstboot.service_clock import ServiceClock
from installer.firstboot.stamps import COMPLETE, Stamps, StepRecord
from installer.firstboot.steps import (
    FirstbootConfig,
    StepContext,
    accounts,
    database,
    identity,
    platform_env,
)
from installer.firstboot.steps.platform_env import UNITS_CHANGED, parse_env_file
from installer.firstboot.steps.report import Outcome, write_reports
from installer.fsutil import ensure_dir, remove_durably, remove_stale_temps, write_atomic
from installer.paths import TargetPaths
from installer.run import run
from installer.seed.resolve import SeedCheck, apply_answers, check_seed_bytes, keys_to_ask

log = logging.getLogger("clawdie.firstboot")

SEED_STEP = "seed"
# (stamp name, apply) in DESIGN order; the database wait runs between config and bootstrap.
STEPS: list[tuple[str, Callable[[StepContext], StepRecord]]] = [
    (identity.NAME, identity.apply),
    (accounts.NAME, accounts.apply),
    (platform_env.NAME, platform_env.apply),
    (database.NAME, database.apply),
]
REPORT_STEP = "report"

# What the operator's answers look like when a console wizard asks for missing fields:
# given the seed and its problems, return answers (key -> typed text), or None to give up.
Asker = Callable[[SeedCheck], "Mapping[str, str] | None"]


class SeedInvalidError(InstallerError):
    """The seed has problems and nobody could answer them; `check` says which."""

    def __init__(self, message: str, hint: str | None = None, check: SeedCheck | None = None):
        super().__init__(message, hint)
        self.check = check


class PlatformStartError(InstallerError):
    """First boot completed but the platform did not start."""

    exit_code = 4


@dataclass(frozen=True)
class SeedSource:
    name: str
    data: bytes
    description: str
    from_partition: bool = False


def _read_seed_source(config: FirstbootConfig, paths: TargetPaths) -> SeedSource:
    """The seed: --seed FILE, else the copy the installer placed, else the seed partition."""
    if config.seed is not None:
        from installer.seed.resolve import read_seed_path

        name, data, _ = read_seed_path(config.seed)
        return SeedSource(name, data, f"{config.seed}")
    if paths.seed_copy.is_file():
        return SeedSource("setup.txt", paths.seed_copy.read_bytes(), "the installer's copy")
    if not paths.is_live_system:
        raise SeedUnreadableError(
            f"no seed: {paths.seed_copy} does not exist", "give one with --seed FILE"
        )
    from installer.media.seed_device import find_seed, read_seed

    device, _ = find_seed()
    read = read_seed(device)
    return SeedSource(read.name, read.data, f"the seed partition {device.node}", True)


def register_secrets(check: SeedCheck) -> None:
    """Every secret value the seed holds (valid or not) is masked in logs and messages."""
    from installer.seed.model import field_specs

    secret_keys = {spec.key for spec in field_specs() if spec.secret}
    redact.register(*(g.value for key, g in check.given.items() if key in secret_keys))
    redact.register(*(s.value for s in check.settings if s.secret))


def ensure_setup_state(paths: TargetPaths) -> None:
    """Root's state directory: 0700, root's own (never inside the service account's home)."""
    ensure_dir(paths.setup_state_dir, 0o700, 0, 0)


def forget_seed(paths: TargetPaths) -> list[str]:
    """Delete the seed copy and the console answers (after the complete stamp): from then on
    the secrets live only where they are used. Returns what was deleted."""
    gone = [p.name for p in (paths.seed_copy, paths.wizard_answers) if remove_durably(p)]
    if paths.seed_dir.is_dir() and not paths.seed_dir.is_symlink():
        remove_stale_temps(paths.seed_dir)
        paths.seed_dir.rmdir()
    return gone


def _read_answers(paths: TargetPaths) -> dict[str, str]:
    if not paths.wizard_answers.is_file():
        return {}
    return parse_env_file(paths.wizard_answers.read_text(encoding="utf-8"))


def read_stored_seed(paths: TargetPaths) -> SeedCheck:
    """The seed as step 2 kept it: the copy on the target plus the console answers."""
    check = check_seed_bytes(paths.seed_copy.read_bytes())
    stored = _read_answers(paths)
    if stored:
        redact.register(*stored.values())
        check = apply_answers(check, stored)
    register_secrets(check)
    if not check.valid:
        raise SeedInvalidError(
            "the stored seed copy no longer validates",
            f"check {paths.seed_copy} with clawdie-setup check",
            check,
        )
    return check


def resolve_seed(data: bytes, name: str, asker: Asker | None) -> tuple[SeedCheck, dict[str, str]]:
    """Step 2: validate the seed; ask the console for what is missing or invalid.

    Returns the valid, resolved seed and the operator's answers ({} when none were needed).
    Raises SeedInvalidError when nobody can or does answer. Shared with the disk installer.
    """
    check = check_seed_bytes(data, name=name)
    register_secrets(check)
    if check.valid:
        return check, {}
    keys = keys_to_ask(check)
    log.warning("seed: %d problem(s); asking for: %s", len(check.problems), ", ".join(keys))
    if asker is None or not keys:
        raise SeedInvalidError(
            f"{name} has {len(check.problems)} problem(s) and there is no console to ask on",
            "fix setup.txt (clawdie-setup check shows every problem), then boot again",
            check,
        )
    given = asker(check)
    if given is None:
        raise SeedInvalidError(
            "the questions on the console were not answered",
            "fix setup.txt or answer on the console, then run first boot again",
            check,
        )
    answers = {k: v for k, v in given.items() if v}
    redact.register(*answers.values())  # an answer to any question may be a secret
    check = apply_answers(check, answers)
    if not check.valid:
        raise SeedInvalidError("the answers still leave problems", None, check)
    return check, answers


def store_seed(
    paths: TargetPaths, stamps: Stamps, data: bytes, answers: Mapping[str, str], description: str
) -> None:
    """Keep the seed (0600, folder 0700) and the console answers on the target; stamp step 2.

    After this, first boot reads only what is stored here and never asks or reads a stick again.
    """
    ensure_setup_state(paths)
    ensure_dir(paths.seed_dir, 0o700, 0, 0)
    write_atomic(paths.seed_copy, data, mode=0o600)
    if answers:
        write_atomic(paths.wizard_answers, platform_env.render_env_file(answers), mode=0o600)
    stamps.mark(
        SEED_STEP,
        StepRecord(
            created=(f"seed read from {description}",),
            notes=tuple(f"answered on the console: {k}" for k in answers),
        ),
    )


def obtain_seed(
    config: FirstbootConfig, paths: TargetPaths, stamps: Stamps, asker: Asker | None
) -> SeedCheck:
    """Steps 1-2: read, validate, ask for what is missing; keep the result on the target."""
    if stamps.done(SEED_STEP):
        return read_stored_seed(paths)
    source = _read_seed_source(config, paths)
    log.info("seed: reading %s", source.description)
    check, answers = resolve_seed(source.data, source.name, asker)
    faults.fault_point(f"effects:{SEED_STEP}")
    store_seed(paths, stamps, source.data, answers, source.description)
    faults.fault_point(f"stamped:{SEED_STEP}")
    return check


def run_steps(ctx: StepContext, stamps: Stamps) -> dict[str, StepRecord]:
    """Steps 3-7 in order, each skipped when stamped; the database wait always runs."""
    records: dict[str, StepRecord] = {}
    for name, apply in STEPS:
        if name == database.NAME:
            faults.fault_point(f"before:{database.WAIT_NAME}")
            log.info("%s: starting", database.WAIT_NAME)
            database.wait(ctx)
        previous = stamps.record(name)
        if previous is not None:
            log.info("%s: done in an earlier run", name)
            records[name] = previous
            continue
        faults.fault_point(f"before:{name}")
        log.info("%s: starting", name)
        record = apply(ctx)
        faults.fault_point(f"effects:{name}")
        stamps.mark(name, record)
        faults.fault_point(f"stamped:{name}")
        records[name] = record
    return records


def reload_units(config: FirstbootConfig, records: Mapping[str, StepRecord]) -> None:
    """Have systemd read the unit files again, only when a step changed one (the platform's
    account drop-in for another SERVICE_ACCOUNT); a reload costs seconds on a slow machine."""
    changed = [name for name, r in records.items() if r.facts.get(UNITS_CHANGED) == "yes"]
    if not changed:
        log.info("units: unchanged, no reload")
        return
    if config.units_reload is None:
        log.info("units: changed by %s; no reload command here", ", ".join(changed))
        return
    run(list(config.units_reload), timeout=120)
    log.info(
        "units: changed by %s; reloaded (%s)", ", ".join(changed), " ".join(config.units_reload)
    )


def start_platform(config: FirstbootConfig, records: Mapping[str, StepRecord] | None = None) -> str:
    """Step 9 (after the complete stamp): start the platform unit, or say why not."""
    if config.platform_start is None:
        return "start skipped (--no-platform-start); start it with: systemctl start clawdie"
    argv = list(config.platform_start)
    try:
        reload_units(config, records or {})
        result = run(argv, check=False, timeout=300)
    except InstallerError as err:  # timed out, or the program is missing
        raise PlatformStartError(
            f"the platform did not start: {err.message}", "see `journalctl -u clawdie` on the box"
        ) from None
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise PlatformStartError(
            f"the platform did not start: {' '.join(argv)} exited {result.returncode} "
            f"{tail[0]}".rstrip(),
            "see `journalctl -u clawdie` on the box",
        )
    return f"started ({' '.join(argv)})"


def as_installer_error(err: Exception) -> InstallerError:
    """Our error for any failure: ours as it is; anything else worded without a traceback,
    cleaned of every known secret (a bug's message may quote a value)."""
    if isinstance(err, InstallerError):
        return err
    if isinstance(err, OSError) and err.strerror:
        where = f" ({err.filename})" if err.filename else ""
        message = f"a system call failed: {err.strerror}{where}"
    else:
        message = f"unexpected error ({type(err).__name__}: {err})"
    return InstallerError(
        redact.redact(message), "this is a fault in the installer: keep the journal and report it"
    )


@dataclass
class FirstbootRun:
    """One run of first boot with its reporters; `execute` returns the exit code."""

    config: FirstbootConfig
    asker: Asker | None = None
    notifier_factory: Callable[[SeedCheck], Callable[[str], tuple[bool, str]] | None] | None = None
    receipt: Callable[[str], tuple[bool, str]] | None = None
    delivery: list[str] = field(default_factory=list, init=False, repr=False)

    def execute(self) -> int:
        clock = ServiceClock()  # the service's time counts from the unit's start
        paths = TargetPaths(self.config.root)
        if not paths.passwd.is_file():
            raise UsageError(
                f"{self.config.root} is not the root of a system (it has no etc/passwd)",
                "give --root the directory the target system is mounted on",
            )
        ensure_setup_state(paths)
        stamps = Stamps(paths.stamps_dir)
        if stamps.done(COMPLETE):
            forget_seed(paths)  # a power cut may have come between the stamp and the delete
            print(
                f"first boot already completed ({stamps.finished_at(COMPLETE)}); nothing to do. "
                "Seeds are not read again: changes to setup.txt on a stick are ignored.",
                file=sys.stderr,
            )
            return 0
        faults.arm_from_environment()
        log.info("first boot: starting, %.1f s after the service started", clock.elapsed())
        for directory in paths.written_dirs():
            remove_stale_temps(directory)
        check: SeedCheck | None = None
        records: dict[str, StepRecord] = {}
        try:
            check = obtain_seed(self.config, paths, stamps, self.asker)
            seed_record = stamps.record(SEED_STEP)
            if seed_record is not None:
                records[SEED_STEP] = seed_record
            ctx = StepContext(self.config, paths, check)
            records.update(run_steps(ctx, stamps))
        except Exception as caught:  # every failure writes its report
            err = as_installer_error(caught)
            failed_check = getattr(err, "check", None) or check
            self._report(
                paths,
                failed_check,
                records,
                Outcome(
                    ok=False,
                    headline="first boot stopped before it finished",
                    error=err.message,
                    hint=err.hint,
                    platform="not started (first boot did not finish)",
                ),
            )
            if err is caught:
                raise
            raise err from None
        outcome = Outcome(
            ok=True, headline=_set_up_headline(clock), platform="starting after this report"
        )
        if not stamps.done(REPORT_STEP):
            faults.fault_point(f"before:{REPORT_STEP}")
            log.info("%s: starting", REPORT_STEP)
            self._report(paths, check, records, outcome)
            stamps.mark(REPORT_STEP, StepRecord())
        faults.fault_point(f"before:{COMPLETE}")
        stamps.mark(COMPLETE, StepRecord())
        faults.fault_point(f"stamped:{COMPLETE}")
        forgotten = forget_seed(paths)
        log.info(
            "seed copy deleted (%s): secrets now live only where they are used",
            ", ".join(forgotten) or "nothing left",
        )
        log.info("platform: starting")
        try:
            platform = start_platform(self.config, records)
        except PlatformStartError as err:
            self._rewrite(
                paths, check, records, Outcome(True, _set_up_headline(clock), platform=err.message)
            )
            raise
        self._rewrite(
            paths, check, records, Outcome(True, _set_up_headline(clock), platform=platform)
        )
        log.info("first boot complete; platform %s", platform)
        print(paths.summary.read_text(), end="")
        return 0

    def _report(
        self,
        paths: TargetPaths,
        check: SeedCheck | None,
        records: dict[str, StepRecord],
        outcome: Outcome,
    ) -> None:
        notify = (
            self.notifier_factory(check)
            if (self.notifier_factory and check and check.settings)
            else None
        )
        self.delivery.clear()
        for line in write_reports(
            paths,
            check,
            records,
            outcome,
            notify=notify,
            receipt=self.receipt,
            delivery=self.delivery,
        ):
            log.info("report: %s", line)

    def _rewrite(
        self,
        paths: TargetPaths,
        check: SeedCheck | None,
        records: dict[str, StepRecord],
        outcome: Outcome,
    ) -> None:
        """Update the local report with the platform's start (no second message or receipt;
        what the report could not deliver stays in it)."""
        write_reports(paths, check, records, outcome, delivery=list(self.delivery))


def _set_up_headline(clock: ServiceClock) -> str:
    """The summary's headline: the whole service's time so far, from the unit's start."""
    return f"the assistant is set up ({clock.elapsed():.1f} s)"


def seed_on_stick_receipt() -> Callable[[str], tuple[bool, str]]:
    """Write SETUP-RESULT.txt on the seed partition if a stick is present and writable."""

    def write(text: str) -> tuple[bool, str]:
        from installer.media.seed_device import find_seed, write_receipt

        try:
            device, _ = find_seed()
        except InstallerError as err:
            return False, f"no seed stick present ({err.message})"
        result = write_receipt(device, text)
        return result.written, result.message

    return write


def receipt_in_directory(directory: Path) -> Callable[[str], tuple[bool, str]]:
    """A receipt into a plain directory standing in for the mounted stick (sandbox runs)."""

    def write(text: str) -> tuple[bool, str]:
        if not directory.is_dir():
            return False, f"{directory} is not there"
        try:
            write_atomic(directory / "SETUP-RESULT.txt", text, mode=0o600)
        except OSError as err:
            return False, f"{directory} is not writable ({err.strerror})"
        return True, f"wrote SETUP-RESULT.txt in {directory}"

    return write
