"""`clawdie-setup install`: on the booted installer stick, install the appliance onto the
internal disk, then restart into it (first boot runs there).

Prints `CLAWDIE-INSTALL-DONE` on success (before the restart) and
`CLAWDIE-INSTALL-FAILED: <reason>` on failure (before the power-off wait).
Exit codes and status words: installer/status.py.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "install the appliance from the installer stick onto the internal disk"

# Kernel interface, not configuration: the boot's command line (clawdie.console_wait=N).
PROC_CMDLINE = Path("/proc/cmdline")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from installer.install.flow import DEFAULT_SQUASHFS

    parser.add_argument(
        "--squashfs",
        type=Path,
        default=DEFAULT_SQUASHFS,
        help=f"the live system to copy (default {DEFAULT_SQUASHFS})",
    )
    parser.add_argument(
        "--seed", type=Path, help="setup.txt to use instead of the one on the seed partition"
    )
    parser.add_argument(
        "--receipt-dir", type=Path, help="write SETUP-RESULT.txt here instead of on the stick"
    )
    parser.add_argument(
        "--console-wait",
        type=float,
        metavar="SECONDS",
        help="how long to wait for someone at the console (default: clawdie.console_wait= on "
        "the kernel command line, else 120)",
    )
    parser.add_argument(
        "--failure-wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="after a failure, power off after this long (default 60)",
    )
    parser.add_argument("--no-reboot", action="store_true", help="do not restart when installed")
    parser.add_argument("--no-poweroff", action="store_true", help="do not power off on failure")
    testing = parser.add_argument_group("testing")
    testing.add_argument(
        "--no-bootloader",
        action="store_true",
        help="do not mount the EFI partition nor install grub (tests on kernels without vfat)",
    )
    testing.add_argument(
        "--mount-dir", type=Path, help="mount the new root here (default: a fresh temp dir)"
    )
    testing.add_argument(
        "--live-root",
        type=Path,
        default=Path("/"),
        help="the live system's root, where etc/clawdie/image-version is read (default /)",
    )
    testing.add_argument(
        "--only-disk",
        action="append",
        dest="only_disks",
        metavar="DISK",
        help="consider only this disk (repeatable); the boot medium is then not looked for",
    )


def console_wait(args: argparse.Namespace) -> float:
    from installer.install.console import DEFAULT_CONSOLE_WAIT_S, parse_console_wait

    if args.console_wait is not None:
        return float(args.console_wait)
    try:
        found = parse_console_wait(PROC_CMDLINE.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        found = None
    return DEFAULT_CONSOLE_WAIT_S if found is None else found


def run(args: argparse.Namespace) -> int:
    from installer.install.console import Console, syslog_handler
    from installer.install.flow import InstallConfig, InstallRun
    from installer.redact import add_filter
    from installer.wizard.asker import console_asker

    journal = syslog_handler()
    if journal is not None:
        journal.setLevel(logging.INFO)  # DEBUG lines go to the log bundle, not the journal
        logging.getLogger("clawdie").addHandler(add_filter(journal))
    wait = console_wait(args)
    config = InstallConfig(
        squashfs=args.squashfs,
        seed=args.seed,
        receipt_dir=args.receipt_dir,
        console_wait=wait,
        failure_wait=args.failure_wait,
        reboot=not args.no_reboot,
        poweroff=not args.no_poweroff,
        bootloader=not args.no_bootloader,
        mount_dir=args.mount_dir,
        live_root=args.live_root,
        only_disks=tuple(args.only_disks) if args.only_disks else None,
    )
    # the stick's own system: its serial consoles are asked too (a run over a test root is not)
    live = args.live_root.resolve() == Path("/") and args.only_disks is None
    console = Console.standard(journal, live=live)
    return InstallRun(config, console, console_asker(wait)).execute()
