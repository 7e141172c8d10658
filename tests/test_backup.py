"""Backup and restore (issue 24) in sandbox roots against real PostgreSQL: a box first boot set
up, with platform data, a sentinel row, SSH host keys and a TLS pair, backed up with the CLI to
an owner's age key; restored into a fresh sandbox root served by a second cluster: every file
byte for byte (mode and owner), databases equal by `pg_dump`, the operator signs in, the same
fingerprint. Refused before anything changes: a wrong identity, one changed byte, a cut file, a
newer format, an installed box."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path
from typing import IO

import psycopg
import pyrage  # type: ignore[import-untyped]
import pytest

from installer.backup import crypt
from installer.backup.manifest import MANIFEST_NAME
from installer.dev.sandbox import make_sandbox_root
from installer.fingerprint import read_fingerprint
from installer.paths import TargetPaths
from installer.seed.hashes import verify_better_auth_password
from tests.helpers.adopt import installed_box
from tests.helpers.backup import clawdie, read_manifest, with_platform_data
from tests.helpers.backup import database_dumps as dumps
from tests.helpers.firstboot import SEED, snapshot
from tests.helpers.pg import PgCluster, db_cli_args
from tests.helpers.sentinels import OPERATOR_PASSWORD, ROW, SENTINEL

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.root


def names(root: Path, table: str) -> dict[int, str]:
    out = {}
    for line in (root / "etc" / table).read_text().splitlines():
        fields = line.split(":")
        out[int(fields[2])] = fields[0]
    return out


def owner_key(tmp_path: Path) -> tuple[str, Path]:
    identity = pyrage.x25519.Identity.generate()
    path = tmp_path / "owner-key.txt"
    path.write_text(f"# created: by the test\n{identity}\n")
    return str(identity.to_public()), path


def backup(box: Path, pg: PgCluster, to: Path, *recipients: str) -> Path:
    argv = ["backup", "--root", str(box / "root"), "--to", str(to)]
    for recipient in recipients:
        argv += ["--recipient", recipient]
    result = clawdie(*argv, *db_cli_args(pg))
    assert result.returncode == 0, result.stdout + result.stderr
    assert SENTINEL not in result.stdout + result.stderr
    (made,) = [p for p in to.iterdir() if p.name.endswith(".backup.age")]
    return made


def restore(
    target: Path, pg: PgCluster, backup_file: Path, key: Path, fault: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = ["restore", str(backup_file), "--root", str(target), "--identity-file", "-"]
    return clawdie(*argv, *db_cli_args(pg), stdin=key.read_text(), fault=fault)


def kept_files(root: Path, manifest: dict[str, object]) -> dict[str, tuple[str, str, str, bytes]]:
    """Every file and link the manifest names, as it is under `root`: mode, owner, group and
    content (a link: its target)."""
    users, groups = names(root, "passwd"), names(root, "group")
    out = {}
    for part in manifest["parts"]:  # type: ignore[attr-defined]
        if part["kind"] not in ("file", "link", "dir"):
            continue
        path = root / part["path"]
        st = path.lstat()
        body = (
            os.readlink(path).encode()
            if path.is_symlink()
            else b""
            if path.is_dir()
            else path.read_bytes()
        )
        mode = "link" if path.is_symlink() else oct(st.st_mode & 0o7777)
        out[part["path"]] = (mode, users[st.st_uid], groups[st.st_gid], body)
    return out


@pytest.fixture
def made(tmp_path: Path, pg: PgCluster) -> tuple[Path, Path, Path]:
    """Box A, set up and with data; its backup; the owner's identity file."""
    box = installed_box(tmp_path / "a", pg, SEED)
    with_platform_data(box, pg)
    recipient, key = owner_key(tmp_path)
    return box, backup(box, pg, tmp_path / "stick", recipient), key


def fresh(where: Path) -> Path:
    root = make_sandbox_root(where)
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    return root


