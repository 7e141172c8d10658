"""The one reader for seeds on media (DESIGN §10): a hostile stick's setup.txt that is a link to
/dev/zero, a FIFO, a device node, a folder or 100 MB is refused with its reason and the stick's
label, having read at most the bound. On real FAT (loop device) and ISO 9660 (xorriso image on a
loop device) volumes, through whatever this kernel allows (a mount, mtools, xorriso), and on the
mounted-volume reader itself over a folder holding the real special files."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer.errors import SeedUnreadableError
from installer.media.blockdev import BlockDevice, read_block_devices
from installer.media.seed_device import find_seed, read_seed
from installer.media.seed_volume import MountedVolume, parse_mdir_size
from installer.run import run
from installer.seed.reader import MAX_SEED_BYTES
from tests.helpers.loopdev import LoopDisk, Part, attach_loop, loop_disk

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("loop_devices")]

SEED = b"INSTALL_MODE=adopt\nPROFILE=balanced\n"
BIG = 100 * 1024 * 1024
# Reading the listing and a refused entry costs kilobytes; following /dev/zero or the 100 MB
# file would cost megabytes at least.
READ_LIMIT = 4 * 1024 * 1024


def devices_on(disk: LoopDisk) -> list[BlockDevice]:
    return [device for device in read_block_devices() if device.disk == disk.node]


def bytes_read() -> int:
    """Bytes this process has read through read(2) and friends so far (/proc/self/io rchar)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@contextlib.contextmanager
