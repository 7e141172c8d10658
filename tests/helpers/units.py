"""systemd's own reading of our units (`systemd-analyze verify`), with nothing of this machine's
unit path: what it says about the named unit, less the lines about a program that is installed
only on the box (our clawdie-setup, wpa_supplicant)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def unit_problems(unit: Path, mentioning: str, absent_program: str) -> list[str]:
    """The lines `systemd-analyze verify` writes about `unit` (read from its own folder) that
    mention `mentioning`, except those naming `absent_program`."""
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"SYSTEMD_UNIT_PATH": f"{unit.parent}:", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
    )
    return [
        line
        for line in result.stderr.splitlines()
        if mentioning in line and absent_program not in line
    ]
