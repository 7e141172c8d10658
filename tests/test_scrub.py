"""Deleting and rewriting a file with secrets leaves none of its content in freed blocks
(issue 27), and a power cut at any point of that keeps the file whole: the old or the new
version, never zeros. The blocks are searched on a real ext4 file system on a loop device."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from installer.fsutil import remove_durably, remove_stale_temps, write_atomic
from tests.helpers.disk_image import raw_counts
from tests.helpers.loopdev import ext4_at, make_ext4

ROOT = Path(__file__).resolve().parents[1]
OLD = "OLDxSECRETx" + "a1b2c3d4" * 64  # longer than a line: spans the block's middle
NEW = "NEWxVALUEx" + "e5f6a7b8" * 64


def in_clear(image: Path) -> dict[str, int]:
    return raw_counts(image, {"old": OLD, "new": NEW})


@pytest.mark.root
@pytest.mark.usefixtures("loop_devices")
@pytest.mark.parametrize("scrub", [True, False], ids=["scrubbed", "not-scrubbed"])
def test_a_rewrite_leaves_the_old_version_in_no_block_only_when_scrubbed(
    tmp_path: Path, scrub: bool
) -> None:
    """The check can fail: without `scrub_old` ext4 leaves the old version in a freed block."""
    image, mount = tmp_path / "fs.img", tmp_path / "mnt"
    make_ext4(image)
    with ext4_at(image, mount):
        write_atomic(mount / "system.env", OLD, mode=0o600)
        subprocess.run(["sync"], check=True)
        write_atomic(mount / "system.env", NEW, mode=0o600, scrub_old=scrub)
        assert (mount / "system.env").read_text() == NEW
    assert in_clear(image) == {"old": 0 if scrub else 1, "new": 1}


@pytest.mark.root
@pytest.mark.usefixtures("loop_devices")
def test_a_deleted_file_leaves_its_content_in_no_block(tmp_path: Path) -> None:
    image, mount = tmp_path / "fs.img", tmp_path / "mnt"
    make_ext4(image)
    with ext4_at(image, mount):
        write_atomic(mount / "setup.txt", OLD, mode=0o600)
        subprocess.run(["sync"], check=True)
        assert remove_durably(mount / "setup.txt")
        assert not remove_durably(mount / "setup.txt")  # nothing left to delete
    assert in_clear(image)["old"] == 0


def cut_at(point: str, code: str, *args: str) -> int:
    """Run `code` in a new process with the fault `point` armed (SIGKILL there, as a power
    cut); its exit status."""
    env = {**os.environ, "CLAWDIE_FIRSTBOOT_FAULT": point}
    script = f"from installer import faults\nfaults.arm_from_environment()\n{code}"
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, env=env, check=False, timeout=60
    )
    return proc.returncode


REWRITE = (
    "import sys\nfrom pathlib import Path\nfrom installer.fsutil import write_atomic\n"
    "write_atomic(Path(sys.argv[1]), sys.argv[2], mode=0o600, scrub_old=True)\n"
)


@pytest.mark.parametrize(
    ("point", "left"),
    [
        ("mid-write:system.env", OLD),  # half the temp file written, not renamed
        ("scrub:system.env", NEW),  # the new one renamed in, the old one not yet overwritten
        ("scrubbed:system.env", NEW),  # the old one overwritten, not yet closed
    ],
)
def test_a_power_cut_in_a_scrubbed_rewrite_leaves_the_old_or_the_new_version(
    tmp_path: Path, point: str, left: str
) -> None:
    target = tmp_path / "system.env"
    write_atomic(target, OLD, mode=0o600)
    assert cut_at(point, REWRITE, str(target), NEW) == -9
    assert target.read_text() == left
    temps = [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert len(temps) == (1 if point.startswith("mid-write:") else 0)
    remove_stale_temps(tmp_path)  # the next run clears what the cut left, then finishes
    assert [p.name for p in tmp_path.iterdir()] == ["system.env"]
    write_atomic(target, NEW, mode=0o600, scrub_old=True)
    assert target.read_text() == NEW


REMOVE = (
    "import sys\nfrom pathlib import Path\nfrom installer.fsutil import remove_durably\n"
    "remove_durably(Path(sys.argv[1]))\n"
)


@pytest.mark.parametrize("point", ["scrub:setup.txt", "scrubbed:setup.txt"])
def test_a_power_cut_in_a_scrubbed_delete_never_leaves_zeros_under_the_name(
    tmp_path: Path, point: str
) -> None:
    target = tmp_path / "setup.txt"
    write_atomic(target, OLD, mode=0o600)
    assert cut_at(point, REMOVE, str(target)) == -9
    assert not target.exists()  # the name went first: gone, never a file of zeros
