"""`clawdie-setup install-platform SEED`: put the platform on a running Debian 12 host (never the
OS), then run first boot against it with the same stamps, report and receipt. Run as root.

The host is checked first (release, architecture, free space, PostgreSQL or apt to install it,
systemd) and the operator's own login found; nothing is installed when either fails. Then what
the platform needs goes in, each part only when it differs (a second run writes nothing):
Debian's PostgreSQL when absent (apt-get), the installer's locked venv (installer/venv.py, the
image's recipe), the platform payload, the units, and the platform's lines in PostgreSQL's
pg_hba.conf/pg_ident.conf; with `--release-key FILE` the platform publisher's public key (so the
host takes signed releases: `clawdie-setup update`), with `--update-channel URL` the channel it
asks daily. Over an existing installation, a seed with INSTALL_MODE=adopt is
adopted; any other seed changes nothing.

Exit codes: 0 done (or already done), 1 the host or the seed cannot be used, or a step failed,
2 no readable seed, 3 PostgreSQL not ready in time, 4 the platform did not start.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
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
        "--overlay",
        type=Path,
        default=CHECKOUT / "iso/overlay",
        help="the image's overlay folder, with the units (default: the checkout's)",
    )
    parser.add_argument(
        "--release-key",
        type=Path,
        metavar="FILE",
        help="the platform publisher's minisign public key (.pub): the host takes signed "
        "releases (default: none, every release is refused)",
    )
    parser.add_argument(
        "--update-channel",
        metavar="URL",
        help="the update channel the host asks daily for a newer release (https://…/)",
    )
    add_target_arguments(parser, platform_verb="starts")


def run(args: argparse.Namespace) -> int:
    from installer.adopt.run import AdoptRun, is_installed
    from installer.faults import arm_from_environment
    from installer.firstboot.runner import FirstbootRun
    from installer.host import existing as host
    from installer.host import payload
    from installer.paths import SERVICE_NAME, TargetPaths
    from installer.run import run as run_command
    from installer.seed.io import read_seed_file
    from installer.seed.resolve import check_seed_bytes, seed_mode
    from installer.update.signed import install_public_key, read_public_key
    from installer.update_channel import install_channel
    from installer.venv import VenvSource, install_venv

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
    service = SERVICE_NAME
    if check.resolved is not None:
        service = check.resolved.accounts.service_account
        host.refuse_taken_service_account(paths, service, operator)
    key = read_public_key(args.release_key) if args.release_key else None
    channel = _channel(args.update_channel)
    unit_files = host.read_host_files(args.overlay)
    source = VenvSource.find(CHECKOUT)
    with tempfile.TemporaryDirectory(prefix="clawdie-platform-") as work:
        ready = payload.prepare(paths, args.platform, key, Path(work))
        start = list(ready.release.start)
        skip = () if facts.postgres_versions else ("postgresql",)  # install_postgresql's
        packages = payload.missing_needs(paths, ready.release, skip=skip)
        payload.fetch_needs(paths, packages)  # refused here: nothing installed yet
        postgres_installed = ""
        if not facts.postgres_versions:
            postgres_installed = host.install_postgresql(paths)
            facts = host.read_host_facts(paths)
        pg_access = host.find_platform_cluster(paths, config.db.port)
        payload.install_needs(paths, packages)
        wrote, _ = install_venv(
            source,
            config.root,
            _scratch(Path(work) / "venv"),
            arch=host.ARCHITECTURES[facts.machine],
            compile_site=compile_site if paths.is_live_system else None,
        )
        changed = int(wrote)
        changed += host.install_payload(paths, ready.folder)
    if key is not None:
        changed += install_public_key(paths.config_dir, key)
    if channel is not None:
        changed += install_channel(paths.config_dir, channel, "install-platform --update-channel")
    units, rules = host.install_units(paths, unit_files, start)
    access = host.ensure_postgres_access(pg_access, service)
    if units and paths.is_live_system:
        run_command(["systemctl", "daemon-reload"])
        run_command(["systemctl", "start", *host.TIMERS])
    if rules and paths.is_live_system and shutil.which("udevadm"):  # (a container has none)
        run_command(["udevadm", "control", "--reload"], check=False)
    if access and paths.is_live_system:
        run_command(["systemctl", "reload", pg_access.unit])
    record = host.host_record(
        facts,
        operator,
        changed + units + rules + access,
        postgres_installed,
        packages=tuple(packages),
        payload_how=ready.how,
    )
    return FirstbootRun(config, receipt=receipt, preamble={"host": record}).execute()


def _channel(given: str | None) -> str | None:
    from installer.errors import UsageError
    from installer.update.channel import check_channel_url

    if given is None:
        return None
    try:
        return check_channel_url(given)
    except ValueError as err:
        raise UsageError(
            f"--update-channel: {err}", "give the channel's https:// address"
        ) from None


def compile_site(site: Path) -> None:
    """The venv's bytecode, compiled by the host's own python3 (the one the venv runs)."""
    from installer.run import run as run_command

    run_command(["/usr/bin/python3", "-m", "compileall", "-q", "-j", "0", str(site)], timeout=600)


def _scratch(folder: Path) -> Path:
    folder.mkdir()
    return folder
