"""Factory reset (issue 24) of a box first boot set up, in a sandbox root against a real
PostgreSQL: the wrong host name erases nothing; the reset removes the platform's databases and
role, its settings, data, keys, the Wi-Fi PSK, the accounts first boot made and root's state, so
that no sentinel secret of the seed and no sentinel of the platform's data is in any file of
the root afterwards (nor, on a real ext4 file system, anywhere in its raw image), and the box
takes a seed again as after a fresh install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from installer.backup.reset import account_file_copies
from installer.paths import TargetPaths
from installer.seed.hashes import derive_psk
from installer.update_channel import CHANNEL_FILE
from tests.helpers.adopt import installed_box
from tests.helpers.backup import with_platform_data
from tests.helpers.disk_image import raw_counts
from tests.helpers.firstboot import SEED, firstboot, snapshot
from tests.helpers.loopdev import ext4_at, sh
from tests.helpers.pg import PgCluster, db_cli_args
from tests.helpers.raw_disk import installed_on_ext4
from tests.helpers.sentinels import (
    OPENROUTER,
    OPERATOR_PASSWORD,
    ROW,
    SENTINEL,
    TOKEN,
    USER_PASSWORD,
    WIFI_PASSWORD,
)

ROOT = Path(__file__).resolve().parents[1]
HOST = "zoe-s-helper"
PSK = derive_psk(WIFI_PASSWORD, "Zoë's Wi-Fi")
SECRETS = {
    "bot token": TOKEN,
    "OpenRouter key": OPENROUTER,
    "operator password": OPERATOR_PASSWORD,
    "fallback password": USER_PASSWORD,
    "Wi-Fi password": WIFI_PASSWORD,
    "Wi-Fi PSK": PSK,
    "platform data": ROW,
}

pytestmark = pytest.mark.root


def reset(
    box: Path, pg: PgCluster, *extra: str, fault: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDIE_")}
    if fault:
        env["CLAWDIE_FIRSTBOOT_FAULT"] = fault
    argv = [sys.executable, "-m", "installer.cli", "factory-reset", "--root", str(box / "root")]
    return subprocess.run(
        [*argv, *db_cli_args(pg), "--no-platform-stop", *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def platform_dbs(pg: PgCluster) -> list[tuple[str, ...]]:
    with psycopg.connect(pg.admin_conninfo()) as conn:
        dbs = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'system_%'")
        roles = conn.execute("SELECT rolname FROM pg_roles WHERE rolname = 'clawdie'")
        return [*dbs.fetchall(), *roles.fetchall()]


def with_data_file(box: Path, pg: PgCluster) -> None:
    with_platform_data(box, pg)
    (box / "root/var/lib/clawdie/data/notes.txt").write_text(f"remember {ROW}\n")
    record = TargetPaths(box / "root").install_record
    record.write_text("Installed: 2026-12-07T08:00:00Z\n")
    # the copies shadow's tools and Debian's daily job keep of the account files, with the
    # service account's line (here marked, where a hash would be)
    for copy in account_file_copies(TargetPaths(box / "root")):
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(f"clawdie:{ROW}:20000:0:99999:7:::\n")


def test_factory_reset_leaves_no_secret_and_a_box_that_takes_a_seed(
    tmp_path: Path, pg: PgCluster
) -> None:
    box = installed_box(tmp_path, pg, SEED)
    with_data_file(box, pg)
    root = box / "root"
    publisher = TargetPaths(root)
    publisher.release_key.write_text("untrusted comment: the publisher's key\nRWQ...\n")
    (publisher.config_dir / CHANNEL_FILE).write_text("https://releases.example.org/clawdie\n")
    before = snapshot(root, pg)

    wrong = reset(box, pg, "--yes-i-typed", "someone-else")
    assert wrong.returncode == 2, wrong.stderr
    assert "nothing was erased" in wrong.stderr
    assert f"type {HOST} exactly" in wrong.stderr
    at_a_script = reset(box, pg)  # no terminal, no confirmation
    assert at_a_script.returncode == 2
    assert f"--yes-i-typed {HOST}" in at_a_script.stderr
    assert snapshot(root, pg) == before
    assert len(platform_dbs(pg)) == 4

    # a power cut half way: the next run finishes it
    cut = reset(box, pg, "--yes-i-typed", HOST, fault="before:reset-accounts")
    assert cut.returncode == -9, cut.stderr
    assert platform_dbs(pg) == []
    result = reset(box, pg, "--yes-i-typed", HOST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "The box waits for a seed" in result.stdout
    assert "account clawdie" in result.stdout
    for what, value in SECRETS.items():
        assert value not in result.stdout + result.stderr, what
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            for what, value in {**SECRETS, "the marker every secret holds": SENTINEL}.items():
                assert value.encode() not in data, (what, path)
    assert platform_dbs(pg) == []
    paths = TargetPaths(root)
    assert "clawdie:" not in paths.passwd.read_text()
    assert not paths.complete_stamp.exists()
    assert not paths.service_home.exists()
    assert not list(paths.ssh_dir.glob("ssh_host_*"))
    # what the image or install-platform gave stays: releases are still taken after a reset
    assert paths.release_key.read_text().startswith("untrusted comment: the publisher's key")
    assert (paths.config_dir / CHANNEL_FILE).exists()
    assert not paths.wifi_supplicant_conf.exists()
    assert not paths.adopt_code_hash.exists()
    assert paths.install_record.read_text() == "Installed: 2026-12-07T08:00:00Z\n"
    assert not [copy for copy in account_file_copies(paths) if copy.exists()]
    assert "copies the account tools kept of the account files overwritten" in result.stdout

    # as after a fresh install: first boot takes the seed and sets the box up again
    again = firstboot(box, pg)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(platform_dbs(pg)) == 4
    # and a second reset of the reset box is no error
    assert reset(box, pg, "--yes-i-typed", HOST).returncode == 0


@pytest.mark.usefixtures("loop_devices")
def test_after_a_factory_reset_no_secret_is_on_the_raw_file_system(
    tmp_path: Path, pg: PgCluster
) -> None:
    with installed_on_ext4(tmp_path) as (box, image):
        (box / "setup.txt").unlink()
        result = firstboot(box, pg, seed_file=False)
        assert result.returncode == 0, result.stderr
        with_data_file(box, pg)
        sh("sync")
    assert raw_counts(image, {"data": ROW})["data"] >= 1  # the search finds what is there
    with ext4_at(image, box / "root"):
        done = reset(box, pg, "--yes-i-typed", HOST)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "freed blocks discarded (fstrim)" in done.stdout  # a loop device takes discard
        sh("sync")
    assert raw_counts(image, SECRETS) == dict.fromkeys(SECRETS, 0)
