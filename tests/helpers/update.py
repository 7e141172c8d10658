"""Shared test data and fakes (moved out of test_update.py, which other tests use too)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import minisign
import pytest

from tests.helpers.firstboot import firstboot
from tests.helpers.pg import PgCluster
from tests.helpers.seeds import ED25519, firstboot_box

ROOT = Path(__file__).resolve().parents[2]


REFERENCE = ROOT / "iso/reference_platform"


SEED = f"""\
TELEGRAM_BOT_TOKEN=7012345678:AAHupdateUpdateUpdateUpdateUpdate12
TELEGRAM_ADMIN_ID=123456789
OPENROUTER_API_KEY=sk-or-v1-{"0123456789abcdef" * 4}
ASSISTANT_NAME=Ada
PROFILE=economy
SSH_AUTHORIZED_KEY={ED25519}
"""


V2_SQL = """\
CREATE TABLE notes (id integer PRIMARY KEY, body text NOT NULL);
INSERT INTO notes VALUES (1, 'first'), (2, 'second');
"""


V4_SQL = """\
UPDATE notes SET body = 'damaged';
DELETE FROM "user";
SELECT 1 / 0;
"""


DPKG_STATUS = "".join(
    f"Package: {name}\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n"
    for name in ("python3", "postgresql")
)


@dataclass(frozen=True)
class Keys:
    """The publisher's test key pair (made here, never written) and a stranger's."""

    publisher: minisign.KeyPair
    stranger: minisign.KeyPair


def new_keys() -> Keys:
    """A publisher's key pair and a stranger's, made here (no private key is kept anywhere)."""
    return Keys(minisign.KeyPair.generate(), minisign.KeyPair.generate())


def payload(
    where: Path,
    version: str,
    *,
    name: str = "reference-platform",
    sql: str | None = None,
    ready: list[str] | None = None,
    ready_timeout: int = 20,
    needs: tuple[str, ...] = ("python3", "postgresql"),
) -> Path:
    """The reference platform as `version` without its dashboard (no port: tests run side by
    side; a release with the dashboard carries its modules, tests/test_release.py)."""
    folder = where / f"payload-{name}-{version}"
    shutil.copytree(REFERENCE, folder, ignore=shutil.ignore_patterns("dashboard"))
    lines = [
        f'name = "{name}"',
        f'version = "{version}"',
        'start = ["bin/clawdie-platform"]',
        "needs = [" + ", ".join(f'"{n}"' for n in needs) + "]",
    ]
    if sql is not None:
        (folder / "migrations").mkdir()
        (folder / f"migrations/{version}.sql").write_text(sql)
        lines.append(f'migrate = ["bin/clawdie-platform", "--sql", "migrations/{version}.sql"]')
    command = ready or ["bin/clawdie-platform", "--ready"]
    lines += ["[ready]", "command = [" + ", ".join(f'"{c}"' for c in command) + "]"]
    lines.append(f"timeout_s = {ready_timeout}")
    (folder / "platform.toml").write_text("\n".join(lines) + "\n")
    return folder


def never_ready(folder: Path) -> None:
    program = folder / "bin/never-ready"
    program.write_text("#!/bin/sh\necho 'still warming up' >&2\nexit 1\n")
    program.chmod(0o755)


def bundle(folder: Path, out: Path, key: minisign.KeyPair) -> Path:
    """`folder` as a release: a tar of it and its minisign signature beside it."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        archive.add(folder, arcname=".")
    out.mkdir(exist_ok=True)
    path = out / f"{folder.name}.tar"
    path.write_bytes(data.getvalue())
    key.secret_key.sign_file(path, prehash=True, drop_signature=True)
    return path


def reference_release(where: Path, version: str, key: minisign.KeyPair) -> Path:
    """The whole reference platform (its dashboard too) as `version`, made into a release as its
    publisher makes one (iso/release.py: the modules built from the lock) and signed. npm's
    cache is the image build's ($CLAWDIE_ISO_CACHE/npm); without npm or the registry the test
    skips, saying why."""
    if shutil.which("npm") is None:
        pytest.skip("npm is needed to make a release with the dashboard's modules")
    folder = where / f"reference-{version}"
    shutil.copytree(REFERENCE, folder, ignore=shutil.ignore_patterns("node_modules"))
    manifest = folder / "platform.toml"
    manifest.write_text(manifest.read_text().replace('version = "1"', f'version = "{version}"'))
    made = subprocess.run(
        [sys.executable, str(ROOT / "iso/release.py"), str(folder), "--out", str(where / "out")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if made.returncode != 0 and "npm" in made.stderr:
        pytest.skip(f"iso/release.py could not build the modules: {made.stderr[-400:]}")
    assert made.returncode == 0, made.stdout + made.stderr
    path = where / "out" / f"reference-platform-{version}.tar"
    assert f"release: {path} (" in made.stdout
    key.secret_key.sign_file(path, prehash=True, drop_signature=True)
    return path


def service(box: Path, action: str) -> str:
    return f"{sys.executable} -m tests.helpers.platform_service {action} {box}"


def installed_box(where: Path, pg: PgCluster, keys: Keys, machine_id: str | None = None) -> Path:
    """A box first boot set up with v1 of the platform in /opt/clawdie/platform (a plain folder,
    as the image has it), the publisher's key, a dpkg database, and v1 running; `machine_id`
    fixes its machine id (so its fingerprint) before first boot."""
    box = firstboot_box(where, SEED)
    root = box / "root"
    if machine_id is not None:
        (root / "etc/machine-id").write_text(f"{machine_id}\n")
    shutil.copytree(payload(where, "1"), root / "opt/clawdie/platform")
    (root / "etc/clawdie").mkdir(parents=True, exist_ok=True)
    (root / "etc/clawdie/release.pub").write_bytes(bytes(keys.publisher.public_key) + b"\n")
    (root / "var/lib/dpkg").mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").write_text(DPKG_STATUS)
    result = firstboot(box, pg, start_platform=False)
    assert result.returncode == 0, result.stdout + result.stderr
    subprocess.run(service(box, "start").split(), check=True, cwd=ROOT)
    return box


@contextlib.contextmanager
def running_box(
    where: Path, pg: PgCluster, keys: Keys, machine_id: str | None = None
) -> Iterator[Path]:
    """`installed_box`, its platform stopped after the block."""
    made = installed_box(where, pg, keys, machine_id)
    try:
        yield made
    finally:
        subprocess.run(service(made, "stop").split(), check=False, cwd=ROOT)


def update(
    box: Path,
    pg: PgCluster,
    *args: str,
    fault: str | None = None,
    command: str = "update",
    bindir: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CLAWDIE_FIRSTBOOT_FAULT"}
    if fault:
        env["CLAWDIE_FIRSTBOOT_FAULT"] = fault
    argv = [
        sys.executable,
        "-m",
        "installer.cli",
        command,
        *args,
        *("--root", str(box / "root")),
        *("--db-admin", pg.admin_conninfo()),
        *("--pg-bindir", str(bindir or pg.bindir)),
        *("--platform-start", service(box, "start")),
        *("--platform-stop", service(box, "stop")),
    ]
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=ROOT, env=env, check=False, timeout=300
    )
