"""The console during an install: one progress line per step on standard output (and in the
journal through syslog), the exact markers a boot test waits for, and questions that give up
after a bounded wait.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import select
import sys
import time
from pathlib import Path
from typing import TextIO

DONE_MARKER = "CLAWDIE-INSTALL-DONE"
FAILED_MARKER = "CLAWDIE-INSTALL-FAILED"
SYSLOG_SOCKET = Path("/dev/log")
SYSLOG_IDENT = "clawdie-install"
DEFAULT_CONSOLE_WAIT_S = 120.0
_CMDLINE_WAIT = re.compile(r"(?:^|\s)clawdie\.console_wait=(\d+(?:\.\d+)?)(?=\s|$)")

log = logging.getLogger("clawdie.install")


def parse_console_wait(cmdline: str) -> float | None:
    """`clawdie.console_wait=N` from a kernel command line (the last one wins), else None."""
    found = _CMDLINE_WAIT.findall(cmdline)
    return float(found[-1]) if found else None


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


def render_failed_marker(reason: str) -> str:
    """The failure marker with the reason on one line (a boot test matches one line)."""
    flat = " ".join(part.strip() for part in reason.splitlines() if part.strip())
    return f"{FAILED_MARKER}: {flat or 'unknown reason'}"


class Console:
    """Progress lines and questions. `fd` is the keyboard (None: nobody can answer)."""

    def __init__(
        self, out: TextIO, fd: int | None = None, journal: logging.Handler | None = None
    ) -> None:
        self.out = out
        self.fd = fd
        self._typed = b""  # read past the end of the last line (pipes deliver several at once)
        self._journal = logging.getLogger("clawdie-install.console")
        self._journal.propagate = False  # the line is on the console already
        self._journal.setLevel(logging.INFO)
        self._journal.handlers = [journal] if journal is not None else []

    @classmethod
    def standard(cls, journal: logging.Handler | None = None) -> Console:
        """stdout, and stdin when it is a terminal."""
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        return cls(sys.stdout, sys.stdin.fileno() if interactive else None, journal)

    @property
    def interactive(self) -> bool:
        return self.fd is not None

    def line(self, text: str) -> None:
        """Print `text` exactly (markers), and send it to the journal."""
        print(text, file=self.out, flush=True)
        self._journal.info(text)

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
        print(f"{prompt} ({timeout:.0f} s) ", end="", file=self.out, flush=True)
        answer = self.read_line(timeout)
        if answer is None:
            print("", file=self.out, flush=True)
        return answer

    def wait_for_enter(self, timeout: float) -> None:
        """Wait up to `timeout` seconds, less when Enter is pressed."""
        if self.fd is None:
            time.sleep(max(0.0, timeout))
            return
        self.read_line(timeout)
