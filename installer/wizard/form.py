"""The form: one row per asked key, validated as the operator types.

Each keystroke runs the key's own model rule (`ModelRule`), then the whole seed with the answers
so far through `resolve.apply_answers`, so cross-field rules show next to their field and the
Review button is enabled exactly when the result is valid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Input, Static

from installer.seed.messages import render_problem
from installer.seed.model import FieldSpec, field_specs
from installer.seed.reader import Problem
from installer.seed.resolve import SeedCheck, apply_answers
from installer.wizard.review import ReviewScreen
from installer.wizard.text import console_safe
from installer.wizard.widgets import MaskedInput, ModelRule, PlainScroll, RevealButton

HELP = "Tab next  Shift+Tab back  F2 show/hide secret  F10 review  Ctrl+Q quit"


def render_seed_problem(problem: Problem, name: str) -> str:
    """A problem of the seed, worded as everywhere else, safe for the console."""
    return console_safe(render_problem(problem, name))


class FieldRow(Vertical):
    """Key, explanation, input and the current problem of one asked key."""

    def __init__(
        self, spec: FieldSpec, initial: str, seed_problems: Sequence[Problem], seed_name: str
    ) -> None:
        super().__init__(id=f"row-{spec.key}", classes="field")
        self.spec = spec
        self.seed_name = seed_name
        self.initial = initial
        self.seed_problems = seed_problems
        self.touched = False
        self.problem_shown: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(self._key_label(focused=False), classes="field-key")
        yield Static(console_safe(self.spec.doc), classes="field-doc", markup=False)
        with Horizontal(classes="field-line"):
            yield MaskedInput(
                self.initial,
                id=f"input-{self.spec.key}",
                password=self.spec.secret,
                validators=[ModelRule(self.spec.key)],
                compact=True,
                select_on_focus=False,
            )
            if self.spec.secret:
                yield RevealButton("F2 show", id=f"reveal-{self.spec.key}", compact=True)
        yield Static(
            self.render_seed_problems(),
            id=f"error-{self.spec.key}",
            classes="field-error",
            markup=False,
        )

    def render_seed_problems(self) -> str:
        return "\n".join(render_seed_problem(p, self.seed_name) for p in self.seed_problems)

    def _key_label(self, *, focused: bool) -> str:
        # A visible marker, not only colour: the console may show colours poorly.
        marker = "> " if focused else "  "
        return f"{marker}{self.spec.key}  [dim]({self.spec.tier})[/]"

    def on_descendant_focus(self) -> None:
        self.query_one(".field-key", Static).update(self._key_label(focused=True))

    def on_descendant_blur(self) -> None:
        self.query_one(".field-key", Static).update(self._key_label(focused=False))

    @property
    def input(self) -> MaskedInput:
        return self.query_one(MaskedInput)

    @property
    def answer(self) -> str:
        return self.input.value.strip()

    def show_problem(self, text: str | None) -> None:
        if text == self.problem_shown:
            return
        self.problem_shown = text
        error = self.query_one(".field-error", Static)
        error.update(text or "")
        error.display = bool(text)
        self.set_class(bool(text), "-problem")

    def toggle_reveal(self) -> None:
        if not self.spec.secret:
            return
        self.input.password = not self.input.password
        label = "F2 show" if self.input.password else "F2 hide"
        self.query_one(RevealButton).label = label


def render_title(to_fix: int) -> str:
    """The form's title: how many answers are still to fix."""
    if to_fix == 0:
        return "Clawdie setup: every answer is valid; F10 to review"
    what = "setting needs" if to_fix == 1 else "settings need"
    return f"Clawdie setup: {to_fix} {what} an answer"


