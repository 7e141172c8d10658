"""The one error hierarchy. `cli.main` is the only place that turns these into exit codes.

A user mistake is an `InstallerError`: a message and a hint, shown as such, never a traceback.
"""

from __future__ import annotations

from installer.redact import redact


class InstallerError(Exception):
    """Something the operator can act on. `exit_code` is what the CLI returns for it."""

    exit_code = 1
    # True once the console's progress screen painted it last (installer/screen.py): the CLI
    # does not print it again below, which would scroll that screen away.
    on_screen = False

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(InstallerError):
    """Wrong command-line use (missing file, bad option combination)."""

    exit_code = 2


class SeedUnreadableError(InstallerError):
    """The seed file cannot be read as text at all: missing, too large, binary."""

    exit_code = 2


class CommandFailedError(InstallerError):
    """An external command failed; the message names the (redacted) command and exit code."""

    def __init__(self, argv: list[str], returncode: int, stderr_tail: str = "") -> None:
        self.argv = argv
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        detail = f": {stderr_tail}" if stderr_tail else ""
        super().__init__(f"command failed (exit {returncode}): {' '.join(argv)}{detail}")


class CommandTimeoutError(CommandFailedError):
    """An external command did not finish in its time and was killed."""

    def __init__(self, argv: list[str], timeout: float) -> None:
        super().__init__(argv, -9)
        self.message = f"command timed out after {timeout:g} s and was stopped: {' '.join(argv)}"
        self.args = (self.message,)


class ProgramMissingError(InstallerError):
    """A program the installer runs is not on this system (or cannot be executed)."""

    def __init__(self, program: str, why: str) -> None:
        super().__init__(
            f"the program {program} {why}",
            "the system is missing a package the installer needs; the image or the host "
            "is incomplete",
        )
        self.program = program


def as_installer_error(err: Exception) -> InstallerError:
    """Our error for any failure: ours as it is; anything else worded without a traceback,
    cleaned of every known secret (a bug's message may quote a value)."""
    if isinstance(err, InstallerError):
        return err
    if isinstance(err, OSError) and err.strerror:
        where = f" ({err.filename})" if err.filename else ""
        message = f"a system call failed: {err.strerror}{where}"
    else:
        message = f"unexpected error ({type(err).__name__}: {err})"
    return InstallerError(
        redact(message), "this is a fault in the installer: keep the journal and report it"
    )
