"""The one status model: how an install or a first boot stands, in the same word everywhere
(the summary, SETUP-RESULT.txt, the console, the Telegram message, `--json`), and the exit codes
of every command, which are an interface (README: "Status and exit codes" is this table).

- `ok`: done, nothing to fix;
- `degraded`: works, something to fix (no network, a refused credential, a message that could
  not be sent, a stick whose secrets could not be removed); the summary's status line adds the
  cause when it is the network: `degraded: no network (<reason>)`;
- `failed`: did not finish; the reason names the cause;
- `in progress`: only in the live receipt, rewritten at every step: a receipt that still says it
  long after its step's deadline belongs to a machine that stopped there.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(enum.Enum):
    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"
    IN_PROGRESS = "in progress"

    def __str__(self) -> str:
        return self.value


def settle(failed: bool, problems: int = 0) -> Status:
    """The end status: failed, else degraded when something is left to fix, else ok."""
    if failed:
        return Status.FAILED
    return Status.DEGRADED if problems else Status.OK


# Exit codes. 0 covers `ok` and `degraded` (a degraded run did its job; systemd must not retry it).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNREADABLE = 2  # also: wrong use of the command line
EXIT_DB_NOT_READY = 3
EXIT_PLATFORM_NOT_STARTED = 4
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class ExitCode:
    command: str
    code: int
    status: Status
    meaning: str


EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode("install", EXIT_OK, Status.OK, "installed; the machine restarts into first boot"),
    ExitCode(
        "install", EXIT_OK, Status.DEGRADED, "installed, but SEED_SCRUB could not clean the stick"
    ),
    ExitCode("install", EXIT_FAILED, Status.FAILED, "not installed; the receipt says why"),
    ExitCode("firstboot", EXIT_OK, Status.OK, "done (or already done: seeds are not read again)"),
    ExitCode(
        "firstboot",
        EXIT_OK,
        Status.DEGRADED,
        "done, something to fix (e.g. no network, a refused credential, an unsent message)",
    ),
    ExitCode("firstboot", EXIT_FAILED, Status.FAILED, "the seed is invalid or a step failed"),
    ExitCode("firstboot", EXIT_UNREADABLE, Status.FAILED, "no readable seed"),
    ExitCode(
        "firstboot",
        EXIT_DB_NOT_READY,
        Status.FAILED,
        "PostgreSQL not ready within HOST_DB_READINESS_TIMEOUT_MS (default 60000)",
    ),
    ExitCode("firstboot", EXIT_PLATFORM_NOT_STARTED, Status.FAILED, "the platform did not start"),
    ExitCode("check", EXIT_OK, Status.OK, "the seed is valid (warnings may remain)"),
    ExitCode("check", EXIT_FAILED, Status.FAILED, "the seed is invalid"),
    ExitCode("check", EXIT_UNREADABLE, Status.FAILED, "the seed cannot be read"),
    ExitCode("any command", EXIT_FAILED, Status.FAILED, "failed: one worded line, no traceback"),
    ExitCode("any command", EXIT_UNREADABLE, Status.FAILED, "wrong use of the command line"),
    ExitCode("any command", EXIT_INTERRUPTED, Status.FAILED, "interrupted (Ctrl-C)"),
)


def render_exit_code_table() -> str:
    """The README's table (a test keeps the README equal to it)."""
    rows = ["| command | exit | status | meaning |", "|---|---|---|---|"]
    for e in EXIT_CODES:
        command = e.command if " " in e.command else f"`{e.command}`"
        rows.append(f"| {command} | {e.code} | `{e.status}` | {e.meaning} |")
    return "\n".join(rows) + "\n"
