"""`clawdie-setup firstboot`: apply the seed to a target root, bootstrap the database, report,
start the platform. Run by the first-boot systemd unit; `--root` runs it in a sandbox.

Exit codes and status words: installer.status (README, "Status and exit codes").
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from installer.firstboot.config import DbConfig, FirstbootConfig
from installer.paths import TargetPaths

if TYPE_CHECKING:
    from pydantic import SecretStr

    from installer.seed.io import Receipt

HELP = "first boot: apply the seed, set up accounts and the database, report, start"
# Test-only overrides of the providers' API bases (the VM test kit sets them in a drop-in of
# clawdie-firstboot.service); setup.txt can never set them.
TELEGRAM_API_ENV = "CLAWDIE_TELEGRAM_API"
OPENROUTER_API_ENV = "CLAWDIE_OPENROUTER_API"


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
    report.add_argument(
        "--telegram-api",
        metavar="URL",
        help=f"test only: Telegram Bot API base URL (default: ${TELEGRAM_API_ENV}, else "
        "the real API on the installed system, none in a --root sandbox)",
    )
    report.add_argument(
        "--openrouter-api",
        metavar="URL",
        help=f"test only: OpenRouter API base URL for the key check (default: "
        f"${OPENROUTER_API_ENV}, else the real API on the installed system, none in a --root "
        "sandbox)",
    )
    report.add_argument(
        "--no-telegram", action="store_true", help="send no Telegram message, check no bot token"
    )
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
        openrouter_api=args.openrouter_api,
        wizard=args.wizard,
        wizard_timeout=args.wizard_timeout,
    )


def api_bases(args: argparse.Namespace, live: bool) -> tuple[str | None, str | None]:
    """(Telegram, OpenRouter) API bases: the option, else the environment's test-only
    override, else the real API on the installed system; None: not used in this run."""
    from installer.online.preflight import OPENROUTER_API
    from installer.online.telegram import DEFAULT_API

    def pick(option: str | None, env: str, real: str) -> str | None:
        return option or os.environ.get(env) or (real if live else None)

    telegram = None if args.no_telegram else pick(args.telegram_api, TELEGRAM_API_ENV, DEFAULT_API)
    openrouter = pick(args.openrouter_api, OPENROUTER_API_ENV, OPENROUTER_API)
    return telegram, openrouter


def run(args: argparse.Namespace) -> int:
    from installer.firstboot.restore_boot import RestoreBoot
    from installer.firstboot.runner import FirstbootRun
    from installer.online.checks import Online
    from installer.screen import ProgressScreen, wants_screen
    from installer.seed.io import (
        FileWriter,
        files_in_directory,
        files_on_stick,
        receipt_in_directory,
        receipt_on_stick,
    )
    from installer.wizard.asker import console_asker

    if os.environ.get("CLAWDIE_SYSLOG") == "1":  # set by the appliance's first-boot unit
        # The unit gives us tty1 for the wizard; the journal (and so the serial console) gets
        # every log line too.
        from installer.install.console import journal_with_debug, syslog_handler
        from installer.redact import add_filter

        journal = syslog_handler(ident="clawdie-firstboot")
        if journal is not None:
            # DEBUG lines go to the log bundle only, but the seed scan's (one a device): the
            # journal keeps them, the serial console (info and up) gets its one summary line
            journal_with_debug(journal)
            logging.getLogger("clawdie").addHandler(add_filter(journal))
    config = build_config(args)
    paths = TargetPaths(config.root)
    live = paths.is_live_system
    telegram_api, openrouter_api = api_bases(args, live)
    config = dataclasses.replace(config, telegram_api=telegram_api)  # an adopt at boot tells
    online = None
    if telegram_api is not None or openrouter_api is not None:
        online = Online(paths, telegram_api, openrouter_api)
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
        online=online,
        receipt=receipt,
        stick_files=stick_files,
        screen=screen,
        when_complete=stick_at_boot,
        restorer=restore_at_boot,
        kinds={"restore": RestoreBoot},
    ).execute()


def restore_at_boot(
    config: FirstbootConfig, backup: Path, name: str, identity: SecretStr
) -> list[str]:
    """A restore seed's first boot: the backup room's one restore (the same as `restore`);
    `backup` is the copy in root's state, `name` the owner's file the receipt names. A restore
    an earlier boot finished (cut before first boot recorded it, the platform not yet started)
    gives its result again."""
    from installer.backup.restore import RestoreConfig, restore_backup

    config_ = RestoreConfig(
        config.root, config.db, backup, identity, name=name, done_is_result=True
    )
    return restore_backup(config_).lines


def stick_at_boot(
    config: FirstbootConfig, paths: TargetPaths, receipt: Receipt | None
) -> int | None:
    """A completed box that starts with a stick: a reset seed resets it (through the adopt
    gate), an adopt seed is adopted, and a release next to it applied behind the same gate;
    any other seed is never read again."""
    from installer.adopt.reset_stick import reset_at_boot
    from installer.adopt.run import adopt_at_boot
    from installer.commands._backup_options import resetter
    from installer.commands._update_options import stick_updater

    # at boot the platform has not started (first boot runs before it): nothing to stop
    reset = reset_at_boot(config, paths, receipt, resetter(None))
    if reset is not None:
        return reset
    updater = stick_updater(config.root, config.db.admin_conninfo)
    return adopt_at_boot(config, paths, receipt, updater)
