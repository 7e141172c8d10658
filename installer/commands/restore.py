"""`clawdie-setup restore FILE --identity-file KEY` (root, on a fresh install): the box a backup
was made of, back as a service: its host name, SSH host keys, TLS pair, fingerprint, adopt code,
operator, bot and every database row. The identity (AGE-SECRET-KEY-1…) is read from a file or
standard input (`-`), never from an argument. A restore of the same backup cut part way (a power
cut, a kill) is finished by running it again.

Exit codes: 0 restored, 1 refused (nothing changed) or failed, 2 wrong use.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from installer.commands._backup_options import add_box_arguments, read_identity, require_root

HELP = "restore a backup onto this fresh box with the owner's age identity (root)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backup", type=Path, metavar="FILE", help="the .backup.age file")
    parser.add_argument(
        "--identity-file",
        required=True,
        metavar="KEY",
        help="the owner's age identity file (`-`: read it from standard input)",
    )
    add_box_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from installer import faults
    from installer.backup.restore import PHASES, RestoreConfig, restore_backup
    from installer.firstboot.config import DbConfig
    from installer.tracker import StepTracker

    faults.arm_from_environment()  # CLAWDIE_FIRSTBOOT_FAULT: the tests' power cuts
    require_root("restore")
    config = RestoreConfig(
        root=args.root,
        db=DbConfig(args.db_admin, args.db_host, args.db_port, args.db_timeout_ms),
        backup=args.backup,
        identity=read_identity(args.identity_file),
    )
    tracker = StepTracker(
        "Clawdie restore",
        PHASES,
        "restore again onto a fresh install",
        say=lambda line: print(line, file=sys.stderr),
    )
    result = restore_backup(config, tracker)
    print("\n".join(result.lines))
    return 0
