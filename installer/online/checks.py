"""First boot and the outside world (DESIGN §7): the network check, the clock, the credential
preflight and the admin's Telegram messages of one run.

Nothing that checks a certificate runs before the clock is synchronised or a bounded wait has
passed (installer.online.timesync); the wait is made once per run, and only when there is a
network and an `https` API to talk to. Being offline is never a failure: the report says
`degraded: no network (<reason>)`, the credentials are `not checked (offline: <reason>)` and the
report waits in the Telegram queue for the retry timer.

Two messages go to the admin: an early one ("setup started on <host>"), sent only when the
network is there at that moment and within `ANNOUNCE_SECONDS`, and never queued (once the
report is out, a late "started" is noise, and the report says all of it); and the report, which
is queued whenever it cannot be sent (no network, no answer, or a refusal the operator can fix).

The API bases are test-only overrides (`--telegram-api`, `--openrouter-api`, or the
environment's CLAWDIE_TELEGRAM_API and CLAWDIE_OPENROUTER_API); setup.txt cannot set them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from installer.online.netcheck import NetworkProblem, network_problem
from installer.online.preflight import Preflight, run_preflight
from installer.online.telegram import send
from installer.online.telegram_queue import RETRY_WINDOW, forget_queued, queue_message
from installer.online.timesync import CLOCK_WAIT_S, ClockState, wait_for_clock
from installer.paths import TargetPaths
from installer.seed.resolved import ResolvedSeed

log = logging.getLogger("clawdie.firstboot")

QUEUE_NAME = "first-boot"  # the queued report's name: one per box, the latest
ANNOUNCE_SECONDS = 5.0


@dataclass(frozen=True)
class Findings:
    """What the report says about the network, the clock and the credentials."""

    network: NetworkProblem | None
    clock: ClockState
    preflight: Preflight

    def status_detail(self) -> str | None:
        """Added to a `degraded` status word: `no network (<reason>)`."""
        return f"no network ({self.network})" if self.network is not None else None

    def to_fix(self) -> list[str]:
        """What makes the run `degraded`: no network, each refused credential."""
        fix = [f"no network ({self.network})"] if self.network is not None else []
        return fix + [c.report_line() for c in self.preflight.refused]

    def lines(self) -> list[str]:
        network = "connected" if self.network is None else f"no network ({self.network})"
        return [
            "Network and credentials:",
            f"  Network check:  {network}",
            f"  {self.clock.line()}",
            *(f"  {c.report_line()}" for c in self.preflight.checks),
        ]


@dataclass(eq=False)
class Online:
    """One run's talks with the outside world. An API base of None: not used in this run."""

    paths: TargetPaths
    telegram_api: str | None
    openrouter_api: str | None
    clock_wait_s: float = CLOCK_WAIT_S
    wait_clock: Callable[[TargetPaths, float], ClockState] = wait_for_clock
    _waited: bool = field(default=False, init=False)

    def _needs_tls(self) -> bool:
        return any(
            api is not None and urlsplit(api).scheme == "https"
            for api in (self.telegram_api, self.openrouter_api)
        )

    def clock(self, online: bool) -> ClockState:
        """The clock, waited for (bounded) the first time there is a network and TLS ahead;
        afterwards only looked at."""
        bound = self.clock_wait_s if online and self._needs_tls() and not self._waited else 0.0
        self._waited = self._waited or bound > 0
        state = self.wait_clock(self.paths, bound)
        if bound and not state.synchronized:
            log.warning(
                "clock: not synchronised after %.0f s; it says %s (certificates may fail)",
                state.waited_s,
                state.says,
            )
        return state

    def findings(self, seed: ResolvedSeed) -> Findings:
        """The network check, the clock, then the credential preflight."""
        bases = [api for api in (self.telegram_api, self.openrouter_api) if api is not None]
        problems = {api: network_problem(api, self.paths) for api in dict.fromkeys(bases)}
        network = problems[bases[0]] if bases else None
        clock = self.clock(online=any(p is None for p in problems.values()))
        preflight = run_preflight(
            seed,
            offline={api: str(p) for api, p in problems.items() if p is not None},
            telegram_api=self.telegram_api,
            openrouter_api=self.openrouter_api,
        )
        for check in preflight.checks:
            log.info("preflight: %s", check.report_line())
        return Findings(network, clock, preflight)

    def announce(self, seed: ResolvedSeed) -> str:
        """The early message, "setup started on <host>", when the network is there now."""
        if self.telegram_api is None:
            return "no Telegram in this run"
        problem = network_problem(self.telegram_api, self.paths)
        if problem is not None:
            return f"not sent: no network ({problem}); the report follows when it can"
        self.clock(online=True)
        host = seed.host
        text = (
            f"Clawdie setup started on {host.hostname} (assistant {host.assistant_name}). "
            "The report follows when it is done."
        )
        result = send(
            seed.telegram.bot_token.get_secret_value(),
            str(seed.telegram.admin_id),
            text,
            api=self.telegram_api,
            total_seconds=ANNOUNCE_SECONDS,
        )
        return "sent" if result.sent else f"not sent: {result.reason}"

    def notify(
        self, seed: ResolvedSeed, text: str, *, holds_secret: bool = False
    ) -> tuple[bool, str]:
        """The report to the admin: sent now, else queued for the retry timer (the reason
        and where it waits); `holds_secret`: the text carries the adopt code."""
        api = self.telegram_api
        if api is None:
            return False, "no Telegram in this run"
        token = seed.telegram.bot_token.get_secret_value()
        admin = str(seed.telegram.admin_id)
        problem = network_problem(api, self.paths)
        if problem is None:
            self.clock(online=True)
            result = send(token, admin, text, api=api)
            if result.sent:  # an earlier run's queued message is out of date now
                forget_queued(self.paths, QUEUE_NAME)
                return True, "sent"
            reason = result.reason
        else:
            reason = f"no network ({problem})"
        where = queue_message(
            self.paths,
            QUEUE_NAME,
            api=api,
            chat_id=admin,
            text=text,
            reason=reason,
            holds_secret=holds_secret,
        )
        return False, f"{reason}; queued in {where}, will retry {RETRY_WINDOW}"
