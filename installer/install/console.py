"""The console during an install: one progress line per step on standard output (and in the
journal through syslog), the exact markers a boot test waits for, questions that give up after a
bounded wait, and a countdown any key stops.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import re
import select
import sys
import termios
import textwrap
import time
import tty
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from installer.qr import QUIET_ZONE, SMALL_QUIET_ZONE, render_qr
from installer.screen import HEIGHT, WIDTH, ProgressScreen, wants_screen
from installer.status import Status

DONE_MARKER = "CLAWDIE-INSTALL-DONE"
FAILED_MARKER = "CLAWDIE-INSTALL-FAILED"
SYSLOG_SOCKET = Path("/dev/log")
SYSLOG_IDENT = "clawdie-install"
CONSOLE_LOGGER = "clawdie-install.console"  # the console's lines, for the journal and the bundle
DEFAULT_CONSOLE_WAIT_S = 120.0
COUNTDOWN_STEP_S = 5.0  # a countdown prints the time left this often (a serial console scrolls)
_CMDLINE_WAIT = re.compile(r"(?:^|\s)clawdie\.console_wait=(\d+(?:\.\d+)?)(?=\s|$)")

log = logging.getLogger("clawdie.install")


def parse_console_wait(cmdline: str) -> float | None:
    """`clawdie.console_wait=N` from a kernel command line (the last one wins), else None."""
    found = _CMDLINE_WAIT.findall(cmdline)
    return float(found[-1]) if found else None


JOURNAL_DEBUG_LOGGERS = ("clawdie.seed",)  # their debug lines go to the journal, not the console


class JournalLevels(logging.Filter):
    """The journal's handler: INFO and up from every logger, and DEBUG from `names` too (the seed
    scan's every device: journald keeps them, its console forwarding stops at info)."""

    def __init__(self, names: tuple[str, ...] = JOURNAL_DEBUG_LOGGERS) -> None:
        super().__init__()
        self.names = names

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.INFO:
            return True
        return any(record.name == n or record.name.startswith(f"{n}.") for n in self.names)


def journal_with_debug(handler: logging.Handler) -> logging.Handler:
    """`handler` taking the debug lines of JOURNAL_DEBUG_LOGGERS as well (see JournalLevels)."""
    handler.setLevel(logging.DEBUG)
    handler.addFilter(JournalLevels())
    for name in JOURNAL_DEBUG_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    return handler


def syslog_handler(
    socket: Path = SYSLOG_SOCKET, ident: str = SYSLOG_IDENT
) -> logging.Handler | None:
    """A handler sending to the journal's syslog socket as `ident`, when the socket exists."""
    if not socket.exists():
        return None
    try:
        handler = logging.handlers.SysLogHandler(address=str(socket))
    except OSError as err:
        log.debug("no syslog: %s", err)
        return None
    handler.ident = f"{ident}: "
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


@contextlib.contextmanager
def single_keys(fd: int) -> Iterator[None]:
    """On a terminal, deliver each key as it is pressed (cbreak: no Enter needed, Ctrl-C still
    works) for the block, and restore the terminal's mode after; elsewhere nothing changes."""
    try:
        saved = termios.tcgetattr(fd)
    except termios.error:  # a pipe or a file: every byte arrives as it is written
        yield
        return
    try:
        tty.setcbreak(fd, termios.TCSANOW)  # TCSANOW: a key already pressed is not thrown away
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def countdown_marks(seconds: float, step: float) -> list[float]:
    """The seconds left at which a countdown says so: every `step` below `seconds`, above 0."""
    marks, left = [], seconds - step
    while left > 0 and step > 0:
        marks.append(left)
        left -= step
    return marks


def render_failed_marker(reason: str) -> str:
    """The failure marker with the reason on one line (a boot test matches one line)."""
    flat = " ".join(part.strip() for part in reason.splitlines() if part.strip())
    return f"{FAILED_MARKER}: {flat or 'unknown reason'}"


def render_installed(
    status: Status, lines: Sequence[str], dashboard: str | None, rows: int = HEIGHT - 3
) -> list[str]:
    """The installer's last screen: the status, then `lines` beside a QR code of the dashboard's
    address (at most `rows` rows in all; without the code when it does not fit)."""
    head = [f"Clawdie installer: {status}", ""]
    for border in (QUIET_ZONE, SMALL_QUIET_ZONE):
        if dashboard is None:
            break
        code = render_qr(dashboard, border)
        width = len(code[0])
        beside = [
            row
            for line in lines
            for row in textwrap.wrap(
                line, WIDTH - 2 - width - 1, subsequent_indent="  ", break_on_hyphens=False
            )
        ]
        if len(head) + max(len(code), len(beside)) <= rows:
            code += [""] * (len(beside) - len(code))
            beside += [""] * (len(code) - len(beside))
            return head + [
                f"  {c:<{width}} {t}".rstrip() for c, t in zip(code, beside, strict=True)
            ]
    return head + [
        row for line in lines for row in textwrap.wrap(line, WIDTH, subsequent_indent="  ")
    ]


