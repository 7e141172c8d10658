"""Restore and reset seeds (issue: INSTALL_MODE=restore|reset) as `clawdie-setup check` reads
them: a restore seed needs the owner's identity and its backup next to setup.txt (named, or the
one there); the settings come from the backup, so the Telegram keys are not required. The
identity is a secret: never shown. The backup is opened by the one media reader."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from installer.errors import SeedUnreadableError
from installer.seed.entry import copy_seed_entry
from tests.helpers.sentinels import BACKUP_IDENTITY, leaked

ROOT = Path(__file__).resolve().parents[1]
NAME = "box-2026-01-31.backup.age"


def check(folder: Path, text: str) -> subprocess.CompletedProcess[str]:
    (folder / "setup.txt").write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "installer.cli", "check", str(folder / "setup.txt"), "--explain"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )


def restore_seed(*lines: str) -> str:
    return "\n".join(["INSTALL_MODE=restore", *lines]) + "\n"


def test_a_restore_seed_with_its_identity_and_one_backup_is_valid(tmp_path: Path) -> None:
    (tmp_path / NAME).write_bytes(b"age")
    result = check(tmp_path, restore_seed(f"BACKUP_IDENTITY={BACKUP_IDENTITY}"))
    assert result.returncode == 0, result.stdout
    assert f"valid restore seed (restores {NAME})" in result.stdout
    assert "BACKUP_IDENTITY=(set, hidden)" in result.stdout
    assert not leaked(result.stdout + result.stderr)


@pytest.mark.parametrize(
    ("files", "lines", "words"),
    [
        ([NAME], [], "BACKUP_IDENTITY: required because INSTALL_MODE=restore"),
        ([], [f"BACKUP_IDENTITY={BACKUP_IDENTITY}"], "no .backup.age file next to setup.txt"),
        (
            [NAME, "other.backup.age"],
            [f"BACKUP_IDENTITY={BACKUP_IDENTITY}"],
            "2 .backup.age files next to setup.txt and none named",
        ),
        (
            [NAME],
            [f"BACKUP_IDENTITY={BACKUP_IDENTITY}", "BACKUP_FILE=gone.backup.age"],
            "BACKUP_FILE: no such file next to setup.txt",
        ),
        (
            [NAME],
            [f"BACKUP_IDENTITY={BACKUP_IDENTITY}", "BACKUP_FILE=../x.backup.age"],
            "not a path",
        ),
        ([NAME], [f"BACKUP_IDENTITY={BACKUP_IDENTITY[:-3]}"], "not an age identity"),
    ],
    ids=["no identity", "no backup", "two backups", "named one missing", "a path", "bad identity"],
)
def test_a_restore_seed_without_what_it_needs_is_refused(
    tmp_path: Path, files: list[str], lines: list[str], words: str
) -> None:
    for name in files:
        (tmp_path / name).write_bytes(b"age")
    result = check(tmp_path, restore_seed(*lines))
    assert result.returncode == 1, result.stdout
    assert words in result.stdout
    assert not leaked(result.stdout + result.stderr)
    assert BACKUP_IDENTITY[:-3] not in result.stdout


def test_a_linked_backup_is_not_a_backup(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"age")
    (tmp_path / NAME).symlink_to(tmp_path / "real")
    result = check(tmp_path, restore_seed(f"BACKUP_IDENTITY={BACKUP_IDENTITY}"))
    assert result.returncode == 1
    assert "no .backup.age file next to setup.txt" in result.stdout


def test_the_telegram_keys_are_the_backups_in_a_restore_seed(tmp_path: Path) -> None:
    (tmp_path / NAME).write_bytes(b"age")
    seed = restore_seed(f"BACKUP_IDENTITY={BACKUP_IDENTITY}", "TELEGRAM_ADMIN_ID=42")
    result = check(tmp_path, seed)
    assert result.returncode == 0, result.stdout
    assert "TELEGRAM_ADMIN_ID: a restore takes this from the backup" in result.stdout
    assert "TELEGRAM_BOT_TOKEN" not in result.stdout


def test_restore_keys_in_a_fresh_seed_are_warned_about(tmp_path: Path) -> None:
    from tests.helpers.seeds import valid

    result = check(tmp_path, valid(f"BACKUP_IDENTITY={BACKUP_IDENTITY}").decode())
    assert "BACKUP_IDENTITY: only used with INSTALL_MODE=restore" in result.stdout
    assert not leaked(result.stdout)


def test_a_reset_seed_goes_through_the_adopt_gate(tmp_path: Path) -> None:
    result = check(tmp_path, "INSTALL_MODE=reset\nINSTALL_FINGERPRINT=3f2a9c01\n")
    assert result.returncode == 1
    assert "ADOPT_CODE: required because INSTALL_MODE=reset" in result.stdout


def test_the_backup_is_read_by_the_one_reader_within_its_bound(tmp_path: Path) -> None:
    backup = tmp_path / NAME
    backup.write_bytes(b"x" * 5000)
    got: list[bytes] = []
    assert copy_seed_entry(backup, NAME, "hint", got.append, bound=5000) == 5000
    with pytest.raises(SeedUnreadableError, match="at most"):
        copy_seed_entry(backup, NAME, "hint", got.append, bound=4999)
    fifo = tmp_path / "fifo.backup.age"
    os.mkfifo(fifo)
    with pytest.raises(SeedUnreadableError, match="named pipe"):
        copy_seed_entry(fifo, fifo.name, "hint", got.append, bound=5000)
    link = tmp_path / "link.backup.age"
    link.symlink_to(backup)
    with pytest.raises(SeedUnreadableError, match="symbolic link"):
        copy_seed_entry(link, link.name, "hint", got.append, bound=5000)


@pytest.mark.root
@pytest.mark.usefixtures("root_tools")
def test_the_installer_carries_a_restore_seed_and_its_backup_into_root_state(
    tmp_path: Path, live: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A restore seed installs as usual onto a loop disk (no bot keys needed); the seed and the
    backup go into the installed system's root-only first-boot state; SEED_SCRUB=yes takes the
    identity off the stick."""
    from installer import cli
    from tests.helpers.install_disk import DISK_MIB, install_argv
    from tests.helpers.loopdev import MIB, loop_file, sh

    backup = os.urandom(3 * 1024 * 1024)
    (tmp_path / NAME).write_bytes(backup)
    point = tmp_path / "check"
    point.mkdir()
    with loop_file(tmp_path / "disk.img", DISK_MIB * MIB) as disk:
        seed = tmp_path / "setup.txt"
        seed.write_text(
            restore_seed(f"BACKUP_IDENTITY={BACKUP_IDENTITY}", f"TARGET_DISK={disk.node}")
            + "SEED_SCRUB=yes\n"
        )
        assert cli.main(install_argv(tmp_path, live, seed, disk.node)) == 0
        out, err = capsys.readouterr()
        assert out.splitlines()[-1] == "CLAWDIE-INSTALL-DONE", out + err
        assert f"the backup {NAME} is restored at first boot" in out
        assert not leaked(out + err)
        sh("mount", "-o", "ro", f"{disk.node}p3", str(point))
        try:
            kept = point / "var/lib/clawdie-setup/seed"
            assert stat.S_IMODE(kept.stat().st_mode) == 0o700
            assert (kept / "backup.age").read_bytes() == backup
            assert stat.S_IMODE((kept / "backup.age").stat().st_mode) == 0o600
            assert (kept / "backup-name").read_text() == f"{NAME}\n"  # what first boot says
            assert BACKUP_IDENTITY in (kept / "setup.txt").read_text()
            assert stat.S_IMODE((kept / "setup.txt").stat().st_mode) == 0o600
        finally:
            subprocess.run(["umount", str(point)], capture_output=True, check=False)
    assert BACKUP_IDENTITY not in seed.read_text()  # scrubbed from the stick
    assert "BACKUP_IDENTITY removed" in seed.read_text()
    receipt = (tmp_path / "receipt/SETUP-RESULT.txt").read_text()
    assert not leaked(receipt)
    # the receipt says this install is a restore, not that the stick installs further machines
    assert f"Restore: first boot restores the backup {NAME}; this box becomes" in receipt
    assert "SEED_SCRUB=yes: removed from setup.txt: BACKUP_IDENTITY" in receipt, receipt
    assert "can install further machines" not in receipt, receipt
