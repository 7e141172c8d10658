"""The wizard app: the form, the review, and the bounded wait for a person at the console."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.timer import Timer

from installer.seed.resolve import SeedCheck, keys_to_ask
from installer.wizard.form import FormScreen
from installer.wizard.outcome import WizardOutcome
from installer.wizard.text import format_seconds


class WizardApp(App[WizardOutcome]):
    """Ask for `keys_to_ask(check)`; `return_value` is the WizardOutcome.

    With a `timeout` (seconds), the app gives up with status "timeout" unless a key is pressed
    within it; the first key press ends the wait for good. `clock` (seconds, monotonic) is what
    the wait is measured on; tests pass a fake one and call `tick` instead of sleeping.
    """

    TITLE = "Clawdie setup"
    CSS_PATH = "wizard.tcss"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "cancel", "quit", priority=True),
        Binding("ctrl+c", "cancel", "quit", priority=True, show=False),
    ]

    def __init__(
        self,
        check: SeedCheck,
        *,
        timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.check = check
        self.timeout = timeout
        self.clock = clock
        self.form = FormScreen(check, keys_to_ask(check), self._confirmed)
        self._deadline: float | None = None
        self._ticker: Timer | None = None

    def on_mount(self) -> None:
        self.theme = "ansi-dark"
        self.push_screen(self.form)
        if self.timeout is not None:
            self._deadline = self.clock() + self.timeout
            self._ticker = self.set_interval(min(1.0, max(self.timeout, 0.05)), self.tick)
            self.tick()

    def tick(self) -> None:
        """Read the clock: show the time left, or give up when it is over. A timer calls it."""
        if self._deadline is None:
            return
        left = self._deadline - self.clock()
        if left <= 0:
            self._stop_waiting()
            self.exit(WizardOutcome("timeout"))
            return
        self.form.show_countdown(
            f"Nobody has pressed a key yet: setup stops in {format_seconds(left)}. "
            "Press any key to answer."
        )

    def _stop_waiting(self) -> None:
        self._deadline = None
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None

    async def on_event(self, event: events.Event) -> None:
        if (
            self._deadline is not None
            and isinstance(event, events.Key | events.Paste)
            and not event.is_forwarded
        ):
            self._stop_waiting()
            self.form.show_countdown(None)
        await super().on_event(event)

    def _confirmed(self, answers: dict[str, str]) -> None:
        self.exit(WizardOutcome("done", answers))

    def action_cancel(self) -> None:
        self._stop_waiting()
        self.exit(WizardOutcome("cancelled"))
