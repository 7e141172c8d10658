"""First boot: DESIGN §4's steps in order against a target root.

Each step checks before it acts and is stamped only after its effects are durable, so a run
killed at any point (a power cut) is finished by the next run. Once the `complete` stamp exists,
first boot does nothing and never reads a seed again.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from pydantic import SecretStr

import installer.firstboot.steps.network as network_step
from installer import faults, redact
from installer.bundle import LogBuffer, collect_parts, write_failure_bundle
from installer.errors import InstallerError, UsageError
from installer.firstboot.adopt_code import NEW_CODE_COMMAND, new_code, render_code_lines
from installer.firstboot.config import FirstbootConfig
from installer.firstboot.context import UNITS_CHANGED, StepContext
from installer.firstboot.service_clock import ServiceClock
from installer.firstboot.steps import accounts, database, identity, platform_env, upkeep
from installer.firstboot.steps.report import Delivery, Outcome, render_machine, write_reports
from installer.fsutil import remove_durably, remove_stale_temps, write_atomic
from installer.online.checks import Findings, Online
from installer.paths import TargetPaths
from installer.run import run
from installer.screen import ProgressScreen
from installer.seed.ask import Asker, resolve_seed
from installer.seed.io import (
    STORED_DESCRIPTION,
    FileWriter,
    Receipt,
    read_first_boot_seed,
)
from installer.seed.resolve import SeedCheck, seed_mode
from installer.seed.stored import (
    SEED_STEP,
    ensure_setup_state,
    forget_seed,
    read_stored_seed,
    store_seed,
)
from installer.stamps import COMPLETE, Stamps, StepRecord
from installer.steps import Step, StepRun, plan
from installer.tracker import PlannedStep, StepTracker

log = logging.getLogger("clawdie.firstboot")

SEED_LABEL = "reading and checking the seed"
SEED_DEADLINE_S = 60.0  # reading and checking; asking on the console adds the wizard's wait
ANNOUNCE_STEP = "announce"  # the early Telegram message: not a step of the plan
REPORT_STEP = "report"
PLATFORM_STEP = "platform"
PLATFORM_START_TIMEOUT_S = 300.0
# The plug-ins first boot and adopt both run, in DESIGN order, each stamped.
SETUP_STEPS: tuple[Step[StepContext], ...] = (
    identity.STEP,
    network_step.STEP,
    accounts.STEP,
    platform_env.STEP,
    upkeep.STEP,
)


def database_steps(config: FirstbootConfig) -> tuple[Step[StepContext], ...]:
    """Steps 6-7: the wait for PostgreSQL (on every run), then the platform's database."""
    return (database.wait_step(config), database.STEP)


def steps_for(config: FirstbootConfig) -> list[Step[StepContext]]:
    """The steps that apply a resolved seed to a box, in order (adopt runs these)."""
    return [*SETUP_STEPS, *database_steps(config)]


class PlatformStartError(InstallerError):
    """First boot completed but the platform did not start."""

    exit_code = 4


def asking_against(asker: Asker, tracker: StepTracker, wait: float) -> Asker:
    """`asker`, with the seed step's deadline moved out by the console's wait while it asks."""

    def ask(check: SeedCheck) -> Mapping[str, str] | None:
        tracker.begin(SEED_STEP, SEED_DEADLINE_S + wait)
        return asker(check)

    return ask


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
    remove_durably(TargetPaths(config.root).units_reload_marker)
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


AfterComplete = Callable[[FirstbootConfig, TargetPaths, "Receipt | None"], "int | None"]
# Restores a backup onto the box (INSTALL_MODE=restore): the backup room's `restore_backup`,
# given by the command (first boot does not import the backup room), with the backup's copy in
# root's state and the owner's file name (the receipt names it). Returns what it restored,
# in lines; raises InstallerError, with `nothing_changed = True` when it refused before the box
# was touched.
Restorer = Callable[[FirstbootConfig, Path, str, SecretStr], list[str]]