def copies_watched(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """Every command the seed volume runs (really run), to see what was copied off the stick."""
    commands: list[list[str]] = []

    def watched(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        commands.append(list(argv))
        return run(argv, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("installer.media.seed_volume.run", watched)
    yield commands


def copied_off(commands: list[list[str]]) -> list[list[str]]:
    return [argv for argv in commands if argv[0] == "mcopy" or "-extract" in argv]


def refused(device: BlockDevice) -> str:
    before = bytes_read()
    with pytest.raises(SeedUnreadableError) as caught:
        read_seed(device)
    assert bytes_read() - before < READ_LIMIT
    return caught.value.message


# --- FAT on a loop device -------------------------------------------------------------------


def test_fat_seed_of_100_mb_is_refused_before_it_is_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = Part(None, label="CLAWDIESEED", files={"setup.txt": b"#" * BIG})
    with loop_disk(tmp_path, [part], table="dos", size_mib=200) as disk:
        device = find_seed(devices_on(disk), boot_disks=set())[0]
        with copies_watched(monkeypatch) as commands:
            message = refused(device)
    assert message.startswith(f"setup.txt on the stick CLAWDIESEED ({device.node}) is ")
    assert f"{BIG:,} bytes" in message
    assert "at most 64 KiB" in message
    assert copied_off(commands) == []


def test_fat_seed_that_is_a_folder_is_refused_as_one(tmp_path: Path) -> None:
    with loop_disk(tmp_path, [Part(None, label="CLAWDIESEED")], table="dos") as disk:
        subprocess.run(
            ["mmd", "-i", disk.parts[0], "::/setup.txt"],
            check=True,
            env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
        )
        device = find_seed(devices_on(disk), boot_disks=set())[0]
        message = refused(device)
    assert message == (
        f"setup.txt on the stick CLAWDIESEED ({device.node}) is not a regular file (a directory)"
    )


def test_fat_seed_within_the_bound_is_read(tmp_path: Path) -> None:
    exact = SEED + b"#" * (MAX_SEED_BYTES - len(SEED))
    part = Part(None, label="CLAWDIESEED", files={"setup.txt": exact})
    with loop_disk(tmp_path, [part], table="dos") as disk:
        assert read_seed(find_seed(devices_on(disk), boot_disks=set())[0]).data == exact


@pytest.mark.parametrize(
    ("listing", "size"),
    [
        ("setup    txt     3 2026-12-07   4:29\n        1 file                    3 bytes\n", 3),
        ("        1 file          104 857 600 bytes\n  41 280 000 bytes free\n", BIG),
        ("        2 files                   3 bytes\n", None),
        ("", None),
    ],
)
def test_mdir_size_is_read_from_its_one_file_line(listing: str, size: int | None) -> None:
    assert parse_mdir_size(listing) == size


# --- ISO 9660 on a loop device ----------------------------------------------------------------


def make_iso(tmp_path: Path, fill: str) -> Path:
    """An ISO 9660 image (Rock Ridge, so links, FIFOs and devices exist) labelled CLAWDIESEED
    whose setup.txt is what `fill` says."""
    if shutil.which("xorriso") is None:
        pytest.skip("needs xorriso")
    tree = tmp_path / "tree"
    tree.mkdir()
    target = tree / "setup.txt"
    if fill == "link":
        target.symlink_to("/dev/zero")
    elif fill == "fifo":
        os.mkfifo(target)
    elif fill == "device":
        os.mknod(target, 0o644 | 0o020000, os.makedev(1, 5))  # a character device: /dev/zero's
    elif fill == "big":
        with target.open("wb") as handle:
            handle.truncate(BIG)
    else:
        target.write_bytes(SEED)
    image = tmp_path / "seed.iso"
    argv = ["xorriso", "-as", "mkisofs", "-quiet", "-R", "-V", "CLAWDIESEED", "-o", str(image)]
    subprocess.run([*argv, str(tree)], check=True, capture_output=True)
    return image


@contextlib.contextmanager
def iso_stick(tmp_path: Path, fill: str) -> Iterator[BlockDevice]:
    disk = attach_loop(make_iso(tmp_path, fill), read_only=True)
    try:
        device = find_seed(devices_on(disk), boot_disks=set())[0]
        assert device.fs_type == "iso9660"
        yield device
    finally:
        disk.detach()


@pytest.mark.parametrize(
    ("fill", "reason"),
    [
        ("link", "is not a regular file (a symbolic link)"),
        ("fifo", "is not a regular file (a named pipe (FIFO))"),
        ("device", "is not a regular file (a character device)"),
        ("big", f"is {BIG:,} bytes"),
    ],
)
def test_iso_seed_that_is_not_a_small_regular_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fill: str, reason: str
) -> None:
    with iso_stick(tmp_path, fill) as device, copies_watched(monkeypatch) as commands:
        message = refused(device)
    assert message.startswith(f"setup.txt on the stick CLAWDIESEED ({device.node}) {reason}")
    assert copied_off(commands) == []


def test_iso_seed_is_read(tmp_path: Path) -> None:
    with iso_stick(tmp_path, "seed") as device:
        assert read_seed(device).data == SEED


# --- the mounted-volume reader over the real special files -----------------------------------


@pytest.mark.parametrize(
    ("fill", "reason"),
    [
        ("link", "a symbolic link"),
        ("fifo", "a named pipe (FIFO)"),
        ("device", "a character device"),
        ("folder", "a directory"),
    ],
)
def test_mounted_volume_refuses_each_special_entry(tmp_path: Path, fill: str, reason: str) -> None:
    """What a kernel mount of FAT, exFAT or ISO 9660 hands the reader: the same words."""
    target = tmp_path / "setup.txt"
    if fill == "link":
        target.symlink_to("/dev/zero")
    elif fill == "fifo":
        os.mkfifo(target)
    elif fill == "device":
        os.mknod(target, 0o600 | 0o020000, os.makedev(1, 5))
    else:
        target.mkdir()
    device = BlockDevice(
        "/dev/sdz1", "8:1", "part", "/dev/sdz", 0, True, False, "", "usb", "vfat",
        "CLAWDIESEED", "", "blkid", "",
    )  # fmt: skip
    before = bytes_read()
    with pytest.raises(SeedUnreadableError) as caught:
        MountedVolume(device, tmp_path, "mount -t vfat").read("setup.txt")
    assert bytes_read() - before < READ_LIMIT
    assert caught.value.message == (
        f"setup.txt on the stick CLAWDIESEED (/dev/sdz1) is not a regular file ({reason})"
    )


def test_mounted_volume_refuses_a_large_file_without_reading_it(tmp_path: Path) -> None:
    target = tmp_path / "setup.txt"
    with target.open("wb") as handle:
        handle.truncate(BIG)
    device = BlockDevice(
        "/dev/sdz1", "8:1", "part", "/dev/sdz", 0, True, False, "", "usb", "exfat",
        "", "CLAWDIE-SEED", "blkid", "",
    )  # fmt: skip
    before = bytes_read()
    with pytest.raises(SeedUnreadableError, match=r"^setup\.txt on the stick CLAWDIE-SEED "):
        MountedVolume(device, tmp_path, "mount -t exfat").read("setup.txt")
    assert bytes_read() - before < READ_LIMIT
