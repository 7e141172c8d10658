"""Platform releases (issue 23, DESIGN §9) on a box first boot set up, in a sandbox root against a
real PostgreSQL, with the reference platform in versions made here and signed with a test key
made here: applied and kept; never ready, or a migration that damages rows and fails: rolled
back with the databases exactly as before; every refusal changes nothing; a power cut at every
phase converges at the next start."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from installer.envfile import parse_env_file
from tests.helpers.firstboot import snapshot
from tests.helpers.pg import PgCluster
from tests.helpers.update import (
    REFERENCE,
    ROOT,
    V2_SQL,
    V4_SQL,
    Keys,
    bundle,
    never_ready,
    new_keys,
    payload,
    running_box,
    service,
    update,
)

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def keys() -> Keys:
    return new_keys()


@pytest.fixture
def box(tmp_path: Path, pg: PgCluster, keys: Keys) -> Iterator[Path]:
    with running_box(tmp_path / "box", pg, keys) as made:
        yield made


def databases(pg: PgCluster) -> dict[str, str]:
    """Each platform database as a plain pg_dump: equal dumps, equal databases."""
    out = {}
    for name in ("system_ops", "system_brain", "system_skills"):
        result = subprocess.run(
            [str(pg.bindir / "pg_dump"), "--no-password", f"--dbname={pg.admin_conninfo(name)}"],
            capture_output=True,
            text=True,
            check=True,
        )
        lines = result.stdout.splitlines()  # \restrict takes a new random key every time
        out[name] = "\n".join(x for x in lines if not x.startswith(("\\restrict", "\\unrestrict")))
    return out


def running(box: Path) -> str:
    """The version the platform link names (or the image's plain folder holds) and the one last
    started: the same."""
    platform = box / "root/opt/clawdie/platform"
    if platform.is_symlink():
        named = Path(os.readlink(platform)).name
    else:
        named = tomllib.loads((platform / "platform.toml").read_text())["version"]
    started = (box / "platform.runs").read_text().split()[-1]
    assert named == started, (named, started)
    return started


def releases(box: Path) -> list[str]:
    folder = box / "root/opt/clawdie/releases"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def notes(pg: PgCluster) -> list[tuple[int, str]]:
    with psycopg.connect(pg.admin_conninfo("system_ops")) as conn:
        return [(int(r[0]), str(r[1])) for r in conn.execute("SELECT * FROM notes ORDER BY 1")]


def last(box: Path) -> str:
    return (box / "root/var/lib/clawdie-setup/update/last.txt").read_text().strip()


def test_v2_is_applied_and_v1_kept_then_v3_never_ready_rolls_back(
    box: Path, pg: PgCluster, keys: Keys, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    v2 = bundle(payload(tmp_path, "2", sql=V2_SQL), tmp_path / "out", keys.publisher)
    result = update(box, pg, str(v2))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "applied: reference-platform 2 (kept 1 for rollback)" in result.stdout
    assert running(box) == "2"
    assert releases(box) == ["1", "2"]
    assert notes(pg) == [(1, "first"), (2, "second")]
    assert last(box).startswith("applied: reference-platform 2")
    assert not (box / "root/var/lib/clawdie-setup/update/state.json").exists()
    password = parse_env_file((box / "root/etc/clawdie/system.env").read_text())[
        "PLATFORM_DB_PASSWORD"
    ]
    assert password not in result.stdout + result.stderr
    for path in (box / "root/var/lib/clawdie-setup/update").rglob("*"):
        assert path.is_dir() or password.encode() not in path.read_bytes(), path
    print(f"v1 -> v2 in {time.monotonic() - t0:.1f} s")

    before = databases(pg)
    folder = payload(tmp_path, "3", ready=["bin/never-ready"], ready_timeout=3)
    never_ready(folder)
    result = update(box, pg, str(bundle(folder, tmp_path / "out", keys.publisher)))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rolled back: ready: not ready within 3 s (still warming up)" in result.stdout
    assert databases(pg) == before
    assert running(box) == "2"
    assert releases(box) == ["1", "2"]
    assert last(box) == "rolled back: ready: not ready within 3 s (still warming up)"


def test_a_migration_that_damages_rows_then_fails_is_restored_exactly(
    box: Path, pg: PgCluster, keys: Keys, tmp_path: Path
) -> None:
    v2 = bundle(payload(tmp_path, "2", sql=V2_SQL), tmp_path / "out", keys.publisher)
    assert update(box, pg, str(v2)).returncode == 0
    before = databases(pg)
    v4 = bundle(payload(tmp_path, "4", sql=V4_SQL), tmp_path / "out", keys.publisher)
    result = update(box, pg, str(v4))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rolled back: migrate: command failed (exit 3)" in result.stdout
    assert "division by zero" in result.stdout
    assert databases(pg) == before
    assert notes(pg) == [(1, "first"), (2, "second")]
    assert running(box) == "2"
    assert releases(box) == ["1", "2"]

    v5 = bundle(payload(tmp_path, "5", sql=V2_SQL), tmp_path / "out", keys.publisher)
    result = update(box, pg, str(v5), bindir=tmp_path / "no-postgresql-here")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rolled back: dump: the program " in result.stdout
    assert "no-postgresql-here/pg_dump is not installed" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert databases(pg) == before
    assert running(box) == "2"


def test_rollback_goes_back_to_the_kept_release_and_its_databases(
    box: Path, pg: PgCluster, keys: Keys, tmp_path: Path
) -> None:
    before = databases(pg)
    v2 = bundle(payload(tmp_path, "2", sql=V2_SQL), tmp_path / "out", keys.publisher)
    assert update(box, pg, str(v2)).returncode == 0
    refused = update(box, pg, command="rollback")
    assert refused.returncode == 2
    assert "what it stored since is lost" in refused.stderr
    result = update(box, pg, "--yes", command="rollback")
    assert result.returncode == 0, result.stdout + result.stderr
    assert running(box) == "1"
    assert databases(pg) == before
    assert releases(box) == ["1"]
    again = update(box, pg, "--yes", command="rollback")
    assert again.returncode == 1
    assert "there is no earlier release to go back to" in again.stderr


def tampered(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))
    return path


REFUSALS = {
    "one byte changed": "the signature does not match the file (changed or damaged)",
    "another key": "signed by another key than this box trusts",
    "another name": "the release is other-platform 2; this box runs reference-platform",
    "a downgrade": "0.9 is older than the running 1",
    "the same version": "this box already runs reference-platform 1",
    "an unmet package need": "needs Debian packages this system does not have: clawdie-nope",
    "a dashboard without its modules": "cannot run offline: dashboard/ has no node_modules",
    "no signature": "no signature next to the release",
    "a link in the archive": "which is not a plain file or folder inside it",
}


def refused_bundle(case: str, where: Path, keys: Keys) -> Path:
    out = where / "out"
    if case == "one byte changed":
        return tampered(bundle(payload(where, "2"), out, keys.publisher))
    if case == "another key":
        return bundle(payload(where, "2"), out, keys.stranger)
    if case == "another name":
        return bundle(payload(where, "2", name="other-platform"), out, keys.publisher)
    if case == "a downgrade":
        return bundle(payload(where, "0.9"), out, keys.publisher)
    if case == "the same version":
        return bundle(payload(where, "1.0"), out, keys.publisher)
    if case == "an unmet package need":
        return bundle(payload(where, "2", needs=("clawdie-nope",)), out, keys.publisher)
    if case == "a dashboard without its modules":  # the lock file alone: npm would be needed
        folder = payload(where, "2")
        shutil.copytree(REFERENCE / "dashboard", folder / "dashboard")
        return bundle(folder, out, keys.publisher)
    if case == "no signature":
        path = bundle(payload(where, "2"), out, keys.publisher)
        path.with_name(path.name + ".minisig").unlink()
        return path
    folder = payload(where, "2")
    (folder / "escape").symlink_to("/etc/shadow")
    return bundle(folder, out, keys.publisher)


def test_each_refusal_changes_nothing(box: Path, pg: PgCluster, keys: Keys, tmp_path: Path) -> None:
    files, rows = snapshot(box / "root", pg), databases(pg)
    for case, words in REFUSALS.items():
        result = update(box, pg, str(refused_bundle(case, tmp_path / case.replace(" ", "-"), keys)))
        assert result.returncode == 1, (case, result.stdout, result.stderr)
        assert words in result.stderr, (case, result.stderr)
        assert "refused: " in result.stderr, (case, result.stderr)
        assert "Traceback" not in result.stderr
        assert snapshot(box / "root", pg) == files, case
        assert databases(pg) == rows, case
        assert running(box) == "1", case
    downgrade = refused_bundle("a downgrade", tmp_path / "allowed", keys)
    result = update(box, pg, str(downgrade), "--allow-downgrade")
    assert result.returncode == 0, result.stdout + result.stderr
    assert running(box) == "0.9"


FORWARD_PHASES = ("unpack", "packages", "stop", "dump", "migrate", "switch", "start", "ready")
BACK_PHASES = (
    "rollback-stop",
    "rollback-switch",
    "rollback-restore",
    "rollback-start",
    "rollback-ready",
    "rolled-back",
)
EVERY_FORWARD_CUT = (
    "before:verify",
    "stamped:verify",
    *(
        f"{when}:{p}"
        for p in (*FORWARD_PHASES, "keep")
        for when in ("before", "effects", "stamped")
    ),
)
EVERY_BACK_CUT = tuple(f"{when}:{p}" for p in BACK_PHASES for when in ("before", "effects"))
SOME_FORWARD_CUTS = (
    "stamped:verify",
    "before:dump",
    "effects:migrate",
    "effects:switch",
    "stamped:ready",
)
SOME_BACK_CUTS = ("effects:rollback-switch", "before:rollback-restore")


def cut_and_boot(box: Path, pg: PgCluster, release: Path, point: str) -> str:
    """The update of `release` cut at `point` (SIGKILL, and the platform with it), then the next
    boot: `update --resume` (the unit's ExecStartPre) and the platform's start. Returns what
    the resume said."""
    cut = update(box, pg, str(release), fault=point)
    assert cut.returncode == -9, (point, cut.stdout, cut.stderr)
    subprocess.run(service(box, "stop").split(), check=True, cwd=ROOT)
    booted = update(box, pg, "--resume")
    assert booted.returncode in (0, 1), (point, booted.stdout, booted.stderr)
    assert "Traceback" not in booted.stderr
    subprocess.run(service(box, "start").split(), check=True, cwd=ROOT)
    again = update(box, pg, "--resume")
    assert "no update was under way" in again.stdout, (point, again.stdout, again.stderr)
    return booted.stdout


def converge_after_each_cut(
    box: Path,
    pg: PgCluster,
    keys: Keys,
    where: Path,
    forward: tuple[str, ...],
    back: tuple[str, ...],
) -> None:
    """From v1, every cut ends in v1 with its databases exactly as before, or in v2 applied
    (then `rollback` brings v1 and its databases back for the next cut)."""
    v2 = bundle(payload(where, "2", sql=V2_SQL), where / "out", keys.publisher)
    v3_folder = payload(where, "3", ready=["bin/never-ready"], ready_timeout=2)
    never_ready(v3_folder)
    v3 = bundle(v3_folder, where / "out", keys.publisher)
    before = databases(pg)
    for release, points in ((v2, forward), (v3, back)):
        for point in points:
            said = cut_and_boot(box, pg, release, point)
            assert not (box / "root/var/lib/clawdie-setup/update/state.json").exists(), point
            if running(box) == "2":
                assert "applied: reference-platform 2" in said, (point, said)
                assert notes(pg) == [(1, "first"), (2, "second")], point
                back_to_v1 = update(box, pg, "--yes", command="rollback")
                assert back_to_v1.returncode == 0, (point, back_to_v1.stdout, back_to_v1.stderr)
            assert running(box) == "1", (point, said)
            assert databases(pg) == before, point
            assert releases(box) in (["1"], []), point  # [] : cut before the first unpack
            assert not (box / "root/opt/clawdie/.incoming").exists(), point


@pytest.mark.timeout(600)
def test_a_power_cut_in_some_phases_converges(
    box: Path, pg: PgCluster, keys: Keys, tmp_path: Path
) -> None:
    converge_after_each_cut(box, pg, keys, tmp_path, SOME_FORWARD_CUTS, SOME_BACK_CUTS)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_power_cut_in_every_phase_converges(
    box: Path, pg: PgCluster, keys: Keys, tmp_path: Path
) -> None:
    """Every cut the fast suite's test above does not already make (between them: all)."""
    # `stamped:X` leaves what `before:Y` of the next phase finds (nothing runs between them but
    # the progress line), so only the last phase's `stamped:` is cut on its own
    last = f"stamped:{FORWARD_PHASES[-1]}"
    forward = tuple(
        p
        for p in EVERY_FORWARD_CUT
        if p not in SOME_FORWARD_CUTS
        and (not p.startswith("stamped:") or p in (last, "stamped:keep"))
    )
    back = tuple(p for p in EVERY_BACK_CUT if p not in SOME_BACK_CUTS)
    converge_after_each_cut(box, pg, keys, tmp_path, forward, back)
