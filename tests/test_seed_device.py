"""Seed discovery, reading and the receipt, on loop devices with real tables and FAT volumes."""

from __future__ import annotations

import logging
import subprocess
import tempfile
from pathlib import Path

import pytest

from installer import cli
from installer.errors import SeedUnreadableError
from installer.install.console import JournalLevels
from installer.media.blockdev import BlockDevice, read_block_devices, read_mounts
from installer.media.receipt_file import read_receipt
from installer.media.seed_device import (
    SeedNotFoundError,
    copy_seed,
    find_seed,
    read_seed,
    write_receipt,
)
from installer.media.seed_volume import SeedDeviceGoneError
from installer.seed.entry import RECEIPT_NAME
from tests.helpers.loopdev import LoopDisk, Part, exfat_mount_type, loop_disk

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("loop_devices")]

SEED = b"TELEGRAM_ADMIN_ID=42\nPROFILE=balanced\n"


def devices_on(*disks: LoopDisk) -> list[BlockDevice]:
    """The block devices of these test disks only, so other devices on the host never interfere."""
    nodes = {disk.node for disk in disks}
    return [device for device in read_block_devices() if device.disk in nodes]


def assert_nothing_mounted(*disks: LoopDisk) -> None:
    sources = {mount.source for mount in read_mounts()}
    for disk in disks:
        assert not [s for s in sources if s.startswith(disk.node)]


def test_finds_gpt_partition_by_name_and_reads_setup_txt(tmp_path: Path) -> None:
    parts = [
        Part(30, name="EFI", label="EFI"),
        Part(None, name="CLAWDIE-SEED", files={"setup.txt": SEED}),
    ]
    with loop_disk(tmp_path, parts) as disk:
        device, search = find_seed(devices_on(disk), boot_disks=set())
        assert device.node == disk.parts[1]
        taken = [item for item in search.looked if item.taken]
        assert [item.reason for item in taken] == ["partition name matches"]
        seed = read_seed(device)
        assert (seed.name, seed.data, seed.warnings) == ("setup.txt", SEED, ())
        assert_nothing_mounted(disk)


@pytest.mark.parametrize("label", ["CLAWDIESEED", "clawdieseed"])
def test_finds_mbr_partition_by_label_any_case(tmp_path: Path, label: str) -> None:
    parts = [Part(40, label="DATA"), Part(None, label=label, files={"setup.txt": SEED})]
    with loop_disk(tmp_path, parts, table="dos") as disk:
        device, _ = find_seed(devices_on(disk), boot_disks=set())
        assert device.node == disk.parts[1]
        assert device.fs_label == label
        assert read_seed(device).data == SEED


def test_no_candidate_lists_every_device_looked_at(tmp_path: Path) -> None:
    with (
        loop_disk(tmp_path, [Part(None, label="HOLIDAY")]) as disk,
        pytest.raises(SeedNotFoundError) as caught,
    ):
        find_seed(devices_on(disk), boot_disks=set())
    message = caught.value.message
    assert "no seed partition found" in message
    assert f"{disk.parts[0]}: vfat, label HOLIDAY" in message
    assert f"{disk.node}:" in message
    assert "CLAWDIESEED" in (caught.value.hint or "")


def test_matching_name_without_fat_is_passed_over_with_reason(tmp_path: Path) -> None:
    with (
        loop_disk(tmp_path, [Part(None, name="CLAWDIE-SEED", fs=None)]) as disk,
        pytest.raises(SeedNotFoundError) as caught,
    ):
        find_seed(devices_on(disk), boot_disks=set())
    assert (
        "seed name matches but its file system (none found) is not one of vfat"
        in caught.value.message
    )


def test_two_candidates_fail_with_the_list_unless_one_is_the_boot_medium(tmp_path: Path) -> None:
    files = {"setup.txt": SEED}
    with (
        loop_disk(tmp_path, [Part(None, label="CLAWDIESEED", files=files)], name="a.img") as one,
        loop_disk(tmp_path, [Part(None, name="CLAWDIE-SEED", files=files)], name="b.img") as two,
    ):
        with pytest.raises(SeedNotFoundError) as caught:
            find_seed(devices_on(one, two), boot_disks=set())
        assert "found 2 seed partitions" in caught.value.message
        assert one.parts[0] in caught.value.message
        assert two.parts[0] in caught.value.message
        device, _ = find_seed(devices_on(one, two), boot_disks={two.node})
        assert device.node == two.parts[0]


