"""The console wizard as first boot's and the disk installer's asker: given the seed and its
problems, the operator's answers, or None when nobody is at a console or nobody answered.
While it waits, a plain line every WAIT_NOTICE_EVERY_S seconds goes to the journal (and so to
the serial console): a serial-only operator sees that the box waits for someone at the screen.
Importing this does not import textual; asking does."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping

from installer.screen import terminal_logs_muted
from installer.seed.resolve import SeedCheck, keys_to_ask

log = logging.getLogger("clawdie.console-wait")

WAIT_NOTICE_EVERY_S = 30.0


def render_wait_notice(left: float, keys: list[str]) -> str:
    """The serial console's line while the wizard waits."""
    asked = ", ".join(keys) or "the seed"
    return (
        f"waiting {left:.0f} s for someone at the console to answer for {asked}; "
        "nobody there? fix setup.txt (clawdie-setup check) and start again"
    )


@contextlib.contextmanager
def wait_notices(
    timeout: float, keys: list[str], every: float = WAIT_NOTICE_EVERY_S
) -> Iterator[None]:
    """For the block: a wait notice at once and every `every` seconds, until `timeout` runs
    out or the block ends. The notices go to the journal's handlers, not to the terminal the
    wizard draws on."""
    stop = threading.Event()
    deadline = time.monotonic() + timeout

    def notify() -> None:
        while (left := deadline - time.monotonic()) > 0:
            log.info("%s", render_wait_notice(left, keys))
            if stop.wait(min(every, left)):
                return

    thread = threading.Thread(target=notify, name="console-wait-notices", daemon=True)
    with terminal_logs_muted():
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)


def console_asker(timeout: float) -> Callable[[SeedCheck], Mapping[str, str] | None] | None:
    """The Textual wizard on this terminal, or None when nobody can be at a console."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):  # the wizard draws on stderr
        return None

    def ask(check: SeedCheck) -> Mapping[str, str] | None:
        from installer.wizard import ask as run_wizard

        print("setup.txt needs answers: the questions follow on this console.", file=sys.stderr)
        with wait_notices(timeout, keys_to_ask(check)):
            outcome = run_wizard(check, timeout=timeout)
        if outcome.status == "timeout":
            print(f"nobody answered within {timeout:.0f} s; stopping", file=sys.stderr)
            log.warning("nobody answered on the console within %.0f s", timeout)
        return outcome.answers if outcome.status == "done" else None

    return ask
