"""Step 4, accounts: the service account (a system user), root locked, the SSH key, the hashed
fallback password, and the sshd drop-in. Uses Debian's own tools against the target root;
passwords travel only as hashes on chpasswd's standard input."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from installer.fsutil import ensure_dir, write_atomic
from installer.paths import TargetPaths
from installer.run import run
from installer.stamps import StepRecord
from installer.steps import StepContext, log

NAME = "accounts"
HOME = "/var/lib/clawdie"


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str


def read_account(passwd: Path, name: str) -> Account | None:
    """The entry for `name` in a passwd file, or None."""
    if not passwd.exists():
        return None
    for line in passwd.read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] == name:
            return Account(name, int(fields[2]), int(fields[3]), fields[5])
    return None


def read_shadow_hash(shadow: Path, name: str) -> str | None:
    """The password field of `name` in a shadow file, or None."""
    if not shadow.exists():
        return None
    for line in shadow.read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 2 and fields[0] == name:
            return fields[1]
    return None


def _prefix(paths: TargetPaths) -> list[str]:
    return [] if paths.is_live_system else ["--prefix", str(paths.root)]


def _chroot(paths: TargetPaths) -> list[str]:
    return [] if paths.is_live_system else ["--root", str(paths.root)]


def ensure_service_account(paths: TargetPaths, name: str) -> tuple[Account, bool]:
    """The service account, created as a system user with home /var/lib/clawdie if missing."""
    account = read_account(paths.passwd, name)
    if account is not None:
        return account, False
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


def hash_system_password(password: str) -> str:
    """sha512-crypt, accepted by `chpasswd -e` and every PAM on Debian."""
    from passlib.hash import sha512_crypt

    return str(sha512_crypt.hash(password))


def ensure_password(paths: TargetPaths, name: str, password: str) -> bool:
    """Set the account's fallback password (as a hash) unless it already verifies."""
    from passlib.hash import sha512_crypt

    current = read_shadow_hash(paths.shadow, name) or ""
    if current.startswith("$6$") and sha512_crypt.verify(password, current):
        return False
    hashed = hash_system_password(password)
    run(["chpasswd", "--encrypted", *_chroot(paths)], stdin_secret=f"{name}:{hashed}\n")
    return True


def ensure_authorized_key(paths: TargetPaths, account: Account, key: str) -> bool:
    """~/.ssh/authorized_keys of the account holds exactly the seed's key (0700 / 0600)."""
    ssh_dir = paths.home_path(account.home) / ".ssh"
    ensure_dir(ssh_dir, 0o700, account.uid, account.gid)
    return write_atomic(
        ssh_dir / "authorized_keys", f"{key}\n", mode=0o600, uid=account.uid, gid=account.gid
    )


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
    name = ctx.require("SERVICE_ACCOUNT")
    created: list[str] = []
    skipped: list[str] = []

    # Records state what holds now, so a run resumed after a power cut reports the same.
    account, _ = ensure_service_account(paths, name)
    created.append(f"service account {name} (system user, home {account.home})")
    home = paths.home_path(account.home)
    ensure_dir(home, 0o750, account.uid, account.gid)
    ensure_root_locked(paths)
    created.append("root account locked (no password login)")

    key = ctx.value("SSH_AUTHORIZED_KEY")
    if key:
        ensure_authorized_key(paths, account, key)
        created.append(f"SSH key for {name} ({key.split()[0]})")
    else:
        skipped.append("SSH key: none in setup.txt (SSH_AUTHORIZED_KEY)")

    password = ctx.value("CLAWDIE_USER_PASSWORD")
    if password:
        ensure_password(paths, name, password)
        created.append(
            f"fallback password for {name} (stored as a hash); SSH password login for {name} only"
        )
    else:
        skipped.append("fallback password: none in setup.txt, so SSH password login stays off")
    write_atomic(paths.sshd_dropin, render_sshd_dropin(name, bool(password)))
    if paths.is_live_system:
        run(["systemctl", "try-reload-or-restart", "ssh.service"], check=False)
    log.info("accounts: %s", "; ".join(created) or "nothing to change")
    return StepRecord(created=tuple(created), skipped=tuple(skipped))
