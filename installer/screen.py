"""The progress screen on the machine's console (tty1): the run's title and status word, step k
of N and what it does, the time in the step against its deadline, every step of the plan, and
the last log line, repainted in place. A failure is painted last and stays: the cause first,
then what to do.

Only the terminal the run was started on is repainted, with three escape sequences every
terminal type knows (cursor home, erase to the end of the line, erase below) and our words in
ASCII (a log line may quote the seed's own text), so it reads the same at 80x25 with TERM=linux
and no colour. The journal, and so the serial
console, keeps getting the plain lines (the tracker's progress lines and every log line): the
screen only takes the place of the log lines on the console itself.

`render_*` are pure; ProgressScreen paints them and repaints once a second so the clock moves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TextIO, TypeVar

from installer.redact import add_filter, redact
from installer.status import Status
from installer.tracker import StepTracker, render_clock
from installer.tracker import log as progress_log

WIDTH, HEIGHT = 80, 25  # the Linux console's text mode; a larger screen shows the same lines
HOME, ERASE_LINE, ERASE_BELOW = "\x1b[H", "\x1b[K", "\x1b[J"
REPAINT_EVERY_S = 1.0
PROGRESS_LOGGER = progress_log.name
LAST_LINE_ROWS = 3  # the last log line, wrapped to at most this many rows
# A failure leaves a few rows below it (the installer's power-off line, a shell's prompt): the
# screen stays whole above them. The command's own error line is not printed again after it.
FAILURE_ROWS = HEIGHT - 3

A = TypeVar("A")
R = TypeVar("R")


def fit(text: str, width: int = WIDTH, rows: int = 1, indent: str = "") -> list[str]:
    """`text` wrapped to `width` columns in at most `rows` rows (the last one cut with `...`)."""
    lines = textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False) or [""]
    if len(lines) > rows:
        lines = lines[:rows]
        lines[-1] = lines[-1][: width - 3].rstrip() + "..."
    return lines


def render_steps(tracker: StepTracker, failed: bool = False, finished: bool = False) -> list[str]:
    """The plan, one step a line: done, now (or failed), or still to come."""
    lines = []
    for number, step in enumerate(tracker.plan, start=1):
        if number < tracker.index or finished:
            mark = "done"
        elif number == tracker.index:
            mark = str(Status.FAILED) if failed else "now"
        else:
            mark = ""
        lines.append(f"  {mark:<7}{number:>2}. {step.what}"[:WIDTH])
    return lines


def render_clock_line(tracker: StepTracker) -> str:
    """`This step: 0:12 of its 2:00 deadline; 1:05 since the start`."""
    in_step = tracker.clock() - tracker.step_started
    late = "  PAST ITS DEADLINE" if in_step > tracker.step_deadline_s else ""
    return (
        f"This step: {render_clock(in_step)} of its {render_clock(tracker.step_deadline_s)} "
        f"deadline; {render_clock(tracker.elapsed())} since the start{late}"
    )


def render_progress(tracker: StepTracker, last: str) -> list[str]:
    """The screen while the run goes on."""
    lines = [f"{tracker.title}: {Status.IN_PROGRESS}", ""]
    if tracker.current is None:
        lines += ["Starting", "", ""]
    else:
        lines += fit(
            f"Step {tracker.index} of {len(tracker.plan)}: {tracker.current.what} "
            f"({tracker.current.name})",
        )
        lines += [render_clock_line(tracker), ""]
    lines += render_steps(tracker)
    return [*lines, "", "Last log line:", *fit(last, rows=LAST_LINE_ROWS, indent="  ")]


def render_failure(tracker: StepTracker, cause: str, hint: str | None, last: str) -> list[str]:
    """The screen a failure leaves: the cause first, then what to do, then where it stopped."""
    lines = [f"{tracker.title}: {Status.FAILED}", ""]
    lines += fit(f"Reason: {cause}", rows=6, indent="  ")
    if hint:
        lines += fit(f"What to do: {hint}", rows=4, indent="  ")
    lines += [
        "",
        f"Stopped at {tracker.where()}, {render_clock(tracker.elapsed())} after the start",
    ]
    last_rows = 2
    rows_left = FAILURE_ROWS - len(lines) - 3 - last_rows  # two blank lines and the label
    steps = render_steps(tracker, failed=True)
    if len(steps) > rows_left:  # a long reason: keep the steps around the failed one
        start = max(0, min(tracker.index - rows_left + 1, len(steps) - rows_left))
        steps = steps[start : start + max(rows_left, 0)]
    return [*lines, "", *steps, "", "Last log line:", *fit(last, rows=last_rows, indent="  ")]


def render_done(tracker: StepTracker, status: Status, headline: str, last: str) -> list[str]:
    """The screen at a successful end (`ok` or `degraded`)."""
    lines = [f"{tracker.title}: {status}", "", *fit(headline, rows=3), ""]
    lines += render_steps(tracker, finished=True)
    return [*lines, "", "Last log line:", *fit(last, rows=LAST_LINE_ROWS, indent="  ")]


def wants_screen(out: TextIO) -> bool:
    """Repaint only a terminal that can move its cursor (not a pipe, a file, or TERM=dumb)."""
    return _is_terminal(out) and os.environ.get("TERM", "dumb") not in ("", "dumb", "unknown")


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # closed
        return False


@contextlib.contextmanager
def terminal_logs_muted() -> Iterator[None]:
    """For the block, log lines do not go to a terminal (the root logger's handlers that write
    to one): something else draws there. Other handlers (the journal's) still get them."""
    muted = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and _is_terminal(handler.stream):
            muted.append((handler, handler.level))
            handler.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for handler, level in muted:
            handler.setLevel(level)


class _Notes(logging.Handler):
    """Our log lines, kept as the screen's last line (the console's own handler is muted)."""

    def __init__(self, screen: ProgressScreen) -> None:
        super().__init__(logging.INFO)
        self.screen = screen
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == PROGRESS_LOGGER:  # the step's own line: the screen shows the step
            return
        self.screen.note(self.format(record))


class ProgressScreen:
    """Paints a StepTracker's state on `out` and keeps it current. `start()` mutes the console's
    log handlers (the log lines would scroll the screen away; the journal keeps them) and takes
    our log lines as the last line; `stop()` gives the console back."""

    def __init__(self, out: TextIO, logger: str = "clawdie") -> None:
        self.out = out
        self.logger = logging.getLogger(logger)
        self.tracker: StepTracker | None = None
        self.last = ""
        self._final: list[str] | None = None
        self._paused = 0
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self._ticker: threading.Thread | None = None
        self._notes = add_filter(_Notes(self))
        self._muted = contextlib.ExitStack()

    # -- the run's side ------------------------------------------------------------------------

    def show(self, tracker: StepTracker) -> None:
        """The tracker moved (a step began): repaint. The tracker's `show` hook."""
        with self._lock:
            self.tracker = tracker
            self.repaint()

    def note(self, line: str) -> None:
        """A log line: the last one is on the screen."""
        with self._lock:
            self.last = redact(" ".join(line.split()))
            self.repaint()

    def fail(self, cause: str, hint: str | None) -> None:
        """Paint the failure; it stays (nothing repaints over it)."""
        with self._lock:
            if self.tracker is not None:
                self._final = render_failure(self.tracker, redact(cause), hint, self.last)
                self._paint(self._final)

    def done(self, status: Status, headline: str) -> None:
        """Paint the end of a run that worked; it stays."""
        with self._lock:
            if self.tracker is not None:
                self._final = render_done(self.tracker, status, headline, self.last)
                self._paint(self._final)

    def final(self, lines: Sequence[str]) -> None:
        """Paint `lines` as the end of the run; they stay."""
        with self._lock:
            self._final = list(lines)
            self._paint(self._final)

    @property
    def showing(self) -> bool:
        """The progress is on the console now (started, a step begun, not paused, not ended):
        a line for the console belongs on the screen, not below it."""
        return (
            self._ticker is not None
            and self.tracker is not None
            and not self._paused
            and self._final is None
        )

    def pausing(self, ask: Callable[[A], R]) -> Callable[[A], R]:
        """`ask`, run with the screen paused (it needs the console: the wizard, a question)."""

        def paused_ask(value: A) -> R:
            with self.paused():
                return ask(value)

        return paused_ask

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Leave the console to someone else (the wizard, a question) for the block: clear it
        first, repaint after."""
        with self._lock:
            self._paused += 1
            self.out.write(HOME + ERASE_BELOW)
            self.out.flush()
        try:
            yield
        finally:
            with self._lock:
                self._paused -= 1
                self.repaint()

    # -- painting ------------------------------------------------------------------------------

    def repaint(self) -> None:
        with self._lock:
            if self._paused or self._final is not None or self.tracker is None:
                return
            self._paint(render_progress(self.tracker, self.last))

    def _paint(self, lines: Sequence[str]) -> None:
        if self._paused:
            return
        rows = [line[:WIDTH] + ERASE_LINE for line in lines[: HEIGHT - 1]]
        try:
            self.out.write(HOME + "\n".join(rows) + "\n" + ERASE_BELOW)
            self.out.flush()
        except OSError:  # the console went away (a hangup): the journal still has every line
            self._stopped.set()

    # -- life ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._muted.enter_context(terminal_logs_muted())
        self.logger.addHandler(self._notes)
        self._ticker = threading.Thread(target=self._tick, name="progress-screen", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        self.logger.removeHandler(self._notes)
        self._muted.close()

    def _tick(self) -> None:
        while not self._stopped.wait(REPAINT_EVERY_S):
            self.repaint()

    def __enter__(self) -> ProgressScreen:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
