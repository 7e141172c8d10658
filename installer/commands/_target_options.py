"""The options `adopt` and `install-platform` share: the target root, how to reach PostgreSQL,
how to (re)start the platform and where the receipt goes.

Not a command: the command layer's private helper (see `_db_options`).
"""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from installer.firstboot.config import DbConfig, FirstbootConfig
from installer.seed.io import Receipt

TELEGRAM_API_ENV = "CLAWDIE_TELEGRAM_API"  # test only, as for `firstboot`


def add_target_arguments(parser: argparse.ArgumentParser, *, platform_verb: str) -> None:
    parser.add_argument("--root", type=Path, default=Path("/"), help="target root (default /)")
    db = parser.add_argument_group("database")
    db.add_argument(
        "--db-admin",
        default="host=/run/postgresql user=postgres dbname=postgres",
        help="libpq connection string used to bootstrap (admin)",
    )
    db.add_argument("--db-host", default="/run/postgresql", help="socket dir or host")
    db.add_argument("--db-port", type=int, default=5432)
    db.add_argument("--db-timeout-ms", type=int, default=None, help="readiness wait bound")
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--platform-start", metavar="CMD", help=f"command that {platform_verb} the platform"
    )
    start.add_argument("--no-platform-start", action="store_true", help="leave it alone")
    parser.add_argument(
        "--receipt-dir", type=Path, help="write SETUP-RESULT.txt here instead of on the stick"
    )
    parser.add_argument(
        "--telegram-api",
        metavar="URL",
        help=f"test only: Telegram Bot API base URL for the admin's message (default: "
        f"${TELEGRAM_API_ENV}, else the real API on the installed system, none in a --root "
        "sandbox)",
    )


def telegram_api(args: argparse.Namespace) -> str | None:
    """The Telegram API base: the option, else the environment's test-only override, else the
    real API on the installed system; None (no message) in a --root sandbox."""
    from installer.online.telegram import DEFAULT_API

    live = Path(args.root).resolve() == Path("/")
    return args.telegram_api or os.environ.get(TELEGRAM_API_ENV) or (DEFAULT_API if live else None)


def platform_command(args: argparse.Namespace, default: tuple[str, ...]) -> tuple[str, ...] | None:
    if args.no_platform_start:
        return None
    return tuple(shlex.split(args.platform_start)) if args.platform_start else default


def firstboot_config(args: argparse.Namespace, seed: Path | None) -> FirstbootConfig:
    # On the running system, a unit file a step changed (the platform's account drop-in) is
    # read again before the platform starts, as `firstboot` does.
    live = Path(args.root).resolve() == Path("/")
    return FirstbootConfig(
        root=args.root,
        seed=seed,
        db=DbConfig(args.db_admin, args.db_host, args.db_port, args.db_timeout_ms),
        platform_start=platform_command(args, ("systemctl", "start", "clawdie.service")),
        units_reload=("systemctl", "daemon-reload") if live else None,
        telegram_api=telegram_api(args),
        wizard="never",
    )


def receipt_from_args(args: argparse.Namespace, live: bool) -> Receipt | None:
    from installer.seed.io import receipt_in_directory, receipt_on_stick

    if args.receipt_dir is not None:
        return receipt_in_directory(args.receipt_dir)
    return receipt_on_stick() if live else None
