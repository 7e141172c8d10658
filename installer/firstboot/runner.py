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

from pydantic import SecretStr

import installer.firstboot.steps.network as network_step
from installer import faults, redact
from installer.bundle import LogBuffer, collect_parts, write_failure_bundle
from installer.errors import InstallerError, UsageError, as_installer_error
from installer.firstboot.adopt_code import NEW_CODE_COMMAND, new_code, render_code_lines
from installer.firstboot.config import FirstbootConfig
from installer.firstboot.context import StepContext
from installer.firstboot.service_clock import ServiceClock
from installer.firstboot.steps import accounts, database, identity, platform_env
from installer.firstboot.steps.platform_env import UNITS_CHANGED
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
from installer.seed.resolve import SeedCheck
from installer.seed.resolved import ResolvedSeed
from installer.seed.stored import (
    SEED_STEP,
    ensure_setup_state,
    forget_seed,
    read_stored_seed,
    store_seed,
)
from installer.stamps import COMPLETE, Stamps, StepRecord
from installer.tracker import PlannedStep, StepTracker

log = logging.getLogger("clawdie.firstboot")

# (stamp name, apply) in DESIGN order; the database wait runs between config and bootstrap.
STEPS: list[tuple[str, Callable[[StepContext], StepRecord]]] = [
    (identity.NAME, identity.apply),
    (network_step.NAME, network_step.apply),
    (accounts.NAME, accounts.apply),
    (platform_env.NAME, platform_env.apply),
    (database.NAME, database.apply),
]
REPORT_STEP = "report"
PLATFORM_STEP = "platform"
SEED_DEADLINE_S = 60.0  # reading and checking; asking on the console adds the wizard's wait
PLATFORM_START_TIMEOUT_S = 300.0


def plan_steps(config: FirstbootConfig) -> list[PlannedStep]:
    """First boot's steps as the live receipt and the console count them, each with the
    deadline it runs against."""
    from installer.firstboot.db.ready import readiness_timeout_ms

    wait_ms = config.db.readiness_timeout_ms
    if wait_ms is None:
        try:
            wait_ms = readiness_timeout_ms()
        except InstallerError:  # a malformed variable: the wait itself reports it
            wait_ms = 60_000
    return [
        PlannedStep(SEED_STEP, "reading and checking the seed", SEED_DEADLINE_S),
        PlannedStep(identity.NAME, "host name, time zone, locale, keyboard", 60.0),
        PlannedStep(network_step.NAME, "the wired and Wi-Fi network", 120.0),
        PlannedStep(accounts.NAME, "the service account and its SSH key", 120.0),
        PlannedStep(platform_env.NAME, "the platform's configuration", 60.0),
        PlannedStep(database.WAIT_NAME, "waiting for PostgreSQL", wait_ms / 1000),
        PlannedStep(database.NAME, "database role, databases, operator", 300.0),
        PlannedStep(REPORT_STEP, "the report and the Telegram message", 120.0),
        PlannedStep(PLATFORM_STEP, "starting the platform", PLATFORM_START_TIMEOUT_S),
    ]


class PlatformStartError(InstallerError):
    """First boot completed but the platform did not start."""

    exit_code = 4


def obtain_seed(
    config: FirstbootConfig,
    paths: TargetPaths,
    stamps: Stamps,
    asker: Asker | None,
    tracker: StepTracker | None = None,
) -> SeedCheck:
    """Steps 1-2: read, validate, ask for what is missing; keep the result on the target."""
    if tracker is not None:
        tracker.begin(SEED_STEP)
    faults.fault_point(f"before:{SEED_STEP}")
    if stamps.done(SEED_STEP):
        return read_stored_seed(paths)
    source = read_first_boot_seed(config.seed, paths)
    log.info("seed: reading %s", source.description)
    if asker is not None and tracker is not None:
        asker = asking_against(asker, tracker, config.wizard_timeout or 900.0)
    stored_copy = source.description == STORED_DESCRIPTION
    check, answers = resolve_seed(source.data, source.name, asker, sealed=stored_copy)
    faults.fault_point(f"effects:{SEED_STEP}")
    store_seed(paths, stamps, source.data, answers, source.description, check)
    faults.fault_point(f"stamped:{SEED_STEP}")
    # the steps take the hashes stored, as a run resumed after a power cut does: the same ones
    return read_stored_seed(paths, source.name)


def asking_against(asker: Asker, tracker: StepTracker, wait: float) -> Asker:
    """`asker`, with the seed step's deadline moved out by the console's wait while it asks."""

    def ask(check: SeedCheck) -> Mapping[str, str] | None:
        tracker.begin(SEED_STEP, SEED_DEADLINE_S + wait)
        return asker(check)

    return ask


