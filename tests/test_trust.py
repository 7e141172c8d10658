"""The platform's account must never steer root (DESIGN §4, "State and trust").

After a real first boot (sandbox root, real PostgreSQL): no root-owned file or directory sits in a
directory the service account can write. Then, as the service account (a real process with its
uid), rename everything it can and plant links to system directories where root's state used to
be; first boot run again as the next boot would changes nothing that is not the account's own and
says it is already done. And the one place root writes into the account's home (its SSH key)
replaces a planted link instead of following it.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

from installer.dev.sandbox import make_sandbox_root
from installer.firstboot.steps.accounts import ensure_authorized_key
from installer.fsutil import ensure_dir_at, open_dir, write_atomic_at
from installer.passwd import Account, read_account
from installer.paths import TargetPaths
from tests.helpers.firstboot import SEED, firstboot
from tests.helpers.pg import PgCluster
from tests.helpers.seeds import ED25519, firstboot_box

pytestmark = pytest.mark.root

SYSTEM_PYTHON = Path("/usr/bin/python3")  # readable by any user, unlike a venv under /root

# Runs as the service account, in the target root (its cwd): every entry of every directory the
# account can write is renamed, then links to system directories are planted in its home under
# the names root's state used to have there, and as its SSH directory.
ATTACK = r"""
import os, sys
renamed = 0
for dirpath, dirnames, filenames in os.walk(".", topdown=False):
    if not os.access(dirpath, os.W_OK | os.X_OK):
        continue
    for name in dirnames + filenames:
        try:
            os.rename(os.path.join(dirpath, name), os.path.join(dirpath, name + ".moved"))
            renamed += 1
        except OSError:
            pass
home, system = sys.argv[1], sys.argv[2:]
plants = [".ssh", "firstboot", "seed", "install-summary.txt", "installed.txt", "complete.done"]
for name, target in zip(plants, system * len(plants)):
    os.symlink(target, os.path.join(home, name))
