"""The console wizard: asks the operator for what the seed lacks, returns the answers.

It only presents and collects: it writes no file, runs no command, touches no database.
Importing this package does not import textual; `ask` does, when it runs.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from installer.errors import InstallerError
from installer.seed.resolve import SeedCheck
from installer.wizard.outcome import NoConsoleError, WizardOutcome

if TYPE_CHECKING:
    from installer.wizard.app import WizardApp

__all__ = ["NoConsoleError", "WizardApp", "WizardOutcome", "ask"]


def ask(check: SeedCheck, *, timeout: float | None = None) -> WizardOutcome:
    """Run the wizard on this terminal for `keys_to_ask(check)`.

    `timeout` (seconds) bounds the wait for the first key press; None waits forever. Quitting
    gives status "cancelled", no key in time "timeout", a confirmed valid result "done" with the
    answers for `resolve.apply_answers`. Raises NoConsoleError without a terminal.
    """
    if not (sys.stdin.isatty() and sys.__stderr__ is not None and sys.__stderr__.isatty()):
        raise NoConsoleError(
            "the setup wizard needs a terminal (keyboard and screen), and there is none",
            "fix setup.txt and start again, or run this on the console",
        )
    from installer.wizard.app import WizardApp

    app = WizardApp(check, timeout=timeout)
    outcome = app.run()
    if outcome is None:
        if app.return_code:
            raise InstallerError(
                f"the setup wizard stopped with an error (exit {app.return_code})",
                "the message above says why",
            )
        return WizardOutcome("cancelled")
    return outcome


def __getattr__(name: str) -> Any:
    if name == "WizardApp":
        from installer.wizard.app import WizardApp

        return WizardApp
    raise AttributeError(name)
