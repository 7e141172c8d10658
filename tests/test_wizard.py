"""The console wizard, driven with Pilot at 80x24: what it asks, what it says, what it returns.

Snapshots (pytest-textual-snapshot): the form, an error and the review at 80x24 are compared with
the SVGs in tests/__snapshots__/test_wizard/, which a person can open; a difference fails the
test and `just snapshots-update` accepts the new picture. The bounded wait runs on a fake clock.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from installer.seed.answers import render_seed_with_answers
from installer.seed.io import write_seed_file
from installer.seed.model import validate_field
from installer.seed.resolve import apply_answers, check_seed_bytes, keys_to_ask
from installer.wizard import WizardOutcome
from installer.wizard.app import WizardApp
from installer.wizard.review import ReviewScreen
from installer.wizard.widgets import describe_problem
from tests.helpers.seeds import ADMIN, OPENROUTER, TOKEN, seed
from tests.helpers.sentinels import SENTINEL
from tests.helpers.wizard import (
    SIZE,
    FakeClock,
    error_text,
    review_disabled,
    run_wizard,
    screen_text,
    steady,
    type_into,
)

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ["OPENROUTER_API_KEY", "TELEGRAM_BOT_TOKEN", "TELEGRAM_ADMIN_ID"]


MISSING_REQUIRED = check_seed_bytes(seed("ASSISTANT_NAME=Ada", "TIMEZONE=Europe/Berlin"))


async def fill_required(pilot: Pilot[WizardOutcome], _app: WizardApp) -> None:
    await type_into(pilot, "OPENROUTER_API_KEY", OPENROUTER)
    await type_into(pilot, "TELEGRAM_BOT_TOKEN", TOKEN)
    await type_into(pilot, "TELEGRAM_ADMIN_ID", ADMIN)


def test_a_seed_missing_the_required_fields_asks_exactly_those_three() -> None:
    seen: list[str | None] = []

    async def scenario(_pilot: Pilot[WizardOutcome], app: WizardApp) -> None:
        seen.extend(widget.id for widget in app.screen.query(Input))
        text = screen_text(app)
        for key in REQUIRED:
            assert key in text
        assert "required, but not set" in text
        assert review_disabled(app)

    run_wizard(MISSING_REQUIRED, scenario)
    assert seen == [f"input-{key}" for key in REQUIRED]
    assert keys_to_ask(MISSING_REQUIRED) == REQUIRED


def test_an_invalid_token_shows_the_models_message_and_correcting_it_enables_review() -> None:
    bad = "12345:abc"
    expected = validate_field("TELEGRAM_BOT_TOKEN", bad)
    assert expected is not None

    async def scenario(pilot: Pilot[WizardOutcome], app: WizardApp) -> None:
        await type_into(pilot, "OPENROUTER_API_KEY", OPENROUTER)
        await type_into(pilot, "TELEGRAM_ADMIN_ID", ADMIN)
        await type_into(pilot, "TELEGRAM_BOT_TOKEN", bad)
        assert error_text(app, "TELEGRAM_BOT_TOKEN") == describe_problem(expected)
        assert review_disabled(app)
        text = screen_text(app)
        assert expected.message in text
        assert bad not in text  # masked
        await type_into(pilot, "TELEGRAM_BOT_TOKEN", TOKEN)
        assert error_text(app, "TELEGRAM_BOT_TOKEN") == ""
        assert not review_disabled(app)
        await pilot.press("ctrl+q")

    assert run_wizard(MISSING_REQUIRED, scenario) == WizardOutcome("cancelled")


def test_confirmed_answers_resolve_like_the_equivalent_setup_txt() -> None:
    async def scenario(pilot: Pilot[WizardOutcome], app: WizardApp) -> None:
        await fill_required(pilot, app)
        await pilot.press("enter")  # Enter on the last field opens the review
        await pilot.pause()
        assert isinstance(app.screen, ReviewScreen)
        text = screen_text(app)
        assert "HOSTNAME" in text
        assert "ada" in text
        assert "from ASSISTANT_NAME" in text
        # what the operator set and what follows from it; not the profile's internals
        assert "openai/o3" not in text
        assert "PI_TUI_PROVIDER" not in text
        assert "LLM_PROVIDERS" not in text
        assert "defaults and profile values (check --explain lists them)" in text
        assert TOKEN not in text
        assert OPENROUTER not in text
        await pilot.press("enter")  # Confirm has the focus

    outcome = run_wizard(MISSING_REQUIRED, scenario)
    answers = {
        "OPENROUTER_API_KEY": OPENROUTER,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_ADMIN_ID": ADMIN,
    }
    assert outcome == WizardOutcome("done", answers)
    done = apply_answers(MISSING_REQUIRED, outcome.answers)
    equivalent = check_seed_bytes(
        seed(
            "ASSISTANT_NAME=Ada",
            "TIMEZONE=Europe/Berlin",
            *(f"{k}={v}" for k, v in answers.items()),
        )
    )
    assert done.valid
    assert equivalent.valid
    assert [(s.key, s.value, s.secret) for s in done.settings] == [
        (s.key, s.value, s.secret) for s in equivalent.settings
    ]
    assert {s.key for s in done.settings if s.source.kind == "wizard"} == set(answers)


def test_back_from_the_review_returns_to_the_form_with_the_answers_kept() -> None:
    async def scenario(pilot: Pilot[WizardOutcome], app: WizardApp) -> None:
        await fill_required(pilot, app)
        await pilot.press("f10")
        await pilot.pause()
        assert isinstance(app.screen, ReviewScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.query_one("#input-TELEGRAM_ADMIN_ID", Input).value == ADMIN
        await pilot.press("f10")
        await pilot.pause()
        await pilot.click("#confirm")

    outcome = run_wizard(MISSING_REQUIRED, scenario)
    assert outcome is not None
    assert outcome.status == "done"


@pytest.mark.parametrize("how", ["ctrl+q", "ctrl+c", "quit button"])
def test_quitting_is_a_clean_cancel(how: str) -> None:
    async def scenario(pilot: Pilot[WizardOutcome], _app: WizardApp) -> None:
        await type_into(pilot, "TELEGRAM_ADMIN_ID", ADMIN)
        if how == "quit button":
            await pilot.click("#quit")
        else:
            await pilot.press(how)

    assert run_wizard(MISSING_REQUIRED, scenario) == WizardOutcome("cancelled", {})


def countdown_text(app: WizardApp) -> str:
    countdown = app.screen.query_one("#countdown", Static)
    return str(countdown.render()) if countdown.display else ""


def test_the_wait_counts_down_and_gives_up_when_nobody_touches_the_keyboard() -> None:
    clock = FakeClock()

    async def scenario(pilot: Pilot[WizardOutcome], app: WizardApp) -> None:
        assert "setup stops in 2:05." in countdown_text(app)
        clock.now += 64.5
        app.tick()
        await pilot.pause()
        assert "setup stops in 1:01." in countdown_text(app)
        clock.now += 60.25
        app.tick()
        await pilot.pause()
        assert "setup stops in 0:01." in countdown_text(app)
        assert app.is_running
        clock.now += 0.25  # exactly the end: binary fractions add up without rounding
        app.tick()

    outcome = run_wizard(MISSING_REQUIRED, scenario, timeout=125.0, clock=clock)
    assert outcome == WizardOutcome("timeout")


def test_a_key_press_ends_the_wait_for_good() -> None:
    clock = FakeClock()

    async def scenario(pilot: Pilot[WizardOutcome], app: WizardApp) -> None:
        assert "setup stops in" in countdown_text(app)
        await pilot.press("1")
        assert countdown_text(app) == ""
        clock.now += 3600
        app.tick()
        await pilot.pause()
        assert app.is_running
        assert "setup stops in" not in screen_text(app)
        await pilot.press("ctrl+q")

    outcome = run_wizard(MISSING_REQUIRED, scenario, timeout=2.5, clock=clock)
    assert outcome == WizardOutcome("cancelled")


# --- snapshots: compared with tests/__snapshots__/test_wizard/*.svg; `just snapshots-update` ----
# `snap_compare(app, terminal_size=..., run_before=...)` runs the app headless, plays run_before,
# and compares the screen with the stored SVG; no timeout, so no time on screen.
SnapCompare = Callable[..., bool]


def test_snapshot_form(snap_compare: SnapCompare) -> None:
    assert snap_compare(WizardApp(MISSING_REQUIRED), terminal_size=SIZE, run_before=steady)


def test_snapshot_form_error(snap_compare: SnapCompare) -> None:
    async def bad_token(pilot: Pilot[WizardOutcome]) -> None:
        await steady(pilot)
        await type_into(pilot, "OPENROUTER_API_KEY", OPENROUTER)
        await type_into(pilot, "TELEGRAM_ADMIN_ID", ADMIN)
        await type_into(pilot, "TELEGRAM_BOT_TOKEN", "12345:abc")

    assert snap_compare(WizardApp(MISSING_REQUIRED), terminal_size=SIZE, run_before=bad_token)


def test_snapshot_review(snap_compare: SnapCompare) -> None:
    async def review(pilot: Pilot[WizardOutcome]) -> None:
        await steady(pilot)
        await type_into(pilot, "OPENROUTER_API_KEY", OPENROUTER)
        await type_into(pilot, "TELEGRAM_BOT_TOKEN", TOKEN)
        await type_into(pilot, "TELEGRAM_ADMIN_ID", ADMIN)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(pilot.app.screen, ReviewScreen)

    assert snap_compare(WizardApp(MISSING_REQUIRED), terminal_size=SIZE, run_before=review)


def test_invalid_values_are_prefilled_except_secrets_and_errors_name_the_line() -> None:
    check = check_seed_bytes(
        seed(
            "TELEGRAM_BOT_TOKEN=12345:short",
            "TELEGRAM_ADMIN_ID=@bob",
            f"OPENROUTER_API_KEY={OPENROUTER}",
        )
    )

    async def scenario(pilot: Pilot[WizardOutcome], app: WizardApp) -> None:
        assert app.screen.query_one("#input-TELEGRAM_ADMIN_ID", Input).value == "@bob"
        assert app.screen.query_one("#input-TELEGRAM_BOT_TOKEN", Input).value == ""
        assert error_text(app, "TELEGRAM_BOT_TOKEN").startswith("setup.txt:1: TELEGRAM_BOT_TOKEN: ")
        assert "this is a user name" in error_text(app, "TELEGRAM_ADMIN_ID")
        await pilot.press("ctrl+q")

    run_wizard(check, scenario)
    assert keys_to_ask(check) == ["TELEGRAM_BOT_TOKEN", "TELEGRAM_ADMIN_ID"]


def test_cross_field_rules_show_next_to_their_field() -> None:
    check = check_seed_bytes(
        seed(
            f"TELEGRAM_BOT_TOKEN={TOKEN}",
            f"TELEGRAM_ADMIN_ID={ADMIN}",
            f"OPENROUTER_API_KEY={OPENROUTER}",
            "OPERATOR_EMAIL=op@example.com",
        )
    )

    async def scenario(pilot: Pilot[WizardOutcome], app: WizardApp) -> None:
        assert "required because OPERATOR_EMAIL is set" in error_text(app, "OPERATOR_PASSWORD")
        await type_into(pilot, "OPERATOR_PASSWORD", "short")
        assert "shorter than 12" in error_text(app, "OPERATOR_PASSWORD")
        await type_into(pilot, "OPERATOR_PASSWORD", SENTINEL)
        assert error_text(app, "OPERATOR_PASSWORD") == ""
        assert SENTINEL not in screen_text(app)
        await pilot.press("f2")
        await pilot.pause()
        assert SENTINEL in screen_text(app)  # revealed on request
        await pilot.press("f2")
        await pilot.pause()
        assert SENTINEL not in screen_text(app)
        await pilot.press("f10")
        await pilot.pause()
        assert SENTINEL not in screen_text(app)  # the review masks it
        await pilot.press("enter")

    outcome = run_wizard(check, scenario)
    assert outcome == WizardOutcome("done", {"OPERATOR_PASSWORD": SENTINEL})


def test_clearing_an_invalid_optional_value_leaves_it_unset() -> None:
    check = check_seed_bytes(
        seed(
            f"TELEGRAM_BOT_TOKEN={TOKEN}",
            f"TELEGRAM_ADMIN_ID={ADMIN}",
            f"OPENROUTER_API_KEY={OPENROUTER}",
            "HOSTNAME=my_box",
            "ASSISTANT_NAME=Ada",
        )
    )

    async def scenario(pilot: Pilot[WizardOutcome], app: WizardApp) -> None:
        assert app.screen.query_one("#input-HOSTNAME", Input).value == "my_box"
        assert review_disabled(app)
        await type_into(pilot, "HOSTNAME", "")
        assert not review_disabled(app)
        await pilot.press("f10", "enter")

    outcome = run_wizard(check, scenario)
    assert outcome == WizardOutcome("done", {"HOSTNAME": ""})
    assert apply_answers(check, outcome.answers).require_resolved().host.hostname == "ada"


def test_importing_the_wizard_package_does_not_import_textual() -> None:
    probe = (
        "import sys; import installer.wizard, installer.commands.wizard; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "[]"


# --- writing answers back into setup.txt (clawdie-setup wizard) -------------------------------

TEMPLATE = (ROOT / "setup.txt.example").read_bytes()
ANSWERS = {
    "OPENROUTER_API_KEY": OPENROUTER,
    "TELEGRAM_BOT_TOKEN": TOKEN,
    "TELEGRAM_ADMIN_ID": ADMIN,
}


def test_answers_fill_the_template_in_place_keeping_every_other_line() -> None:
    update = render_seed_with_answers(TEMPLATE, ANSWERS)
    before = TEMPLATE.decode().splitlines()
    after = update.text.splitlines()
    assert len(after) == len(before)
    changed = [n for n, (a, b) in enumerate(zip(before, after, strict=True), 1) if a != b]
    assert [after[n - 1].split("=")[0] for n in changed] == [
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_ADMIN_ID",
        "OPENROUTER_API_KEY",
    ]
    assert check_seed_bytes(update.text.encode()).valid
    assert not any(v in note for note in update.changes for v in ANSWERS.values())


@pytest.mark.parametrize(
    ("lines", "answers", "expected"),
    [
        # a commented-out template line is uncommented in place
        (
            ["# a", "#TIMEZONE=", "# b"],
            {"TIMEZONE": "Europe/Berlin"},
            ["# a", "TIMEZONE=Europe/Berlin", "# b"],
        ),
        # a key with no line is appended
        (["# notes"], {"TIMEZONE": "UTC"}, ["# notes", "TIMEZONE=UTC"]),
        # a misspelt key's line is replaced by the key it meant
        (
            ["TELEGRAM_BOT_TOKN=x", "# c"],
            {"TELEGRAM_BOT_TOKEN": "t"},
            ["TELEGRAM_BOT_TOKEN=t", "# c"],
        ),
        # a second line for the key goes
        (["HOSTNAME=a", "# c", "HOSTNAME=b"], {"HOSTNAME": "c"}, ["HOSTNAME=c", "# c"]),
        # an unusable line nobody answers is commented out
        (["junk line", "HOSTNAME=my_box"], {"HOSTNAME": ""}, ["#junk line", "HOSTNAME="]),
        # a private key block is removed whole
        (
            [
                "-----BEGIN OPENSSH PRIVATE KEY-----",
                "abc",
                "-----END OPENSSH PRIVATE KEY-----",
                "# c",
            ],
            {"SSH_AUTHORIZED_KEY": ""},
            ["SSH_AUTHORIZED_KEY=", "# c"],
        ),
        # values that the reader would unquote or refuse are quoted
        (["# c"], {"ASSISTANT_NAME": "'Ada'"}, ["# c", "ASSISTANT_NAME=\"'Ada'\""]),
    ],
)
def test_answer_placement(lines: list[str], answers: dict[str, str], expected: list[str]) -> None:
    assert render_seed_with_answers(seed(*lines), answers).text.splitlines() == expected


def test_line_ends_are_kept_and_values_read_back_exactly() -> None:
    tricky = {"OPERATOR_PASSWORD": '"starts with a quote', "ASSISTANT_NAME": "Zoë's #1 'helper'"}
    update = render_seed_with_answers(seed("# c", "ASSISTANT_NAME=x", eol="\r\n"), tricky)
    assert update.text.startswith("# c\r\n")
    assert "\n" not in update.text.replace("\r\n", "")
    parsed = check_seed_bytes(update.text.encode()).given
    assert {k: parsed[k].value for k in tricky} == tricky


def test_the_command_says_a_valid_file_is_valid_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "setup.txt"
    path.write_bytes(seed(*(f"{k}={v}" for k, v in ANSWERS.items())))
    before = path.stat().st_mtime_ns
    result = subprocess.run(
        [sys.executable, "-m", "installer.cli", "wizard", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0
    assert "already valid" in result.stdout
    assert path.stat().st_mtime_ns == before


def test_the_command_refuses_to_run_without_a_terminal(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "installer.cli", "wizard", str(tmp_path / "setup.txt")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "needs a terminal" in result.stderr
    assert not (tmp_path / "setup.txt").exists()


def test_write_seed_file_replaces_atomically_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "setup.txt"
    path.write_text("old")
    path.chmod(0o644)
    write_seed_file(path, "new\n")
    assert path.read_text() == "new\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["setup.txt"]


NO_SEED = check_seed_bytes(b"")


def test_with_no_seed_the_wizard_asks_the_name_the_time_zone_and_the_wi_fi_too() -> None:
    seen: list[str | None] = []

    async def scenario(pilot: Pilot[WizardOutcome], app: WizardApp) -> None:
        seen.extend(widget.id for widget in app.screen.query(Input))
        await fill_required(pilot, app)
        await type_into(pilot, "ASSISTANT_NAME", "Ada")
        await type_into(pilot, "TIMEZONE", "Europe/Berlin")
        await type_into(pilot, "WIFI_SSID", "Home")
        assert review_disabled(app)  # Wi-Fi's three lines come together
        title = str(app.screen.query_one("#title", Static).render())
        assert title == "Clawdie setup: 2 settings need an answer"  # the password and country
        await type_into(pilot, "WIFI_PASSWORD", "correct horse")
        await type_into(pilot, "WIFI_COUNTRY", "SI")
        assert not review_disabled(app)
        await pilot.press("f10")
        await pilot.pause()
        await pilot.press("enter")

    outcome = run_wizard(NO_SEED, scenario)
    asked = [
        "ASSISTANT_NAME",
        "TIMEZONE",
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_ADMIN_ID",
        "OPENROUTER_API_KEY",
        "WIFI_SSID",
        "WIFI_PASSWORD",
        "WIFI_COUNTRY",
    ]
    assert sorted(str(widget_id) for widget_id in seen) == sorted(f"input-{k}" for k in asked)
    assert outcome is not None
    assert outcome.status == "done"
    done = apply_answers(NO_SEED, outcome.answers)
    assert done.valid
    resolved = {s.key: s.value for s in done.settings}
    assert resolved["WIFI_COUNTRY"] == "SI"
    assert resolved["HOSTNAME"] == "ada"
    # a seed that gives anything is asked only for what it lacks
    assert keys_to_ask(MISSING_REQUIRED) == REQUIRED


def test_the_title_counts_down_and_f10_says_why_it_did_not_review() -> None:
    async def scenario(pilot: Pilot[WizardOutcome], app: WizardApp) -> None:
        title = app.screen.query_one("#title", Static)
        assert str(title.render()) == "Clawdie setup: 3 settings need an answer"
        await type_into(pilot, "OPENROUTER_API_KEY", OPENROUTER)
        assert str(title.render()) == "Clawdie setup: 2 settings need an answer"
        await pilot.press("f10")
        await pilot.pause()
        status = str(app.screen.query_one("#status", Static).render())
        assert status == (
            "Not ready to review: 2 answers still to fix; the cursor is on TELEGRAM_BOT_TOKEN."
        )
        await type_into(pilot, "TELEGRAM_BOT_TOKEN", TOKEN)
        assert not app.screen.query_one("#status", Static).display  # a change clears it
        await type_into(pilot, "TELEGRAM_ADMIN_ID", ADMIN)
        assert str(title.render()) == "Clawdie setup: every answer is valid; F10 to review"

    run_wizard(MISSING_REQUIRED, scenario)
