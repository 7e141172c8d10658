"""A right clock before anything checks a certificate (DESIGN §7).

A box whose real-time clock is wrong fails every TLS handshake, and says so in words nobody
connects with the clock. systemd-timesyncd creates `/run/systemd/timesync/synchronized` once it
has set the clock from an NTP server (what `timedatectl`'s NTPSynchronized reports, without a
D-Bus call); before the preflight and the Telegram messages first boot waits for it, bounded:
`CLOCK_WAIT_S` when there is a network to reach a server on, none when there is not (no server
can answer then). When the clock is still not synchronised the report says the clock may be
wrong and what time it says, so a refused handshake has its likely cause next to it.

The wait's clock, sleep and wall time are parameters, so tests drive it without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from installer.paths import TargetPaths

CLOCK_WAIT_S = 10.0
POLL_S = 0.25


@dataclass(frozen=True)
class ClockState:
    """Whether the clock was synchronised, after how long a wait, and what time it said."""

    synchronized: bool
    waited_s: float
    says: str

    def line(self) -> str:
        if self.synchronized:
            return "Clock:          synchronised (NTP)"
        return (
            f"Clock:          not synchronised (NTP): the clock may be wrong: it says {self.says}"
        )


def render_time(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def wait_for_clock(
    paths: TargetPaths,
    bound_s: float,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall: Callable[[], float] = time.time,
) -> ClockState:
    """Wait up to `bound_s` seconds for the synchronised flag under the target root; say what
    the clock says either way."""
    flag = paths.timesync_synchronized
    start = monotonic()
    while not flag.exists():
        left = bound_s - (monotonic() - start)
        if left <= 0:
            return ClockState(False, monotonic() - start, render_time(wall()))
        sleep(min(POLL_S, left))
    return ClockState(True, monotonic() - start, render_time(wall()))