@dataclass
class FirstbootRun:
    """One run of first boot with its reporters; `execute` returns the exit code."""

    config: FirstbootConfig
    asker: Asker | None = None
    # the network check, the clock, the credential preflight and the Telegram messages
    online: Online | None = None
    receipt: Receipt | None = None
    # Records of what ran before first boot (install-platform's host checks), for the summary.
    preamble: Mapping[str, StepRecord] = field(default_factory=dict)
    stick_files: FileWriter | None = None  # the failure's log bundle goes next to the receipt
    screen: ProgressScreen | None = None  # the console's progress screen (a terminal only)
    # What runs instead when first boot is complete (the command gives adopt's check for a
    # stick at boot): an exit code, or None for "nothing to do".
    when_complete: AfterComplete | None = None
    restorer: Restorer | None = None  # a restore seed's first boot (installer/backup)
    # The first boot of a seed of another INSTALL_MODE (the command gives restore's:
    # installer/firstboot/restore_boot.py); a mode not here is set up new.
    kinds: Mapping[str, type[Boot]] = field(default_factory=dict)

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
            if self.when_complete is not None:  # an adopt stick at boot (the command's choice)
                adopted = self.when_complete(self.config, paths, self.receipt)
                if adopted is not None:
                    return adopted
            print(
                f"first boot already completed ({stamps.finished_at(COMPLETE)}); nothing to do. "
                "Seeds are not read again: changes to setup.txt on a stick are ignored "
                "(a seed with INSTALL_MODE=adopt and this box's INSTALL_FINGERPRINT is applied).",
                file=sys.stderr,
            )
            return 0
        faults.arm_from_environment()
        log.info("first boot: starting, %.1f s after the service started", clock.elapsed())
        kind = self.boot_kind(paths)
        with LogBuffer() as own_log, self.screen or contextlib.nullcontext():
            return kind(self, paths, stamps, own_log, clock).run()

    def boot_kind(self, paths: TargetPaths) -> type[Boot]:
        """The first boot the seed asks for: a restore seed restores its backup instead of
        setting a new box up (installer/firstboot/restore_boot.py)."""
        if not self.kinds:
            return Boot
        try:
            data = read_first_boot_seed(self.config.seed, paths).data
        except (InstallerError, OSError):
            return Boot  # its seed step says why
        return self.kinds.get(seed_mode(data), Boot)


