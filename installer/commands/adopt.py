"""`clawdie-setup adopt --seed FILE`: apply an INSTALL_MODE=adopt seed to this installed box (or
the one under `--root`): the fingerprint and the box's ADOPT_CODE must match (DESIGN §10);
blanks are filled, safe settings changed, identity changes only with ALLOW_IDENTITY_CHANGE=yes;
every key is reported as applied, kept or refused, and the Telegram admin is told. Without
`--seed`, the seed partition of a stick in the box is read.

A signed release (FILE and FILE.minisig) next to the seed is applied after the seed passed the
gate and its keys were applied, as `clawdie-setup update FILE` applies it; the receipt says
`update: <name> <old> → <new> applied`, `update refused: <reason>` or `rolled back: <cause>`.

`--at-boot` is how the appliance's clawdie-adopt.service runs it when a seed stick appears (at
boot or plugged in later): a stick whose seed is not INSTALL_MODE=adopt, or a box whose first boot
has not completed, is left alone (exit 0) — a fresh seed is never read again. The outcome is then
shown on the box's consoles (the screen and the serial console) as one whole block, with the
login prompts printed again below it.

Exit codes: 0 done (refused keys are in the report), 1 refused (wrong box, invalid seed; nothing
changed) or a step failed, 2 no readable seed, 3 PostgreSQL not ready in time.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from installer.commands._target_options import (
    add_target_arguments,
    firstboot_config,
    platform_command,
    receipt_from_args,
)

HELP = "apply an INSTALL_MODE=adopt seed to an installed box (fill blanks, safe changes)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=Path, help="setup.txt to adopt (default: the stick's)")
    parser.add_argument(
        "--at-boot",
        action="store_true",
        help="as the appliance's unit runs it: do nothing (exit 0) unless the stick's seed is "
        "INSTALL_MODE=adopt and this box's first boot has completed",
    )
    add_target_arguments(parser, platform_verb="restarts (when its settings changed)")
    release = parser.add_argument_group("a release next to the seed (applied behind the gate)")
    release.add_argument(
        "--release-start",
        metavar="CMD",
        help="command that starts the platform during the update (default on the box: "
        "systemctl past this unit's ordering; in a --root sandbox: none)",
    )
    release.add_argument(
        "--release-stop",
        metavar="CMD",
        help="command that stops it (default on the box: systemctl stop; sandbox: none)",
    )


def run(args: argparse.Namespace) -> int:
    from installer.adopt.run import AdoptRun, is_installed
    from installer.faults import arm_from_environment
    from installer.paths import TargetPaths
    from installer.seed.io import read_seed_file, read_seed_on_stick
    from installer.seed.resolve import seed_mode

    arm_from_environment()
    config = firstboot_config(args, args.seed)
    paths = TargetPaths(config.root)
    if args.at_boot and not is_installed(paths):
        print("adopt: first boot has not completed on this box; the stick is left alone")
        return 0
    seed = read_seed_file(args.seed) if args.seed is not None else read_seed_on_stick()
    if seed_mode(seed.data) == "reset":  # a factory reset from a stick, through the same gate
        from installer.adopt.reset_stick import ResetFromStick
        from installer.commands._backup_options import resetter

        stop = ("systemctl", "stop", "clawdie.service") if paths.is_live_system else None
        receipt = receipt_from_args(args, paths.is_live_system)
        from installer.consoles import show_on_consoles

        show = show_on_consoles if args.at_boot and paths.is_live_system else None
        return ResetFromStick(config, paths, seed, receipt, resetter(stop), show).execute()
    if args.at_boot and seed_mode(seed.data) != "adopt":
        print(
            f"adopt: {seed.description} holds a seed without INSTALL_MODE=adopt: ignored "
            "(an installed box never reads a fresh seed again)"
        )
        return 0
    live = paths.is_live_system
    from installer.commands._update_options import stick_updater
    from installer.consoles import show_on_consoles

    return AdoptRun(
        config,
        seed,
        restart=platform_command(args, ("systemctl", "try-restart", "clawdie.service")),
        receipt=receipt_from_args(args, live),
        # the unit's output goes to the journal only: the outcome reaches the box's consoles
        # as one block (a login prompt may be waiting there: a stick plugged in later)
        show=show_on_consoles if args.at_boot and live else None,
        updater=stick_updater(
            config.root,
            config.db.admin_conninfo,
            shlex.split(args.release_start) if args.release_start else None,
            shlex.split(args.release_stop) if args.release_stop else None,
        ),
    ).execute()