def test_a_backup_restores_onto_a_fresh_box_as_the_same_box(
    tmp_path: Path, pg: PgCluster, second_pg: PgCluster, made: tuple[Path, Path, Path]
) -> None:
    box, backup_file, key = made
    a = box / "root"
    assert re.fullmatch(r"zoe-s-helper-\d{4}-\d{2}-\d{2}\.backup\.age", backup_file.name)
    assert backup_file.read_bytes().startswith(b"age-encryption.org/v1\n")
    assert SENTINEL.encode() not in backup_file.read_bytes()
    assert ROW.encode() not in backup_file.read_bytes()
    manifest = read_manifest(backup_file, key)
    assert manifest["format"] == 1
    assert manifest["host"] == "zoe-s-helper"
    assert manifest["fingerprint"] == read_fingerprint(TargetPaths(a))
    kinds = {p.get("path") or p["name"] for p in manifest["parts"]}  # type: ignore[attr-defined]
    for wanted in (
        "databases/system_ops.dump",
        "databases/system_brain.dump",
        "records/installation-id",
        "etc/clawdie/system.env",
        "var/lib/clawdie/.ssh/authorized_keys",
        "var/lib/clawdie/data/memory.bin",
        "etc/ssh/ssh_host_ed25519_key",
        "etc/ssl/private/ssl-cert-snakeoil.key",
        "etc/wpa_supplicant/clawdie-wifi.conf",
        "etc/systemd/network/25-clawdie-wifi.network",
        "var/lib/clawdie-setup/adopt-code.hash",
    ):
        assert wanted in kinds, wanted
    for part in manifest["parts"]:  # type: ignore[attr-defined]
        if part["kind"] in ("file", "database", "record"):
            assert re.fullmatch(r"[0-9a-f]{64}", part["sha256"]), part

    b = fresh(tmp_path / "b")
    result = restore(b, second_pg, backup_file, key)
    assert result.returncode == 0, result.stdout + result.stderr
    assert SENTINEL not in result.stdout + result.stderr
    assert "Databases: system_ops, system_brain, system_skills" in result.stdout
    assert "Accounts: service account clawdie (its fallback password as before)" in result.stdout

    assert kept_files(b, manifest) == kept_files(a, manifest)
    assert dumps(second_pg) == dumps(pg)
    with psycopg.connect(second_pg.admin_conninfo("system_ops")) as conn:
        row = conn.execute(
            'SELECT a.password FROM account a JOIN "user" u ON u.id = a."userId" '
            "WHERE u.email = 'ops@example.com' AND a.\"providerId\" = 'credential'"
        ).fetchone()
    assert row is not None
    assert verify_better_auth_password(OPERATOR_PASSWORD, row[0])
    signs_in_with_better_auth(tmp_path, row[0])
    # the same box as a service: fingerprint (its own machine id), host name, shadow hash
    assert read_fingerprint(TargetPaths(b)) == read_fingerprint(TargetPaths(a))
    assert (b / "etc/machine-id").read_text() != (a / "etc/machine-id").read_text()
    shadow = {
        line.split(":")[0]: line.split(":")[1]
        for line in (b / "etc/shadow").read_text().splitlines()
    }
    shadow_a = {
        line.split(":")[0]: line.split(":")[1]
        for line in (a / "etc/shadow").read_text().splitlines()
    }
    assert shadow["clawdie"] == shadow_a["clawdie"]
    summary = (b / "var/lib/clawdie-setup/restore-summary.txt").read_text()
    assert f"fingerprint {read_fingerprint(TargetPaths(a))}" in summary


# the password arrives on stdin, never argv
SIGN_IN = """
import { verifyPassword } from "better-auth/crypto";
let input = "";
for await (const chunk of process.stdin) input += chunk;
const c = JSON.parse(input);
console.log(JSON.stringify({
  right: await verifyPassword({ hash: c.hash, password: c.password }),
  wrong: await verifyPassword({ hash: c.hash, password: c.password + "x" }),
}));
"""


def signs_in_with_better_auth(tmp_path: Path, stored: str) -> None:
    """The restored operator's hash checked by Better Auth's own package, when the test cache
    has it (tests/test_better_auth.py installs it; a cold npm install is for the slow suite)."""
    from tests.helpers import better_auth as test_better_auth

    if test_better_auth.COLD:
        return
    where = test_better_auth._better_auth(tmp_path)
    stdin = json.dumps({"hash": stored, "password": OPERATOR_PASSWORD})
    assert test_better_auth.node(where, "sign-in.mjs", SIGN_IN, stdin) == {
        "right": True,
        "wrong": False,
    }


