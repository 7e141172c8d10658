"""`clawdie-setup wizard` in a real terminal: tmux with TERM=linux at 80x25, driven by send-keys,
read back with capture-pane. Checks the fields, the completion, the written file, and that the
screen holds only characters a Linux console font has (ASCII here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from installer.seed.resolve import check_seed_bytes
from tests.helpers.seeds import ADMIN, OPENROUTER, TOKEN
from tests.helpers.terminal import Terminal, assert_console_safe

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "clawdie-setup"

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def test_the_wizard_completes_a_template_in_a_linux_console(
    tmp_path: Path, terminal_in: Callable[[str], Terminal]
) -> None:
    term = terminal_in(f"{CLI} wizard")
    form = term.wait_settled("F10 review")
    for key in ("OPENROUTER_API_KEY", "TELEGRAM_BOT_TOKEN", "TELEGRAM_ADMIN_ID"):
        assert key in form
    assert "PROFILE" not in form  # a valid key of the template is not asked
    assert_console_safe(form)

    assert "> OPENROUTER_API_KEY" in form  # the focus marker
    term.type(OPENROUTER)
    term.send("Tab")
    # Textual queues keys for the focused widget before it acts on Tab: wait for the focus move.
    term.wait_text("> TELEGRAM_BOT_TOKEN")
    term.type("7012345678:short")
    term.wait_text("a bot token has 35")
    term.send("C-u")  # clear the field
    term.type(TOKEN)
    term.wait_for(lambda s: "a bot token has 35" not in s, "the token error to go")
    term.send("Tab")
    term.wait_text("> TELEGRAM_ADMIN_ID")
    term.type(ADMIN)
    # The template was not filled in: the name, the time zone and the Wi-Fi are asked too (and
    # may stay empty).
    for key in ("ASSISTANT_NAME", "TIMEZONE", "WIFI_SSID", "WIFI_PASSWORD", "WIFI_COUNTRY"):
        term.send("Tab")
        assert_console_safe(term.wait_text(f"> {key}"))
    term.send("F10")
    review = term.wait_text("Review: nothing is used until you confirm")
    assert "TELEGRAM_BOT_TOKEN" in review
    assert TOKEN not in review
    assert "(hidden," in review
    assert_console_safe(review)
    term.send("Enter")
    done = term.wait_text("EXIT=")
    assert "EXIT=0" in done
    assert "now holds secrets" in done

    written = tmp_path / "setup.txt"
    assert written.stat().st_mode & 0o777 == 0o600
    assert check_seed_bytes(written.read_bytes()).valid
    checked = subprocess.run(
        [str(CLI), "check", str(written)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = written.read_text()
    assert text.startswith("# Clawdie setup")  # the template's comments are kept
    assert f"TELEGRAM_BOT_TOKEN={TOKEN}\n" in text


def test_quitting_in_the_console_writes_nothing(
    tmp_path: Path, terminal_in: Callable[[str], Terminal]
) -> None:
    term = terminal_in(f"{CLI} wizard")
    term.wait_settled("F10 review")
    term.send("C-q")
    done = term.wait_text("EXIT=")
    assert "EXIT=1" in done
    assert "cancelled: nothing was written" in done
    assert not (tmp_path / "setup.txt").exists()
