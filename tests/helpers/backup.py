"""Shared test data and fakes (moved out of test_backup.py, which other tests use too)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import psycopg
import pyrage  # type: ignore[import-untyped]

from installer.backup.manifest import MANIFEST_NAME
from tests.helpers.pg import PgCluster
from tests.helpers.sentinels import ROW, SENTINEL


def with_platform_data(box: Path, pg: PgCluster) -> None:
    """What the platform and the installer leave besides first boot's files: a row, data
    files of the service account (one a link), SSH host keys and a TLS pair."""
    root = box / "root"
    with psycopg.connect(pg.admin_conninfo("system_brain"), autocommit=True) as conn:
        conn.execute("CREATE TABLE memory (id serial PRIMARY KEY, note text)")
        conn.execute("ALTER TABLE memory OWNER TO clawdie")
        conn.execute("INSERT INTO memory (note) VALUES (%s)", (ROW,))
    data = root / "var/lib/clawdie/data"
    data.mkdir()
    (data / "memory.bin").write_bytes(os.urandom(300_000))
    (data / "current").symlink_to("memory.bin")
    for path in (data, data / "memory.bin"):
        os.chown(path, *ids(root, "clawdie"), follow_symlinks=False)
    for kind in ("ed25519", "ecdsa"):
        key = root / f"etc/ssh/ssh_host_{kind}_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "root@box", "-f", str(key)],
            check=True,
        )
    private = root / "etc/ssl/private/ssl-cert-snakeoil.key"
    private.parent.mkdir(parents=True)
    private.write_text(f"-----BEGIN PRIVATE KEY-----\n{SENTINEL}\n")
    private.chmod(0o640)
    cert = root / "etc/ssl/certs/ssl-cert-snakeoil.pem"
    cert.parent.mkdir(parents=True)
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n")


def ids(root: Path, name: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2]), int(fields[3])
    raise AssertionError(name)


ROOT = Path(__file__).resolve().parents[2]


def clawdie(
    *argv: str, stdin: str = "", fault: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDIE_")}
    if fault:
        env["CLAWDIE_FIRSTBOOT_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "installer.cli", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
        timeout=300,
    )


def read_manifest(backup_file: Path, key: Path) -> dict[str, object]:
    identity = pyrage.x25519.Identity.from_str(key.read_text().splitlines()[-1])
    plain = pyrage.decrypt(backup_file.read_bytes(), [identity])
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        member = tar.extractfile(MANIFEST_NAME)
        assert member is not None
        return json.loads(member.read())  # type: ignore[no-any-return]


DATABASES = ("system_ops", "system_brain", "system_skills")


def database_dumps(pg: PgCluster) -> dict[str, str]:
    """Each platform database as plain SQL (pg_dump's per-run \\restrict key taken out)."""
    out = {}
    for name in DATABASES:
        text = subprocess.run(
            ["pg_dump", "--no-password", pg.admin_conninfo(name)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        out[name] = re.sub(r"^\\(un)?restrict .*$", "", text, flags=re.M)
    return out
