"""A stand-in platform for first-boot tests: proves the handoff for real.

Reads the target's /etc/clawdie/system.env, connects to system_ops as the platform role with
DATABASE_URL, looks for the dashboard operator, and writes what it found to `ROOT/platform.out`.
Run as `python -m tests.helpers.fake_platform ROOT`, or (`COMMAND`) with the root in the environment
(`ROOT_ENV`): then the command line carries no path of the run, and what shows it (the summary,
the login screen, which wraps it at 80 columns) is the same for every box.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psycopg

from installer.envfile import parse_env_file

ROOT_ENV = "CLAWDIE_FAKE_PLATFORM_ROOT"
COMMAND = f"{sys.executable} -m tests.helpers.fake_platform"


def main(root: Path) -> int:
    env = parse_env_file((root / "etc/clawdie/system.env").read_text())
    with psycopg.connect(env["DATABASE_URL"], connect_timeout=5) as conn:
        user = conn.execute("SELECT current_user, current_database()").fetchone()
        operators = conn.execute(
            'SELECT count(*) FROM "user" u JOIN account a ON a."userId" = u.id '
            "WHERE a.\"providerId\" = 'credential'"
        ).fetchone()
    assert user is not None
    assert operators is not None
    (root / "platform.out").write_text(
        f"PLATFORM-READY role={user[0]} db={user[1]} operators={operators[0]}\n"
    )
    print("PLATFORM-READY")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else os.environ[ROOT_ENV])))
