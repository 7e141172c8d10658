"""`clawdie-setup factory-reset --wipe` on a loop disk: a GPT disk with an ext4 root holding the
box's host name and a file of sentinel secrets, mounted as the command's root. The disk holding
that root is found from the root itself (never named by the user); after the wipe no sentinel is
on the image and no partition table: by discard (a file-backed loop device discards), and by the
overwrite when the device refuses discard (its discard limit set to 0: a real refusal). A root
that is not a mounted disk partition, or a host name not typed, erases nothing."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.loopdev import MIB, LoopDisk, Part, loop_disk, require_root, sh
from tests.helpers.sentinels import SENTINEL, TOKEN

ROOT = Path(__file__).resolve().parents[1]
HOST = "handover-box"

pytestmark = pytest.mark.root


def clawdie(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDIE_")}
    return subprocess.run(
        [sys.executable, "-m", "installer.cli", "factory-reset", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def mounted_box(tmp_path: Path) -> Iterator[tuple[LoopDisk, Path]]:
    """A loop disk whose ext4 partition is mounted as a box's root, with secrets on it."""
    require_root()
    with loop_disk(tmp_path, [Part(size_mib=None, name="CLAWDIE-ROOT", fs=None)]) as disk:
        (node,) = disk.parts
        sh("mkfs.ext4", "-q", "-L", "clawdie-root", node)
        point = tmp_path / "root"
        point.mkdir()
        sh("mount", node, str(point))
        try:
            (point / "etc").mkdir()
            (point / "etc/hostname").write_text(f"{HOST}\n")
            (point / "etc/clawdie").mkdir()
            env = f'TELEGRAM_BOT_TOKEN="{TOKEN}"\n# {SENTINEL}\n' * 2000
            (point / "etc/clawdie/system.env").write_text(env)
            sh("sync")
            yield disk, point
        finally:
            subprocess.run(["umount", str(point)], capture_output=True, check=False)


def erased(disk: LoopDisk) -> None:
    """No sentinel on the image, no partition table, no signature."""
    sh("sync")
    data = disk.image.read_bytes()
    assert SENTINEL.encode() not in data
    assert b"CLAWDIE-ROOT" not in data.replace(b"\0", b"")  # no GPT name left either
    table = subprocess.run(["sfdisk", "-d", disk.node], capture_output=True, check=False)
    assert table.returncode != 0
    assert sh("wipefs", "--no-act", disk.node).strip() == ""


LOOP_CTL_REMOVE, LOOP_CTL_ADD = 0x4C81, 0x4C80


@pytest.fixture
def renewed_loops() -> Iterator[list[str]]:
    """Loop devices whose discard limit a test set to 0: once detached (the disk fixture's
    teardown runs first), each is removed and made again, so the next user gets the kernel's
    own limits (a limit of 0 cannot be written back)."""
    nodes: list[str] = []
    yield nodes
    control = os.open("/dev/loop-control", os.O_RDWR)
    try:
        for node in nodes:
            number = int(node.removeprefix("/dev/loop"))
            fcntl.ioctl(control, LOOP_CTL_REMOVE, number)
            fcntl.ioctl(control, LOOP_CTL_ADD, number)
    finally:
        os.close(control)


@pytest.mark.parametrize("how", ["discard", "overwrite"])
def test_wipe_erases_the_whole_disk_holding_the_root(
    renewed_loops: list[str], mounted_box: tuple[LoopDisk, Path], how: str
) -> None:
    disk, point = mounted_box
    assert SENTINEL.encode() in disk.image.read_bytes()
    if how == "overwrite":  # this device now refuses discard, as many disks do
        renewed_loops.append(disk.node)
        Path(f"/sys/block/{Path(disk.node).name}/queue/discard_max_bytes").write_text("0")
    result = clawdie("--root", str(point), "--wipe", "--no-poweroff", "--yes-i-typed", HOST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"erases the WHOLE disk {disk.node}" in result.stderr
    if how == "discard":
        assert f"{disk.node}: every block discarded" in result.stdout
    else:
        assert "the partition tables: MBR and both GPT copies" in result.stdout
        assert f"then every byte ({100 * MIB:,} bytes) written with zeros" in result.stdout
    assert SENTINEL not in result.stdout + result.stderr
    subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
    erased(disk)


def test_wipe_without_the_host_name_or_off_a_disk_erases_nothing(
    mounted_box: tuple[LoopDisk, Path], tmp_path: Path
) -> None:
    disk, point = mounted_box
    before = disk.image.read_bytes()
    result = clawdie("--root", str(point), "--wipe", "--no-poweroff", "--yes-i-typed", "other")
    assert result.returncode == 2
    assert "nothing was erased" in result.stderr
    # a folder that is not a mounted file system (here: on the test's own disk) is refused
    (tmp_path / "plain/etc").mkdir(parents=True)
    (tmp_path / "plain/etc/hostname").write_text(f"{HOST}\n")
    result = clawdie(
        "--root", str(tmp_path / "plain"), "--wipe", "--no-poweroff", "--yes-i-typed", HOST
    )
    assert result.returncode == 2
    assert "is not where a file system is mounted: nothing was erased" in result.stderr
    # a root on a RAM file system is no disk
    result = clawdie("--root", "/dev/shm", "--wipe", "--no-poweroff", "--yes-i-typed", "clawdie")
    assert result.returncode == 2
    assert "is not on a disk" in result.stderr
    sh("sync")  # the mounted file system still writes its own metadata: its data is all there
    assert before.count(SENTINEL.encode()) == disk.image.read_bytes().count(SENTINEL.encode())
    assert "CLAWDIE-ROOT" in sh("sfdisk", "-d", disk.node)