def test_setup_txt_txt_is_read_with_a_warning(tmp_path: Path) -> None:
    files = {"setup.txt.txt": SEED}
    with loop_disk(tmp_path, [Part(None, label="CLAWDIESEED", files=files)]) as disk:
        seed = read_seed(find_seed(devices_on(disk), boot_disks=set())[0])
    assert seed.name == "setup.txt.txt"
    assert seed.data == SEED
    assert any("rename it to setup.txt" in w for w in seed.warnings)


def test_macos_appledouble_file_is_ignored(tmp_path: Path) -> None:
    files = {"._setup.txt": b"\x00\x05\x16\x07junk", "setup.txt": SEED}
    with loop_disk(tmp_path, [Part(None, label="CLAWDIESEED", files=files)]) as disk:
        seed = read_seed(find_seed(devices_on(disk), boot_disks=set())[0])
    assert (seed.name, seed.data) == ("setup.txt", SEED)


def test_only_appledouble_file_means_no_seed_file(tmp_path: Path) -> None:
    files = {"._setup.txt": b"\x00\x05\x16\x07junk"}
    with loop_disk(tmp_path, [Part(None, label="CLAWDIESEED", files=files)]) as disk:
        device = find_seed(devices_on(disk), boot_disks=set())[0]
        with pytest.raises(SeedUnreadableError, match=r"has no setup\.txt"):
            read_seed(device)
        assert_nothing_mounted(disk)


def test_copy_seed_stores_a_private_copy(tmp_path: Path) -> None:
    with loop_disk(tmp_path, [Part(None, label="CLAWDIESEED", files={"setup.txt": SEED})]) as disk:
        device = find_seed(devices_on(disk), boot_disks=set())[0]
        dest = tmp_path / "target" / "var" / "lib" / "clawdie" / "seed" / "setup.txt"
        copy_seed(device, dest)
    assert dest.read_bytes() == SEED
    assert dest.stat().st_mode & 0o777 == 0o600


def test_receipt_is_written_atomically_and_unmounted(tmp_path: Path) -> None:
    with loop_disk(tmp_path, [Part(None, label="CLAWDIESEED", files={"setup.txt": SEED})]) as disk:
        device = find_seed(devices_on(disk), boot_disks=set())[0]
        assert write_receipt(device, "first\n").written
        result = write_receipt(device, "installed: ok\n")
        assert result.written, result.message
        assert_nothing_mounted(disk)
        listing = subprocess.run(
            ["mdir", "-b", "-i", device.node, "::"], capture_output=True, check=True, text=True
        ).stdout
        shown = subprocess.run(
            ["mtype", "-i", device.node, f"::{RECEIPT_NAME}"], capture_output=True, check=True
        ).stdout
    assert read_receipt(shown) == "installed: ok\n"  # the newest of the two kept, in place
    assert "==== Clawdie receipt 2 (" in shown.decode()
    assert "first\n" in shown.decode()  # the one before, kept whole in the other slot
    assert ".tmp" not in listing.lower()


def test_receipt_on_write_protected_medium_is_reported_not_raised(tmp_path: Path) -> None:
    parts = [Part(None, label="CLAWDIESEED", files={"setup.txt": SEED})]
    with loop_disk(tmp_path, parts, read_only=True) as disk:
        device = find_seed(devices_on(disk), boot_disks=set())[0]
        assert read_seed(device).data == SEED
        result = write_receipt(device, "installed: ok\n")
        assert not result.written
        assert "write-protected" in result.message
        assert_nothing_mounted(disk)


def test_receipt_when_the_mount_itself_refuses_is_reported(tmp_path: Path) -> None:
    """The ro flag checked up front is not the only guard: the write itself must fail loudly."""
    parts = [Part(None, label="CLAWDIESEED", files={"setup.txt": SEED})]
    with loop_disk(tmp_path, parts, read_only=True) as disk:
        device = find_seed(devices_on(disk), boot_disks=set())[0]
        unguarded = BlockDevice(**{**device.__dict__, "sys_path": str(tmp_path)})
        result = write_receipt(unguarded, "installed: ok\n")
        assert not result.written
        assert f"cannot write {RECEIPT_NAME}" in result.message
        assert_nothing_mounted(disk)


