"""Where a long run is: step k of N, its name, the time since the run started and the deadline
the step runs against. Each step's start rewrites the live receipt (SETUP-RESULT.txt, status
`in progress`), says one plain progress line (the journal, and so the serial console), and
repaints the console's progress screen when there is one (installer/screen.py), so a box that
dies leaves a receipt saying where, and a box with only a serial cable shows what it is doing.

Pure bookkeeping and text; where the receipt goes is the caller's writer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from installer.redact import redact
from installer.status import Status

log = logging.getLogger("clawdie.progress")

# Writes the receipt text somewhere; returns (written, what happened).
Writer = Callable[[str], tuple[bool, str]]


@dataclass(frozen=True)
class PlannedStep:
    """A step of a run: its name (as the fault points and the logs spell it), what it does in
    words, and how long it may take (seconds) before something is wrong."""

    name: str
    what: str
    deadline_s: float


def utc(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def render_duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `1 h 02 min`: short, and readable on a serial console."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def render_clock(seconds: float) -> str:
    """`0:42`, `12:05`, `1:02:09`: the console line's compact form."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class StepTracker:
    """One run's steps. `begin(name)` marks a step as started: the receipt is rewritten and a
    progress line said. `facts` are extra lines for the receipt (the machine, the disk...)."""

    title: str  # "Clawdie first boot", "Clawdie installer"
    plan: Sequence[PlannedStep]
    stalled_hint: str  # what to do when the receipt stays "in progress" past the deadline
    write: Writer | None = None
    say: Callable[[str], None] | None = None
    show: Callable[[StepTracker], None] | None = None  # a progress screen (installer/screen.py)
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    facts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the run decided (the target disk...)
    current: PlannedStep | None = None
    index: int = 0
    started: float = field(init=False)
    started_wall: float = field(init=False)
    step_started: float = field(init=False)
    step_deadline_s: float = field(init=False, default=0.0)
    _write_failed: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.started = self.step_started = self.clock()
        self.started_wall = self.wall()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def step(self, name: str) -> PlannedStep:
        found = next((s for s in self.plan if s.name == name), None)
        if found is None:
            raise ValueError(f"{name!r} is not a step of {self.title}")
        return found

    def where(self) -> str:
        """`step 3 of 8 (accounts)`, or `before the first step`."""
        if self.current is None:
            return "before the first step"
        return f"step {self.index} of {len(self.plan)} ({self.current.name})"

    def begin(self, name: str, deadline_s: float | None = None) -> None:
        """Step `name` starts now (against its planned deadline unless one is given)."""
        self.current = self.step(name)
        self.index = list(self.plan).index(self.current) + 1
        self.step_started = self.clock()
        self.step_deadline_s = self.current.deadline_s if deadline_s is None else deadline_s
        line = self.render_line()
        if self.say is not None:
            self.say(line)
        else:
            log.info("%s", line)
        self.rewrite()
        if self.show is not None:
            self.show(self)

    def note(self, line: str) -> None:
        """A line the receipt keeps from now on (this one and every later rewrite)."""
        self.notes.append(line)
        self.rewrite()

    def set_writer(self, write: Writer | None) -> None:
        """The receipt's place is known (the stick was found): write the state there now."""
        self.write = write
        self.rewrite()

    def rewrite(self) -> None:
        if self.write is None:
            return
        written, why = self.write(self.render())
        if not written and not self._write_failed:
            log.warning("progress: the live receipt was not written: %s", why)
        self._write_failed = not written

    def render_line(self) -> str:
        """The console's progress line: fits 80 columns, no colour needed."""
        assert self.current is not None  # noqa: S101 (called from begin)
        return (
            f"[{self.index}/{len(self.plan)}] {self.current.what} "
            f"({render_clock(self.elapsed())}, deadline {render_clock(self.step_deadline_s)})"
        )

    def render(self) -> str:
        """The live receipt: status `in progress`, which step since when, its deadline."""
        now = self.wall()
        lines = [f"{self.title}: {Status.IN_PROGRESS}"]
        if self.current is None:
            lines.append("Step: none started yet")
        else:
            step_wall = now - (self.clock() - self.step_started)
            lines += [
                f"Step: {self.index} of {len(self.plan)}, {self.current.name} "
                f"({self.current.what})",
                f"Step started: {utc(step_wall)}, {render_duration(self.elapsed())} after the "
                "start",
                f"Deadline: {render_duration(self.step_deadline_s)} for this step, until "
                f"{utc(step_wall + self.step_deadline_s)}",
            ]
        lines += [
            *self.notes,
            f"Started: {utc(self.started_wall)}",
            f"Written: {utc(now)}",
            "",
            f'If this still says "{Status.IN_PROGRESS}" after the deadline, the machine '
            f"stopped at this step: {self.stalled_hint}",
        ]
        if self.facts:
            lines += ["", *self.facts]
        return redact("\n".join(lines) + "\n")
