"""Fault injection for first boot's power-cut tests.

`CLAWDIE_FIRSTBOOT_FAULT=<point>` kills the process with SIGKILL (no cleanup, like a power cut)
when execution reaches that point. Only `firstboot`, `adopt` and `install-platform` enable it;
any other command ignores the variable. Points: `before:<step>`, `effects:<step>` (effects
durable, stamp not yet written), `stamped:<step>`, and `mid-write:<file name>` (half the temp
file written, not renamed); adopt adds `before:adopt-done`.
"""

from __future__ import annotations

import os
import signal

FAULT_VARIABLE = "CLAWDIE_FIRSTBOOT_FAULT"
_armed: str | None = None


def arm_from_environment() -> None:
    """Called by the commands that change a target: firstboot, adopt, install-platform."""
    global _armed
    _armed = os.environ.get(FAULT_VARIABLE) or None


def fault_point(name: str) -> None:
    """Die here, as in a power cut, if this point is the armed one."""
    if _armed is not None and _armed == name:
        os.kill(os.getpid(), signal.SIGKILL)
