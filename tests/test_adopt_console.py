"""An adopt's outcome on the box's consoles: one whole block per console, in one write that a
login prompt cannot split, with pseudo-terminals standing in for the screen and the serial
console and a thread standing in for agetty writing its prompt on them all the while.
"""

from __future__ import annotations

import configparser
import os
import pty
import select
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer.adopt.run import AdoptRun, render_console_outcome
from installer.consoles import parse_consoles, render_block, show_on_consoles
from installer.errors import InstallerError
from installer.firstboot.config import FirstbootConfig
from installer.seed.io import SeedInput

ROOT = Path(__file__).resolve().parents[1]
OUTCOME = "\n".join(
    ["Clawdie adopt on ada: refused, from the stick labelled CLAWDIESEED", ""]
    + [
        f"Reason: line {n} of the reason, long enough to take a while on a slow line"
        for n in range(40)
    ]
)


class Console:
    """One pseudo-terminal and a thread reading everything written on it."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.seen = bytearray()
        self.open = True
        self.reader = threading.Thread(target=self._read)
        self.reader.start()

    def _read(self) -> None:
        """Until closed, and then until nothing more is waiting: everything written is read."""
        while True:
            if select.select([self.master], [], [], 0.05)[0]:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:
                    return
            elif not self.open:
                return

    def close(self) -> str:
        self.open = False
        self.reader.join()
        for fd in (self.master, self.slave):
            os.close(fd)
        return self.seen.decode(errors="replace").replace("\r", "")


@pytest.fixture
def consoles(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Console]]]:
    """A /dev with tty0 and ttyS0 (links to two pseudo-terminals)."""
    dev = tmp_path / "dev"
    dev.mkdir()
    made = {"tty0": Console(), "ttyS0": Console()}
    for name, console in made.items():
        (dev / name).symlink_to(os.ttyname(console.slave))
    yield dev, made
    for console in made.values():
        if console.open:
            console.close()


def test_the_outcome_is_one_block_on_each_console_whatever_a_login_prompt_writes(
    consoles: tuple[Path, dict[str, Console]],
) -> None:
    dev, made = consoles
    stop = threading.Event()

    def getty() -> None:  # a prompt written again and again on both consoles
        fds = [os.open(dev / name, os.O_WRONLY | os.O_NOCTTY) for name in made]
        try:
            while not stop.is_set():
                for fd in fds:
                    os.write(fd, b"\r\nada login: ")
        finally:
            for fd in fds:
                os.close(fd)

    prompt = threading.Thread(target=getty)
    prompt.start()
    try:
        for _ in range(20):
            reached = show_on_consoles(
                OUTCOME, ["tty0", "ttyS0", "ttyS1"], dev, reload_prompts=False
            )
            assert reached == ["tty0", "ttyS0"]  # ttyS1: no such port here, left out
    finally:
        stop.set()
        prompt.join()
    block = render_block(OUTCOME).decode().replace("\r", "")
    for name, console in made.items():
        seen = console.close()
        assert seen.count(block) == 20, name  # every block whole: no prompt inside one
        assert "ada login: " in seen  # the prompt did write all along


def test_a_block_starts_on_a_line_of_its_own_and_ends_every_line_with_cr_lf() -> None:
    assert render_block("one\ntwo\n") == b"\r\none\r\ntwo\r\n"
    assert parse_consoles("ttyS0 tty0\n") == ["ttyS0", "tty0"]


def test_a_refused_adopt_shows_its_outcome_once_as_one_block(tmp_path: Path) -> None:
    shown: list[str] = []
    seed = SeedInput("setup.txt", b"INSTALL_MODE=adopt\nPROFILE=economy\n", "the test stick")
    run = AdoptRun(FirstbootConfig(root=tmp_path / "root"), seed, restart=None, show=shown.append)
    with pytest.raises(InstallerError, match="there is no installation"):
        run.execute()
    assert len(shown) == 1
    text = shown[0]
    assert text.startswith("=" * 60 + "\nClawdie adopt on this box: refused, from the test stick\n")
    assert "Reason: there is no installation at" in text
    assert "Telegram message to the admin: " in text
    assert text.endswith("=" * 60)
    assert render_console_outcome("head", "report\n", "queued").count("\n") == 5


def test_the_adopt_unit_writes_only_to_the_journal_below_the_console_forwarding_level() -> None:
    """The outcome reaches the consoles as the block above; the unit's own output is not
    copied to the console (journal+console) nor forwarded by journald to the serial console
    line by line (its priority is below MaxLevelConsole=info)."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(ROOT / "iso/overlay/etc/systemd/system/clawdie-adopt.service")
    service = unit["Service"]
    assert service["StandardOutput"] == "journal"
    assert service["StandardError"] == "journal"
    assert service["SyslogLevel"] == "debug"
    journald = configparser.ConfigParser(strict=False, interpolation=None)
    journald.read(ROOT / "iso/overlay/etc/systemd/journald.conf.d/clawdie-serial.conf")
    assert journald["Journal"]["MaxLevelConsole"] == "info"  # debug is below it
