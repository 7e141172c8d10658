"""First boot of a restore seed (INSTALL_MODE=restore) in sandbox roots against real PostgreSQL:
box A set up by first boot, with platform data, a sentinel row, SSH host keys and a TLS pair,
backed up with the CLI to the owner's key (the sentinel identity's public half). Box B, a fresh
install served by a second cluster, boots with a restore seed and the backup next to it: it is A
as a service (A's host keys, rows, operator hash, fingerprint, adopt code hash) with its own
machine id, the platform started, the receipt listing what was restored. A wrong identity or a
changed byte is refused before anything of B changes, the reason on the receipt. The identity
is never in an output, a log, the receipt, a bundle or a file left on B."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import IO

import psycopg
import pyrage  # type: ignore[import-untyped]
import pytest

from installer.backup import crypt
from installer.backup.manifest import MANIFEST_NAME
from installer.fingerprint import read_fingerprint
from installer.paths import TargetPaths
from tests.helpers.adopt import installed_box
from tests.helpers.backup import DATABASES, database_dumps, with_platform_data
from tests.helpers.firstboot import SEED, firstboot, snapshot
from tests.helpers.pg import PgCluster, db_cli_args
from tests.helpers.seeds import firstboot_box
from tests.helpers.sentinels import BACKUP_IDENTITY, BACKUP_RECIPIENT, ROW, leaked

ROOT = Path(__file__).resolve().parents[1]
B_MACHINE_ID = "fedcba9876543210fedcba9876543210"

pytestmark = pytest.mark.root


def make_backup(box: Path, pg: PgCluster, to: Path, recipient: str) -> Path:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDIE_")}
    argv = ["backup", "--root", str(box / "root"), "--to", str(to), "--recipient", recipient]
    result = subprocess.run(
        [sys.executable, "-m", "installer.cli", *argv, *db_cli_args(pg)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (made,) = [p for p in to.iterdir() if p.name.endswith(".backup.age")]
    return made


@pytest.fixture
def box_a(tmp_path: Path, pg: PgCluster) -> Path:
    box = installed_box(tmp_path / "a", pg, SEED)
    with_platform_data(box, pg)
    return box


def restore_box(where: Path, backup: Path, *lines: str) -> Path:
    """A fresh sandbox install with a restore seed and the backup next to it."""
    seed = "\n".join(["INSTALL_MODE=restore", f"BACKUP_IDENTITY={BACKUP_IDENTITY}", *lines])
    box = firstboot_box(where, seed + "\n")
    shutil.copyfile(backup, box / backup.name)
    (box / "root/etc/machine-id").write_text(f"{B_MACHINE_ID}\n")
    return box


def everything_written(
    box: Path, result: subprocess.CompletedProcess[str], under: str = "root"
) -> str:
    """Every output, the receipt and bundles on the stick, and every file under `under` of the
    box (the whole root: the restored box's own secrets are there, where they are used)."""
    texts = [result.stdout, result.stderr]
    for folder in (box / "stick", box / under):
        for path in folder.rglob("*"):
            if path.name.endswith(".tar.gz"):  # a log bundle: what is in it
                with tarfile.open(path) as bundle:
                    for member in bundle.getmembers():
                        reader = bundle.extractfile(member)
                        if reader is not None:
                            texts.append(reader.read().decode(errors="replace"))
            elif path.is_file() and not path.is_symlink():
                texts.append(path.read_bytes().decode(errors="replace"))
    return "\n".join(texts)


def shadow_hash(root: Path, name: str) -> str:
    for line in (root / "etc/shadow").read_text().splitlines():
        if line.split(":")[0] == name:
            return line.split(":")[1]
    raise AssertionError(name)


def operator_hash(pg: PgCluster) -> str:
    with psycopg.connect(pg.admin_conninfo("system_ops")) as conn:
        row = conn.execute(
            'SELECT a.password FROM account a JOIN "user" u ON u.id = a."userId" '
            "WHERE a.\"providerId\" = 'credential'"
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_a_restore_seed_boots_a_new_box_that_is_the_backed_up_one(
    tmp_path: Path, pg: PgCluster, second_pg: PgCluster, box_a: Path
) -> None:
    backup = make_backup(box_a, pg, tmp_path / "backups", BACKUP_RECIPIENT)
    box = restore_box(tmp_path / "b", backup)
    result = firstboot(box, second_pg)
    assert result.returncode == 0, result.stdout + result.stderr
    a, b = box_a / "root", box / "root"

    for kind in ("ed25519", "ecdsa"):
        key = f"etc/ssh/ssh_host_{kind}_key"
        assert (b / key).read_bytes() == (a / key).read_bytes()
    assert (b / "etc/hostname").read_text() == (a / "etc/hostname").read_text()
    assert read_fingerprint(TargetPaths(b)) == read_fingerprint(TargetPaths(a))
    assert (b / "etc/machine-id").read_text() == f"{B_MACHINE_ID}\n"
    assert (b / "var/lib/clawdie-setup/adopt-code.hash").read_bytes() == (
        a / "var/lib/clawdie-setup/adopt-code.hash"
    ).read_bytes()
    assert shadow_hash(b, "clawdie") == shadow_hash(a, "clawdie")
    assert operator_hash(second_pg) == operator_hash(pg)
    with psycopg.connect(second_pg.admin_conninfo("system_brain")) as conn:
        assert conn.execute("SELECT note FROM memory").fetchall() == [(ROW,)]
    # the platform runs against this box's database
    assert (
        "PLATFORM-READY role=clawdie db=system_ops operators=1" in (b / "platform.out").read_text()
    )
    assert f"port={second_pg.port}" in (b / "etc/clawdie/system.env").read_text()
    assert os.readlink(b / "etc/localtime") == "/usr/share/zoneinfo/Europe/Berlin"

    receipt = (box / "stick/SETUP-RESULT.txt").read_text()
    assert f"Restored from {backup.name}: host " in receipt, receipt  # the owner's file
    assert "Databases: system_ops, system_brain, system_skills" in receipt
    assert "machine id: this machine's own" in receipt
    assert "ADOPT_CODE=" not in receipt  # the backed-up box's code stays: none is made
    assert not (b / "var/lib/clawdie-setup/seed").exists()  # seed copy and backup are gone
    assert BACKUP_IDENTITY not in everything_written(box, result)
    assert not leaked(everything_written(box, result, "root/var/lib/clawdie-setup"))

    again = firstboot(box, second_pg)  # a completed first boot never reads a seed again
    assert again.returncode == 0
    assert "already completed" in again.stderr


def flipped(backup: Path, where: Path) -> Path:
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0x01
    out = where / backup.name
    out.parent.mkdir(parents=True)
    out.write_bytes(bytes(data))
    return out


def newer(where: Path) -> Path:
    """A real backup file, encrypted to the owner, whose manifest says a newer format and
    installer."""
    doc = json.dumps({"format": 99, "installer": "9.0.0"}).encode()

    def produce(sink: IO[bytes]) -> None:
        with tarfile.open(fileobj=sink, mode="w|") as tar:
            info = tarfile.TarInfo(MANIFEST_NAME)
            info.size = len(doc)
            tar.addfile(info, io.BytesIO(doc))

    where.mkdir(parents=True)
    out = where / "ada-2099-01-01.backup.age"
    with out.open("wb") as handle:
        crypt.encrypt_stream(produce, handle, crypt.parse_recipients([BACKUP_RECIPIENT]))
    return out


@pytest.mark.parametrize("case", ["wrong identity", "changed byte", "newer installer"])
def test_a_backup_that_cannot_be_restored_is_refused_before_the_box_changes(
    tmp_path: Path, pg: PgCluster, second_pg: PgCluster, box_a: Path, case: str
) -> None:
    if case == "wrong identity":
        other = str(pyrage.x25519.Identity.generate().to_public())
        backup = make_backup(box_a, pg, tmp_path / "backups", other)
        words = "not encrypted to this identity"
    elif case == "changed byte":
        good = make_backup(box_a, pg, tmp_path / "backups", BACKUP_RECIPIENT)
        backup = flipped(good, tmp_path / "flipped")
        words = "changed or cut short"
    else:
        backup = newer(tmp_path / "newer")
        words = "the backup's format is version 99"
    box = restore_box(tmp_path / "b", backup)
    before = snapshot(box / "root", second_pg)
    result = firstboot(box, second_pg)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    receipt = (box / "stick/SETUP-RESULT.txt").read_text()
    assert words in receipt, receipt
    assert "stopped at step 2 of 5 (restore)" in receipt
    assert words in result.stderr
    after = snapshot(box / "root", second_pg)
    # root's first-boot state (the seed copy, stamps, summary) and the console's report (the
    # login screen says why) are the run's; nothing the backup would restore is touched
    state = ("var/lib/clawdie-setup", "etc/issue.d/clawdie.issue")
    assert {k: v for k, v in after.items() if not k.startswith(state)} == {
        k: v for k, v in before.items() if not k.startswith(state)
    }
    assert words in " ".join((box / "root/etc/issue.d/clawdie.issue").read_text().split())
    with psycopg.connect(second_pg.admin_conninfo()) as conn:
        names = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'system_%'"
        ).fetchall()
    assert not names
    assert list((box / "stick").glob("clawdie-logs-*.tar.gz")), "a failure leaves its bundle"
    # the seed copy and the backup wait in root's state for the next run, as a seed's other
    # secrets do (0600 in a 0700 folder; deleted once first boot completes): nowhere else
    kept = box / "root/var/lib/clawdie-setup/seed"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o700
    for name in ("setup.txt", "backup.age"):
        assert stat.S_IMODE((kept / name).stat().st_mode) == 0o600
    shutil.rmtree(kept)
    written = everything_written(box, result)
    assert BACKUP_IDENTITY not in written
    assert not leaked(written)


# Every point where a power cut can land in a restore seed's first boot: the seed step, each
# phase of the restore (installer/backup/restore.py), each database before, inside and after its
# transaction, the restore finished but not stamped, and the steps after it. A few run in the
# fast suite; the whole loop is `slow` (each point is two first boots and a restore).
EACH_DATABASE = tuple(
    f"{when}:restore-database-{name}"
    for name in ("system_ops", "system_brain", "system_skills")
    for when in ("before", "mid", "effects")
)
EVERY_RESTORE_CUT = (
    "effects:seed",
    "stamped:seed",
    "before:restore",
    "before:restore-verify",
    "before:restore-account",
    "before:restore-files",
    "mid-write:ssh_host_ed25519_key",
    "mid-write:system.env",
    "before:restore-databases",
    *EACH_DATABASE,
    "before:restore-record",
    "before:restore-done",
    "effects:restore",
    "stamped:restore",
    "effects:machine",
    "before:report",
    "effects:report",
    "before:complete",
)
SOME_RESTORE_CUTS = (  # a database cut inside its transaction; a restore done, not stamped
    "mid:restore-database-system_brain",
    "effects:restore",
)


def emptied(pg: PgCluster) -> None:
    """The cluster as a new box's: none of the platform's databases, no platform role."""
    with psycopg.connect(pg.admin_conninfo(), autocommit=True) as conn:
        for name in DATABASES:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute("DROP ROLE IF EXISTS clawdie")


def converge_after_each_cut(
    tmp_path: Path, pg: PgCluster, second_pg: PgCluster, box_a: Path, points: tuple[str, ...]
) -> None:
    """A clean restore first boot, then for each point one cut at it and the next first boot:
    the same box (every file, every database by pg_dump), nothing left half-written."""
    backup = make_backup(box_a, pg, tmp_path / "backups", BACKUP_RECIPIENT)
    where = tmp_path / "b"  # the same path each time: the login screen shows it
    clean = firstboot(restore_box(where, backup), second_pg)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    expected_tree, expected_db = snapshot(where / "root", second_pg), database_dumps(second_pg)
    assert expected_db == database_dumps(pg)
    for point in points:
        shutil.rmtree(where)
        emptied(second_pg)
        box = restore_box(where, backup)
        cut = firstboot(box, second_pg, fault=point)
        assert cut.returncode == -9, (point, cut.returncode, cut.stderr[-2000:])
        finished = firstboot(box, second_pg)
        assert finished.returncode == 0, (point, finished.stderr[-3000:])
        assert "Traceback" not in finished.stderr
        assert not list((box / "root").rglob(".*.tmp-*")), point
        assert snapshot(box / "root", second_pg) == expected_tree, point
        assert database_dumps(second_pg) == expected_db, point
        receipt = (box / "stick/SETUP-RESULT.txt").read_text()
        assert "Databases: system_ops, system_brain, system_skills" in receipt, point


@pytest.mark.timeout(600)
def test_a_restore_cut_in_some_phases_is_finished_by_the_next_first_boot(
    tmp_path: Path, pg: PgCluster, second_pg: PgCluster, box_a: Path
) -> None:
    converge_after_each_cut(tmp_path, pg, second_pg, box_a, SOME_RESTORE_CUTS)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_a_restore_cut_in_every_phase_is_finished_by_the_next_first_boot(
    tmp_path: Path, pg: PgCluster, second_pg: PgCluster, box_a: Path
) -> None:
    """Every cut the fast suite's test above does not already make (between them: all)."""
    points = tuple(p for p in EVERY_RESTORE_CUT if p not in SOME_RESTORE_CUTS)
    converge_after_each_cut(tmp_path, pg, second_pg, box_a, points)