def run_steps(
    ctx: StepContext,
    stamps: Stamps,
    tracker: StepTracker | None = None,
    before_wait: Callable[[], None] | None = None,
) -> dict[str, StepRecord]:
    """Steps 3-7 in order, each skipped when stamped; the database wait always runs, after
    `before_wait` (the early Telegram message: the network step has run by then)."""
    records: dict[str, StepRecord] = {}
    for name, apply in STEPS:
        if name == database.NAME:
            if before_wait is not None:
                before_wait()
            if tracker is not None:
                tracker.begin(database.WAIT_NAME)
            faults.fault_point(f"before:{database.WAIT_NAME}")
            log.info("%s: starting", database.WAIT_NAME)
            database.wait(ctx)
        if tracker is not None:
            tracker.begin(name)
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
    delivery: Delivery = field(default_factory=Delivery, init=False, repr=False)
    findings: Findings | None = field(default=None, init=False, repr=False)
    # made by this run's report (DESIGN §10): in memory only, shown on the receipt and in the
    # Telegram report, never in the summary on the disk, the console or the journal
    adopt_code: SecretStr | None = field(default=None, init=False, repr=False)

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
        with LogBuffer() as own_log, self.screen or contextlib.nullcontext():
            return self._run(paths, stamps, own_log, clock)

    def _run(
        self, paths: TargetPaths, stamps: Stamps, own_log: LogBuffer, clock: ServiceClock
    ) -> int:
        for directory in paths.written_dirs():
            remove_stale_temps(directory)
        clock.resume(paths.firstboot_time)
        screen_show = self.screen.show if self.screen is not None else None

        def show(tracker: StepTracker) -> None:  # each step's start: the time so far is kept
            clock.note(paths.firstboot_time)
            if screen_show is not None:
                screen_show(tracker)

        tracker = StepTracker(
            "Clawdie first boot",
            plan_steps(self.config),
            STALLED_HINT,
            write=self.receipt,
            show=show,
            facts=render_machine(paths, None),
        )
        check: SeedCheck | None = None
        records: dict[str, StepRecord] = dict(self.preamble)
        try:
            check = obtain_seed(self.config, paths, stamps, self.asker, tracker)
            tracker.facts = render_machine(paths, check)  # now with the dashboard's address
            seed_record = stamps.record(SEED_STEP)
            if seed_record is not None:
                records[SEED_STEP] = seed_record
            ctx = StepContext(
                self.config,
                paths,
                check.require_resolved(),
                tuple(w.message for w in check.warnings),
            )
            records.update(run_steps(ctx, stamps, tracker, lambda: self._announce(ctx.seed)))
            outcome = Outcome(
                ok=True,
                headline=_set_up_headline(clock),
                platform="starting after this report",
            )
            tracker.begin(REPORT_STEP)
            if self.online is not None:  # also for a run resumed after the report: the
                # rewrite after the platform's start shows the network as it is now
                self.findings = self.online.findings(ctx.seed)
            if not stamps.done(REPORT_STEP):
                faults.fault_point(f"before:{REPORT_STEP}")
                self._report(paths, check, records, outcome)
                stamps.mark(REPORT_STEP, StepRecord())
        except Exception as caught:  # every failure writes its report (the report's own too)
            err = as_installer_error(caught)
            failed_check = getattr(err, "check", None) or check
            log.error("first boot failed at %s: %s", tracker.where(), err.message)
            outcome = Outcome(
                ok=False,
                headline=f"stopped at {tracker.where()}: {err.message}",
                error=err.message,
                hint=err.hint,
                platform="not started (first boot did not finish)",
            )
            self._report(paths, failed_check, records, outcome)
            self._bundle(paths, failed_check, own_log)
            self._show_failure(err)
            if err is caught:
                raise
            raise err from None
        faults.fault_point(f"before:{COMPLETE}")
        stamps.mark(COMPLETE, StepRecord())
        faults.fault_point(f"stamped:{COMPLETE}")
        forgotten = forget_seed(paths)
        log.info(
            "seed copy deleted (%s): secrets now live only where they are used",
            ", ".join(forgotten) or "nothing left",
        )
        tracker.begin(PLATFORM_STEP)
        try:
            faults.fault_point(f"before:{PLATFORM_STEP}")
            platform = start_platform(self.config, records)
        except (PlatformStartError, faults.InjectedFailure) as err:
            log.error("first boot failed at %s: %s", tracker.where(), err.message)
            failed = Outcome(
                False, _set_up_headline(clock), err.message, err.hint, platform=err.message
            )
            self._rewrite(paths, check, records, failed)
            self._bundle(paths, check, own_log)
            self._show_failure(err)
            raise
        self._rewrite(
            paths, check, records, Outcome(True, _set_up_headline(clock), platform=platform)
        )
        log.info("first boot complete; platform %s", platform)
        if self.screen is not None:  # the summary's place, not its 50 lines: they would scroll
            done = Outcome(True, _set_up_headline(clock), platform=platform)
            where = f"/{paths.summary.relative_to(paths.root)}"
            self.screen.done(
                done.status(self.delivery.to_fix),
                f"{done.headline}; platform {platform}. The full report: {where}",
            )
        else:
            print(paths.summary.read_text(), end="")
        return 0

    def _show_failure(self, err: InstallerError) -> None:
        """The failure, painted last on the console's progress screen (cause, then hint)."""
        if self.screen is not None:
            self.screen.fail(err.message, err.hint)
            err.on_screen = True

    def _report(
        self,
        paths: TargetPaths,
        check: SeedCheck | None,
        records: dict[str, StepRecord],
        outcome: Outcome,
    ) -> None:
        nowhere = self.receipt is None and self.online is None
        if outcome.ok and self.adopt_code is None and not nowhere:
            self.adopt_code = new_code(paths)
            redact.register(self.adopt_code.get_secret_value())  # never in a log or bundle
            log.info("adopt code: made; its hash is in %s", paths.adopt_code_hash.name)
        code = self._code_lines()
        notify = None
        if self.online is not None and check is not None and check.resolved is not None:
            online, seed = self.online, check.resolved

            def notify(text: str) -> tuple[bool, str]:
                return online.notify(seed, text + code, holds_secret=bool(code))

        self.delivery = Delivery()
        if outcome.ok and nowhere:  # neither a receipt nor Telegram to show it on
            self.delivery.extra.append(
                "no adopt code was made (no stick and no Telegram to show it on): make one "
                f"with `{NEW_CODE_COMMAND}` as root before adopting from a stick"
            )
        for line in write_reports(
            paths,
            check,
            records,
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
        receipt = self.receipt
        if receipt is None or not code:
            return receipt

        def write(text: str) -> tuple[bool, str]:
            return receipt(text + code)

        return write

    def _rewrite(
        self,
        paths: TargetPaths,
        check: SeedCheck | None,
        records: dict[str, StepRecord],
        outcome: Outcome,
    ) -> None:
        """Update the report and the receipt with the platform's start (no second message)."""
        kept = Delivery(list(self.delivery.extra), list(self.delivery.to_fix))
        code = self._code_lines()
        if not code and paths.adopt_code_hash.is_file():  # an earlier, cut run made and showed it
            code = (
                "\nAdopt code: made by an earlier run of first boot and shown in its report "
                "(the Telegram report to the admin);\n"
                f"  lost: `{NEW_CODE_COMMAND}` as root on the box makes a new one.\n"
            )
        for line in write_reports(
            paths,
            check,
            records,
            outcome,
            receipt=self._receipt_with(code),
            delivery=kept,
            findings=self.findings,
        ):
            log.info("report: %s", line)

    def _announce(self, seed: ResolvedSeed) -> None:
        """The early "setup started" message (bounded; never queued, never fatal)."""
        if self.online is not None:
            log.info("Telegram: setup started message: %s", self.online.announce(seed))

    def _bundle(self, paths: TargetPaths, check: SeedCheck | None, own_log: LogBuffer) -> None:
        """The failure's log bundle on the disk and the stick; where it went is added to the
        summary. Never raises: the failure being reported matters more."""
        if check is not None and check.resolved is not None:
            host = check.resolved.host.hostname
        else:  # the seed was not read: the name the system has
            host = paths.hostname.read_text().strip() if paths.hostname.is_file() else "unnamed"
        try:
            summary = paths.summary.read_text(encoding="utf-8")
        except OSError:
            summary = None
        parts = collect_parts(own_log.text(), live=paths.is_live_system, receipt=summary)
        shown = f"/{paths.bundles_dir.relative_to(paths.root)}"
        done = write_failure_bundle(
            paths.bundles_dir, host, parts, self.stick_files, shown_dir=shown
        )
        if summary is not None:
            note = "".join(f"  - {line}\n" for line in done)
            write_atomic(paths.summary, f"{summary}\nLog bundle:\n{note}", mode=0o600)


STALLED_HINT = (
    "connect a screen, or read `journalctl -u clawdie-firstboot` over SSH; restarting the "
    "machine runs first boot again from that step"
)


def _set_up_headline(clock: ServiceClock) -> str:
    """The summary's headline: the whole service's time so far, from the unit's start, with
    every earlier run's when first boot was resumed (a power cut, a restart)."""
    runs = f" over {clock.runs} runs" if clock.runs > 1 else ""
    return f"the assistant is set up ({clock.total():.1f} s){runs}"
