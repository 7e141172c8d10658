"""`clawdie-setup firstboot`: apply the seed to a target root, bootstrap the database, report,
start the platform. Run by the first-boot systemd unit; `--root` runs it in a sandbox.

Exit codes and status words: installer.status (README, "Status and exit codes").
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from installer.firstboot.config import DbConfig, FirstbootConfig
from installer.paths import TargetPaths

if TYPE_CHECKING:  # the seed model loads when first boot runs, not for --help
    from installer.seed.resolve import SeedCheck

HELP = "first boot: apply the seed, set up accounts and the database, report, start"
QUEUE_NAME = "first-boot"  # the queued Telegram message's name: one per outcome, the latest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path("/"), help="target root (default /)")
    parser.add_argument("--seed", type=Path, help="setup.txt to use instead of the stored copy")
    db = parser.add_argument_group("database")
    db.add_argument(
        "--db-admin",
        default="host=/run/postgresql user=postgres dbname=postgres",
        help="libpq connection string used to bootstrap (admin)",
    )
    db.add_argument(
        "--db-host", default="/run/postgresql", help="socket dir or host for the platform"
    )
    db.add_argument("--db-port", type=int, default=5432)
    db.add_argument(
        "--db-timeout-ms",
        type=int,
        default=None,
        help="readiness wait bound (default: HOST_DB_READINESS_TIMEOUT_MS or 60000)",
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--platform-start", metavar="CMD", help="command that starts the platform")
    start.add_argument("--no-platform-start", action="store_true", help="do not start it")
    parser.add_argument(
        "--units-reload",
        metavar="CMD",
        help="run before the platform starts when first boot changed a unit file "
        "(default with --root /: systemctl daemon-reload; elsewhere none)",
    )
    report = parser.add_argument_group("report")
    report.add_argument("--telegram-api", metavar="URL", help="Telegram Bot API base URL")
    report.add_argument("--no-telegram", action="store_true", help="send no Telegram message")
    report.add_argument(
        "--receipt-dir", type=Path, help="write SETUP-RESULT.txt here instead of on the stick"
    )
    wizard = parser.add_argument_group("console wizard")
    wizard.add_argument(
        "--wizard",
        choices=("auto", "never"),
        default="auto",
        help="ask on the console for missing fields (auto: when it is a terminal)",
    )
    wizard.add_argument(
        "--wizard-timeout",
        type=float,
        default=900.0,
        help="seconds to wait for someone at the console (default 900)",
    )


def build_config(args: argparse.Namespace) -> FirstbootConfig:
    if args.no_platform_start:
        platform: tuple[str, ...] | None = None
    elif args.platform_start:
        platform = tuple(shlex.split(args.platform_start))
    else:
        platform = ("systemctl", "start", "clawdie.service")
    if args.units_reload:
        units_reload: tuple[str, ...] | None = tuple(shlex.split(args.units_reload))
    elif Path(args.root).resolve() == Path("/"):
        units_reload = ("systemctl", "daemon-reload")
    else:
        units_reload = None
    return FirstbootConfig(
        root=args.root,
        seed=args.seed,
        db=DbConfig(args.db_admin, args.db_host, args.db_port, args.db_timeout_ms),
        platform_start=platform,
        units_reload=units_reload,
        telegram_api=args.telegram_api,
        wizard=args.wizard,
        wizard_timeout=args.wizard_timeout,
    )


def telegram_notifier(
    api: str, paths: TargetPaths
) -> Callable[[SeedCheck], Callable[[str], tuple[bool, str]] | None]:
    """The admin's message: sent when the network allows; with no route or resolver it is
    not tried (no retries against nothing) but queued in root's state directory."""

    def factory(check: SeedCheck) -> Callable[[str], tuple[bool, str]] | None:
        if check.resolved is None:
            return None
        telegram = check.resolved.telegram
        token, admin = telegram.bot_token.get_secret_value(), str(telegram.admin_id)

        def send(text: str) -> tuple[bool, str]:
            from installer.firstboot.netcheck import network_problem
            from installer.firstboot.telegram import forget_queued, queue_message, send_message

            problem = network_problem(api, paths)
            if problem is None:
                sent, why = send_message(token, admin, text, api=api)
                if sent:  # an earlier run's queued message is out of date now
                    forget_queued(paths, QUEUE_NAME)
                return sent, why
            where = queue_message(
                paths, QUEUE_NAME, api=api, chat_id=admin, text=text, reason=problem
            )
            return False, f"no network ({problem}); queued in {where}"

        return send

    return factory


def run(args: argparse.Namespace) -> int:
    from installer.firstboot.runner import FirstbootRun
    from installer.firstboot.telegram import DEFAULT_API
    from installer.screen import ProgressScreen, wants_screen
    from installer.seed.io import (
        FileWriter,
        Receipt,
        files_in_directory,
        files_on_stick,
        receipt_in_directory,
        receipt_on_stick,
    )
    from installer.wizard.asker import console_asker

    if os.environ.get("CLAWDIE_SYSLOG") == "1":  # set by the appliance's first-boot unit
        # The unit gives us tty1 for the wizard; the journal (and so the serial console) gets
        # every log line too.
        from installer.install.console import syslog_handler
        from installer.redact import add_filter

        journal = syslog_handler(ident="clawdie-firstboot")
        if journal is not None:
            journal.setLevel(logging.INFO)  # DEBUG lines go to the log bundle only
            logging.getLogger("clawdie").addHandler(add_filter(journal))
    config = build_config(args)
    paths = TargetPaths(config.root)
    live = paths.is_live_system
    api = None if args.no_telegram else (args.telegram_api or (DEFAULT_API if live else None))
    receipt: Receipt | None = None
    stick_files: FileWriter | None = None
    if args.receipt_dir is not None:
        receipt = receipt_in_directory(args.receipt_dir)
        stick_files = files_in_directory(args.receipt_dir)
    elif live:
        receipt = receipt_on_stick()
        stick_files = files_on_stick()
    asker = console_asker(config.wizard_timeout or 900.0) if config.wizard == "auto" else None
    # On a terminal (tty1 on the box) the progress screen repaints in place; the journal keeps
    # the plain lines. The wizard gets the console while it asks.
    screen = ProgressScreen(sys.stdout) if wants_screen(sys.stdout) else None
    if screen is not None and asker is not None:
        asker = screen.pausing(asker)
    return FirstbootRun(
        config,
        asker=asker,
        notifier_factory=telegram_notifier(api, paths) if api else None,
        receipt=receipt,
        stick_files=stick_files,
        screen=screen,
    ).execute()
