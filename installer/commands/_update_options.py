"""The options `update` and `rollback` share: the target root, the admin connection, where
pg_dump is, and how to stop and start the platform (systemctl on the box; a sandbox root leaves
it alone unless told); and the update run `adopt` and `firstboot` give the adopt room for a
release on a stick (`stick_updater`). Not a command: the command layer's private helper."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from installer.adopt.stick_release import ReleaseOutcome, Updater
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


# The platform's start during an update from a stick: adopt's unit (and first boot's) is ordered
# before clawdie.service, so a plain `systemctl start` would wait for the very unit that runs the
# update, which waits for the release to be ready. The start goes past that ordering (the
# database it needs is up: adopt waited for it); the platform's own ExecStartPre finds this run's
# lock and leaves the update to it.
STICK_START = ("systemctl", "start", "--job-mode=ignore-dependencies", "clawdie.service")
STICK_STOP = ("systemctl", "stop", "clawdie.service")


def stick_updater(
    root: Path,
    admin_conninfo: str,
    start: Sequence[str] | None = None,
    stop: Sequence[str] | None = None,
) -> Updater:
    """The update room's run for a release an adopt stick carries (`clawdie-setup update FILE`
    on the copy adopt took into root's state): on the box it stops and starts the platform past
    adopt's ordering (`STICK_START`); in a --root sandbox with `start`/`stop` only."""
    from installer.firstboot.config import DbConfig
    from installer.update.run import UpdateConfig

    live = Path(root).resolve() == Path("/")
    config = UpdateConfig(
        root=root,
        db=DbConfig(admin_conninfo=admin_conninfo),
        start=start or (STICK_START if live else None),
        stop=stop or (STICK_STOP if live else None),
        reload=("systemctl", "daemon-reload") if live else None,
    )

    def apply(bundle: Path) -> ReleaseOutcome:
        return apply_release(config, bundle)

    return apply


def apply_release(config: UpdateConfig, bundle: Path) -> ReleaseOutcome:
    """`bundle` applied as `update FILE` applies it, its outcome in the receipt's words. An
    update a power cut left is finished or rolled back first (at boot, the platform's start
    that would do it comes after adopt)."""
    from installer.adopt.stick_release import ReleaseOutcome, refused
    from installer.update.run import UpdateRun
    from installer.update.signed import RefusedError

    update = UpdateRun(config)
    try:
        update.resume(at_boot=True)
        before = update.layout.release(update.layout.current())
        outcome = update.apply(bundle)
    except RefusedError as err:
        return refused(err.message)
    if outcome.status != "applied":
        return ReleaseOutcome(outcome.status, outcome.line)
    now = update.layout.release(update.layout.current())
    return ReleaseOutcome("applied", f"update: {now.name} {before.version} → {now.version} applied")