@dataclass
class Boot:
    """First boot under way: its steps (`firstboot_steps`), what they found so far, and its
    one reporting context (tracker and live receipt, report, log bundle, screen)."""

    inputs: FirstbootRun
    paths: TargetPaths
    stamps: Stamps
    own_log: LogBuffer
    clock: ServiceClock
    check: SeedCheck | None = None  # once the seed step has read it
    context: StepContext | None = None  # what steps 2-7 work with, from the seed
    completed: bool = False  # the `complete` stamp is written: the platform's start is left
    platform: str = ""  # how the platform's start went
    delivery: Delivery = field(default_factory=Delivery, repr=False)
    findings: Findings | None = field(default=None, repr=False)
    # made by this run's report (DESIGN §10): in memory only, shown on the receipt and in the
    # Telegram report, never in the summary on the disk, the console or the journal
    adopt_code: SecretStr | None = field(default=None, repr=False)
    # a fresh box gets its own adopt code; a restored one keeps the backed-up box's
    makes_adopt_code: ClassVar[bool] = True
    tracker: StepTracker = field(init=False, repr=False)
    steps: StepRun[Boot] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for directory in self.paths.written_dirs():
            remove_stale_temps(directory)
        self.clock.resume(self.paths.firstboot_time)
        screen_show = self.inputs.screen.show if self.inputs.screen is not None else None

        def show(tracker: StepTracker) -> None:  # each step's start: the time so far is kept
            self.clock.note(self.paths.firstboot_time)
            if screen_show is not None:
                screen_show(tracker)

        steps = self.boot_steps()
        self.tracker = StepTracker(
            "Clawdie first boot",
            plan(steps),
            STALLED_HINT,
            write=self.inputs.receipt,
            show=show,
            facts=render_machine(self.paths, None),
        )
        self.steps = StepRun(steps, self.stamps, self.tracker, log, dict(self.inputs.preamble))

    def boot_steps(self) -> list[Step[Boot]]:
        return firstboot_steps(self.inputs.config)

    @property
    def config(self) -> FirstbootConfig:
        return self.inputs.config

    @property
    def records(self) -> dict[str, StepRecord]:
        return self.steps.records

    def run(self) -> int:
        self.steps.run(self, self.failed)
        headline = _set_up_headline(self.clock)
        self._rewrite(self.check, Outcome(True, headline, platform=self.platform))
        log.info("first boot complete; platform %s", self.platform)
        screen = self.inputs.screen
        if screen is not None:  # the summary's place, not its 50 lines: they would scroll
            done = Outcome(True, _set_up_headline(self.clock), platform=self.platform)
            where = f"/{self.paths.summary.relative_to(self.paths.root)}"
            screen.done(
                done.status(self.delivery.to_fix),
                f"{done.headline}; platform {self.platform}. The full report: {where}",
            )
        else:
            print(self.paths.summary.read_text(), end="")
        return 0

    def step_context(self) -> StepContext:
        if self.context is None:
            raise RuntimeError("a step ran before the seed was read")
        return self.context

    # -- the steps of its own (the seed, the early message, the report, the end) ---------------

    def read_seed(self) -> StepRecord | None:
        """Step 1: read, validate, ask for what is missing; keep the result on the target."""
        if self.stamps.done(SEED_STEP):
            check = read_stored_seed(self.paths)
        else:
            source = read_first_boot_seed(self.config.seed, self.paths)
            log.info("seed: reading %s", source.description)
            asker = self.inputs.asker
            if asker is not None:
                asker = asking_against(asker, self.tracker, self.config.wizard_timeout or 900.0)
            stored_copy = source.description == STORED_DESCRIPTION
            check, answers = resolve_seed(source.data, source.name, asker, sealed=stored_copy)
            faults.fault_point(f"effects:{SEED_STEP}")
            store_seed(self.paths, self.stamps, source.data, answers, source.description, check)
            faults.fault_point(f"stamped:{SEED_STEP}")
            # the steps take the hashes stored, as a run resumed after a power cut does
            check = read_stored_seed(self.paths, source.name)
        self.check = check
        self.tracker.facts = render_machine(self.paths, check)  # with the dashboard's address
        self.context = StepContext(
            self.config,
            self.paths,
            check.require_resolved(),
            tuple(w.message for w in check.warnings),
        )
        return self.stamps.record(SEED_STEP)

    def announce(self) -> None:
        """The early "setup started" message, after the network step and before the database
        wait (bounded; never queued, never fatal)."""
        if self.inputs.online is not None:
            told = self.inputs.online.announce(self.step_context().seed)
            log.info("Telegram: setup started message: %s", told)

    def report(self) -> StepRecord:
        """Step 8: the summary, the receipt and the Telegram report, with the network checks."""
        self.look_online()
        outcome = Outcome(
            ok=True, headline=_set_up_headline(self.clock), platform="starting after this report"
        )
        self._report(self.check, outcome)
        return StepRecord()

    def look_online(self) -> None:
        """The network, the clock and the credentials as they are now (for the report, and for
        its rewrite after the platform's start)."""
        if self.inputs.online is not None:
            self.findings = self.inputs.online.findings(self.step_context().seed)

    def complete(self) -> None:
        """First boot is done: the `complete` stamp, then the seed copy goes."""
        self.stamps.mark(COMPLETE, StepRecord())
        faults.fault_point(f"stamped:{COMPLETE}")
        self.completed = True
        forgotten = forget_seed(self.paths)
        log.info(
            "seed copy deleted (%s): secrets now live only where they are used",
            ", ".join(forgotten) or "nothing left",
        )

    def start(self) -> None:
        """Step 9: start the platform (the report is rewritten with how it went)."""
        if self.findings is None:  # the report was written by an earlier run
            self.look_online()
        self.platform = start_platform(self.config, self.records)

    # -- the one failure path ------------------------------------------------------------------

    def failed(self, err: InstallerError) -> None:
        """Any step's failure: the report (rewritten once first boot is complete: the platform
        did not start), the log bundle and the screen's last word."""
        where = self.tracker.where()
        log.error("first boot failed at %s: %s", where, err.message)
        check = getattr(err, "check", None) or self.check
        if self.completed:
            headline = _set_up_headline(self.clock)
            self._rewrite(
                check, Outcome(False, headline, err.message, err.hint, platform=err.message)
            )
        else:
            outcome = Outcome(
                ok=False,
                headline=f"stopped at {where}: {err.message}",
                error=err.message,
                hint=err.hint,
                platform="not started (first boot did not finish)",
            )
            self._report(check, outcome)
        self._bundle(check)
        if self.inputs.screen is not None:  # painted last: the cause, then the hint
            self.inputs.screen.fail(err.message, err.hint)
            err.on_screen = True

    # -- the reporters -------------------------------------------------------------------------

    def _report(self, check: SeedCheck | None, outcome: Outcome) -> None:
        online, receipt = self.inputs.online, self.inputs.receipt
        nowhere = receipt is None and online is None
        if outcome.ok and self.adopt_code is None and not nowhere and self.makes_adopt_code:
            self.adopt_code = new_code(self.paths)
            redact.register(self.adopt_code.get_secret_value())  # never in a log or bundle
            log.info("adopt code: made; its hash is in %s", self.paths.adopt_code_hash.name)
        code = self._code_lines()
        notify = None
        if online is not None and check is not None and check.resolved is not None:
            seed = check.resolved

            def notify(text: str) -> tuple[bool, str]:
                return online.notify(seed, text + code, holds_secret=bool(code))

        self.delivery = Delivery()
        if (
            outcome.ok and nowhere and self.makes_adopt_code
        ):  # neither a receipt nor Telegram to show it on
            self.delivery.extra.append(
                "no adopt code was made (no stick and no Telegram to show it on): make one "
                f"with `{NEW_CODE_COMMAND}` as root before adopting from a stick"
            )
        for line in write_reports(
            self.paths,
            check,
            self.records,
            outcome,
            notify=notify,
            receipt=self._receipt_with(code),
            delivery=self.delivery,
            findings=self.findings,
        ):
            log.info("report: %s", line)

    def _code_lines(self) -> str:
        """The adopt code's block for the receipt and the Telegram report ("" without one)."""
        if self.adopt_code is None:
            return ""
        return "\n" + "\n".join(render_code_lines(self.adopt_code)) + "\n"

    def _receipt_with(self, code: str) -> Receipt | None:
        """The receipt writer, with the adopt code's block at the end of what it writes."""
        receipt = self.inputs.receipt
        if receipt is None or not code:
            return receipt

        def write(text: str) -> tuple[bool, str]:
            return receipt(text + code)

        return write

    def _rewrite(self, check: SeedCheck | None, outcome: Outcome) -> None:
        """Update the report and the receipt with the platform's start (no second message)."""
        kept = Delivery(list(self.delivery.extra), list(self.delivery.to_fix))
        code = self._code_lines()
        if not code and self.makes_adopt_code and self.paths.adopt_code_hash.is_file():
            # an earlier, cut run made it
            code = (
                "\nAdopt code: made by an earlier run of first boot and shown in its report "
                "(the Telegram report to the admin);\n"
                f"  lost: `{NEW_CODE_COMMAND}` as root on the box makes a new one.\n"
            )
        for line in write_reports(
            self.paths,
            check,
            self.records,
            outcome,
            receipt=self._receipt_with(code),
            delivery=kept,
            findings=self.findings,
        ):
            log.info("report: %s", line)

    def _bundle(self, check: SeedCheck | None) -> None:
        """The failure's log bundle on the disk and the stick; where it went is added to the
        summary. Never raises: the failure being reported matters more."""
        paths = self.paths
        if check is not None and check.resolved is not None:
            host = check.resolved.host.hostname
        else:  # the seed was not read: the name the system has
            host = paths.hostname.read_text().strip() if paths.hostname.is_file() else "unnamed"
        try:
            summary = paths.summary.read_text(encoding="utf-8")
        except OSError:
            summary = None
        parts = collect_parts(self.own_log.text(), live=paths.is_live_system, receipt=summary)
        shown = f"/{paths.bundles_dir.relative_to(paths.root)}"
        done = write_failure_bundle(
            paths.bundles_dir, host, parts, self.inputs.stick_files, shown_dir=shown
        )
        if summary is not None:
            note = "".join(f"  - {line}\n" for line in done)
            write_atomic(paths.summary, f"{summary}\nLog bundle:\n{note}", mode=0o600)


