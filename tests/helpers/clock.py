"""A clock for deadline tests: it moves only when the code under test sleeps on it, so a bound
is checked exactly, whatever the load of the machine."""

from __future__ import annotations


class StoppedClock:
    """Monotonic time that passes only in `sleep`; `sleeps` are the pauses, in order."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
