"""`clawdie-setup telegram-retry`: send the Telegram messages first boot could not send, when
they are due (1, 2, 5, 10, 30 minutes, then hourly; given up after a day). Run every minute by
clawdie-telegram-retry.timer while the queue is not empty. Exit 0 whatever became of the
messages (the journal says it; a message that waits is not a failure of this command)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "send the queued Telegram messages that are due (run by clawdie-telegram-retry.timer)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path("/"), help="target root (default /)")


def run(args: argparse.Namespace) -> int:
    from installer.online.telegram_queue import Retrier
    from installer.paths import TargetPaths

    outcomes = Retrier(TargetPaths(args.root)).run()
    if not outcomes:
        print("telegram retry: nothing queued")
    return 0
