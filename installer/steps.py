"""One run skeleton for every long run (first boot, adopt, the install, the update, the backup):
a flat list of steps, each declaring its name, what it does in words, its deadline and its
`apply`, gone through in order with the stamps, the fault points, the tracker and one failure
path.

A step's life (`StepRun.one`):

- a step in the plan (one with a label) starts on the tracker: the live receipt is rewritten,
  the console says `[k/N] <label> ...` and its screen is repainted;
- a stamped step whose stamp exists is skipped (`<name>: done in an earlier run`) and its
  record is read back from the stamp, so a run resumed after a power cut reports everything;
- fault point `before:<name>`, then `<name>: starting` in the log (steps in the plan);
- `apply(context)`; a stamped step's record is stamped once its effects are durable:
  `effects:<name>`, the stamp, `stamped:<name>` (the points tests and boot lanes cut at).

A step that is not stamped here runs every time (a wait, a report's rewrite), or keeps its own
stamp when the stamp is part of its effect (the seed's copy, the run's `complete`).

A step that finds the run has nothing more to do (an adopt seed that changes nothing) raises
`Finished`: the steps after it are not run, and that is no failure.

Whatever fails in a step goes to the run's one failure handler (its report, its log bundle, the
screen's last word), then up as our error: worded, no traceback, no secret
(`as_installer_error`). A handler that takes the run another way (an update's way back) raises
`Finished` once that is done: the failure was answered, and the run ends without an error.

A run whose console tells the progress itself (the install, the update, a backup) logs nothing
of its own (`log=None`), and one that resumes silently (the update) passes over a step done in
an earlier run without a line (`show_done=False`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from installer import faults
from installer.errors import InstallerError, as_installer_error
from installer.stamps import Stamps, StepRecord
from installer.tracker import PlannedStep, StepTracker

C = TypeVar("C")
D = TypeVar("D")

log = logging.getLogger("clawdie.steps")


class Finished(Exception):  # not an error: the run is over early
    """Raised by a step: the run has nothing more to do; the steps after it are not run. Raised
    by a failure handler: the failure was answered (a way back ran); no error goes up."""


@dataclass(frozen=True)
class Step(Generic[C]):
    """One step of a run. `label` is what it does in words (the receipt, the console); a step
    without one is not counted in the plan (the run's own bookkeeping between two steps).
    `apply` returns the step's record for the summary (None: nothing to say)."""

    name: str  # as the stamps, the fault points and the logs spell it
    label: str | None
    deadline_s: float  # how long it may take before something is wrong
    apply: Callable[[C], StepRecord | None]
    stamped: bool = True  # skipped when its stamp exists; stamped when its effects are durable
    timed: Callable[[C], float] | None = None  # a deadline known only as it starts (a copy's size)

    def planned(self) -> PlannedStep:
        return PlannedStep(self.name, self.label or self.name, self.deadline_s)

    def over(self, part: Callable[[D], C]) -> Step[D]:
        """This step in a run whose context holds this step's context (`part` finds it)."""
        apply, timed = self.apply, self.timed

        def applied(context: D) -> StepRecord | None:
            return apply(part(context))

        def retimed(context: D) -> float:
            assert timed is not None  # noqa: S101 (only given when there is one)
            return timed(part(context))

        return Step(
            self.name,
            self.label,
            self.deadline_s,
            applied,
            self.stamped,
            retimed if timed is not None else None,
        )


def plan(steps: Iterable[Step[C]]) -> list[PlannedStep]:
    """The steps the live receipt and the console count (`[k/N]`), with their deadlines."""
    return [step.planned() for step in steps if step.label is not None]


@dataclass
class StepRun(Generic[C]):
    """One run of `steps` in order: stamped in `stamps` (None: nothing is stamped), shown on
    `tracker` (None: no receipt or console line while it runs). `records` collects what each
    step did, in order, after what the caller put there (what ran before, e.g. a host check).
    `log` None: the run's own lines (`starting`, `done in an earlier run`) are not logged;
    `show_done` False: a step done in an earlier run is not started on the tracker; `worded`
    puts a failure in words (a run may word a system error its own way) for the handler; with
    `as_raised` the failure goes up as it was raised (a command's own boundary words it)."""

    steps: Sequence[Step[C]]
    stamps: Stamps | None = None
    tracker: StepTracker | None = None
    log: logging.Logger | None = log
    records: dict[str, StepRecord] = field(default_factory=dict)
    show_done: bool = True
    worded: Callable[[Exception], InstallerError] = as_installer_error  # a failure in words
    as_raised: bool = (
        False  # the failure goes up as it was raised (the command's boundary words it)
    )

    def run(
        self, context: C, failed: Callable[[InstallerError], None] | None = None
    ) -> dict[str, StepRecord]:
        """Every step in order (up to one that raises `Finished`); a failure goes to `failed`
        (the run's report, bundle and screen: the one place a failure is handled), then up as
        our error."""
        try:
            for step in self.steps:
                record = self.one(step, context)
                if record is not None:
                    self.records[step.name] = record
        except Finished:
            pass
        except Exception as caught:  # every failure is reported (the report's own too)
            err = self.worded(caught)
            if failed is not None:
                try:
                    failed(err)
                except Finished:  # the handler answered the failure
                    return self.records
            if err is caught or self.as_raised:
                raise
            raise err from None
        return self.records

    def one(self, step: Step[C], context: C) -> StepRecord | None:
        """One step: started on the tracker, skipped when stamped, applied, stamped."""
        in_plan = step.label is not None
        stamps = self.stamps if step.stamped else None
        previous = stamps.record(step.name) if stamps is not None else None
        if in_plan and self.tracker is not None and (previous is None or self.show_done):
            self.tracker.begin(step.name, step.timed(context) if step.timed else None)
        if previous is not None:
            self._log("%s: done in an earlier run", step.name)
            return previous
        faults.fault_point(f"before:{step.name}")
        if in_plan:
            self._log("%s: starting", step.name)
        record = step.apply(context)
        if stamps is not None:
            faults.fault_point(f"effects:{step.name}")
            stamps.mark(step.name, record or StepRecord())
            faults.fault_point(f"stamped:{step.name}")
        return record

    def _log(self, line: str, name: str) -> None:
        if self.log is not None:
            self.log.info(line, name)
