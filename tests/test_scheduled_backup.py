"""The daily backup (DESIGN §9, `clawdie-setup backup --scheduled`) on boxes first boot set up
against real PostgreSQL: the keys and the directory come from root's own record; the backup goes
to BACKUP_DIR and onto a stick labelled for backups (a real FAT volume on a loop device), which
is left unmounted; no key: nothing is made and the login screen says how to turn it on; a
failure is recorded, shown and makes the box `degraded`."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pyrage  # type: ignore[import-untyped]
import pytest

from installer.backup.scheduled import is_backup_stick, mounted, run_scheduled
from installer.media.blockdev import read_block_devices, read_mounts
from installer.paths import TargetPaths
from installer.qr import CHARACTERS
from installer.upkeep import UpkeepPaths
from tests.helpers.adopt import installed_box
from tests.helpers.backup import clawdie, read_manifest
from tests.helpers.firstboot import SEED
from tests.helpers.loopdev import Part, loop_disk
from tests.helpers.pg import PgCluster, db_cli_args

pytestmark = pytest.mark.root


def owner(tmp_path: Path) -> tuple[str, Path]:
    identity = pyrage.x25519.Identity.generate()
    key = tmp_path / "owner-key.txt"
    key.write_text(f"{identity}\n")
    return str(identity.to_public()), key


def scheduled(box: Path, pg: PgCluster, *extra: str) -> subprocess.CompletedProcess[str]:
    return clawdie("backup", "--scheduled", "--root", str(box / "root"), *db_cli_args(pg), *extra)


def outcome(box: Path) -> dict[str, object]:
    path = UpkeepPaths(box / "root").backup_outcome
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc: dict[str, object] = json.loads(path.read_text())
    return doc


def login_screen(box: Path) -> str:
    """The login screen's words, one space between (its lines wrap beside the QR code)."""
    text = TargetPaths(box / "root").issue_file.read_text()
    blocks = re.escape("".join(sorted(CHARACTERS)))
    return " ".join(re.sub(f"[{blocks}]", " ", text).split())


def test_the_daily_backup_goes_to_backup_dir_and_a_failure_makes_the_box_degraded(
    tmp_path: Path, pg: PgCluster
) -> None:
    recipient, key = owner(tmp_path)
    seed = SEED + f"BACKUP_RECIPIENT={recipient}\nBACKUP_DIR=/srv/backup\n"
    box = installed_box(tmp_path / "box", pg, seed)
    assert "Backups: none yet (daily in 04:00-05:00)" in login_screen(box)
    backups = box / "root/srv/backup"
    backups.mkdir(parents=True)

    result = scheduled(box, pg)
    assert result.returncode == 0, result.stderr
    (made,) = backups.glob("*.backup.age")
    assert read_manifest(made, key)["host"] == "zoe-s-helper"
    doc = outcome(box)
    assert doc["outcome"] == "ok"
    assert doc["written"] == [
        {"where": "BACKUP_DIR /srv/backup", "name": made.name, "size": made.stat().st_size}
    ]
    screen = login_screen(box)
    assert "Clawdie first boot: ok" in screen
    assert f"Backups: last {doc['time']} to BACKUP_DIR /srv/backup (" in screen

    # the second disk is gone: the backup fails, says why, and the box is degraded
    made.unlink()
    backups.rmdir()
    result = scheduled(box, pg)
    assert result.returncode == 1
    assert "BACKUP_DIR /srv/backup: the directory does not exist" in result.stderr
    doc = outcome(box)
    assert doc["outcome"] == "failed"
    screen = login_screen(box)
    assert "Clawdie first boot: degraded: the last backup failed: BACKUP_DIR /srv/backup" in screen
    assert "Backups: FAILED" in screen
    assert not (box / "root/srv/backup").exists()  # not made on the system disk instead

    # the database cannot be reached: a real pg_dump failure, recorded the same way
    backups.mkdir()
    result = scheduled(box, pg, "--db-admin", "host=/nonexistent user=postgres dbname=postgres")
    assert result.returncode == 1
    assert outcome(box)["outcome"] == "failed"
    assert list(backups.iterdir()) == []  # nothing half-written
    upkeep = clawdie("upkeep", "--root", str(box / "root"))
    assert upkeep.returncode == 0
    assert "To fix: the last backup failed: BACKUP_DIR /srv/backup: " in upkeep.stdout


def test_the_recipient_is_read_only_from_roots_own_record(tmp_path: Path, pg: PgCluster) -> None:
    """A record someone else could have written is not trusted: no backup is made to its key."""
    recipient, _ = owner(tmp_path)
    box = installed_box(tmp_path / "box", pg, SEED + f"BACKUP_RECIPIENT={recipient}\n")
    record = TargetPaths(box / "root").resolved_json
    os.chown(record, 1000, 1000)  # as if the service account had written it
    result = scheduled(box, pg)
    assert result.returncode == 0, result.stderr
    assert outcome(box)["outcome"] == "off"


