"""`clawdie-setup renew-boot-loader`: when a package update changed Debian's signed shim, GRUB
or MokManager, put them on the EFI partition again with the install's own signed install
(installer/install/esp_renewal.py). Run by apt after every dpkg run (`--from-apt`, from
/etc/apt/apt.conf.d/90clawdie-esp): then a failure is logged loudly, recorded in
/var/lib/clawdie-setup/boot-loader.txt and on the login screen, and the exit is 0, so apt and
dpkg carry on. Run by hand it exits 1 on a failure."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "renew the signed boot loader on the EFI partition after a package update (apt runs it)"
JOURNAL_IDENT = "clawdie-boot-loader"

log = logging.getLogger("clawdie.boot-loader")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path("/"), help="target root (default /)")
    parser.add_argument(
        "--from-apt",
        action="store_true",
        help="run as apt's DPkg::Post-Invoke hook: quiet when nothing changed, exit 0 always",
    )


def run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from installer.errors import InstallerError
    from installer.install import esp_renewal
    from installer.install.console import syslog_handler
    from installer.paths import TargetPaths
    from installer.redact import add_filter

    journal = syslog_handler(ident=JOURNAL_IDENT)
    if journal is not None:
        logging.getLogger("clawdie").addHandler(add_filter(journal))
    when = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        outcome = esp_renewal.renew_and_record(TargetPaths(args.root), when)
    except InstallerError as err:
        if not args.from_apt:
            raise
        log.error("boot loader NOT renewed on the EFI partition: %s", err.message)
        if err.hint:
            log.error("  hint: %s", err.hint)
        return 0
    if outcome.result is esp_renewal.Result.RENEWED:
        log.info("%s", outcome.line)
    elif not args.from_apt:
        print(outcome.line)
    return 0
