"""Small widgets for the Linux console: no glyphs its fonts lack, and the model's own rules."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.containers import VerticalScroll
from textual.scrollbar import ScrollBarRender
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Input

from installer.seed.messages import with_hint
from installer.seed.model import FieldProblem, validate_field
from installer.wizard.text import console_safe


def describe_problem(problem: FieldProblem) -> str:
    """The model's message, and its hint on a second line (as a seed problem's)."""
    return console_safe(with_hint(problem.message, problem.hint))


class ModelRule(Validator):
    """The setup model's rule for one key, as a Textual validator. Empty means "not set": whether
    that is allowed is a cross-field question, answered by `resolve.apply_answers`."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def validate(self, value: str) -> ValidationResult:
        text = value.strip()
        problem = validate_field(self.key, text) if text else None
        return self.success() if problem is None else self.failure(describe_problem(problem))


class MaskedInput(Input):
    """An Input that hides its text as '*' (Textual's bullet is missing from console fonts)."""

    @property
    def _value(self) -> Text:
        if self.password:
            return Text("*" * len(self.value), no_wrap=True, overflow="ignore", end="")
        return super()._value


class PlainScrollBarRender(ScrollBarRender):
    """Scrollbar drawn with colour only: the eighth-block glyphs are not in console fonts."""

    VERTICAL_BARS: ClassVar[list[str]] = [" "]
    HORIZONTAL_BARS: ClassVar[list[str]] = [" "]


class PlainScroll(VerticalScroll):
    """A vertical scroll area with a console-safe scrollbar."""

    def on_mount(self) -> None:
        # Textual documents per-instance renderers; its ClassVar annotation does not know that.
        self.vertical_scrollbar.renderer = PlainScrollBarRender  # type: ignore[misc]


class RevealButton(Button):
    """Shows or hides a secret input. Not in the Tab order: Tab goes from input to input,
    and F2 toggles the focused one."""

    can_focus = False
