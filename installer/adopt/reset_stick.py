"""Factory reset from a stick (INSTALL_MODE=reset, DESIGN §9, §10): a completed box that starts
with such a seed checks it at the adopt gate - the box's fingerprint AND its adopt code, five
wrong codes close the stick paths until the next start - and only then runs the factory reset
(the backup room's `factory_reset`, given by the command: adopt does not import it). The
receipt on the stick and the console say what was removed, or why nothing was; the Telegram
admin is told before the reset removes the box's settings (and its message queue with them).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from installer.adopt.run import (
    AdoptRefusedError,
    describe,
    read_host_name,
    render_refusal,
    seed_at_boot,
    show_refusal,
)
from installer.errors import InstallerError
from installer.firstboot.config import FirstbootConfig
from installer.fsutil import remove_durably
from installer.paths import TargetPaths
from installer.seed.io import Receipt, SeedInput
from installer.seed.resolve import seed_mode
from installer.stamps import COMPLETE, Stamps
from installer.status import Status

log = logging.getLogger("clawdie.adopt")

# Resets the box (the backup room's factory reset); returns what it removed, in lines.
Resetter = Callable[[FirstbootConfig], list[str]]


def reset_at_boot(
    config: FirstbootConfig, paths: TargetPaths, receipt: Receipt | None, resetter: Resetter
) -> int | None:
    """First boot found its `complete` stamp and a seed with INSTALL_MODE=reset: the gate, then
    the reset. None when the seed is not a reset seed (adopt's turn)."""
    if not Stamps(paths.stamps_dir).done(COMPLETE):
        return None
    seed = seed_at_boot(config, paths)
    if seed is None or seed_mode(seed.data) != "reset":
        return None
    print(
        f"first boot already completed; {seed.description} asks for a factory reset",
        file=sys.stderr,
    )
    return ResetFromStick(config, paths, seed, receipt, resetter).execute()


class ResetFromStick:
    """One reset from a stick: the gate, the message, the reset, the receipt."""

    def __init__(
        self,
        config: FirstbootConfig,
        paths: TargetPaths,
        seed: SeedInput,
        receipt: Receipt | None,
        resetter: Resetter,
        show: Callable[[str], object] | None = None,
    ) -> None:
        self.config, self.paths, self.seed = config, paths, seed
        self.receipt, self.resetter = receipt, resetter
        # the outcome on the box's consoles (the adopt unit's output goes to the journal only)
        self.show = show

    def execute(self) -> int:
        from installer.adopt.run import check_gate

        host = read_host_name(self.paths)
        try:
            check_gate(self.paths, self.seed, mode="reset")
        except AdoptRefusedError as err:
            refusal = render_refusal(self.seed.name, err).replace(
                "Clawdie adopt:", "Clawdie factory reset:", 1
            )
            self._receipt(refusal)
            show_refusal(self.paths, refusal)
            self._tell(host, "refused", refusal)
            print(refusal, end="", file=sys.stderr)
            return 1
        self._tell(host, "starting", f"The box {host} is being reset from {describe(self.seed)}.")
        try:
            done = self.resetter(self.config)
        except InstallerError as err:
            report = (
                f"Clawdie factory reset: {Status.FAILED} ({self.seed.name})\n"
                f"Reason: {err.message}\n"
                "What to do: start the box again with the same stick: the reset finishes what "
                "it began\n"
            )
            self._receipt(report)
            print(report, end="", file=sys.stderr)
            return 1
        remove_durably(self.paths.adopt_refused_issue)
        report = render_reset(self.seed.name, host, done)
        self._receipt(report)
        print(report, end="")
        if self.show is not None:
            self.show(report)
        return 0

    def _receipt(self, text: str) -> None:
        if self.receipt is not None:
            written, why = self.receipt(text)
            log.info("receipt on the stick: %s", why if written else f"not written: {why}")

    def _tell(self, host: str, outcome: str, report: str) -> None:
        """Every attempt to the Telegram admin (queued when offline) and on the console."""
        from installer.online.telegram_queue import tell_admin

        head = f"Clawdie factory reset on {host}: {outcome}, from {describe(self.seed)}"
        name = f"reset-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        told = tell_admin(self.paths, self.config.telegram_api, name, f"{head}\n\n{report}")
        log.info("factory reset: %s; Telegram message to the admin: %s", outcome, told)
        print(f"{head}\nTelegram message to the admin: {told}", file=sys.stderr)


def render_reset(name: str, host: str, done: list[str]) -> str:
    return (
        "\n".join(
            [
                f"Clawdie factory reset: {Status.OK} ({name})",
                f"The box {host} was reset: everything first boot and the platform made is gone.",
                "Removed:",
                *(f"  - {line}" for line in done),
                "The box now waits for a seed: start it with a stick holding a setup.txt "
                "(INSTALL_MODE=fresh, or restore with a backup).",
            ]
        )
        + "\n"
    )
