"""A real terminal for tests: a detached tmux session at 80x25 with TERM=linux, driven by
send-keys and read back with capture-pane."""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


class Terminal:
    """One detached tmux session running a command at 80x25 with TERM=linux."""

    def __init__(self, name: str) -> None:
        self.name = name

    def send(self, *keys: str, literal: bool = False) -> None:
        args = ["tmux", "send-keys", "-t", self.name, *(["-l"] if literal else []), *keys]
        subprocess.run(args, check=True)

    def type(self, text: str) -> None:
        self.send(text, literal=True)

    def screen(self) -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def wait_for(self, predicate: Callable[[str], bool], what: str, deadline: float = 15) -> str:
        """Poll the screen until `predicate` holds; fail with the last screen after `deadline`."""
        end = time.monotonic() + deadline
        screen = ""
        while time.monotonic() < end:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}; the screen was:\n{screen}")

    def wait_text(self, text: str, deadline: float = 15) -> str:
        return self.wait_for(lambda s: text in s, repr(text), deadline)

    def wait_settled(self, text: str, deadline: float = 15) -> str:
        """Wait for `text`, then for the screen to stay the same for half a second: keys sent
        while the app is still starting (answering the terminal's queries) can be lost."""
        end = time.monotonic() + deadline
        screen = self.wait_text(text, deadline)
        while time.monotonic() < end:
            time.sleep(0.5)
            again = self.screen()
            if again == screen:
                return screen
            screen = again
        pytest.fail(f"the screen did not settle; it was:\n{screen}")


def assert_console_safe(screen: str) -> None:
    odd = sorted({c for c in screen if not (c.isascii() and (c.isprintable() or c == "\n"))})
    assert not odd, f"characters a console font may lack: {odd}"


@contextlib.contextmanager
def linux_consoles(
    prefix: str, shell_of: Callable[[str], str]
) -> Iterator[Callable[[str], Terminal]]:
    """tmux sessions at 80x25, each running `shell_of(command)`; all killed at the end."""
    names: list[str] = []

    def start(command: str) -> Terminal:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        names.append(name)
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "25", shell_of(command)],
            check=True,
        )
        return Terminal(name)

    try:
        yield start
    finally:
        for name in names:
            subprocess.run(["tmux", "kill-session", "-t", name], check=False, capture_output=True)


@pytest.fixture
def terminal_in(tmp_path: Path) -> Iterator[Callable[[str], Terminal]]:
    with linux_consoles(
        "wizard", lambda command: f"cd {tmp_path} && TERM=linux {command}; echo EXIT=$?; sleep 60"
    ) as start:
        yield start
