"""The console during an install: one progress line per step on standard output (and in the
journal through syslog), the exact markers a boot test waits for, questions that give up after a
bounded wait, and a countdown any key stops.

A question is asked on tty1 and on every serial console the kernel writes to (console=ttyS0):
a box with only a serial cable sees it and answers it as a person at the keyboard does, and the
first line typed on either one is the answer. While a question waits, its lines go to the serial
console directly (not through journald's forwarding, which would duplicate them and could print
them after the prompt); the journal still records them, at a priority it does not forward.
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from installer.consoles import CONSOLES_ACTIVE, open_terminal, parse_serial_consoles
from installer.errors import InstallerError
from installer.qr import QUIET_ZONE, SMALL_QUIET_ZONE, render_qr
from installer.run import run
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
KEYBOARD_WORDS = "this machine's keyboard (tty1)"
JOURNAL_SYNC_TIMEOUT_S = 10.0
KERNEL_PRINTK = Path("/proc/sys/kernel/printk")
QUIET_PRINTK_LEVEL = "1"  # while a question waits, only a kernel emergency reaches the consoles

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


@dataclass(frozen=True)
class Terminal:
    """Another console a question is asked on and answered from: a serial console."""

    name: str  # ttyS0
    fd: int  # open for reading and writing

    @property
    def words(self) -> str:
        return f"the serial console ({self.name})"


def set_line_mode(fd: int) -> None:
    """A terminal as a person types a line on it: each line on Enter (CR read as a newline),
    echoed, output newlines as CR LF; the line speed is left as the kernel console set it."""
    attrs = termios.tcgetattr(fd)
    attrs[0] = (attrs[0] | termios.ICRNL) & ~(termios.IGNCR | termios.INLCR)
    attrs[1] |= termios.OPOST | termios.ONLCR
    attrs[2] |= termios.CLOCAL | termios.CREAD  # no modem lines: a bare serial cable
    attrs[3] |= termios.ICANON | termios.ECHO | termios.ECHOE
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def open_serial_consoles(
    active: Path = CONSOLES_ACTIVE, dev: Path = Path("/dev")
) -> list[Terminal]:
    """The serial consoles the kernel writes to, opened for a question (none when there is
    none, or one cannot be opened: a port without a chip behind it)."""
    try:
        names = parse_serial_consoles(active.read_text(encoding="ascii", errors="replace"))
    except OSError:
        return []
    opened = []
    for name in names:
        try:
            fd = open_terminal(dev / name, os.O_RDWR)
        except OSError as err:
            log.debug("install: serial console %s cannot be opened: %s", name, err.strerror)
            continue
        try:
            set_line_mode(fd)
        except termios.error:
            os.close(fd)
            continue
        opened.append(Terminal(name, fd))
    return opened


@contextlib.contextmanager
def quiet_kernel(printk: Path | None) -> Iterator[None]:
    """The kernel's console log level lowered to emergencies only for the block (a question
    waits), then set back; nothing when `printk` is None or cannot be written."""
    if printk is None:
        yield
        return
    try:
        saved = printk.read_text(encoding="ascii").split()
        printk.write_text(QUIET_PRINTK_LEVEL + "\n", encoding="ascii")
    except (OSError, IndexError):
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError, IndexError):
            printk.write_text(saved[0] + "\n", encoding="ascii")


def sync_journal() -> None:
    """journald has taken (and forwarded to the console) every line logged before this call:
    `journalctl --sync` (systemd 249 and later wait for the queued messages too). Never raises:
    at worst a line arrives a moment late."""
    try:
        run(["journalctl", "--sync"], check=False, timeout=JOURNAL_SYNC_TIMEOUT_S)
    except InstallerError as err:
        log.debug("install: %s", err.message)


class _NotForwarded(logging.Filter):
    """A line already written on the serial console: the journal keeps it at debug priority,
    which journald does not forward to the console (MaxLevelConsole=info)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "on_serial", False):
            record.levelname = "DEBUG"  # the syslog priority; its level still passes handlers
        return True