class Console:
    """Progress lines and questions. `fd` is the keyboard (None: nobody can answer). With a
    `screen` (a terminal), progress lines go on the repainted progress screen; questions and
    countdowns pause it and are plain lines."""

    def __init__(
        self,
        out: TextIO,
        fd: int | None = None,
        journal: logging.Handler | None = None,
        screen: ProgressScreen | None = None,
    ) -> None:
        self.out = out
        self.fd = fd
        self.screen = screen
        self._typed = b""  # read past the end of the last line (pipes deliver several at once)
        self._journal = logging.getLogger(CONSOLE_LOGGER)
        self._journal.propagate = False  # the line is on the console already
        self._journal.setLevel(logging.INFO)
        self._journal.handlers = [journal] if journal is not None else []

    @classmethod
    def standard(cls, journal: logging.Handler | None = None) -> Console:
        """stdout, and stdin when it is a terminal."""
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        screen = ProgressScreen(sys.stdout) if wants_screen(sys.stdout) else None
        return cls(sys.stdout, sys.stdin.fileno() if interactive else None, journal, screen)

    @property
    def interactive(self) -> bool:
        return self.fd is not None

    def line(self, text: str) -> None:
        """Print `text` exactly (markers), or show it on the progress screen, and send it to the
        journal."""
        if self.screen is not None and self.screen.showing:
            self.screen.note(text)
        else:
            print(text, file=self.out, flush=True)
        self._journal.info(text)

    @contextlib.contextmanager
    def plain(self) -> Iterator[None]:
        """Plain lines for the block (a question and what it lists): the screen is paused."""
        with self.screen.paused() if self.screen is not None else contextlib.nullcontext():
            yield

    def failed(self, cause: str, hint: str | None) -> None:
        """The failure, painted last on the progress screen (cause, then hint), where there is
        one; the lines said before already name it everywhere else."""
        if self.screen is not None:
            self.screen.fail(cause, hint)

    def finished(self, status: Status, lines: Sequence[str], dashboard: str | None) -> None:
        """The end of an install that worked: on a terminal, the status and `lines` beside a
        QR code of the dashboard's address (not for the journal: the lines were said there)."""
        if self.screen is not None:
            self.screen.final(render_installed(status, lines, dashboard))

    def say(self, text: str) -> None:
        """One progress line: `install: <text>`."""
        self.line(f"install: {text}")

    def read_line(self, timeout: float) -> str | None:
        """A line typed within `timeout` seconds, or None (no keyboard, nothing typed, EOF)."""
        if self.fd is None:
            return None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._typed:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.fd, 1024)
            if not chunk:
                return None
            self._typed += chunk
        line, self._typed = self._typed.split(b"\n", 1)
        return line.decode(errors="replace").strip()

    def ask(self, prompt: str, timeout: float) -> str | None:
        """Show `prompt` with the time left and read the answer (None when none came)."""
        if self.fd is None:
            return None
        # The journal carries the question to the serial console (journald forwards there),
        # so a box with only a serial cable sees what tty1 is waiting for, and for how long.
        self._journal.info("install: question on the console: %s (%.0f s)", prompt, timeout)
        with self.plain():
            print(f"{prompt} ({timeout:.0f} s) ", end="", file=self.out, flush=True)
            answer = self.read_line(timeout)
            if answer is None:
                print("", file=self.out, flush=True)
        return answer

    def countdown(self, text: str, seconds: float, step: float = COUNTDOWN_STEP_S) -> bool:
        """Say `text`, then the time left every `step` seconds, for `seconds`; True when a key
        stopped it. Input already typed stops it too. On a terminal one key press does; from a
        pipe any input does; with no keyboard (or after its end) it only waits."""
        with self.plain():
            self.say(text)
            if self._typed:
                self._typed = b""
                return True
            if self.fd is None:
                return self._count(seconds, step, None)
            with single_keys(self.fd):
                return self._count(seconds, step, self.fd)

    def _count(self, seconds: float, step: float, keyboard: int | None) -> bool:
        deadline = time.monotonic() + seconds
        marks = countdown_marks(seconds, step)
        while (left := deadline - time.monotonic()) > 0:
            wait = max(0.0, left - marks[0]) if marks else left
            if keyboard is None:
                time.sleep(wait)
            elif select.select([keyboard], [], [], wait)[0]:
                if os.read(keyboard, 1024):
                    return True
                keyboard = None  # the end of the input: nobody can stop it any more
            if marks and deadline - time.monotonic() <= marks[0]:
                self.say(f"{marks.pop(0):.0f} s left — press any key to stop")
        return False

    def wait_for_enter(self, timeout: float) -> None:
        """Wait up to `timeout` seconds, less when Enter is pressed."""
        if self.fd is None:
            time.sleep(max(0.0, timeout))
            return
        self.read_line(timeout)
