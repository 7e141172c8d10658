"""`clawdie-setup rollback --yes`: back to the release the last update kept, with the platform's
databases as they were just before that update (what the platform wrote since is lost; the
command says so and needs --yes). Exit codes: 0 done, 1 nothing kept or it failed, 2 usage."""

from __future__ import annotations

import argparse

from installer.commands._update_options import add_update_target_arguments, update_config

HELP = "go back to the release the last update replaced (its databases as they were then)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--yes",
        action="store_true",
        help="go ahead: what the platform stored since the update is replaced by the dump",
    )
    add_update_target_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from installer.errors import UsageError
    from installer.faults import arm_from_environment
    from installer.update.run import UpdateRun

    if not args.yes:
        raise UsageError(
            "rollback puts the platform's databases back as they were before the last update: "
            "what it stored since is lost",
            "run it again with --yes to go ahead",
        )
    arm_from_environment()
    return UpdateRun(update_config(args)).rollback().exit_code
