"""The options `update` and `rollback` share: the target root, the admin connection, where
pg_dump is, and how to stop and start the platform (systemctl on the box; a sandbox root leaves
it alone unless told). Not a command: the command layer's private helper."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from installer.update.run import UpdateConfig


def add_update_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path("/"), help="target root (default /)")
    parser.add_argument(
        "--db-admin",
        default="host=/run/postgresql user=postgres dbname=postgres",
        help="libpq connection string of the admin (no password: root's peer mapping)",
    )
    parser.add_argument("--pg-bindir", type=Path, help="where pg_dump and pg_restore are")
    parser.add_argument("--platform-start", metavar="CMD", help="command that starts it")
    parser.add_argument("--platform-stop", metavar="CMD", help="command that stops it")


def update_config(args: argparse.Namespace, *, allow_downgrade: bool = False) -> UpdateConfig:
    from installer.firstboot.config import DbConfig
    from installer.update.run import UpdateConfig

    live = Path(args.root).resolve() == Path("/")
    start = shlex.split(args.platform_start) if args.platform_start else None
    stop = shlex.split(args.platform_stop) if args.platform_stop else None
    return UpdateConfig(
        root=args.root,
        db=DbConfig(admin_conninfo=args.db_admin),
        pg_bindir=args.pg_bindir,
        start=start or (("systemctl", "start", "clawdie.service") if live else None),
        stop=stop or (("systemctl", "stop", "clawdie.service") if live else None),
        reload=("systemctl", "daemon-reload") if live else None,
        allow_downgrade=allow_downgrade,
    )