def test_device_removed_between_find_and_read(tmp_path: Path) -> None:
    with loop_disk(tmp_path, [Part(None, label="CLAWDIESEED", files={"setup.txt": SEED})]) as disk:
        device = find_seed(devices_on(disk), boot_disks=set())[0]
        disk.detach()
        with pytest.raises(SeedDeviceGoneError, match="is gone"):
            read_seed(device)
        result = write_receipt(device, "installed: ok\n")
        assert not result.written
        assert "gone" in result.message


def test_seed_find_command_names_the_seed_and_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parts = [Part(None, name="CLAWDIE-SEED", label="CLAWDIESEED", files={"setup.txt": SEED})]
    with loop_disk(tmp_path, parts) as disk:
        others = [d for d in read_block_devices() if d.disk != disk.node]
        if any(
            d.fs_label.upper() == "CLAWDIESEED" or d.part_name.upper() == "CLAWDIE-SEED"
            for d in others
        ):
            pytest.skip("this machine has another seed partition attached")
        code = cli.main(["seed", "find"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"seed: {disk.parts[0]}" in out
    assert "file: setup.txt" in out
    assert SEED.decode() not in out


def test_exfat_seed_is_mounted_privately_read_and_written(tmp_path: Path) -> None:
    """exFAT goes through a real mount (kernel driver or FUSE helper) in a private directory."""
    parts = [Part(None, label="ClawdieSeed", fs="exfat", files={"setup.txt": SEED})]
    with loop_disk(tmp_path, parts, table="dos") as disk:
        device = find_seed(devices_on(disk), boot_disks=set())[0]
        assert device.fs_type == "exfat"
        assert read_seed(device).data == SEED
        assert write_receipt(device, "installed: ok\n").written
        assert write_receipt(device, "installed again: ok\n").written
        assert_nothing_mounted(disk)
        with tempfile.TemporaryDirectory() as mount_point:
            subprocess.run(
                ["mount", "-r", "-t", exfat_mount_type() or "exfat", device.node, mount_point],
                check=True,
            )
            try:
                names = sorted(p.name for p in Path(mount_point).iterdir())
                receipt = (Path(mount_point) / RECEIPT_NAME).read_text()
            finally:
                subprocess.run(["umount", mount_point], check=True)
    assert names == [RECEIPT_NAME, "setup.txt"]
    assert receipt == "installed again: ok\n"


def test_no_stick_is_one_summary_line_and_each_device_at_debug_level(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The serial console (the journal's info and up) gets one line when no stick is found; the
    journal keeps every device looked at, at debug level."""
    caplog.set_level(logging.DEBUG, logger="clawdie.seed")
    with (
        loop_disk(tmp_path, [Part(40, label="HOLIDAY"), Part(None, label="PHOTOS")]) as disk,
        pytest.raises(SeedNotFoundError),
    ):
        find_seed(devices_on(disk), boot_disks=set())
    info = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.getMessage() for r in info] == [
        "seed: no seed partition among 3 device(s) looked at (each one in the journal at debug "
        "level)"
    ]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any(f"{disk.parts[0]}: vfat, label HOLIDAY" in line for line in debug)
    assert any(f"{disk.parts[1]}: vfat, label PHOTOS" in line for line in debug)
    # the journal's handler passes them; another logger's debug lines stay out
    levels = JournalLevels()
    seed_debug = logging.LogRecord("clawdie.seed", logging.DEBUG, "", 0, "x", None, None)
    other_debug = logging.LogRecord("clawdie.run", logging.DEBUG, "", 0, "x", None, None)
    assert levels.filter(seed_debug)
    assert not levels.filter(other_debug)


def test_check_reads_setup_txt_off_the_seed_partition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check /dev/sdX3`: the seed partition's device itself, read through the stick's reader
    (nothing mounted); the verdict is the file's."""
    bad = b"TELEGRAM_ADMIN_ID=forty-two\n"
    parts = [
        Part(30, name="EFI", label="EFI"),
        Part(None, label="CLAWDIESEED", files={"setup.txt": bad}),
    ]
    with loop_disk(tmp_path, parts, table="dos") as disk:
        code = cli.main(["check", disk.parts[1]])
        out = capsys.readouterr().out
        assert code == 1
        assert "setup.txt:1: TELEGRAM_ADMIN_ID" in out
        assert out.rstrip().endswith("problem(s) to fix")
        assert_nothing_mounted(disk)
        # another partition, or the whole disk, is not a seed: said, with where to look
        code = cli.main(["check", disk.parts[0]])
        err = capsys.readouterr().err
        assert code == 2
        assert f"{disk.parts[0]} is not a seed partition" in err
        assert "CLAWDIESEED" in err
