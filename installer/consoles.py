"""The machine's consoles: the ones the kernel writes to (`console=ttyS0 console=tty0`: the
serial port and the screen), and a block of text shown on each of them whole.

A block is written with one write() per console: the terminal layer holds a console's write lock
for a whole write() call, so a login prompt (agetty) or another writer cannot land inside it, as
it can between lines that journald forwards one by one.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

from installer.errors import InstallerError
from installer.run import run

log = logging.getLogger("clawdie.consoles")

CONSOLES_ACTIVE = Path("/sys/class/tty/console/active")  # the kernel's consoles: "ttyS0 tty0"
DEV = Path("/dev")
_VIRTUAL_TERMINAL = re.compile(r"tty\d*")  # tty0 is the screen's terminal in front
AGETTY_RELOAD_TIMEOUT_S = 30.0


def parse_consoles(active: str) -> list[str]:
    """The kernel's consoles from `/sys/class/tty/console/active` ("ttyS0 tty0") (pure)."""
    return active.split()


def parse_serial_consoles(active: str) -> list[str]:
    """The serial ones ("ttyS0 tty0" -> ["ttyS0"]): every kernel console that is not a virtual
    terminal (pure)."""
    return [name for name in parse_consoles(active) if not _VIRTUAL_TERMINAL.fullmatch(name)]


def read_consoles(active: Path = CONSOLES_ACTIVE) -> list[str]:
    """The kernel's consoles now ([] when the file cannot be read)."""
    try:
        return parse_consoles(active.read_text(encoding="ascii", errors="replace"))
    except OSError:
        return []


def render_block(text: str) -> bytes:
    """`text` as one block for a terminal in any output mode: it starts on a line of its own
    (a prompt may be waiting on the last one) and every line ends CR LF."""
    lines = text.rstrip("\n").split("\n")
    return ("\r\n" + "".join(f"{line}\r\n" for line in lines)).encode("utf-8", errors="replace")


def open_terminal(path: Path, flags: int) -> int:
    """`path` opened without waiting for a modem's carrier (a serial port without CLOCAL would
    block the open), then blocking again for the writes."""
    fd = os.open(path, flags | os.O_NOCTTY | os.O_CLOEXEC | os.O_NONBLOCK)
    os.set_blocking(fd, True)
    return fd


def write_whole(fd: int, data: bytes) -> None:
    """`data` in one write() call (the rest after a short write, which a blocking terminal makes
    only when a signal interrupts it)."""
    while data:
        done = os.write(fd, data)
        data = data[done:]


def show_on_consoles(
    text: str,
    names: Sequence[str] | None = None,
    dev: Path = DEV,
    *,
    reload_prompts: bool = True,
) -> list[str]:
    """`text` as one whole block on every console the kernel writes to (or `names` under
    `dev`), then the login prompts waiting there are printed again below it (agetty --reload).
    Returns the consoles it reached; never raises (the journal has the text too)."""
    reached = []
    for name in read_consoles() if names is None else names:
        try:
            fd = open_terminal(dev / name, os.O_WRONLY)
        except OSError as err:
            log.debug("consoles: %s cannot be opened: %s", name, err.strerror)
            continue
        try:
            write_whole(fd, render_block(text))
            reached.append(name)
        except OSError as err:
            log.debug("consoles: %s cannot be written: %s", name, err.strerror)
        finally:
            os.close(fd)
    if reload_prompts and reached:
        try:
            run(["agetty", "--reload"], check=False, timeout=AGETTY_RELOAD_TIMEOUT_S)
        except InstallerError as err:  # no agetty here: no prompt to print again either
            log.debug("consoles: %s", err.message)
    return reached
