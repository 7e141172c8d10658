"""Factory reset (DESIGN §9): everything first boot and the platform made goes, and the box
waits for a seed as after a fresh install.

The platform stops; its databases and role are dropped; its settings (/etc/clawdie, but the
image's own version file), its data (the service account's home), the SSH host keys and the TLS
pair (new ones are made, as the installer does), the network and Wi-Fi files (the PSK), the
sshd and unit drop-ins, the login-screen notices, the accounts first boot made and root's state
(stamps, seed copy, answers, summaries, the adopt code's hash, the fingerprint record, the
Telegram queue, log bundles) are removed. Every file is overwritten as it is deleted
(installer/fsutil.py `remove_at`), so its content is not left in freed blocks. What the disk
installer made stays: its install record and the install-complete mark.

A flat list of named phases (`PHASES`) under one tracker, each with its fault point
(`before:reset-<phase>`); a run cut short is finished by running it again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from installer import faults
from installer.envfile import read_env_file
from installer.errors import InstallerError
from installer.firstboot.platform_db import DATABASES
from installer.fsutil import remove_at, remove_durably
from installer.paths import TargetPaths
from installer.run import run
from installer.tracker import PlannedStep, StepTracker

log = logging.getLogger("clawdie.reset")

PHASES = (
    PlannedStep("reset-stop", "stopping the platform", 120.0),
    PlannedStep("reset-databases", "dropping the platform's databases and role", 300.0),
    PlannedStep("reset-files", "removing settings, data, keys and network files", 900.0),
    PlannedStep("reset-accounts", "removing the accounts first boot made", 60.0),
    PlannedStep("reset-state", "removing root's state; new host keys", 120.0),
)
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ResetError(InstallerError):
    """The reset could not finish; running it again finishes it."""


@dataclass(frozen=True)
class ResetConfig:
    root: Path
    admin_conninfo: str
    stop: Sequence[str] | None = ("systemctl", "stop", "clawdie.service")


def scrub_tree_at(parent_fd: int, name: str, keep: frozenset[str] = frozenset()) -> int:
    """Delete `name` (a directory, file or link) in the open directory, everything below it
    first, each file overwritten as it goes (`remove_at`); no link is followed. Entries named
    in `keep` (directly inside `name`) stay, and so does the directory then. Returns how many
    files were removed."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        return 1 if remove_at(parent_fd, name) else 0
    fd = os.open(name, _DIR, dir_fd=parent_fd)
    removed = 0
    try:
        for child in sorted(os.listdir(fd)):
            if child not in keep:
                removed += scrub_tree_at(fd, child)
        os.fsync(fd)
    finally:
        os.close(fd)
    if not keep:
        with contextlib.suppress(OSError):
            os.rmdir(name, dir_fd=parent_fd)
    return removed


def scrub_path(path: Path, keep: frozenset[str] = frozenset()) -> int:
    """`scrub_tree_at` for a path whose parents root owns."""
    try:
        parent = os.open(path.parent, _DIR)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return 0
        raise
    try:
        return scrub_tree_at(parent, path.name, keep)
    finally:
        os.close(parent)


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
    try:
        role = read_env_file(paths.system_env).get("PLATFORM_DB_ROLE") or "clawdie"
    except (OSError, ValueError):
        role = "clawdie"  # an earlier run removed system.env already: the default's role

    faults.fault_point("before:reset-stop")
    track.begin("reset-stop")
    if config.stop is not None:
        result = run(list(config.stop), check=False, timeout=120)
        done.append(f"platform stopped ({' '.join(config.stop)}: exit {result.returncode})")

    faults.fault_point("before:reset-databases")
    track.begin("reset-databases")
    done += _drop_databases(config.admin_conninfo, role)

    faults.fault_point("before:reset-files")
    track.begin("reset-files")
    files = scrub_path(paths.config_dir, keep=frozenset({paths.image_version.name}))
    files += scrub_path(paths.service_home)
    for path in single_files(paths):
        if path.is_symlink():
            path.unlink()
            files += 1
        elif remove_durably(path):
            files += 1
    done.append(
        f"{files} files overwritten and removed (/etc/clawdie, platform data, SSH host keys, TLS "
        "pair, network and Wi-Fi files)"
    )
    done.append(_default_upkeep(paths))

    faults.fault_point("before:reset-accounts")
    track.begin("reset-accounts")
    done += [f"account {name}" for name in _remove_accounts(paths)]

    faults.fault_point("before:reset-state")
    track.begin("reset-state")
    kept = frozenset({paths.install_record.name, paths.install_complete.name})
    scrub_path(paths.setup_state_dir, keep=kept)
    done.append(
        "root's state (stamps, seed copy, summaries, adopt code, queue); install record kept"
    )
    done += _new_host_keys(paths)
    return done


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
