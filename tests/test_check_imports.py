"""`clawdie-setup check` runs on an operator's laptop and starts cold: it must not import the
appliance's heavy or Linux-only libraries (issue 2). No timing here: bench/ measures that."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("textual", "psycopg", "pyudev", "rich")

PROBE = f"""
import sys
from installer.cli import main
code = main(["check", "seed/demo-setup.txt"])
print(code, sorted(m for m in sys.modules if m.split(".")[0] in {set(FORBIDDEN)!r}))
"""


def test_check_imports_none_of_the_heavy_libraries() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "0 []"