class Console:
    """Progress lines and questions. `fd` is the keyboard (None: nobody can answer there),
    `serials` the serial consoles a question is asked on too. With a `screen` (a terminal),
    progress lines go on the repainted progress screen; questions and countdowns pause it and
    are plain lines. `printk`: the kernel's log level file, lowered while a question waits."""

    def __init__(
        self,
        out: TextIO,
        fd: int | None = None,
        journal: logging.Handler | None = None,
        screen: ProgressScreen | None = None,
        serials: Sequence[Terminal] = (),
        printk: Path | None = None,
        settle: Callable[[], object] | None = None,
    ) -> None:
        self.out = out
        # before a question's first line on the serial consoles: journald has forwarded there
        # every line logged before it (journalctl --sync), so they arrive in order
        self.settle = settle
        self.fd = fd
        self.screen = screen
        self.serials = list(serials)
        self.printk = printk
        self.answered_on = ""  # where the last answer was typed (words)
        self._plain = 0  # inside a question's block: lines go to the serial consoles directly
        # read past the end of the last line, per input (pipes deliver several lines at once)
        self._typed: dict[int, bytes] = {}
        self._journal = logging.getLogger(CONSOLE_LOGGER)
        self._journal.propagate = False  # the line is on the console already
        self._journal.setLevel(logging.INFO)
        self._journal.handlers = [journal] if journal is not None else []
        self._journal.filters = [_NotForwarded()]

    @classmethod
    def standard(cls, journal: logging.Handler | None = None, *, live: bool = False) -> Console:
        """stdout, stdin when it is a terminal, and on the `live` stick (the installer's own
        system, as root) the kernel's serial consoles too."""
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        screen = ProgressScreen(sys.stdout) if wants_screen(sys.stdout) else None
        live = live and os.geteuid() == 0 and KERNEL_PRINTK.exists()
        return cls(
            sys.stdout,
            sys.stdin.fileno() if interactive else None,
            journal,
            screen,
            serials=open_serial_consoles() if live else (),
            printk=KERNEL_PRINTK if live else None,
            settle=sync_journal if live else None,
        )

    @property
    def interactive(self) -> bool:
        return self.fd is not None or bool(self.serials)

    def where(self) -> str:
        """Where a question can be answered, in words ("" when nowhere)."""
        places = ([f"on {KEYBOARD_WORDS}"] if self.fd is not None else []) + [
            f"on {serial.words}" for serial in self.serials
        ]
        return " or ".join(places)

    def _inputs(self) -> list[tuple[int, str]]:
        keyboard = [(self.fd, KEYBOARD_WORDS)] if self.fd is not None else []
        return keyboard + [(serial.fd, serial.words) for serial in self.serials]

    def _to_serials(self, text: str, but: str = "") -> None:
        """`text` on every serial console (`but` the one named so); one that fails is dropped
        (a port gone)."""
        for serial in list(self.serials):
            if serial.words == but:
                continue
            try:
                os.write(serial.fd, text.encode("utf-8", errors="replace"))
            except OSError as err:
                log.debug("install: %s dropped: %s", serial.words, err.strerror)
                self.serials.remove(serial)

    def line(self, text: str) -> None:
        """Print `text` exactly (markers), or show it on the progress screen, and send it to the
        journal; inside a question's block on the serial consoles too (directly, see above)."""
        if self.screen is not None and self.screen.showing:
            self.screen.note(text)
        else:
            print(text, file=self.out, flush=True)
        direct = self._plain > 0 and bool(self.serials)
        if direct:
            self._to_serials(text + "\n")
        self._journal.info(text, extra={"on_serial": direct})

    @contextlib.contextmanager
    def plain(self) -> Iterator[None]:
        """Plain lines for the block (a question and what it lists): the screen is paused, the
        lines go to the serial consoles directly, the kernel's messages wait."""
        with (
            self.screen.paused() if self.screen is not None else contextlib.nullcontext(),
            quiet_kernel(self.printk if self._plain == 0 else None),
        ):
            if self._plain == 0 and self.serials and self.settle is not None:
                self.settle()
            self._plain += 1
            try:
                yield
            finally:
                self._plain -= 1

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
        """The first line typed on any console within `timeout` seconds, or None (no console,
        nothing typed, every input at its end); `answered_on` says where it was typed."""
        inputs = dict(self._inputs())
        deadline = time.monotonic() + timeout
        while True:
            for fd, words in inputs.items():
                if b"\n" in self._typed.get(fd, b""):
                    line, self._typed[fd] = self._typed[fd].split(b"\n", 1)
                    self.answered_on = words
                    return line.decode(errors="replace").strip()
            left = deadline - time.monotonic()
            if left <= 0 or not inputs:
                return None
            ready, _, _ = select.select(list(inputs), [], [], left)
            for fd in ready:
                try:
                    chunk = os.read(fd, 1024)
                except OSError:  # a serial port gone (EIO): it answers no more
                    chunk = b""
                if chunk:
                    self._typed[fd] = self._typed.get(fd, b"") + chunk
                else:
                    del inputs[fd]  # its end: nobody answers there

    def ask(self, prompt: str, timeout: float) -> str | None:
        """Show `prompt` with the time left on every console and read the first answer (None
        when none came)."""
        if not self.interactive:
            return None
        text = f"{prompt} ({timeout:.0f} s) "
        with self.plain():
            self._journal.info(
                "install: question on the console: %s (%.0f s)",
                prompt,
                timeout,
                extra={"on_serial": bool(self.serials)},
            )
            print(text, end="", file=self.out, flush=True)
            self._to_serials(text)
            answer = self.read_line(timeout)
            if answer is None:
                print("", file=self.out, flush=True)
                self._to_serials("\n")
            else:
                self._answered_elsewhere(answer)
        return answer

    def _answered_elsewhere(self, answer: str) -> None:
        """The other consoles see the answer and where it came from; the journal records it."""
        said = f"{answer!r} (typed on {self.answered_on})\n"
        if self.answered_on != KEYBOARD_WORDS:
            print(said, end="", file=self.out, flush=True)
        self._to_serials(said, but=self.answered_on)
        self._journal.info(
            "install: answered on %s", self.answered_on, extra={"on_serial": bool(self.serials)}
        )

    def countdown(self, text: str, seconds: float, step: float = COUNTDOWN_STEP_S) -> bool:
        """Say `text`, then the time left every `step` seconds, for `seconds`; True when a key
        stopped it. Input already typed stops it too. On a terminal one key press does; from a
        pipe any input does; with no keyboard (or after its end) it only waits."""
        with self.plain():
            self.say(text)
            if any(self._typed.values()):
                self._typed = {}
                return True
            keyboards = [fd for fd, _ in self._inputs()]
            with contextlib.ExitStack() as stack:
                for fd in keyboards:
                    stack.enter_context(single_keys(fd))
                return self._count(seconds, step, keyboards)

    def _count(self, seconds: float, step: float, keyboards: list[int]) -> bool:
        deadline = time.monotonic() + seconds
        marks = countdown_marks(seconds, step)
        while (left := deadline - time.monotonic()) > 0:
            wait = max(0.0, left - marks[0]) if marks else left
            if not keyboards:
                time.sleep(wait)
            else:
                for fd in select.select(keyboards, [], [], wait)[0]:
                    try:
                        key = os.read(fd, 1024)
                    except OSError:
                        key = b""
                    if key:
                        return True
                    keyboards.remove(fd)  # its end: nobody can stop it from there any more
            if marks and deadline - time.monotonic() <= marks[0]:
                self.say(f"{marks.pop(0):.0f} s left — press any key to stop")
        return False

    def wait_for_enter(self, timeout: float) -> None:
        """Wait up to `timeout` seconds, less when Enter is pressed on any console."""
        if not self.interactive:
            time.sleep(max(0.0, timeout))
            return
        self.read_line(timeout)
