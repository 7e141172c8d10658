"""Progress reporters for long device operations: a rich bar for people, JSON lines for programs."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class RichProgress:
    """A progress bar per phase with bytes, rate and ETA, on standard error."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def start(self, phase: str, total: int) -> None:
        self.bar = Progress(
            TextColumn(f"{phase:<7}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.bar.start()
        self.task = self.bar.add_task(phase, total=total)

    def advance(self, done: int) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=done)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


class JsonProgress:
    """One JSON object a line on standard output: start, progress (at most every `every` s), end.

    Each line has `event`, `phase`, `done`, `total`, `rate` (bytes/s) and `eta` (s, or null).
    """

    def __init__(self, stream: TextIO | None = None, every: float = 0.5) -> None:
        self.stream = stream or sys.stdout
        self.every = every
        self.phase, self.total, self.done = "", 0, 0
        self.started = self.last = 0.0

    def emit(self, event: str, **extra: Any) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else None
        line = {"event": event, "phase": self.phase, "done": self.done, "total": self.total}
        line |= {"rate": round(rate), "eta": None if eta is None else round(eta, 1), **extra}
        print(json.dumps(line), file=self.stream, flush=True)

    def start(self, phase: str, total: int) -> None:
        self.phase, self.total, self.done = phase, total, 0
        self.started = self.last = time.monotonic()
        self.emit("start")

    def advance(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.emit("progress")

    def finish(self) -> None:
        self.emit("end", seconds=round(time.monotonic() - self.started, 3))


class NullProgress:
    """Reports nothing (tests, benchmarks)."""

    def start(self, phase: str, total: int) -> None:
        pass

    def advance(self, done: int) -> None:
        pass

    def finish(self) -> None:
        pass
