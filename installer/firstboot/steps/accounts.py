"""Step 4, accounts: the service account (a system user), root locked, the SSH key, the hashed
fallback password, and the sshd drop-in. Uses Debian's own tools against the target root;
passwords travel only as hashes on chpasswd's standard input."""

from __future__ import annotations

import os
import stat

from installer.errors import InstallerError
from installer.firstboot.context import StepContext, log
from installer.fsutil import (
    ensure_dir_at,
    open_dir,
    remove_stale_temps_at,
    write_atomic,
    write_atomic_at,
)
from installer.passwd import Account, read_account, read_shadow_hash
from installer.paths import TargetPaths
from installer.run import run
from installer.seed.hashes import hash_system_password
from installer.seed.rules import is_sha512_crypt
from installer.stamps import StepRecord
from installer.steps import Step

NAME = "accounts"
LABEL = "the service account and its SSH key"  # what the receipt and the console say
DEADLINE_S = 120.0
HOME = "/var/lib/clawdie"


class AccountTakenError(InstallerError):
    """SERVICE_ACCOUNT names an account that exists and that first boot did not create."""


def read_ledger(paths: TargetPaths) -> set[str]:
    """The accounts first boot created on this target (root's own record)."""
    try:
        return set(paths.accounts_ledger.read_text(encoding="utf-8").split())
    except FileNotFoundError:
        return set()


def record_in_ledger(paths: TargetPaths, name: str) -> None:
    """Note `name` as ours before creating it, so a power cut after `useradd` still knows."""
    ledger = read_ledger(paths)
    if name not in ledger:
        text = "".join(f"{n}\n" for n in sorted({*ledger, name}))
        write_atomic(paths.accounts_ledger, text, mode=0o600)


def _prefix(paths: TargetPaths) -> list[str]:
    return [] if paths.is_live_system else ["--prefix", str(paths.root)]


def _chroot(paths: TargetPaths) -> list[str]:
    return [] if paths.is_live_system else ["--root", str(paths.root)]


def ensure_service_account(paths: TargetPaths, name: str) -> tuple[Account, bool]:
    """The service account, created as a system user with home /var/lib/clawdie if missing.

    An account of that name that first boot did not create belongs to someone else (a person's
    login, another service): it is refused, never adopted, so its home and keys stay its own.
    """
    account = read_account(paths.passwd, name)
    if account is not None:
        if name in read_ledger(paths):
            return account, False
        raise AccountTakenError(
            f"SERVICE_ACCOUNT {name}: an account of that name already exists on this system "
            f"(uid {account.uid}, home {account.home}) and first boot did not create it; it is "
            "not taken over",
            "remove the SERVICE_ACCOUNT line to use the default clawdie, or name an account "
            "that does not exist yet",
        )
    record_in_ledger(paths, name)
    run(
        [
            "useradd",
            *_prefix(paths),
            "--system",
            "--user-group",
            "--home-dir",
            HOME,
            "--no-create-home",
            "--shell",
            "/bin/bash",
            "--comment",
            "Clawdie platform",
            name,
        ]
    )
    created = read_account(paths.passwd, name)
    if created is None:
        raise RuntimeError(f"useradd reported success but {name} is not in {paths.passwd}")
    return created, True


def ensure_root_locked(paths: TargetPaths) -> bool:
    """Lock root's password (no root login by password, ever); False if already locked."""
    current = read_shadow_hash(paths.shadow, "root")
    if current is not None and current.startswith("!"):
        return False
    run(["usermod", *_prefix(paths), "--lock", "root"])
    return True


def ensure_password(paths: TargetPaths, name: str, password: str) -> bool:
    """Set the account's fallback password (as a hash) unless it already verifies. `password`
    may already be its sha512-crypt hash (the installer's seed copy holds no password in
    clear): that hash is set as it is."""
    from passlib.hash import sha512_crypt

    current = read_shadow_hash(paths.shadow, name) or ""
    if is_sha512_crypt(password):
        if current == password:
            return False
        hashed = password
    elif current.startswith("$6$") and sha512_crypt.verify(password, current):
        return False
    else:
        hashed = hash_system_password(password)
    run(["chpasswd", "--encrypted", *_chroot(paths)], stdin_secret=f"{name}:{hashed}\n")
    return True


