"""Fault injection for the power-cut and failure tests of first boot and the disk installer.

`CLAWDIE_FIRSTBOOT_FAULT=<point>` (first boot) and `CLAWDIE_INSTALL_FAULT=<point>` (the disk
installer) kill the process with SIGKILL (no cleanup, like a power cut) when execution reaches
that point; `fail:<point>` raises `InjectedFailure` there instead, as a failing step would;
`hold:<point>` waits there (a slow step) until the file named by CLAWDIE_FAULT_RELEASE exists,
at most HOLD_LIMIT_S seconds, then goes on. Only
firstboot, adopt, install-platform, install, update, rollback, backup, restore and
factory-reset arm it; any other command ignores the variables. Points: `before:<step>` for every
step of a run (installer/steps.py runs them), `effects:<step>` (effects durable, stamp not yet
written) and `stamped:<step>` for a stamped one, and `mid-write:<file name>` (half the temp file
written, not renamed); adopt adds
`before:adopt-done`; a restore adds `mid:restore-database-<name>` (part of a dump fed to
pg_restore, nothing committed).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from installer.errors import InstallerError

FAULT_VARIABLE = "CLAWDIE_FIRSTBOOT_FAULT"
INSTALL_FAULT_VARIABLE = "CLAWDIE_INSTALL_FAULT"
FAIL_PREFIX = "fail:"
HOLD_PREFIX = "hold:"
RELEASE_VARIABLE = "CLAWDIE_FAULT_RELEASE"
HOLD_LIMIT_S = 600.0
_armed: str | None = None


class InjectedFailure(InstallerError):
    """A failure the tests injected at a named point."""


def arm_from_environment(variable: str = FAULT_VARIABLE) -> None:
    """Called by the commands that change a target: firstboot, adopt and install-platform
    (CLAWDIE_FIRSTBOOT_FAULT), and install (CLAWDIE_INSTALL_FAULT)."""
    global _armed
    _armed = os.environ.get(variable) or None


def fault_point(name: str) -> None:
    """Die here, as in a power cut, or fail here, if this point is the armed one."""
    if _armed is None:
        return
    if _armed == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if _armed == HOLD_PREFIX + name:
        hold(name)
    if _armed == FAIL_PREFIX + name:
        raise InjectedFailure(
            f"a failure was injected at {name} ({FAIL_PREFIX}{name})",
            "this is a test: unset CLAWDIE_FIRSTBOOT_FAULT and CLAWDIE_INSTALL_FAULT",
        )


def hold(name: str) -> None:
    """Wait at `name` until the release file exists (bounded): a step that takes its time."""
    release = os.environ.get(RELEASE_VARIABLE)
    if not release:
        raise InjectedFailure(
            f"a hold was injected at {name} but {RELEASE_VARIABLE} names no release file",
            f"this is a test: set {RELEASE_VARIABLE} to the file that ends the hold",
        )
    deadline = time.monotonic() + HOLD_LIMIT_S
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
