"""`clawdie-setup backup --to DIR --recipient age1…` (root on the box): the box's own state,
encrypted to the owner's public key(s), into DIR (a stick, a second disk), rotated (7 daily, 4
weekly). The file name says the host and the date.

`clawdie-setup backup --scheduled` (clawdie-backup.timer): the same, to the owner's keys in
BACKUP_RECIPIENT, into BACKUP_DIR and onto a CLAWDIE-BACKUP stick, as root's own record says
(installer/backup/scheduled.py); the outcome is recorded and the login screen rewritten.

Exit codes: 0 written (or backups off), 1 failed (nothing left half-written), 2 wrong use.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from installer.commands._backup_options import add_box_arguments, read_key_file, require_root
from installer.errors import UsageError

HELP = "back up this box, encrypted to the owner's age key(s) (root)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--to", type=Path, metavar="DIR", help="where it goes")
    parser.add_argument(
        "--scheduled",
        action="store_true",
        help="the daily backup: keys and places from setup.txt (BACKUP_RECIPIENT, BACKUP_DIR, "
        "a CLAWDIE-BACKUP stick)",
    )
    parser.add_argument(
        "--recipient",
        action="append",
        default=[],
        metavar="AGE1…",
        help="the owner's age public key (repeat for more owners)",
    )
    parser.add_argument(
        "--recipients-file", metavar="FILE", help="age public keys, one a line (`-`: stdin)"
    )
    parser.add_argument("--no-rotate", action="store_true", help="keep every older backup")
    add_box_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from installer import faults
    from installer.backup.make import PHASES, BackupConfig, make_backup
    from installer.tracker import StepTracker

    faults.arm_from_environment()  # CLAWDIE_FIRSTBOOT_FAULT: the tests' power cuts
    require_root("backup")
    if args.scheduled:
        if args.to or args.recipient or args.recipients_file:
            raise UsageError(
                "--scheduled takes its keys and places from setup.txt",
                "leave out --to and --recipient, or leave out --scheduled",
            )
        return run_scheduled(args)
    if args.to is None:
        raise UsageError("where to? --to DIR", "or --scheduled for the daily backup")
    recipients = list(args.recipient)
    if args.recipients_file:
        recipients.append(read_key_file(args.recipients_file, "recipients file"))
    config = BackupConfig(
        root=args.root,
        admin_conninfo=args.db_admin,
        recipients=tuple(recipients),
        to=args.to,
        rotate=not args.no_rotate,
    )
    tracker = StepTracker(
        "Clawdie backup",
        PHASES,
        "run the backup again",
        say=lambda line: print(line, file=sys.stderr),
    )
    result = make_backup(config, tracker)
    print("\n".join(result.lines()))
    return 0


def run_scheduled(args: argparse.Namespace) -> int:
    from installer.backup.scheduled import run_scheduled as scheduled
    from installer.firstboot.steps.report import refresh_login_screen
    from installer.paths import TargetPaths

    outcome = scheduled(args.root, args.db_admin)
    for item in outcome.written:
        print(f"Backup written: {item.where}: {item.name} ({item.size} bytes)")
    for failure in outcome.failures:
        print(f"Backup failed: {failure}", file=sys.stderr)
    if outcome.note:
        print(f"Backups {outcome.outcome}: {outcome.note}")
    refresh_login_screen(TargetPaths(args.root))
    return 1 if outcome.outcome == "failed" else 0
