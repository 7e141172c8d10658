"""The review screen: the resolved result, secrets masked; dismisses True to confirm."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, Static

from installer.seed.resolve import SeedCheck
from installer.wizard.summary import review_lines
from installer.wizard.widgets import PlainScroll

HELP = "Enter confirm  Esc back to the form  Up/Down scroll  Ctrl+Q quit"


class ReviewScreen(Screen[bool]):
    """What first boot will use. Nothing is written or run from here: Confirm only answers."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "back"),
        Binding("up", "scroll(-1)", "scroll up", show=False),
        Binding("down", "scroll(1)", "scroll down", show=False),
        Binding("pageup", "scroll(-10)", "page up", show=False),
        Binding("pagedown", "scroll(10)", "page down", show=False),
    ]

    def __init__(self, result: SeedCheck) -> None:
        super().__init__()
        self.result = result

    def compose(self) -> ComposeResult:
        yield Static("Review: nothing is used until you confirm", id="title", classes="bar")
        with PlainScroll(id="summary"):
            # The summary area is the screen less its padding and scrollbar.
            width = max(60, self.app.size.width - 3)
            lines = "\n".join(review_lines(self.result, width))
            yield Static(Text(lines, no_wrap=True, overflow="ellipsis"), id="summary-text")
        with Horizontal(id="buttons"):
            yield Button("Confirm", id="confirm", compact=True)
            yield Button("Back", id="back", compact=True)
        yield Static(HELP, id="help", classes="bar", markup=False)

    def on_mount(self) -> None:
        self.query_one("#summary").can_focus = False
        self.query_one("#confirm", Button).focus()

    def action_scroll(self, lines: int) -> None:
        self.query_one("#summary", PlainScroll).scroll_relative(y=lines, animate=False)

    def action_back(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#back")
    def _back(self) -> None:
        self.dismiss(False)
