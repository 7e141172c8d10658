"""The console wizard as first boot's and the disk installer's asker: given the seed and its
problems, the operator's answers, or None when nobody is at a console or nobody answered.
Importing this does not import textual; asking does."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

from installer.seed.resolve import SeedCheck


def console_asker(timeout: float) -> Callable[[SeedCheck], Mapping[str, str] | None] | None:
    """The Textual wizard on this terminal, or None when nobody can be at a console."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):  # the wizard draws on stderr
        return None

    def ask(check: SeedCheck) -> Mapping[str, str] | None:
        from installer.wizard import ask as run_wizard

        print("setup.txt needs answers: the questions follow on this console.", file=sys.stderr)
        outcome = run_wizard(check, timeout=timeout)
        if outcome.status == "timeout":
            print(f"nobody answered within {timeout:.0f} s; stopping", file=sys.stderr)
        return outcome.answers if outcome.status == "done" else None

    return ask
