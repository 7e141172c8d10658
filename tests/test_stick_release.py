"""A signed platform release next to an adopt seed (DESIGN §9, §10), on a sandbox box against a
real PostgreSQL: the box runs v1 of the reference payload (tests/helpers/update.py), the stick (a
folder) holds setup.txt with the box's fingerprint and adopt code and a v2 release signed by the
publisher's key the box trusts. Behind the gate the release is applied by the update room's run
(`update FILE`), after adopt's own keys; a wrong code never reads it; a damaged release is
refused and adopt's keys stay applied (each part of the stick is judged on its own, as each key
is: the owner proved the stick is theirs, and the receipt says which part was refused); two
releases are refused with the reason; a seed that changes no key is an update only. Taken by
the adopt unit (`adopt --at-boot`) and by first boot on a completed box."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from installer.adopt.stick_release import RELEASE_BOUND, parse_releases
from installer.update.signed import BUNDLE_LIMIT
from tests.helpers.adopt import MACHINE_ID, code_on_receipt
from tests.helpers.firstboot import ROOT, db_state, firstboot, snapshot
from tests.helpers.pg import PgCluster, db_cli_args
from tests.helpers.update import (
    V2_SQL,
    Keys,
    bundle,
    new_keys,
    payload,
    running_box,
    service,
)

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def keys() -> Keys:
    return new_keys()


@pytest.fixture
def box(tmp_path: Path, pg: PgCluster, keys: Keys) -> Iterator[Path]:
    """A box first boot set up (with a fingerprint and the owner's code kept beside it) running
    v1 of the reference payload; its stick (`stick/`) is where adopt seeds and releases go."""
    with running_box(tmp_path, pg, keys, MACHINE_ID) as box:
        (box / "owner-code").write_text(code_on_receipt(receipt(box)))
        yield box


def receipt(box: Path) -> str:
    return (box / "stick/SETUP-RESULT.txt").read_text()


def stick_seed(box: Path, *lines: str, code: str | None = None) -> Path:
    from installer.fingerprint import read_fingerprint
    from installer.paths import TargetPaths

    fingerprint = read_fingerprint(TargetPaths(box / "root"))
    owner = (box / "owner-code").read_text() if code is None else code
    head = ["INSTALL_MODE=adopt", f"INSTALL_FINGERPRINT={fingerprint}", f"ADOPT_CODE={owner}"]
    path = box / "stick/setup.txt"
    path.write_text("\n".join([*head, *lines]) + "\n")
    return path


def release_on_stick(box: Path, keys: Keys, version: str = "2") -> Path:
    """v2 (its migration adds a table) signed by the publisher, on the stick."""
    return bundle(payload(box, version, sql=V2_SQL), box / "stick", keys.publisher)


def adopt_at_boot(box: Path, pg: PgCluster, seed: Path) -> subprocess.CompletedProcess[str]:
    """The adopt unit's run (`adopt --at-boot`), the platform stopped and started as the update
    tests' stand-in for systemd does; the admin's message queued (nothing answers its API)."""
    argv = [
        sys.executable, "-m", "installer.cli", "adopt", "--at-boot",
        "--root", str(box / "root"), "--seed", str(seed), *db_cli_args(pg),
        "--platform-start", f"sh -c 'echo restarted >> {box}/restarts'",
        "--release-start", service(box, "start"), "--release-stop", service(box, "stop"),
        "--receipt-dir", str(box / "stick"), "--telegram-api", "http://127.0.0.1:9",
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False, timeout=300)


def running(box: Path) -> str:
    """The version the platform link names (an image's plain folder: its own manifest's)."""
    link = box / "root/opt/clawdie/platform"
    return (link / "platform.toml").read_text().split('version = "')[1].split('"')[0]


def told_admin(box: Path) -> str:
    queue = box / "root/var/lib/clawdie-setup"
    return "\n".join(p.read_text(errors="replace") for p in queue.rglob("adopt-*") if p.is_file())


def without_messages(files: dict[str, tuple[str, int, str]]) -> dict[str, tuple[str, int, str]]:
    """A snapshot without the Telegram queue (a refusal is told to the admin: queued here)."""
    return {k: v for k, v in files.items() if not k.startswith(QUEUE)}


QUEUE = "var/lib/clawdie-setup/telegram-queue"


def notes(pg: PgCluster) -> list[tuple[int, str]]:
    with psycopg.connect(pg.admin_conninfo("system_ops")) as conn:
        return [(int(r[0]), str(r[1])) for r in conn.execute("SELECT * FROM notes ORDER BY 1")]


def test_a_release_next_to_an_adopt_seed_is_applied_behind_the_gate(
    box: Path, pg: PgCluster, keys: Keys
) -> None:
    seed = stick_seed(box, "PROFILE=balanced")
    release = release_on_stick(box, keys)
    on_stick = release.read_bytes()
    result = adopt_at_boot(box, pg, seed)
    assert result.returncode == 0, result.stdout + result.stderr
    text = receipt(box)
    assert text.startswith("Clawdie adopt: ok (setup.txt)"), text
    assert "PROFILE: applied (economy → balanced" in text
    assert "update: reference-platform 1 → 2 applied\n" in text
    assert running(box) == "2"
    assert (box / "platform.runs").read_text().splitlines()[-1] == "2"
    assert notes(pg) == [(1, "first"), (2, "second")]
    # the stick's release was read, not changed; root's copy of it is gone
    assert release.read_bytes() == on_stick
    assert not (box / "root/var/lib/clawdie-setup/adopt").exists()
    # the console (the journal at boot) and the admin are told
    assert "applied; update: reference-platform 1 → 2 applied, from " in result.stderr
    assert "update: reference-platform 1 → 2 applied" in told_admin(box)
    assert "Traceback" not in result.stderr


def test_a_wrong_code_never_reads_the_release(box: Path, pg: PgCluster, keys: Keys) -> None:
    seed = stick_seed(box, "PROFILE=balanced", code="2222-3333-4444-5555")
    release = release_on_stick(box, keys)
    on_stick = release.read_bytes()
    before, before_db = snapshot(box / "root", pg), db_state(pg)
    result = adopt_at_boot(box, pg, seed)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "wrong or missing ADOPT_CODE" in receipt(box)
    assert "update" not in receipt(box) + result.stdout
    assert release.read_bytes() == on_stick
    assert without_messages(snapshot(box / "root", pg)) == without_messages(before)
    assert db_state(pg) == before_db
    assert running(box) == "1"


def test_a_damaged_release_is_refused_and_adopts_keys_stay_applied(
    box: Path, pg: PgCluster, keys: Keys
) -> None:
    seed = stick_seed(box, "PROFILE=balanced")
    release = release_on_stick(box, keys)
    data = bytearray(release.read_bytes())
    data[600] ^= 1  # one byte of the tar changed after it was signed
    release.write_bytes(bytes(data))
    result = adopt_at_boot(box, pg, seed)
    assert result.returncode == 0, result.stdout + result.stderr
    text = receipt(box)
    assert text.startswith("Clawdie adopt: degraded (setup.txt)"), text
    assert "PROFILE: applied (economy → balanced" in text
    assert (
        "update refused: the release's signature is not valid: the signature does not match "
        "the file (changed or damaged)\n"
    ) in text
    assert running(box) == "1"
    assert not (box / "root/opt/clawdie/releases").exists()
    assert not (box / "root/opt/clawdie/.incoming.tar").exists()
    assert not (box / "root/var/lib/clawdie-setup/adopt").exists()


def test_a_release_that_is_a_link_on_the_stick_is_refused_unread(
    box: Path, pg: PgCluster, keys: Keys
) -> None:
    """The stick is hostile media: a release that links elsewhere (here to the box's own key
    file) is not followed, and nothing is copied or changed."""
    seed = stick_seed(box)
    release = release_on_stick(box, keys)
    release.unlink()
    release.symlink_to(box / "root/etc/clawdie/system.env")
    result = adopt_at_boot(box, pg, seed)
    assert result.returncode == 0, result.stdout + result.stderr
    text = receipt(box)
    assert (
        f"update refused: the stick holds {release.name}.minisig but no regular file "
        f"{release.name} (a link or a folder is never followed)"
    ) in text, text
    assert running(box) == "1"
    assert not (box / "root/var/lib/clawdie-setup/adopt").exists()


def test_two_releases_on_the_stick_are_refused_with_the_reason(
    box: Path, pg: PgCluster, keys: Keys
) -> None:
    seed = stick_seed(box)
    release_on_stick(box, keys, "2")
    release_on_stick(box, keys, "3")
    result = adopt_at_boot(box, pg, seed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "update refused: the stick holds 2 releases (payload-reference-platform-2.tar, "
        "payload-reference-platform-3.tar); leave one release"
    ) in receipt(box)
    assert running(box) == "1"


def test_an_adopt_seed_that_changes_nothing_is_an_update_only_at_first_boot(
    box: Path, pg: PgCluster, keys: Keys
) -> None:
    """First boot on a completed box (its unit runs when a power cut left a seed copy) takes an
    adopt stick as the adopt unit does: here the seed is box/setup.txt, the release beside it."""
    stick_seed(box).replace(box / "setup.txt")
    bundle(payload(box, "2", sql=V2_SQL), box, keys.publisher)
    result = firstboot(box, pg, start_platform=False)
    assert result.returncode == 0, result.stdout + result.stderr
    text = receipt(box)
    assert "nothing to change: the box already has every setting of this seed" in text
    assert "update: reference-platform 1 → 2 applied\n" in text
    assert running(box) == "2"
    assert notes(pg) == [(1, "first"), (2, "second")]


@pytest.mark.parametrize(
    ("names", "found"),
    [
        ([], []),
        (["setup.txt", "SETUP-RESULT.txt", "clawdie-logs-1.tar.gz"], []),
        (["p-2.tar", "p-2.tar.minisig"], ["p-2.tar"]),
        (["P-2.TAR", "p-2.tar.minisig"], ["P-2.TAR"]),  # FAT's names, without case
        (["p-2.tar"], ["p-2.tar"]),  # no signature: refused by name later
        (["p-2.tar.minisig"], ["p-2.tar"]),  # a signature alone: refused by name later
        (["a.bin", "a.bin.minisig", "b.tar"], ["a.bin", "b.tar"]),
    ],
)
def test_the_releases_next_to_a_seed(names: list[str], found: list[str]) -> None:
    assert parse_releases(names) == found


def test_the_stick_bound_is_within_the_updates_own() -> None:
    assert RELEASE_BOUND <= BUNDLE_LIMIT