def firstboot_steps(config: FirstbootConfig) -> list[Step[Boot]]:
    """First boot's steps in order: the seed, the plug-ins, the report, the platform's start."""
    return [
        Step(SEED_STEP, SEED_LABEL, SEED_DEADLINE_S, Boot.read_seed, stamped=False),
        *(step.over(Boot.step_context) for step in SETUP_STEPS),
        Step(ANNOUNCE_STEP, None, 10.0, Boot.announce, stamped=False),
        *(step.over(Boot.step_context) for step in database_steps(config)),
        Step(REPORT_STEP, "the report and the Telegram message", 120.0, Boot.report),
        Step(COMPLETE, None, 60.0, Boot.complete, stamped=False),
        Step(
            PLATFORM_STEP,
            "starting the platform",
            PLATFORM_START_TIMEOUT_S,
            Boot.start,
            stamped=False,
        ),
    ]


def plan_steps(config: FirstbootConfig) -> list[PlannedStep]:
    """First boot's steps as the live receipt and the console count them, each with the
    deadline it runs against."""
    return plan(firstboot_steps(config))


STALLED_HINT = (
    "connect a screen, or read `journalctl -u clawdie-firstboot` over SSH; restarting the "
    "machine runs first boot again from that step"
)


def _set_up_headline(clock: ServiceClock) -> str:
    """The summary's headline: the whole service's time so far, from the unit's start, with
    every earlier run's when first boot was resumed (a power cut, a restart)."""
    runs = f" over {clock.runs} runs" if clock.runs > 1 else ""
    return f"the assistant is set up ({clock.total():.1f} s){runs}"