def test_no_recipient_makes_nothing_and_says_how_to_turn_backups_on(
    tmp_path: Path, pg: PgCluster
) -> None:
    box = installed_box(tmp_path / "box", pg, SEED + "BACKUP_DIR=/srv/backup\n")
    (box / "root/srv/backup").mkdir(parents=True)
    result = scheduled(box, pg)
    assert result.returncode == 0, result.stderr
    assert outcome(box)["outcome"] == "off"
    assert list((box / "root/srv/backup").iterdir()) == []
    text = login_screen(box)
    assert "Backups: off: set BACKUP_RECIPIENT to turn backups on" in text
    assert "Clawdie first boot: ok" in text


@pytest.mark.usefixtures("loop_devices")
@pytest.mark.parametrize(
    "part",
    [Part(None, label="CLAWDIE-BAK"), Part(None, name="CLAWDIE-BACKUP", label="OWNER")],
    ids=["fat-label", "gpt-name"],
)
def test_the_daily_backup_goes_onto_a_backup_stick_and_leaves_it_unmounted(
    tmp_path: Path, pg: PgCluster, part: Part
) -> None:
    recipient, key = owner(tmp_path)
    box = installed_box(tmp_path / "box", pg, SEED + f"BACKUP_RECIPIENT={recipient}\n")
    other = Part(20, name="DATA", label="DATA")
    with loop_disk(tmp_path, [other, part], size_mib=120) as disk:

        def devices() -> list:  # type: ignore[type-arg]
            return [d for d in read_block_devices() if d.disk == disk.node]

        done = run_scheduled(box / "root", pg.admin_conninfo(), devices)
        assert done.outcome == "ok", done.failures
        (written,) = done.written
        assert written.where == f"the CLAWDIE-BACKUP stick {disk.parts[1]}"
        assert not [m for m in read_mounts() if m.source.startswith(disk.node)]
        # root's own directories (the mount point; mtools' staging where the kernel has no
        # FAT driver) are root's alone and keep nothing
        mount_point = UpkeepPaths(box / "root").backup_mount
        for place in (mount_point, mount_point.with_name("backup-stage")):
            if place.exists():
                assert stat.S_IMODE(place.stat().st_mode) == 0o700
                assert list(place.iterdir()) == []
        copy = tmp_path / written.name
        listing = subprocess.run(
            ["mcopy", "-n", "-i", disk.parts[1], f"::{written.name}", str(copy)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert listing.returncode == 0, listing.stderr
    assert copy.stat().st_size == written.size
    assert read_manifest(copy, key)["host"] == "zoe-s-helper"


@pytest.mark.usefixtures("loop_devices")
def test_a_stick_the_kernel_mounts_is_written_mounted_nosuid_nodev_noexec(
    tmp_path: Path, pg: PgCluster
) -> None:
    """An ext4 stick labelled CLAWDIE-BACKUP: mounted on root's own directory with the options
    that keep what is on it from running, written, and unmounted."""
    recipient, key = owner(tmp_path)
    box = installed_box(tmp_path / "box", pg, SEED + f"BACKUP_RECIPIENT={recipient}\n")
    with loop_disk(tmp_path, [Part(None, name="STICK", fs=None)], size_mib=120) as disk:
        subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-L", "CLAWDIE-BACKUP", disk.parts[0]],
            check=True,
            capture_output=True,
        )
        (stick,) = [d for d in read_block_devices() if d.disk == disk.node and d.fs_label]
        assert is_backup_stick(stick)
        private = UpkeepPaths(box / "root").backup_mount
        with mounted(stick, private):
            (line,) = [
                x
                for x in Path("/proc/self/mountinfo").read_text().splitlines()
                if x.split()[4] == str(private)
            ]
            assert {"rw", "nosuid", "nodev", "noexec"} <= set(line.split()[5].split(","))
            assert private.is_mount()
            assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700  # root's alone

        def devices() -> list:  # type: ignore[type-arg]
            return [d for d in read_block_devices() if d.disk == disk.node]

        done = run_scheduled(box / "root", pg.admin_conninfo(), devices)
        assert done.outcome == "ok", done.failures
        assert not [m for m in read_mounts() if m.source.startswith(disk.node)]
        mount_point = tmp_path / "look"
        mount_point.mkdir()
        subprocess.run(["mount", "-r", disk.parts[0], str(mount_point)], check=True)
        try:
            (copy,) = mount_point.glob("*.backup.age")
            assert read_manifest(copy, key)["host"] == "zoe-s-helper"
        finally:
            subprocess.run(["umount", str(mount_point)], check=True)
