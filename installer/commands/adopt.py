"""`clawdie-setup adopt --seed FILE`: apply an INSTALL_MODE=adopt seed to this installed box (or
the one under `--root`): the fingerprint must match; blanks are filled, safe settings changed,
identity changes only with ALLOW_IDENTITY_CHANGE=yes; every key is reported as applied, kept or
refused. Without `--seed`, the seed partition of a stick in the box is read.

Exit codes: 0 done (refused keys are in the report), 1 refused (wrong box, invalid seed; nothing
changed) or a step failed, 2 no readable seed, 3 PostgreSQL not ready in time.
"""

from __future__ import annotations

import argparse
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
    add_target_arguments(parser, platform_verb="restarts (when its settings changed)")


def run(args: argparse.Namespace) -> int:
    from installer.faults import arm_from_environment
    from installer.firstboot.adopt import AdoptRun
    from installer.paths import TargetPaths
    from installer.seed.io import read_seed_file, read_seed_on_stick

    arm_from_environment()
    config = firstboot_config(args, args.seed)
    seed = read_seed_file(args.seed) if args.seed is not None else read_seed_on_stick()
    live = TargetPaths(config.root).is_live_system
    return AdoptRun(
        config,
        seed,
        restart=platform_command(args, ("systemctl", "try-restart", "clawdie.service")),
        receipt=receipt_from_args(args, live),
    ).execute()
