"""The installer's questions on tty1 and on the serial console, with pseudo-terminals standing in
for both: the question shows on each, the first line typed on either is the answer, nobody
answering gives advice that names where this machine can answer; and the units and the kernel
command line keep systemd's status lines off the question.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import pty
import select
import socket
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer.consoles import parse_serial_consoles
from installer.install import console as console_module
from installer.install.console import (
    KEYBOARD_WORDS,
    Console,
    Terminal,
    open_serial_consoles,
    syslog_handler,
)
from installer.install.flow import ExistingInstallError, InstallConfig, InstallRun
from installer.install.targets import Choice, TargetError
from tests.helpers.image import load_build
from tests.helpers.targets import CLAWDIE_BY_LABEL, CLAWDIE_BY_NAME, blank, used

ISO = Path(__file__).resolve().parents[1] / "iso"
SERIAL = "the serial console (ttyS0)"


@dataclasses.dataclass
class Tty:
    """One pseudo-terminal: `master` is the person's side, `slave` the console's."""

    master: int
    slave: int

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def screen(self) -> str:
        """Everything written on this console so far (read from the person's side)."""
        seen = b""
        while select.select([self.master], [], [], 0.05)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        return seen.decode(errors="replace").replace("\r\n", "\n")


@pytest.fixture
def ttys() -> Iterator[tuple[Tty, Tty]]:
    """tty1 and ttyS0, the serial one in the line mode the installer gives it."""
    made = [Tty(*pty.openpty()) for _ in range(2)]
    console_module.set_line_mode(made[1].slave)
    yield made[0], made[1]
    for tty in made:
        for fd in (tty.master, tty.slave):
            os.close(fd)


def two_consoles(
    tty1: Tty, serial: Tty, *, keyboard: bool = True, printk: Path | None = None
) -> Console:
    out = os.fdopen(os.dup(tty1.slave), "w")
    return Console(
        out,
        tty1.slave if keyboard else None,
        serials=[Terminal("ttyS0", serial.slave)],
        printk=printk,
    )


def installer(console: Console, wait: float = 5.0) -> InstallRun:
    return InstallRun(InstallConfig(console_wait=wait), console, None)


COMPLETE = used("/dev/sda", CLAWDIE_BY_LABEL)
UNFINISHED = dataclasses.replace(used("/dev/sda", CLAWDIE_BY_NAME), install_state="unfinished")


@pytest.mark.parametrize("answer_on", ["tty1", "ttyS0"])
def test_reinstall_is_asked_on_both_consoles_and_taken_from_either(
    ttys: tuple[Tty, Tty], answer_on: str
) -> None:
    tty1, serial = ttys
    answering, other = (tty1, serial) if answer_on == "tty1" else (serial, tty1)
    answering.type(b"REINSTALL\r" if answering is serial else b"REINSTALL\n")  # a serial Enter
    console = two_consoles(tty1, serial)
    installer(console).guard_existing(COMPLETE)  # no error: REINSTALL was typed
    assert console.answered_on == (KEYBOARD_WORDS if answering is tty1 else SERIAL)
    question = "type REINSTALL to erase /dev/sda and install again: (5 s) "
    on_tty1, on_serial = tty1.screen(), serial.screen()
    for screen in (on_tty1, on_serial):
        assert "this disk already holds a Clawdie installation" in screen
        assert question in screen
    other_screen = on_serial if other is serial else on_tty1
    assert f"'REINSTALL' (typed on {console.answered_on})" in other_screen
    # the serial console shows the lines before the question in order, the question last
    assert on_serial.index("already holds") < on_serial.index(question)


def test_the_disk_question_and_its_confirmation_can_be_answered_on_the_serial_console(
    ttys: tuple[Tty, Tty],
) -> None:
    tty1, serial = ttys
    serial.type(b"sdb\rERASE\r")
    choice = Choice("2 disks could be the target", ask=(blank("/dev/sdb"), blank("/dev/sdc")))
    assert installer(two_consoles(tty1, serial)).ask_disk(choice).node == "/dev/sdb"
    on_serial = serial.screen()
    assert "  /dev/sdb" in on_serial
    assert "  /dev/sdc" in on_serial
    assert on_serial.index("/dev/sdc") < on_serial.index("type the disk to install to")
    assert "Type ERASE to erase it and install:" in on_serial


def test_nobody_answering_on_either_console_says_both_places(ttys: tuple[Tty, Tty]) -> None:
    tty1, serial = ttys
    with pytest.raises(ExistingInstallError) as raised:
        installer(two_consoles(tty1, serial), wait=0.3).guard_existing(COMPLETE)
    assert raised.value.hint == (
        "remove the stick and restart to boot the installed system; to install again, restart "
        "from the stick and type REINSTALL on this machine's keyboard (tty1) or on the serial "
        "console (ttyS0) when asked"
    )
    assert "(0 s) \n" in serial.screen()  # the question line ends: the next line starts clean


def test_an_unfinished_install_on_a_serial_only_machine_names_only_the_serial_console(
    ttys: tuple[Tty, Tty],
) -> None:
    tty1, serial = ttys
    with pytest.raises(ExistingInstallError) as raised:
        installer(two_consoles(tty1, serial, keyboard=False), wait=0.3).guard_existing(UNFINISHED)
    hint = raised.value.hint or ""
    assert hint.endswith(
        "or restart from the stick and type REINSTALL on the serial console (ttyS0) when asked"
    )
    assert "keyboard" not in hint
    assert "the last install on this disk did not finish" in serial.screen()


def test_with_no_console_at_all_the_advice_is_what_to_connect() -> None:
    run = installer(Console(io.StringIO(), None))
    with pytest.raises(ExistingInstallError) as raised:
        run.guard_existing(COMPLETE)
    assert (raised.value.hint or "").endswith(
        "to install again, connect a keyboard and screen or a serial console (115200 baud), "
        "restart from the stick and type REINSTALL there when asked"
    )


def test_a_confirmation_nobody_gives_says_where_to_give_it(ttys: tuple[Tty, Tty]) -> None:
    tty1, serial = ttys
    serial.type(b"sdb\r")  # the disk, then nothing
    choice = Choice("2 disks could be the target", ask=(blank("/dev/sdb"), blank("/dev/sdc")))
    with pytest.raises(TargetError) as raised:
        installer(two_consoles(tty1, serial, keyboard=False), wait=0.5).ask_disk(choice)
    assert raised.value.hint == (
        "restart the machine from the stick and type ERASE on the serial console (ttyS0) when asked"
    )


def test_the_erase_countdown_is_stopped_by_a_key_on_the_serial_console(
    ttys: tuple[Tty, Tty],
) -> None:
    tty1, serial = ttys
    before = termios.tcgetattr(serial.slave)
    serial.type(b"x")  # one key, no Enter: cbreak on the serial console too
    assert two_consoles(tty1, serial).countdown("erasing in 5 s", 5.0) is True
    assert termios.tcgetattr(serial.slave) == before
    assert "erasing in 5 s" in serial.screen()


def test_the_kernel_keeps_quiet_while_a_question_waits(
    ttys: tuple[Tty, Tty], tmp_path: Path
) -> None:
    tty1, serial = ttys
    printk = tmp_path / "printk"
    printk.write_text("7\t4\t1\t7\n")
    seen: list[str] = []

    def answer() -> None:  # the person answers once the question is on the serial console
        bound = time.monotonic() + 30  # a bound, not an assertion: a missing question fails below
        while "(5 s)" not in serial.screen() and time.monotonic() < bound:
            pass
        seen.append(printk.read_text())
        serial.type(b"REINSTALL\r")

    person = threading.Thread(target=answer)
    person.start()
    installer(two_consoles(tty1, serial, printk=printk)).guard_existing(COMPLETE)
    person.join()
    assert seen == ["1\n"]
    assert printk.read_text() == "7\n"  # the console level is back


def test_question_lines_reach_the_journal_at_a_priority_journald_does_not_forward(
    ttys: tuple[Tty, Tty], tmp_path: Path
) -> None:
    """Written on the serial console directly, a question's lines are not forwarded there a
    second time (MaxLevelConsole=info); progress lines outside a question still are."""
    tty1, serial = ttys
    path = tmp_path / "log"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(5)
    try:
        handler = syslog_handler(path)
        assert handler is not None
        handler.setLevel(logging.INFO)
        console = two_consoles(tty1, serial)
        console._journal.handlers = [handler]
        console.say("partitioning /dev/sda")
        serial.type(b"yes\r")
        assert console.ask("type YES:", 5) == "yes"
        grams = [server.recv(4096) for _ in range(3)]
        handler.close()
    finally:
        server.close()
    assert grams[0].startswith(b"<14>clawdie-install: install: partitioning")  # user.info
    assert grams[1].startswith(b"<15>clawdie-install: install: question on the console")
    assert grams[2].startswith(b"<15>clawdie-install: install: answered on the serial console")
    assert "partitioning" not in serial.screen()  # journald brings it there, not the installer


def test_serial_consoles_are_the_kernel_consoles_that_are_not_virtual_terminals(
    ttys: tuple[Tty, Tty], tmp_path: Path
) -> None:
    assert parse_serial_consoles("ttyS0 tty0\n") == ["ttyS0"]
    assert parse_serial_consoles("tty0") == []
    assert parse_serial_consoles("ttyAMA0 ttyS1 tty1") == ["ttyAMA0", "ttyS1"]
    _, serial = ttys
    attrs = termios.tcgetattr(serial.slave)
    attrs[0] &= ~termios.ICRNL
    attrs[3] &= ~termios.ICANON
    termios.tcsetattr(serial.slave, termios.TCSANOW, attrs)
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "ttyS0").symlink_to(os.ttyname(serial.slave))
    active = tmp_path / "active"
    active.write_text("ttyS0 ttyS1 tty0\n")  # ttyS1 has no device: left out
    opened = open_serial_consoles(active, dev)
    try:
        assert [t.name for t in opened] == ["ttyS0"]
        mode = termios.tcgetattr(opened[0].fd)
        assert mode[0] & termios.ICRNL
        assert mode[3] & termios.ICANON
        assert mode[3] & termios.ECHO
    finally:
        for terminal in opened:
            os.close(terminal.fd)
    assert open_serial_consoles(tmp_path / "absent", dev) == []


