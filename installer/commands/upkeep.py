"""`clawdie-setup upkeep`: how the box's security updates and backups went (DESIGN §9), one line
each, and what of it needs fixing; as root it also draws the login screen again with them. Run
after each apt-daily run (its units' drop-ins) and after each scheduled backup.

`--weekly-report` (clawdie-weekly-report.timer, Mondays inside the update window) also sends the
Telegram admin one message: the status, those lines and the platform's release and update
channel (installer.update.weekly); offline, it waits in the Telegram queue.

Exit codes: 0 whether or not something is to fix (a `degraded` box: a failed backup, a failed
update run, packages held back; the `To fix:` lines say it), 2 wrong use.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from installer.commands._target_options import TELEGRAM_API_ENV, telegram_api

HELP = "how security updates and backups went; redraws the login screen (root)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path("/"), help="target root (default /)")
    parser.add_argument(
        "--weekly-report",
        action="store_true",
        help="also send the weekly report to the Telegram admin (queued when offline)",
    )
    parser.add_argument(
        "--telegram-api",
        metavar="URL",
        help=f"test only: Telegram Bot API base URL (default: ${TELEGRAM_API_ENV}, else the real "
        "API on the installed system, none in a --root sandbox)",
    )


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
    if args.weekly_report:
        from installer.update.weekly import send_weekly

        print(f"weekly report to the Telegram admin: {send_weekly(paths, telegram_api(args))}")
    return 0
