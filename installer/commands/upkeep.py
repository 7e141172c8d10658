"""`clawdie-setup upkeep`: how the box's security updates and backups went (DESIGN §9), one line
each, and what of it needs fixing; as root it also draws the login screen again with them. Run
after each apt-daily run (its units' drop-ins) and after each scheduled backup.

Exit codes: 0 whether or not something is to fix (a `degraded` box: a failed backup, a failed
update run, packages held back; the `To fix:` lines say it), 2 wrong use.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = "how security updates and backups went; redraws the login screen (root)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path("/"), help="target root (default /)")


def run(args: argparse.Namespace) -> int:
    from installer.firstboot.steps.report import refresh_login_screen
    from installer.paths import TargetPaths
    from installer.upkeep import read_upkeep

    paths = TargetPaths(args.root)
    upkeep = read_upkeep(paths)
    print("\n".join(upkeep.lines))
    for problem in upkeep.problems:
        print(f"To fix: {problem}")
    if os.geteuid() == 0:
        refresh_login_screen(paths)
    return 0
