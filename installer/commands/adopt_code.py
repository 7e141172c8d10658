"""`clawdie-setup adopt-code --new` (root on the box): replace the box's adopt code (DESIGN §10).

The new code is shown once, here on the owner's terminal, and sent to the Telegram admin (queued
when offline; the queue file goes once it is sent). From then on the old code is refused. Wrong
codes already counted since the box started still count: a closed adopt opens at the next
reboot.

Exit codes: 0 made, 1 not root or no installation here.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from installer.commands._target_options import TELEGRAM_API_ENV, telegram_api
from installer.errors import UsageError

HELP = "make a new adopt code (root on the box): shown once, sent to the admin; the old one ends"
QUEUE_NAME = "adopt-code"  # one queued message: a newer code replaces an older one's


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--new", action="store_true", required=True, help="make a new code")
    parser.add_argument("--root", type=Path, default=Path("/"), help="target root (default /)")
    parser.add_argument(
        "--telegram-api",
        metavar="URL",
        help=f"test only: Telegram Bot API base URL (default: ${TELEGRAM_API_ENV}, else the "
        "real API on the installed system, none in a --root sandbox)",
    )


def run(args: argparse.Namespace) -> int:
    from installer import redact
    from installer.adopt.run import is_installed, read_host_name
    from installer.firstboot.adopt_code import new_code, render_code_lines
    from installer.online.telegram_queue import tell_admin
    from installer.paths import TargetPaths

    if os.geteuid() != 0:
        raise UsageError("adopt-code needs root", "run it as root on the box: sudo clawdie-setup …")
    paths = TargetPaths(args.root)
    if not is_installed(paths):
        raise UsageError(
            f"there is no installation at {paths.root}: first boot has not completed there",
            "first boot makes the first code; run this on an installed box",
        )
    code = new_code(paths)
    redact.register(code.get_secret_value())  # never in a log line
    lines = render_code_lines(code)
    lines[0] = "New adopt code (shown only here and in the Telegram message to the admin):"
    host = read_host_name(paths)
    text = "\n".join([f"Clawdie on {host}: a new adopt code; the old one is refused.", *lines])
    print("\n".join(lines))  # the owner's terminal: print, not log (the journal never has it)
    told = tell_admin(paths, telegram_api(args), QUEUE_NAME, text, holds_secret=True)
    print(f"The old code is refused from now on. Telegram message to the admin: {told}")
    return 0
