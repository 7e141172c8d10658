"""`clawdie-setup install-platform SEED`: put the platform on a running Debian 12 host (never the
OS), then run first boot against it with the same stamps, report and receipt. Run as root.

The host is checked first (release, architecture, free space, PostgreSQL, systemd) and the
operator's own login found; nothing is installed when either fails. Over an existing
installation, a seed with INSTALL_MODE=adopt is adopted; any other seed changes nothing.

Exit codes: 0 done (or already done), 1 the host or the seed cannot be used, or a step failed,
2 no readable seed, 3 PostgreSQL not ready in time, 4 the platform did not start.
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

HELP = "install the platform on a running Debian 12 host, then run first boot"
CHECKOUT = Path(__file__).resolve().parents[2]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("seed", type=Path, metavar="SEED", help="the filled setup.txt")
    parser.add_argument(
        "--operator-login",
        metavar="NAME",
        help="your own login on this host (default: the one who ran sudo, or the only one)",
    )
    parser.add_argument(
        "--platform",
        type=Path,
        default=CHECKOUT / "iso/reference_platform",
        help="the platform payload folder (default: the reference one)",
    )
    parser.add_argument(
        "--units",
        type=Path,
        default=CHECKOUT / "iso/overlay/etc/systemd/system",
        help="where clawdie.service and clawdie-firstboot.service are",
    )
    add_target_arguments(parser, platform_verb="starts")


def run(args: argparse.Namespace) -> int:
    from installer.faults import arm_from_environment
    from installer.firstboot import host
    from installer.firstboot.adopt import AdoptRun, is_installed
    from installer.firstboot.runner import FirstbootRun
    from installer.paths import TargetPaths
    from installer.run import run as run_command
    from installer.seed.io import read_seed_file
    from installer.seed.resolve import check_seed_bytes, seed_mode

    arm_from_environment()
    config = firstboot_config(args, args.seed)
    paths = TargetPaths(config.root)
    seed = read_seed_file(args.seed)
    receipt = receipt_from_args(args, paths.is_live_system)
    facts = host.check_host(paths)
    operator = host.find_operator_login(paths, args.operator_login)
    if is_installed(paths) and seed_mode(seed.data) == "adopt":
        restart = platform_command(args, ("systemctl", "try-restart", "clawdie.service"))
        return AdoptRun(config, seed, restart=restart, receipt=receipt).execute()
    check = check_seed_bytes(seed.data, name=seed.name)
    if check.resolved is not None:
        service = check.resolved.accounts.service_account
        host.refuse_taken_service_account(paths, service, operator)
    start = host.read_start_command(args.platform)
    changed = host.install_payload(paths, args.platform)
    changed += host.install_units(paths, args.units, start)
    if changed and paths.is_live_system:
        run_command(["systemctl", "daemon-reload"])
    record = host.host_record(facts, operator, changed)
    return FirstbootRun(config, receipt=receipt, preamble={"host": record}).execute()