print(f"renamed {renamed}, planted {len(plants)}")
"""


def writable_by(st: os.stat_result, uid: int, gids: set[int]) -> bool:
    mode = st.st_mode
    if st.st_uid == uid:
        return bool(mode & stat.S_IWUSR)
    if st.st_gid in gids:
        return bool(mode & stat.S_IWGRP)
    return bool(mode & stat.S_IWOTH)


def not_owned_by(root: Path, uid: int) -> dict[str, tuple[int, int, str]]:
    """Every entry under `root` the account does not own: owner, mode, content digest."""
    out: dict[str, tuple[int, int, str]] = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        if st.st_uid == uid:
            continue
        if stat.S_ISREG(st.st_mode):
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            content = "-> " + os.readlink(path)
        else:
            content = "dir" if stat.S_ISDIR(st.st_mode) else "other"
        out[str(path.relative_to(root))] = (st.st_uid, stat.S_IMODE(st.st_mode), content)
    return out


def as_account(account: Account, root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run the system Python as the service account, in `root` (reached through a descriptor
    opened as root: the test's temp dirs are closed to other users)."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)

    def drop() -> None:
        os.fchdir(root_fd)
        os.setgroups([])
        os.setgid(account.gid)
        os.setuid(account.uid)

    try:
        return subprocess.run(
            [str(SYSTEM_PYTHON), "-I", "-S", "-c", ATTACK, *argv],
            preexec_fn=drop,  # the point: a real process with the account's uid
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        os.close(root_fd)


@pytest.fixture
def box(tmp_path: Path) -> Path:
    return firstboot_box(tmp_path, SEED)


def test_the_service_account_cannot_steer_root(box: Path, pg: PgCluster) -> None:
    if not SYSTEM_PYTHON.exists():
        pytest.skip(f"needs {SYSTEM_PYTHON} to act as the service account")
    result = firstboot(box, pg)
    assert result.returncode == 0, result.stderr
    root = box / "root"
    paths = TargetPaths(root)
    account = read_account(paths.passwd, "clawdie")
    assert account is not None

    # 1. nothing of root's in a directory the account can write
    gids = {account.gid}
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir() and not p.is_symlink())]:
        if not writable_by(directory.lstat(), account.uid, gids):
            continue
        for entry in directory.iterdir():
            assert entry.lstat().st_uid != 0, f"root owns {entry}, in {directory} (writable)"
    assert paths.setup_state_dir.stat().st_uid == 0
    assert stat.S_IMODE(paths.setup_state_dir.stat().st_mode) == 0o700

    # 2. the account does its worst
    before = not_owned_by(root, account.uid)
    system_dirs = [str(root / "etc"), str(paths.setup_state_dir), str(root / "var/lib")]
    attack = as_account(account, root, "var/lib/clawdie", *system_dirs)
    assert attack.returncode == 0, attack.stderr
    assert "renamed" in attack.stdout
    assert (paths.service_home / ".ssh").is_symlink()

    # 3. the next boot
    again = firstboot(box, pg)
    assert again.returncode == 0, again.stderr
    assert "already completed" in again.stderr
    assert not_owned_by(root, account.uid) == before


def test_a_planted_ssh_link_is_replaced_never_followed(tmp_path: Path) -> None:
    """The accounts step writing the SSH key into a home where `.ssh` is a link to a system
    directory (as a rerun after a power cut would find it): the link is replaced by the
    account's own directory; the system directory keeps its owner, mode and content."""
    root = make_sandbox_root(tmp_path / "root")
    paths = TargetPaths(root)
    system = root / "etc/systemd/system"
    system.mkdir(parents=True)
    (system / "unit.service").write_text("[Unit]\n")
    home = paths.service_home
    home.mkdir(parents=True)
    account = Account("clawdie", 999, 999, "/var/lib/clawdie")
    os.chown(home, 999, 999)
    (home / ".ssh").symlink_to(system)
    before = not_owned_by(root / "etc", 999)

    assert ensure_authorized_key(paths, account, ED25519)

    ssh = home / ".ssh"
    assert ssh.is_dir()
    assert not ssh.is_symlink()
    assert (ssh.stat().st_uid, stat.S_IMODE(ssh.stat().st_mode)) == (999, 0o700)
    assert (ssh / "authorized_keys").read_text() == ED25519 + "\n"
    assert not_owned_by(root / "etc", 999) == before
    assert not (system / "authorized_keys").exists()


def test_a_planted_key_file_link_is_replaced_not_written_through(tmp_path: Path) -> None:
    """`authorized_keys` itself a link to /etc/shadow: the link is replaced, shadow untouched."""
    root = make_sandbox_root(tmp_path / "root")
    paths = TargetPaths(root)
    shadow = (root / "etc/shadow").read_bytes()
    home = paths.service_home
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh/authorized_keys").symlink_to(root / "etc/shadow")
    account = Account("clawdie", 999, 999, "/var/lib/clawdie")

    ensure_authorized_key(paths, account, ED25519)

    keys = home / ".ssh/authorized_keys"
    assert not keys.is_symlink()
    assert keys.read_text() == ED25519 + "\n"
    assert (root / "etc/shadow").read_bytes() == shadow
    assert (root / "etc/shadow").stat().st_uid == 0


def test_directory_helpers_never_follow_a_link(tmp_path: Path) -> None:
    target = tmp_path / "system"
    target.mkdir(mode=0o755)
    base = tmp_path / "home"
    base.mkdir()
    (base / "sub").symlink_to(target)
    with open_dir(base) as fd:
        sub = ensure_dir_at(fd, "sub", 0o700, 4242, 4242)
        try:
            assert write_atomic_at(sub, "f", "x", mode=0o600)
        finally:
            os.close(sub)
    assert (base / "sub").is_dir()
    assert not (base / "sub").is_symlink()
    assert (target.stat().st_uid, stat.S_IMODE(target.stat().st_mode)) == (0, 0o755)
    assert list(target.iterdir()) == []