def ensure_home(paths: TargetPaths, account: Account) -> None:
    """The account's home (0750, its own), made without following a link."""
    with open_dir(paths.home_path(account.home), 0o750, account.uid, account.gid):
        pass


def render_authorized_keys(current: str, key: str) -> str:
    """authorized_keys with `key` added unless a line holds the same key (type and blob); every
    other line kept: a key is added, never put in another's place."""
    wanted = key.split()[:2]
    lines = [line for line in current.splitlines() if line.strip()]
    if any(line.split()[:2] == wanted for line in lines):
        return "".join(f"{line}\n" for line in lines)
    return "".join(f"{line}\n" for line in [*lines, key])


def _read_at(dir_fd: int, name: str) -> str:
    """A file in a directory the account owns, opened without following a link ('' if none)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return ""
    with os.fdopen(fd, encoding="utf-8", errors="replace") as handle:
        return handle.read(1 << 20) if stat.S_ISREG(os.fstat(handle.fileno()).st_mode) else ""


def ensure_authorized_key(paths: TargetPaths, account: Account, key: str) -> bool:
    """~/.ssh/authorized_keys of the account holds the seed's key (0700 / 0600), next to any
    key already there (an adopt run adds keys, never replaces them).

    The home belongs to the account, so everything in it is opened without following a link
    and changed through its descriptor: a `.ssh` planted as a link is replaced, never followed.
    """
    uid, gid = account.uid, account.gid
    with open_dir(paths.home_path(account.home), 0o750, uid, gid) as home:
        ssh = ensure_dir_at(home, ".ssh", 0o700, uid, gid)
        try:
            remove_stale_temps_at(ssh)
            text = render_authorized_keys(_read_at(ssh, "authorized_keys"), key)
            return write_atomic_at(ssh, "authorized_keys", text, mode=0o600, uid=uid, gid=gid)
        finally:
            os.close(ssh)


def has_password(paths: TargetPaths, name: str) -> bool:
    """The account has a usable password hash (its fallback password, set by an earlier run)."""
    return (read_shadow_hash(paths.shadow, name) or "").startswith("$")


def render_sshd_dropin(account: str, password_login: bool) -> str:
    """No root login ever; password login only for the service account, only when it has one."""
    lines = [
        "# Written by clawdie-setup firstboot.",
        "PermitRootLogin no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
    ]
    if password_login:
        # "Match all" ends the block: sshd_config includes this file before its own settings.
        lines += [f"Match User {account}", "    PasswordAuthentication yes", "Match all"]
    return "\n".join(lines) + "\n"


def apply(ctx: StepContext) -> StepRecord:
    paths = ctx.paths
    wanted = ctx.seed.accounts
    name = wanted.service_account
    created: list[str] = []
    skipped: list[str] = []

    # Records state what holds now, so a run resumed after a power cut reports the same.
    account, _ = ensure_service_account(paths, name)
    created.append(f"service account {name} (system user, home {account.home})")
    ensure_home(paths, account)
    ensure_root_locked(paths)
    created.append("root account locked (no password login)")

    key = wanted.ssh_authorized_key
    if key:
        ensure_authorized_key(paths, account, key)
        created.append(f"SSH key for {name} ({key.split()[0]})")
    else:
        skipped.append("SSH key: none in setup.txt (SSH_AUTHORIZED_KEY)")

    password = wanted.user_password
    if password:
        ensure_password(paths, name, password.get_secret_value())
        created.append(
            f"fallback password for {name} (stored as a hash); SSH password login for {name} only"
        )
    elif has_password(paths, name):
        # an adopt run leaves out a password it cannot read back: the one set earlier stays
        created.append(f"fallback password for {name} kept; SSH password login for {name} only")
    else:
        skipped.append("fallback password: none in setup.txt, so SSH password login stays off")
    write_atomic(paths.sshd_dropin, render_sshd_dropin(name, has_password(paths, name)))
    if paths.is_live_system:
        run(["systemctl", "try-reload-or-restart", "ssh.service"], check=False)
    log.info("accounts: %s", "; ".join(created) or "nothing to change")
    return StepRecord(created=tuple(created), skipped=tuple(skipped))


STEP = Step(NAME, LABEL, DEADLINE_S, apply)