class FormScreen(Screen[None]):
    """The asked keys; Review opens the resolved result once every rule is satisfied."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f2", "toggle_reveal", "show/hide secret"),
        Binding("f10", "review", "review"),
    ]

    def __init__(
        self, check: SeedCheck, asked: Sequence[str], on_confirm: Callable[[dict[str, str]], None]
    ) -> None:
        super().__init__()
        self.check = check
        self.on_confirm = on_confirm
        self.other_shown = "-"
        self.countdown_text: str | None = None
        specs = {spec.key: spec for spec in field_specs()}
        self.rows = [self._row(specs[key]) for key in asked]

    def _row(self, spec: FieldSpec) -> FieldRow:
        given = self.check.given.get(spec.key)
        initial = given.value if given and not spec.secret else ""
        problems = [p for p in self.check.problems if spec.key in (p.key, p.suggests)]
        return FieldRow(spec, initial, problems, self.check.name)

    def compose(self) -> ComposeResult:
        yield Static(render_title(len(self.rows)), id="title", classes="bar", markup=False)
        yield Static("", id="countdown")
        yield Static("", id="status", markup=False)
        with PlainScroll(id="fields"):
            yield from self.rows
        yield Static("", id="other-problems", markup=False)
        with Horizontal(id="buttons"):
            yield Button("Review", id="review", disabled=True, compact=True)
            yield Button("Quit", id="quit", compact=True)
        yield Static(HELP, id="help", classes="bar", markup=False)

    def on_mount(self) -> None:
        self._show_countdown()
        self.show_status(None)
        for row in self.rows:
            row.show_problem(row.render_seed_problems())
        if self.rows:
            self.rows[0].input.focus()
        self.refresh_result()

    def answers(self) -> dict[str, str]:
        return {row.spec.key: row.answer for row in self.rows}

    def show_countdown(self, text: str | None) -> None:
        """The bounded wait's message (None hides it); safe to call before the form is shown."""
        self.countdown_text = text
        if self.is_mounted:
            self._show_countdown()

    def _show_countdown(self) -> None:
        countdown = self.query_one("#countdown", Static)
        countdown.update(self.countdown_text or "")
        countdown.display = bool(self.countdown_text)

    def _row_of(self, widget: Input) -> FieldRow:
        return next(row for row in self.rows if row.input is widget)

    def show_status(self, text: str | None) -> None:
        """Why the form did what it did (F10 with answers still to fix); None hides it."""
        status = self.query_one("#status", Static)
        status.update(text or "")
        status.display = bool(text)

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        row = self._row_of(event.input)
        if event.value != row.initial:
            row.touched = True
        self.show_status(None)
        self.refresh_result()

    def refresh_result(self) -> None:
        """Re-run the model on the answers so far; show each touched row's first problem, and
        in the title how many answers are still to fix."""
        result = apply_answers(self.check, self.answers())
        to_fix = 0
        for row in self.rows:
            own = row.input.validate(row.input.value)
            own_problem = own.failure_descriptions[0] if own and not own.is_valid else None
            cross = [p for p in result.problems if p.key == row.spec.key]
            to_fix += bool(own_problem or cross)
            if not row.touched:
                continue
            if own_problem is not None:
                row.show_problem(own_problem)
                continue
            row.show_problem(render_seed_problem(cross[0], result.name) if cross else None)
        self.query_one("#title", Static).update(render_title(to_fix))
        asked = {row.spec.key for row in self.rows}
        others = [p for p in result.problems if p.key not in asked]
        other_text = "\n".join(render_seed_problem(p, result.name) for p in others)
        other = self.query_one("#other-problems", Static)
        if other_text != self.other_shown:
            self.other_shown = other_text
            other.update(other_text)
            other.display = bool(others)
        self.query_one("#review", Button).disabled = not result.valid

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        index = self.rows.index(self._row_of(event.input))
        if index + 1 < len(self.rows):
            self.rows[index + 1].input.focus()
        elif not self.query_one("#review", Button).disabled:
            self.action_review()
        else:
            self.focus_next_problem()

    def focus_next_problem(self) -> str | None:
        """Move to the first row with a problem; returns its key (None when there is none)."""
        result = apply_answers(self.check, self.answers())
        keys = {p.key for p in result.problems}
        target = next((row for row in self.rows if row.spec.key in keys), None)
        if target is None:
            return None
        target.input.focus()
        return target.spec.key

    def action_toggle_reveal(self) -> None:
        focused = self.focused
        row = next((r for r in self.rows if r.input is focused), None)
        if row is not None:
            row.toggle_reveal()

    def action_review(self) -> None:
        result = apply_answers(self.check, self.answers())
        if not result.valid:
            key = self.focus_next_problem()
            count = len(result.problems)
            where = f"; the cursor is on {key}" if key else ""
            self.show_status(
                f"Not ready to review: {count} answer{'s' if count != 1 else ''} still to "
                f"fix{where}."
            )
            return
        answers = self.answers()

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.on_confirm(answers)

        self.app.push_screen(ReviewScreen(result), confirmed)

    @on(Button.Pressed, "#review")
    def _review_pressed(self) -> None:
        self.action_review()

    @on(Button.Pressed, "#quit")
    def _quit_pressed(self) -> None:
        self.app.action_cancel()  # type: ignore[attr-defined]

    @on(Button.Pressed, "RevealButton")
    def _reveal_pressed(self, event: Button.Pressed) -> None:
        key = (event.button.id or "").removeprefix("reveal-")
        row = next(r for r in self.rows if r.spec.key == key)
        row.toggle_reveal()
        row.input.focus()
