"""Factory reset (DESIGN §9): everything first boot and the platform made goes, and the box
waits for a seed as after a fresh install.

The platform stops. Where the box runs its own PostgreSQL cluster (the one the disk installer
made), the cluster goes whole: PostgreSQL stops, every file of its data directory (the WAL with
it), its settings and its log are overwritten as they are deleted, and a new cluster is made as
the installer makes it, so no row of the platform is left in the cluster's files (a DROP
DATABASE leaves its pages in freed blocks and its rows in the WAL; what PostgreSQL freed itself
before the reset is the discard layer's, below). A cluster the box does not own (a sandbox's)
has the platform's databases and role dropped. Then its settings (/etc/clawdie, but the image's
own version file), its data (the service account's home), the SSH host keys and the TLS
pair (new ones are made, as the installer does), the network and Wi-Fi files (the PSK), the
sshd and unit drop-ins, the login-screen notices, the accounts first boot made and root's state
(stamps, seed copy, answers, summaries, the adopt code's hash, the fingerprint record, the
Telegram queue, log bundles) are removed, and the copies the account tools keep of the files
they change (/etc/shadow-, /etc/passwd-, ... and Debian's /var/backups) with the accounts. Every
file is overwritten as it is deleted (installer/fsutil.py `remove_at`), so its content is not
left in freed blocks; then, as a second layer, the file systems' freed blocks are discarded
where the disk takes it (fstrim). What the disk installer made stays: its install record and the
install-complete mark.

A flat list of named phases (`PHASES`) under one tracker, each with its fault point
(`before:reset-<phase>`, and `during:reset-cluster` between the data directory and the rest of
the cluster); a run cut short is finished by running it again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from installer import faults
from installer.backup.cluster import (
    ClusterControl,
    control_for,
    own_cluster,
    replace_cluster,
    scrub_path,
)
from installer.envfile import read_env_file
from installer.errors import InstallerError
from installer.firstboot.platform_db import DATABASES
from installer.fsutil import remove_durably
from installer.paths import TargetPaths
from installer.run import run
from installer.tracker import PlannedStep, StepTracker
from installer.update_channel import CHANNEL_FILE

log = logging.getLogger("clawdie.reset")

PHASES = (
    PlannedStep("reset-stop", "stopping the platform", 120.0),
    PlannedStep("reset-databases", "dropping the platform's databases and role", 300.0),
    PlannedStep("reset-cluster", "replacing the PostgreSQL cluster, its files overwritten", 900.0),
    PlannedStep("reset-files", "removing settings, data, keys and network files", 900.0),
    PlannedStep("reset-accounts", "removing the accounts first boot made", 60.0),
    PlannedStep("reset-state", "removing root's state; new host keys", 120.0),
    PlannedStep("reset-trim", "discarding the file systems' freed blocks", 600.0),
)
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ResetError(InstallerError):
    """The reset could not finish; running it again finishes it."""


@dataclass(frozen=True)
class ResetConfig:
    root: Path
    admin_conninfo: str
    stop: Sequence[str] | None = ("systemctl", "stop", "clawdie.service")
    # how the box's own cluster is stopped, made and started; None: as the root's kind says
    # (`cluster.control_for`)
    cluster: ClusterControl | None = None
    trim: bool = True  # discard freed blocks after (fstrim), where the disk takes it


def _drop_databases(admin: str, role: str | None) -> list[str]:
    import psycopg
    from psycopg import sql

    from installer.firstboot.db.ready import wait_for_db

    wait_for_db(admin, timeout_ms=None, log=log)
    dropped = []
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in DATABASES:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            dropped.append(f"database {name}")
        if role:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            dropped.append(f"role {role}")
    return dropped


def _remove_accounts(paths: TargetPaths) -> list[str]:
    from installer.firstboot.steps.accounts import read_ledger
    from installer.passwd import read_account, read_group_id

    prefix = [] if paths.is_live_system else ["--prefix", str(paths.root)]
    group_file = paths.passwd.with_name("group")
    removed = []
    for name in sorted(read_ledger(paths)):
        if read_account(paths.passwd, name) is not None:
            run(["userdel", *prefix, name], timeout=60)
            removed.append(name)
        # useradd --user-group made it with the account; userdel leaves it where login.defs
        # does not say USERGROUPS_ENAB (and a run cut short between the two leaves it too)
        if read_group_id(group_file, name) is not None:
            run(["groupdel", *prefix, name], timeout=60)
    return removed


def _tls_hash_links(paths: TargetPaths) -> list[Path]:
    certs = paths.tls_cert.parent
    if not certs.is_dir():
        return []
    return [
        link
        for link in certs.iterdir()
        if link.is_symlink() and os.readlink(link) == paths.tls_cert.name
    ]


def single_files(paths: TargetPaths) -> list[Path]:
    """The files a reset removes one by one."""
    found = [
        paths.wired_network,
        paths.wifi_network,
        paths.wifi_supplicant_conf,
        paths.wifi_unit,
        paths.wifi_udev_rule,
        paths.wifi_regdom,
        paths.sshd_dropin,
        paths.platform_unit_dropin,
        paths.issue_file,
        paths.adopt_refused_issue,
        paths.tls_key,
        paths.tls_cert,
        *_tls_hash_links(paths),
    ]
    if paths.ssh_dir.is_dir():
        found += sorted(paths.ssh_dir.glob("ssh_host_*"))
    return found


def _default_upkeep(paths: TargetPaths) -> str:
    """The update window and UPDATES as the image ships them: first boot's writer, with the
    defaults (a box waiting for a seed still takes Debian's security fixes)."""
    from installer.firstboot.steps.upkeep import write_upkeep
    from installer.upkeep import DEFAULT_WINDOW

    write_upkeep(paths.root, DEFAULT_WINDOW, updates=True)
    return f"update window {DEFAULT_WINDOW} and security updates on, as the image ships them"


def factory_reset(config: ResetConfig, tracker: StepTracker | None = None) -> list[str]:
    """Reset the box at `config.root`; returns what was removed, in words."""
    paths = TargetPaths(config.root)
    track = tracker or StepTracker("Clawdie factory reset", PHASES, "run factory-reset again")
    done: list[str] = []
    for phase in PHASES:
        faults.fault_point(f"before:{phase.name}")
        track.begin(phase.name)
        done += _PHASE_RUNS[phase.name](config, paths)
    return done


def _stop(config: ResetConfig, paths: TargetPaths) -> list[str]:  # noqa: ARG001 (a phase)
    if config.stop is None:
        return []
    result = run(list(config.stop), check=False, timeout=120)
    return [f"platform stopped ({' '.join(config.stop)}: exit {result.returncode})"]


def _databases(config: ResetConfig, paths: TargetPaths) -> list[str]:
    """The platform's databases and role, where the cluster is not the box's own (the
    cluster phase replaces that one whole)."""
    if own_cluster(config.root) is not None:
        return []
    try:
        role = read_env_file(paths.system_env).get("PLATFORM_DB_ROLE") or "clawdie"
    except (OSError, ValueError):
        role = "clawdie"  # an earlier run removed system.env already: the default's role
    return _drop_databases(config.admin_conninfo, role)


def _cluster(config: ResetConfig, paths: TargetPaths) -> list[str]:  # noqa: ARG001 (a phase)
    cluster = own_cluster(config.root)
    if cluster is None:
        return []
    return replace_cluster(cluster, config.cluster or control_for(config.root))


def _files(config: ResetConfig, paths: TargetPaths) -> list[str]:  # noqa: ARG001 (a phase)
    # what the image or install-platform put there stays: the image's version, the publisher's key
    # (without it no release would be taken again) and the update channel (a seed's
    # UPDATE_CHANNEL changes it; it is no secret and not trusted: releases are signed)
    kept = frozenset({paths.image_version.name, paths.release_key.name, CHANNEL_FILE})
    files = scrub_path(paths.config_dir, keep=kept)
    files += scrub_path(paths.service_home)
    for path in single_files(paths):
        if path.is_symlink():
            path.unlink()
            files += 1
        elif remove_durably(path):
            files += 1
    return [
        f"{files} files overwritten and removed (/etc/clawdie, platform data, SSH host keys, TLS "
        "pair, network and Wi-Fi files)",
        _default_upkeep(paths),
    ]


def _accounts(config: ResetConfig, paths: TargetPaths) -> list[str]:  # noqa: ARG001 (a phase)
    done = [f"account {name}" for name in _remove_accounts(paths)]
    copies = [path for path in account_file_copies(paths) if remove_durably(path)]
    if copies:
        done.append(
            f"{len(copies)} copies the account tools kept of the account files overwritten "
            f"and removed ({', '.join(p.name for p in copies)})"
        )
    return done


def _state(config: ResetConfig, paths: TargetPaths) -> list[str]:  # noqa: ARG001 (a phase)
    kept = frozenset({paths.install_record.name, paths.install_complete.name})
    scrub_path(paths.setup_state_dir, keep=kept)
    return [
        "root's state (stamps, seed copy, summaries, adopt code, queue); install record kept",
        *_new_host_keys(paths),
    ]


def _trim(config: ResetConfig, paths: TargetPaths) -> list[str]:
    if not config.trim:
        return []
    line = discard_freed_blocks(paths)
    return [line] if line else []


def discard_freed_blocks(paths: TargetPaths) -> str | None:
    """The second layer: the freed blocks discarded (fstrim), on a disk that takes it (an SSD,
    a VM's disk with discard). The overwrites reach only the files there are; the blocks a
    program freed itself before the reset (a table PostgreSQL dropped, a WAL segment it
    removed) only this reaches. Where the disk does not take discard, that is said. None: the
    root is not a mounted file system of its own (a sandbox directory)."""
    root = paths.root
    if not paths.is_live_system and not os.path.ismount(root):
        return None
    argv = ["fstrim", "--all"] if paths.is_live_system else ["fstrim", str(root)]
    result = run(argv, check=False, timeout=600)
    if result.returncode == FSTRIM_SOME:  # --all: some file systems took it, some did not
        return "freed blocks discarded (fstrim) where the file system takes it"
    if result.returncode != 0:
        return "freed blocks not discarded (the disk does not take discard); files overwritten"
    return "freed blocks discarded (fstrim)"


FSTRIM_SOME = 64  # fstrim's exit when some file systems were trimmed and some not
_PHASE_RUNS = {
    "reset-stop": _stop,
    "reset-databases": _databases,
    "reset-cluster": _cluster,
    "reset-files": _files,
    "reset-accounts": _accounts,
    "reset-state": _state,
    "reset-trim": _trim,
}
# The copies shadow's tools keep of each file they change (passwd-, shadow-, ...: the old
# lines, the deleted accounts' hashes with them) and Debian's daily copies in /var/backups.
ACCOUNT_FILES = ("passwd", "group", "shadow", "gshadow", "subuid", "subgid")


def account_file_copies(paths: TargetPaths) -> list[Path]:
    etc = paths.passwd.parent
    backups = paths.root / "var/backups"
    return [
        *(etc / f"{name}-" for name in ACCOUNT_FILES),
        *(backups / f"{name}.bak" for name in ACCOUNT_FILES[:4]),
    ]


def _new_host_keys(paths: TargetPaths) -> list[str]:
    """New SSH host keys and TLS pair, as the disk installer makes them (where the system has
    the tools: not in a sandbox root)."""
    from installer.install.identities import make_ssh_host_keys, make_tls_snakeoil

    host = (
        paths.hostname.read_text(encoding="utf-8").strip() if paths.hostname.exists() else "clawdie"
    )
    return [
        line
        for line in (make_ssh_host_keys(paths.root, host), make_tls_snakeoil(paths.root, host))
        if line
    ]
