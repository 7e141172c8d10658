"""`clawdie-setup factory-reset` (root, at a terminal): remove everything first boot and the
platform made, leaving a box that waits for a seed as after a fresh install. It asks for the
box's host name to be typed; `--yes-i-typed HOSTNAME` is that answer for a script.

Exit codes: 0 reset, 1 failed (run it again to finish), 2 wrong use or not confirmed.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from installer.commands._backup_options import add_box_arguments, require_root
from installer.errors import UsageError

HELP = "erase what first boot and the platform made; the box waits for a seed (root)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--yes-i-typed",
        metavar="HOSTNAME",
        help="the box's host name, as the question at a terminal asks for (for scripts)",
    )
    parser.add_argument(
        "--wipe",
        action="store_true",
        help="for handing the machine over: erase the whole disk the system runs from "
        "(discard, else zeros over every byte), then power off",
    )
    parser.add_argument(
        "--no-poweroff", action="store_true", help="with --wipe: do not power off (tests)"
    )
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument("--platform-stop", metavar="CMD", help="command that stops the platform")
    stop.add_argument("--no-platform-stop", action="store_true", help="leave it alone")
    add_box_arguments(parser)


def confirmed(host: str, typed: str | None) -> bool:
    if typed is not None:
        return typed.strip() == host
    if not sys.stdin.isatty():
        raise UsageError(
            "factory-reset asks for the host name at a terminal, and this is not one",
            f"from a script, confirm with --yes-i-typed {host}",
        )
    print(
        f"This erases the assistant on {host}: its databases, settings, data, keys and "
        "accounts. It cannot be undone (make a backup first: clawdie-setup backup).",
        file=sys.stderr,
    )
    answer = input(f"Type the host name ({host}) to erase it: ")
    return answer.strip() == host


def run(args: argparse.Namespace) -> int:
    from installer import faults
    from installer.backup.make import read_host
    from installer.backup.reset import PHASES, ResetConfig, factory_reset
    from installer.paths import TargetPaths
    from installer.tracker import StepTracker

    faults.arm_from_environment()  # CLAWDIE_FIRSTBOOT_FAULT: the tests' power cuts
    require_root("factory-reset")
    host = read_host(TargetPaths(args.root))
    if args.wipe:
        return wipe_disk(args, host)
    if not confirmed(host, args.yes_i_typed):
        raise UsageError(
            "the host name was not typed as it is: nothing was erased",
            f"type {host} exactly (it is on the login screen)",
        )
    stop: tuple[str, ...] | None = ("systemctl", "stop", "clawdie.service")
    if args.no_platform_stop:
        stop = None
    elif args.platform_stop:
        stop = tuple(shlex.split(args.platform_stop))
    tracker = StepTracker(
        "Clawdie factory reset",
        PHASES,
        "run clawdie-setup factory-reset again",
        say=lambda line: print(line, file=sys.stderr),
    )
    done = factory_reset(ResetConfig(args.root, args.db_admin, stop), tracker)
    print(f"Factory reset of {host}: done. Removed:")
    print("\n".join(f"  - {line}" for line in done))
    print("The box waits for a seed: boot it with a stick holding setup.txt.")
    return 0


def wipe_disk(args: argparse.Namespace, host: str) -> int:
    """`--wipe`: the disk holding the root found first (a refusal erases nothing), the host
    name typed, then the whole disk erased and the machine powered off."""
    from installer.backup.wipe import root_disk, wipe

    disk = root_disk(args.root)
    print(
        f"--wipe erases the WHOLE disk {disk.node} ({disk.size:,} bytes) this system runs "
        "from: the system itself, every setting, key and row. The machine then powers off and "
        "boots no more until it is installed again.",
        file=sys.stderr,
    )
    if not confirmed(host, args.yes_i_typed):
        raise UsageError(
            "the host name was not typed as it is: nothing was erased",
            f"type {host} exactly (it is on the login screen)",
        )
    done = wipe(
        args.root, lambda line: print(line, file=sys.stderr), power_off=not args.no_poweroff
    )
    print(f"Wipe of {host}: done.")
    print("\n".join(f"  - {line}" for line in done))
    return 0