# -- no systemd status over a question ---------------------------------------------------------


def test_the_live_and_installed_command_lines_show_only_systemd_failures() -> None:
    """systemd.show_status=error: no "[  OK  ]" lines and no "A start job is running" line
    (systemd prints those on /dev/console, tty1 here, while the installer waits for an
    answer), and a unit that fails is still shown."""
    cmdline: str = load_build().LIVE_CMDLINE
    assert "systemd.show_status=error" in cmdline.split()
    grub = (ISO / "overlay/etc/default/grub").read_text()
    assert 'GRUB_CMDLINE_LINUX="console=ttyS0,115200n8 console=tty0 systemd.show_status=error"' in (
        grub
    )
    # tty0 is named last: /dev/console (systemd's status) is tty1, never the serial console
    assert cmdline.split().index("console=tty0") > cmdline.split().index("console=ttyS0,115200n8")


def test_the_journal_is_settled_before_a_question_goes_to_the_serial_console(
    ttys: tuple[Tty, Tty],
) -> None:
    """Lines said before the question reach the serial console through journald; the question
    is written there directly, once journald has forwarded them (journalctl --sync), so the
    serial console shows them in order."""
    tty1, serial = ttys
    settled: list[str] = []
    console = two_consoles(tty1, serial)
    console.settle = lambda: settled.append(serial.screen())
    serial.type(b"REINSTALL\r")
    installer(console).guard_existing(COMPLETE)
    assert len(settled) == 1  # once, before anything of the question was on the serial console
    assert "already holds" not in settled[0]
    assert "type REINSTALL" not in settled[0]
    assert "type REINSTALL to erase /dev/sda" in serial.screen()


def test_a_serial_port_is_opened_without_waiting_for_a_carrier(
    ttys: tuple[Tty, Tty], tmp_path: Path
) -> None:
    _, serial = ttys
    (tmp_path / "ttyS0").symlink_to(os.ttyname(serial.slave))
    active = tmp_path / "active"
    active.write_text("ttyS0\n")
    [opened] = open_serial_consoles(active, tmp_path)
    try:
        assert os.get_blocking(opened.fd)  # blocking again once open: whole writes and reads
        assert termios.tcgetattr(opened.fd)[2] & termios.CLOCAL
    finally:
        os.close(opened.fd)
