"""How long the first-boot service has run: from the unit's start, not from our first step.

systemd starts the unit by forking the process that becomes us (the `clawdie-setup` wrapper
execs Python in the same process), so the process's own start time is the unit's start. The
kernel gives it in /proc/self/stat (field 22, clock ticks since boot, on the boot-time clock),
which needs no call to systemctl. Where that is not available (not Linux), the run's own clock
stands in.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from installer.fsutil import write_atomic

STAT_START_FIELD = 22  # starttime, counted from 1 as in proc(5)


def parse_start_ticks(stat: str) -> int:
    """The start time field of a /proc/PID/stat line. The command name (field 2) is in
    parentheses and may hold spaces and parentheses itself, so fields are counted after the
    last closing one."""
    rest = stat[stat.rindex(")") + 1 :].split()
    return int(rest[STAT_START_FIELD - 3])


def seconds_since_start(stat: str, boottime_s: float, ticks_per_s: int) -> float:
    """Seconds from the process's start to `boottime_s` (a CLOCK_BOOTTIME reading)."""
    return max(0.0, boottime_s - parse_start_ticks(stat) / ticks_per_s)


class ServiceClock:
    """Seconds since the service started; `fallback_start` is a monotonic reading used when
    the process start time cannot be read."""

    def __init__(self, stat_file: Path = Path("/proc/self/stat")) -> None:
        self.fallback_start = time.monotonic()
        self._stat: str | None
        try:
            self._stat = stat_file.read_text()
            self._ticks = os.sysconf("SC_CLK_TCK")
            time.clock_gettime(time.CLOCK_BOOTTIME)
            parse_start_ticks(self._stat)
        except (OSError, ValueError, IndexError, AttributeError):
            self._stat = None

    @property
    def from_process_start(self) -> bool:
        return self._stat is not None

    earlier_s: float = 0.0  # the time of the runs before this one (a power cut, a restart)
    runs: int = 1

    def elapsed(self) -> float:
        if self._stat is None:
            return time.monotonic() - self.fallback_start
        return seconds_since_start(self._stat, time.clock_gettime(time.CLOCK_BOOTTIME), self._ticks)

    def total(self) -> float:
        """This run's time and every earlier run's (as far as each one noted it)."""
        return self.earlier_s + self.elapsed()

    def resume(self, path: Path) -> None:
        """Count the earlier runs `note` left in `path` (none when it is missing or unreadable)."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            self.earlier_s, self.runs = float(doc["seconds"]), int(doc["runs"]) + 1
        except (OSError, ValueError, KeyError, TypeError):
            self.earlier_s, self.runs = 0.0, 1

    def note(self, path: Path) -> None:
        """Keep the time so far (every run's) in `path`: a run cut after this counts up to here."""
        doc = {"seconds": round(self.total(), 1), "runs": self.runs}
        write_atomic(path, json.dumps(doc) + "\n", mode=0o600)
