"""The wizard as its tests drive it: headless at 80x24 with Pilot on a clock the test moves,
typing into a field, and reading what the screen shows."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from html import unescape

from textual import events
from textual.pilot import Pilot
from textual.widgets import Button, Input, Static

from installer.seed.resolve import SeedCheck
from installer.wizard import WizardOutcome
from installer.wizard.app import WizardApp

SIZE = (80, 24)


Scenario = Callable[[Pilot[WizardOutcome], WizardApp], Awaitable[None]]


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_wizard(
    check: SeedCheck,
    scenario: Scenario,
    *,
    timeout: float | None = None,
    clock: FakeClock | None = None,
) -> WizardOutcome | None:
    """Run the app headless at 80x24, play `scenario`, return the app's outcome."""

    async def main() -> WizardOutcome | None:
        app = WizardApp(check, timeout=timeout, clock=clock or FakeClock())
        async with app.run_test(size=SIZE) as pilot:
            await steady(pilot)
            await scenario(pilot, app)
            await pilot.pause()
        return app.return_value

    return asyncio.run(main())


async def steady(pilot: Pilot[WizardOutcome]) -> None:
    """Stop the cursors blinking, so what is on screen depends only on what was done."""
    await pilot.pause()
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False


async def type_into(pilot: Pilot[WizardOutcome], key: str, text: str) -> None:
    """Replace the field's text: typed key by key when short, pasted when long (Pilot spends
    some 60 ms on each key)."""
    field = pilot.app.screen.query_one(f"#input-{key}", Input)
    field.focus()
    await pilot.pause()
    field.value = ""
    if len(text) <= 12:
        await pilot.press(*text)
    else:
        pilot.app.post_message(events.Paste(text))
    await pilot.pause()


def error_text(app: WizardApp, key: str) -> str:
    return str(app.screen.query_one(f"#error-{key}", Static).render())


def review_disabled(app: WizardApp) -> bool:
    return app.screen.query_one("#review", Button).disabled


def screen_text(app: WizardApp) -> str:
    """The words on screen, from the exported SVG."""
    svg = app.export_screenshot()
    return unescape(" ".join(re.findall(r">([^<]*)</text>", svg))).replace("\xa0", " ")
