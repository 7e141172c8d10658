"""Factory reset from a stick (INSTALL_MODE=reset) on an installed sandbox box against real
PostgreSQL, in the style of tests/test_adopt.py: the seed passes the adopt gate (the box's
fingerprint AND its adopt code) or nothing changes; through the gate the box is reset (its
databases, settings, data and root's state gone, the install record kept) and waits for a seed;
the receipt says which. Taken at boot (`firstboot` on a completed box) and by the adopt unit
(`adopt --at-boot`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.helpers.adopt import fingerprint, installed_box, owner_code, receipt
from tests.helpers.firstboot import ROOT, firstboot, snapshot
from tests.helpers.pg import PgCluster, db_cli_args
from tests.helpers.sentinels import leaked

pytestmark = pytest.mark.root


@pytest.fixture
def box(tmp_path: Path, pg: PgCluster) -> Path:
    return installed_box(tmp_path, pg)


def reset_seed(box: Path, *, code: bool = True, fp: str | None = None) -> Path:
    lines = ["INSTALL_MODE=reset", f"INSTALL_FINGERPRINT={fp or fingerprint(box)}"]
    if code:
        lines.append(f"ADOPT_CODE={owner_code(box)}")
    path = box / "setup.txt"  # the stick's seed, now a reset seed
    path.write_text("\n".join(lines) + "\n")
    return path


def databases(pg: PgCluster) -> list[str]:
    with psycopg.connect(pg.admin_conninfo()) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'system_%' ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def test_a_reset_stick_with_the_fingerprint_and_the_code_resets_the_box_at_boot(
    box: Path, pg: PgCluster
) -> None:
    root = box / "root"
    reset_seed(box)
    result = firstboot(box, pg)
    assert result.returncode == 0, result.stdout + result.stderr
    text = receipt(box)
    assert text.startswith("Clawdie factory reset: ok (setup.txt)"), text
    assert "was reset: everything first boot and the platform made is gone" in text
    assert "The box now waits for a seed" in text
    assert not (root / "var/lib/clawdie-setup/firstboot/complete.done").exists()
    assert not (root / "etc/clawdie/system.env").exists()
    assert databases(pg) == []
    assert owner_code(box) not in text + result.stdout + result.stderr
    assert not leaked(text + result.stdout + result.stderr)
    # the box waits for a seed: a first boot with a fresh seed would run now (not "completed")
    again = firstboot(box, pg)
    assert "already completed" not in again.stderr


@pytest.mark.parametrize("case", ["no code", "another box's fingerprint"])
def test_a_reset_stick_that_does_not_pass_the_gate_changes_nothing(
    box: Path, pg: PgCluster, case: str
) -> None:
    if case == "no code":
        reset_seed(box, code=False)
        words = "ADOPT_CODE"
    else:
        reset_seed(box, fp="00000000")
        words = "is not this box's fingerprint"
    before, dbs = snapshot(box / "root", pg), databases(pg)
    result = firstboot(box, pg)
    assert result.returncode == 1, result.stdout + result.stderr
    text = receipt(box)
    assert text.startswith("Clawdie factory reset: failed (setup.txt)"), text
    assert words in text
    assert "Traceback" not in result.stderr
    assert snapshot(box / "root", pg) == before
    assert databases(pg) == dbs


def test_the_adopt_unit_takes_a_reset_stick_through_the_gate(box: Path, pg: PgCluster) -> None:
    seed = reset_seed(box)
    argv = [
        sys.executable, "-m", "installer.cli", "adopt", "--at-boot",
        "--root", str(box / "root"), "--seed", str(seed), *db_cli_args(pg),
        "--receipt-dir", str(box / "stick"),
    ]  # fmt: skip
    result = subprocess.run(
        argv, capture_output=True, text=True, cwd=ROOT, check=False, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert receipt(box).startswith("Clawdie factory reset: ok")
    assert databases(pg) == []