def corrupt(backup_file: Path, where: Path, how: str) -> Path:
    data = bytearray(backup_file.read_bytes())
    if how == "byte":
        data[len(data) // 2] ^= 0x01
    elif how == "cut":
        data = data[: len(data) - 100]
    out = where / f"{how}-{backup_file.name}"
    out.write_bytes(bytes(data))
    return out


def newer_format(tmp_path: Path, recipient: str) -> Path:
    """A real age file whose archive's manifest says format 99."""
    doc = json.dumps({"format": 99, "installer": "9.0.0"}).encode()

    def produce(sink: IO[bytes]) -> None:
        with tarfile.open(fileobj=sink, mode="w|") as tar:
            info = tarfile.TarInfo(MANIFEST_NAME)
            info.size = len(doc)
            tar.addfile(info, io.BytesIO(doc))

    out = tmp_path / "newer.backup.age"
    with out.open("wb") as handle:
        crypt.encrypt_stream(produce, handle, crypt.parse_recipients([recipient]))
    return out


def test_restore_refuses_before_anything_changes(
    tmp_path: Path, pg: PgCluster, second_pg: PgCluster, made: tuple[Path, Path, Path]
) -> None:
    box, backup_file, key = made
    b = fresh(tmp_path / "b")
    before = snapshot(b, second_pg)
    (tmp_path / "other").mkdir()
    _, other_key = owner_key(tmp_path / "other")
    cases = {
        "wrong identity": (backup_file, other_key, "not encrypted to this identity"),
        "one changed byte": (corrupt(backup_file, tmp_path, "byte"), key, "changed or cut short"),
        "a cut file": (corrupt(backup_file, tmp_path, "cut"), key, "changed or cut short"),
        "a newer format": (
            newer_format(tmp_path, read_recipient(key)),
            key,
            "the backup's format is version 99; this installer reads up to version 1",
        ),
    }
    for case, (given, identity, words) in cases.items():
        result = restore(b, second_pg, given, identity)
        assert result.returncode == 1, (case, result.stdout + result.stderr)
        assert words in result.stderr, (case, result.stderr)
        assert (
            "nothing was changed" in result.stderr
            or "nothing on this box was changed" in result.stderr
        )
        assert "Traceback" not in result.stderr
        assert snapshot(b, second_pg) == before, case
        assert not databases(second_pg), case
    # a box that is already installed (box A itself) is refused too
    result = restore(box / "root", pg, backup_file, key)
    assert result.returncode == 1
    assert "already holds an installation" in result.stderr


def read_recipient(key: Path) -> str:
    identity = pyrage.x25519.Identity.from_str(key.read_text().splitlines()[-1])
    return str(identity.to_public())


def databases(pg: PgCluster) -> list[str]:
    with psycopg.connect(pg.admin_conninfo()) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'system_%'"
        ).fetchall()
    return [r[0] for r in rows]


def test_the_identity_is_never_an_argument_and_never_shown(
    tmp_path: Path, second_pg: PgCluster, made: tuple[Path, Path, Path]
) -> None:
    _, backup_file, key = made
    secret = key.read_text().splitlines()[-1]
    b = fresh(tmp_path / "b")
    argv = ["restore", str(backup_file), "--root", str(b), "--identity-file", str(key), "-v"]
    result = clawdie(*argv, *db_cli_args(second_pg))
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout + result.stderr
    for path in b.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_a_backup_cut_short_leaves_no_backup_and_the_next_one_cleans_up(
    tmp_path: Path, pg: PgCluster, made: tuple[Path, Path, Path]
) -> None:
    box, backup_file, key = made
    to = tmp_path / "second"
    argv = ["backup", "--root", str(box / "root"), "--to", str(to), "--recipient"]
    argv += [read_recipient(key), *db_cli_args(pg)]
    cut = clawdie(*argv, fault="before:backup-verify")
    assert cut.returncode == -9, cut.stderr
    assert [p.name.startswith(".") and ".tmp-" in p.name for p in to.iterdir()] == [True]
    assert clawdie(*argv).returncode == 0
    assert [p.name for p in to.iterdir()] == [backup_file.name]


@pytest.mark.parametrize(
    "point", ["before:restore-files", "mid:restore-database-system_brain", "before:restore-done"]
)
def test_a_restore_cut_short_is_finished_by_the_next_run(
    tmp_path: Path, pg: PgCluster, second_pg: PgCluster, made: tuple[Path, Path, Path], point: str
) -> None:
    box, backup_file, key = made
    manifest = read_manifest(backup_file, key)
    b = fresh(tmp_path / "b")
    cut = restore(b, second_pg, backup_file, key, fault=point)
    assert cut.returncode == -9, cut.stderr
    again = restore(b, second_pg, backup_file, key)
    assert again.returncode == 0, again.stderr
    assert "Databases: system_ops, system_brain, system_skills" in again.stdout
    assert kept_files(b, manifest) == kept_files(box / "root", manifest)
    assert dumps(second_pg) == dumps(pg)
    assert not list(b.rglob(".*.tmp-*"))
    # once finished, a restore is not made over a box that has since lived on
    over = restore(b, second_pg, backup_file, key)
    assert over.returncode == 1
    assert "already holds an installation" in over.stderr


def test_a_restore_cut_short_can_also_be_reset_and_restored_again(
    tmp_path: Path, second_pg: PgCluster, made: tuple[Path, Path, Path]
) -> None:
    _, backup_file, key = made
    b = fresh(tmp_path / "b")
    cut = restore(b, second_pg, backup_file, key, fault="before:restore-databases")
    assert cut.returncode == -9, cut.stderr
    argv = ["factory-reset", "--root", str(b), "--yes-i-typed", "zoe-s-helper"]
    reset = clawdie(*argv, "--no-platform-stop", *db_cli_args(second_pg))
    assert reset.returncode == 0, reset.stderr
    done = restore(b, second_pg, backup_file, key)
    assert done.returncode == 0, done.stderr
    assert "Databases: system_ops, system_brain, system_skills" in done.stdout
