"""The disk installer's pure parts: target choice, the existing-install guard, names, the console
question (over a pipe), markers and the kernel command line."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pty
import socket
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from installer.errors import CommandFailedError
from installer.install import layout, system
from installer.install.console import (
    Console,
    countdown_marks,
    parse_console_wait,
    render_failed_marker,
    syslog_handler,
)
from installer.install.flow import (
    ERASE_COUNTDOWN_S,
    ExistingInstallError,
    InstallConfig,
    InstallRun,
    render_success_receipt,
)
from installer.install.targets import (
    GIB,
    MIB,
    Choice,
    Edges,
    TargetDisk,
    TargetError,
    TargetName,
    choose_target,
    judge_disk,
    match_typed_disk,
    parse_target_name,
    preferred_by_id,
    read_edges,
    render_contents,
    render_disk,
    render_identity,
)
from installer.media import blockdev
from installer.media.blockdev import BY_ID, BlockDevice, render_model
from installer.paths import TargetPaths
from installer.run import run_streaming
from installer.seed.io import SeedInput
from installer.seed.resolve import SeedCheck, keys_to_ask
from installer.seed.stored import SEED_STEP, read_stored_seed, store_seed
from installer.stamps import Stamps
from tests.helpers.seeds import valid
from tests.helpers.targets import (
    CLAWDIE_BY_LABEL,
    CLAWDIE_BY_NAME,
    ZEROS,
    blank,
    dev,
    part,
    unsigned,
    used,
)

SAMSUNG_LINK = "/dev/disk/by-id/ata-Samsung_SSD_860_EVO_500GB_S3Z9NB0K123456"
WWN_LINK = "/dev/disk/by-id/wwn-0x5002538e40a1b2c3"


# a port's link, resolved to the disk now in that port: as unstable as a kernel name
BY_PATH = TargetName("/dev/disk/by-path/pci-0000:00:1f.2-ata-1", "link", node="/dev/sda")


def samsung(*parts: BlockDevice, **kw: Any) -> TargetDisk:
    """/dev/sda with a serial and by-id links, holding a data partition."""
    return used(
        "/dev/sda",
        *(parts or (DATA,)),
        model="ATA Samsung SSD 860",
        serial="S3Z9NB0K123456",
        by_id=(WWN_LINK, SAMSUNG_LINK),
        **kw,
    )


DATA = part("/dev/sda", 1, label="data")


def choose(disks: list[TargetDisk], **kw: object) -> Choice:
    """choose_target with the stick as boot and seed disk; `named` as TARGET_DISK's text (a
    by-id link is resolved through `links`, as the machine's /dev would)."""
    defaults: dict[str, object] = {"boot_disks": {"/dev/sdb"}, "seed_disks": {"/dev/sdb"}}
    if isinstance(kw.get("named"), str):
        kw["named"] = resolve(str(kw["named"]), disks)
    return choose_target(disks, **{**defaults, **kw})  # type: ignore[arg-type]


def resolve(text: str, disks: list[TargetDisk]) -> TargetName:
    """TARGET_DISK as read_target_name sees it here: a by-id link resolved to its disk."""
    name = parse_target_name(text)
    if name.kind == "by-id":
        node = next((d.node for d in disks if text in d.device.by_id), text)
        return TargetName(name.text, name.kind, node=node)
    return name


# -- which disks are eligible -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("disk", "never", "unless_named"),
    [
        (blank("/dev/sda"), [], []),
        (blank("/dev/nvme0n1", bus="nvme"), [], []),
        (blank("/dev/vda", bus="virtio"), [], []),
        (
            blank("/dev/sdb", bus="usb", removable=True),
            ["installer stick", "seed partition"],
            ["USB"],
        ),
        (blank("/dev/sdc", bus="usb"), [], ["USB"]),
        (blank("/dev/sdc", removable=True), [], ["removable"]),
        (blank("/dev/loop3", bus="virtual"), [], ["loop device"]),
        (blank("/dev/nbd0"), [], ["network block"]),
        (blank("/dev/sr0"), ["optical"], []),
        (blank("/dev/zram0"), ["RAM disk"], []),
        (blank("/dev/ram0"), ["RAM disk"], []),
        (blank("/dev/dm-0"), ["device-mapper"], []),
        (blank("/dev/md0"), ["RAID"], []),
        (blank("/dev/sda", read_only=True), ["write-protected"], []),
        (blank("/dev/sda", size=4 * GIB - 1), ["at least"], []),
        (TargetDisk(dev("/dev/sda"), mount_points=("/mnt",)), ["mounted"], []),
        (TargetDisk(dev("/dev/sda"), swap=True), ["swap"], []),
    ],
)
def test_judge_disk(disk: TargetDisk, never: list[str], unless_named: list[str]) -> None:
    judgement = judge_disk(disk, boot_disks={"/dev/sdb"}, seed_disks={"/dev/sdb"})
    assert len(judgement.never) == len(never)
    for reason, word in zip(judgement.never, never, strict=True):
        assert word in reason
    assert len(judgement.unless_named) == len(unless_named)
    for reason, word in zip(judgement.unless_named, unless_named, strict=True):
        assert word in reason


def test_exactly_four_gib_is_enough() -> None:
    assert not judge_disk(blank("/dev/sda", size=4 * GIB), boot_disks=set(), seed_disks=set()).never


# -- the choice --------------------------------------------------------------------------------


STICK = blank("/dev/sdb", bus="usb", removable=True)


@pytest.mark.parametrize(
    ("disks", "kw", "taken", "asked"),
    [
        # one blank eligible disk: no question, the stick is never a candidate
        ([blank("/dev/sda"), STICK], {}, "/dev/sda", []),
        ([blank("/dev/nvme0n1"), blank("/dev/sr0"), blank("/dev/loop0")], {}, "/dev/nvme0n1", []),
        # one disk, with data: ask
        ([used("/dev/sda", DATA), STICK], {}, None, ["/dev/sda"]),
        ([used("/dev/sda", signature="ext4"), STICK], {}, None, ["/dev/sda"]),
        # two eligible disks, even blank: ask about both
        ([blank("/dev/sda"), blank("/dev/nvme0n1")], {}, None, ["/dev/sda", "/dev/nvme0n1"]),
        # a second USB stick is not eligible without TARGET_DISK
        ([blank("/dev/sda"), blank("/dev/sdc", bus="usb")], {}, "/dev/sda", []),
        # one disk blkid finds nothing on but whose ends are not zeros: data, ask
        ([unsigned("/dev/sda", Edges(False, True))], {}, None, ["/dev/sda"]),
        ([unsigned("/dev/sda", Edges(True, False))], {}, None, ["/dev/sda"]),
        ([unsigned("/dev/sda", Edges(False, False, "Input/output error"))], {}, None, ["/dev/sda"]),
        # TARGET_DISK: blank -> taken, even by kernel name (nothing is erased)
        ([blank("/dev/sda"), blank("/dev/vda")], {"named": "/dev/vda"}, "/dev/vda", []),
        # data + ERASE by a stable name -> taken (after the countdown)
        ([samsung()], {"named": "serial:S3Z9NB0K123456", "erase": True}, "/dev/sda", []),
        ([samsung()], {"named": "/dev/serial:S3Z9NB0K123456", "erase": True}, "/dev/sda", []),
        ([samsung()], {"named": SAMSUNG_LINK, "erase": True}, "/dev/sda", []),
        ([samsung()], {"named": WWN_LINK, "erase": True}, "/dev/sda", []),
        # data + ERASE by a kernel name or a port's link -> asked, never erased unattended
        ([samsung()], {"named": "/dev/sda", "erase": True}, None, ["/dev/sda"]),
        ([used("/dev/sda", DATA)], {"named": "/dev/sda", "erase": True}, None, ["/dev/sda"]),
        ([samsung()], {"named": BY_PATH, "erase": True}, None, ["/dev/sda"]),
        # data without ERASE -> ask that one, however it is named
        ([used("/dev/sda", DATA), blank("/dev/vda")], {"named": "/dev/sda"}, None, ["/dev/sda"]),
        ([samsung()], {"named": "serial:S3Z9NB0K123456"}, None, ["/dev/sda"]),
        # TARGET_DISK may name a USB disk or a loop device
        ([blank("/dev/sdc", bus="usb")], {"named": "/dev/sdc"}, "/dev/sdc", []),
        ([blank("/dev/loop7")], {"named": "/dev/loop7"}, "/dev/loop7", []),
        # the guard comes after the choice: a sole Clawdie disk is asked about, not taken
        ([used("/dev/sda", CLAWDIE_BY_NAME)], {}, None, ["/dev/sda"]),
        (
            [samsung(CLAWDIE_BY_NAME)],
            {"named": "serial:S3Z9NB0K123456", "erase": True},
            "/dev/sda",
            [],
        ),
        (
            [used("/dev/sda", CLAWDIE_BY_NAME)],
            {"named": "/dev/sda", "erase": True},
            None,
            ["/dev/sda"],
        ),
    ],
)
def test_choose_target(
    disks: list[TargetDisk], kw: dict[str, object], taken: str | None, asked: list[str]
) -> None:
    choice = choose(disks, **kw)
    assert (choice.disk.node if choice.disk else None) == taken
    assert [d.node for d in choice.ask] == asked
    assert choice.reason
    # only data erased unattended counts down; a blank disk has nothing to lose
    assert choice.countdown == (choice.disk is not None and not choice.disk.blank)


@pytest.mark.parametrize(
    ("disks", "kw", "words"),
    [
        ([STICK], {}, ["no disk to install to", "/dev/sdb: it is the installer stick"]),
        ([], {}, ["no disk to install to", "(no disks at all)"]),
        ([blank("/dev/sda", size=GIB)], {}, ["/dev/sda: it holds 1.1 GB"]),
        (
            [blank("/dev/sda")],
            {"named": "/dev/sdz"},
            ["TARGET_DISK=/dev/sdz is not a disk", "/dev/sda"],
        ),
        (
            [STICK],
            {"named": "/dev/sdb", "erase": True},
            ["cannot be installed to", "installer stick"],
        ),
        ([blank("/dev/sr0")], {"named": "/dev/sr0"}, ["optical"]),
        (
            [used("/dev/sda", DATA)],
            {"named": "/dev/sda1", "partitions": [DATA]},
            ["is a partition", "TARGET_DISK=/dev/sda"],
        ),
    ],
)
def test_choose_target_refuses(
    disks: list[TargetDisk], kw: dict[str, object], words: list[str]
) -> None:
    with pytest.raises(TargetError) as raised:
        choose(disks, **kw)
    text = str(raised.value)
    for word in words:
        assert word in text
    assert raised.value.hint


# -- provably blank -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("disk", "is_blank", "contents"),
    [
        (blank("/dev/sda"), True, "blank"),
        (
            unsigned("/dev/sda", Edges(False, True)),
            False,
            "data with no signature blkid knows (first MiB not empty)",
        ),
        (
            unsigned("/dev/sda", Edges(True, False)),
            False,
            "data with no signature blkid knows (last MiB not empty)",
        ),
        (
            unsigned("/dev/sda", Edges(False, False)),
            False,
            "data with no signature blkid knows (first and last MiB not empty)",
        ),
        (
            unsigned(
                "/dev/sda", Edges(False, False, "reading /dev/sda failed: Input/output error")
            ),
            False,
            "unknown contents: the disk could not be read (reading /dev/sda failed: Input/output "
            "error)",
        ),
        # never read (how a TargetDisk starts): not provably blank
        (
            TargetDisk(dev("/dev/sda")),
            False,
            "unknown contents: the disk could not be read (not read)",
        ),
        # a signature or a partition is data even with zeros at both ends
        (used("/dev/sda", signature="crypto_LUKS"), False, "data (crypto_LUKS), no partitions"),
        (used("/dev/sda", DATA), False, "1 partition(s): ext4 data"),
    ],
)
def test_blank_means_provably_empty(disk: TargetDisk, is_blank: bool, contents: str) -> None:
    assert disk.blank is is_blank
    assert render_contents(disk) == contents


def test_read_edges_reads_both_ends(dir_on_each_fs: Path) -> None:
    image = dir_on_each_fs / "disk.img"
    with image.open("wb") as handle:
        handle.truncate(8 * MIB)
    assert read_edges(str(image)) == ZEROS
    with image.open("r+b") as handle:
        handle.seek(4 * MIB)
        handle.write(b"middle")  # between the ends: not looked at
    assert read_edges(str(image)) == ZEROS
    with image.open("r+b") as handle:
        handle.seek(8 * MIB - 1)
        handle.write(b"\x01")  # the very last byte
    assert read_edges(str(image)) == Edges(True, False)
    with image.open("r+b") as handle:
        handle.seek(MIB - 1)
        handle.write(b"\x01")  # the last byte of the first MiB
    assert read_edges(str(image)) == Edges(False, False)


def test_read_edges_of_a_small_disk_and_of_nothing(dir_on_each_fs: Path) -> None:
    tmp_path = dir_on_each_fs
    small = tmp_path / "small.img"
    small.write_bytes(bytes(1000))
    assert read_edges(str(small)) == ZEROS
    missing = read_edges(str(tmp_path / "absent"))
    assert not missing.zeros
    assert missing.error == f"cannot open {tmp_path / 'absent'}: No such file or directory"
    # A directory opens, and what a read answers then depends on the file system (EISDIR on
    # ext4, EINVAL on tmpfs): the wording is ours, and nothing is taken for zeros.
    directory = read_edges(str(tmp_path))
    assert not directory.zeros
    assert directory.error == f"{tmp_path} is not a disk (not a block device)"
    device = read_edges("/dev/null")  # a character device reads as empty: not a blank disk
    assert not device.zeros
    assert device.error == "/dev/null is not a disk (not a block device)"


# -- stable names for an unattended erase ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("serial:S3Z9", TargetName("serial:S3Z9", "serial", serial="S3Z9")),
        ("/dev/serial:CLAWDIE-DISK-1", TargetName("serial:CLAWDIE-DISK-1", "serial", serial="CLAWDIE-DISK-1")),  # noqa: E501
        ("serial:", TargetName("serial:", "serial")),
        (SAMSUNG_LINK, TargetName(SAMSUNG_LINK, "by-id", node=SAMSUNG_LINK)),
        ("/dev/sda", TargetName("/dev/sda", "kernel", node="/dev/sda")),
        ("nvme0n1", TargetName("/dev/nvme0n1", "kernel", node="/dev/nvme0n1")),
        (BY_PATH.text, TargetName(BY_PATH.text, "link", node=BY_PATH.text)),
    ],
)  # fmt: skip
def test_parse_target_name(value: str, name: TargetName) -> None:
    assert parse_target_name(value) == name
    assert name.stable is (name.kind in ("serial", "by-id"))


def test_a_kernel_name_with_erase_is_asked_and_names_the_stable_name_to_use() -> None:
    choice = choose([samsung()], named="/dev/sda", erase=True)
    assert choice.reason == (
        "TARGET_DISK=/dev/sda is a kernel name, which can be another disk on another machine; "
        "to erase it unattended write TARGET_DISK=serial:S3Z9NB0K123456 (or "
        f"{SAMSUNG_LINK})"
    )


@pytest.mark.parametrize(
    ("disk", "names"),
    [
        # no serial: the readable by-id link, not the WWN
        (used("/dev/sda", DATA, by_id=(WWN_LINK, SAMSUNG_LINK)), f"TARGET_DISK={SAMSUNG_LINK}"),
        (used("/dev/sda", DATA, by_id=(WWN_LINK,)), f"TARGET_DISK={WWN_LINK}"),
        # a serial and no udev: the serial alone
        (used("/dev/sda", DATA, serial="ABC123"), "TARGET_DISK=serial:ABC123"),
    ],
)
def test_the_stable_name_offered_is_one_the_disk_has(disk: TargetDisk, names: str) -> None:
    choice = choose([disk], named="/dev/sda", erase=True)
    assert choice.reason.endswith(f"to erase it unattended write {names}")


def test_a_disk_with_no_stable_name_must_be_chosen_on_the_console() -> None:
    choice = choose([used("/dev/loop3", DATA, model="0x1af4")], named="/dev/loop3", erase=True)
    assert [d.node for d in choice.ask] == ["/dev/loop3"]
    assert choice.reason == (
        "TARGET_DISK=/dev/loop3 is a kernel name, which can be another disk on another machine, "
        "and this disk (unknown model, 68.7 GB) has no stable name (no serial, no "
        "/dev/disk/by-id/ link), so only the console can choose it"
    )


def test_a_serial_two_disks_share_is_not_offered() -> None:
    twin = used("/dev/sdc", DATA, serial="ABC123", by_id=("/dev/disk/by-id/usb-Twin_2",))
    choice = choose([used("/dev/sda", DATA, serial="ABC123"), twin], named="/dev/sdc", erase=True)
    assert choice.reason.endswith("write TARGET_DISK=/dev/disk/by-id/usb-Twin_2")


@pytest.mark.parametrize(
    ("disks", "named", "words"),
    [
        # a serial is matched exactly: case matters; the error lists every disk with its serial
        (
            [samsung(), blank("/dev/vda", serial="CLAWDIE-DISK-1")],
            "serial:s3z9nb0k123456",
            [
                "TARGET_DISK=serial:s3z9nb0k123456 is the serial of no disk on this machine",
                "serial S3Z9NB0K123456",
                "serial CLAWDIE-DISK-1",
                SAMSUNG_LINK,
            ],
        ),
        # an empty serial never matches the disks that report none
        ([blank("/dev/sda")], "serial:", ["TARGET_DISK=serial: is the serial of no disk"]),
        (
            [used("/dev/sda", DATA, serial="ABC"), used("/dev/sdc", DATA, serial="ABC")],
            "serial:ABC",
            ["is the serial of 2 disks (/dev/sda, /dev/sdc); it must name one"],
        ),
        # a by-id link that is not on this machine
        ([samsung()], "/dev/disk/by-id/ata-Other_Disk_X1", ["is not a disk on this machine"]),
    ],
)
def test_a_stable_name_that_names_no_disk_is_refused(
    disks: list[TargetDisk], named: str, words: list[str]
) -> None:
    with pytest.raises(TargetError) as raised:
        choose(disks, named=named, erase=True)
    for word in words:
        assert word in str(raised.value)
    assert raised.value.hint


def test_a_stable_name_still_obeys_the_judgement() -> None:
    stick = blank("/dev/sdb", bus="usb", removable=True, serial="STICK1")
    with pytest.raises(TargetError, match="TARGET_DISK=serial:STICK1 cannot be installed to"):
        choose([stick], named="serial:STICK1", erase=True)


# -- renderings of a disk ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "shown"),
    [
        ("ATA QEMU HARDDISK", "ATA QEMU HARDDISK"),
        ("0x1af4", "unknown model"),
        ("0x1AF4", "unknown model"),
        ("", "unknown model"),
        ("   ", "unknown model"),
        ("0x1af4 Virtual Disk", "Virtual Disk"),
        ("Samsung 0x", "Samsung 0x"),
    ],
)
def test_render_model(model: str, shown: str) -> None:
    assert render_model(model) == shown


def test_disk_lines_show_model_and_serial() -> None:
    line = render_disk(samsung())
    assert line.startswith("/dev/sda")
    for word in ("ATA Samsung SSD 860", "serial S3Z9NB0K123456", "1 partition(s): ext4 data"):
        assert word in line
    virtio = render_disk(blank("/dev/vda", model="0x1af4", bus="virtio"))
    assert "unknown model" in virtio
    assert "0x1af4" not in virtio
    assert "serial (none)" in virtio


@pytest.mark.parametrize(
    ("links", "preferred"),
    [
        ((WWN_LINK, SAMSUNG_LINK), SAMSUNG_LINK),
        # number-only links sort before some readable ones: still the readable one
        ((f"{BY_ID}nvme-eui.0025", f"{BY_ID}nvme-lexar_ssd_0022"), f"{BY_ID}nvme-lexar_ssd_0022"),
        ((f"{BY_ID}nvme-nguid.0025", f"{BY_ID}nvme-eui.0025"), f"{BY_ID}nvme-eui.0025"),
        ((), ""),
    ],
)  # fmt: skip
def test_the_by_id_name_shown_is_a_readable_one(links: tuple[str, ...], preferred: str) -> None:
    assert preferred_by_id(dev("/dev/nvme0n1", by_id=links)) == preferred


def test_render_identity_names_model_serial_size_and_by_id() -> None:
    assert render_identity(samsung()) == (
        f"ATA Samsung SSD 860, serial S3Z9NB0K123456, 68.7 GB, {SAMSUNG_LINK}"
    )
    assert render_identity(blank("/dev/vda", model="0x1af4")) == (
        "unknown model, serial (none), 68.7 GB, no /dev/disk/by-id/ name"
    )


@pytest.mark.parametrize(
    ("disk", "lines"),
    [
        (
            samsung(),
            [
                "Disk: /dev/sda: ATA Samsung SSD 860, serial S3Z9NB0K123456, 68.7 GB, "
                f"{SAMSUNG_LINK}",
                "Erased: it held 1 partition(s): ext4 data",
            ],
        ),
        (
            blank("/dev/vda", model="0x1af4", serial="CLAWDIE-DISK-1"),
            [
                "Disk: /dev/vda: unknown model, serial CLAWDIE-DISK-1, 68.7 GB, "
                "no /dev/disk/by-id/ name",
                "Erased: it was blank",
            ],
        ),
    ],
)  # fmt: skip
def test_the_receipt_names_the_disk_erased_and_what_it_held(
    disk: TargetDisk, lines: list[str]
) -> None:
    text = render_success_receipt("2025-01-01T00:00:00Z", disk, "box").splitlines()
    for line in lines:
        assert line in text


def test_serial_and_by_id_from_udev_else_sysfs(tmp_path: Path) -> None:
    def udev(props: dict[str, str], links: tuple[str, ...] = ()) -> SimpleNamespace:
        return SimpleNamespace(properties=props, sys_path=str(tmp_path), device_links=links)

    both = {"ID_SERIAL_SHORT": "S3Z9", "ID_SERIAL": "Samsung_SSD_S3Z9"}
    assert blockdev._serial_of(udev(both)) == "S3Z9"
    assert blockdev._serial_of(udev({"ID_SERIAL": "CLAWDIE-DISK-1"})) == "CLAWDIE-DISK-1"
    assert blockdev._serial_of(udev({})) == ""
    (tmp_path / "device").mkdir()
    (tmp_path / "device/serial").write_text("  NVME123  \n")  # NVMe: device/serial
    assert blockdev._serial_of(udev({})) == "NVME123"
    (tmp_path / "serial").write_text("VIRTIO-1\n")  # virtio-blk: serial beside the disk
    assert blockdev._serial_of(udev({})) == "VIRTIO-1"
    links = ("/dev/disk/by-path/pci-0:1", SAMSUNG_LINK, "/dev/disk/by-diskseq/3", WWN_LINK)
    assert blockdev._by_id_links(udev({}, links)) == (SAMSUNG_LINK, WWN_LINK)


@pytest.mark.parametrize(
    ("disk", "holds"),
    [
        (used("/dev/sda", CLAWDIE_BY_NAME), True),
        (used("/dev/sda", part("/dev/sda", 3, name="clawdie-root")), True),
        (used("/dev/sda", CLAWDIE_BY_LABEL), True),
        (used("/dev/sda", part("/dev/sda", 1, fs_type="vfat", label="clawdie-root")), False),
        (used("/dev/sda", DATA), False),
        (blank("/dev/sda"), False),
    ],
)
def test_existing_installation_is_recognised(disk: TargetDisk, holds: bool) -> None:
    assert disk.holds_clawdie is holds
    assert ("Clawdie installation" in render_contents(disk)) is holds


@pytest.mark.parametrize(
    ("typed", "node"),
    [("sda", "/dev/sda"), ("/dev/sda", "/dev/sda"), (" nvme0n1 ", "/dev/nvme0n1"), ("sdq", None)],
)
def test_match_typed_disk(typed: str, node: str | None) -> None:
    disks = [blank("/dev/sda"), blank("/dev/nvme0n1")]
    found = match_typed_disk(typed, disks)
    assert (found.node if found else None) == node


# -- names and renderings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("disk", "node"),
    [
        ("/dev/vda", "/dev/vda1"),
        ("/dev/sda", "/dev/sda1"),
        ("/dev/nvme0n1", "/dev/nvme0n1p1"),
        ("/dev/loop0", "/dev/loop0p1"),
        ("/dev/mmcblk0", "/dev/mmcblk0p1"),
    ],
)
def test_partition_node(disk: str, node: str) -> None:
    assert layout.partition_node(disk, 1) == node


def test_sgdisk_layout() -> None:
    argv = " ".join(layout.render_sgdisk_argv("/dev/vda"))
    for piece in (
        "--new=1:0:+1M --typecode=1:EF02 --change-name=1:BIOS-BOOT",
        "--new=2:0:+256M --typecode=2:EF00 --change-name=2:CLAWDIE-EFI",
        "--new=3:0:0 --typecode=3:8300 --change-name=3:CLAWDIE-ROOT",
    ):
        assert piece in argv
    assert argv.endswith(" /dev/vda")


def test_fstab_by_uuid() -> None:
    lines = layout.render_fstab("1111-aaaa", "AB12-CD34").splitlines()
    assert "UUID=1111-aaaa / ext4 errors=remount-ro 0 1" in lines
    assert "UUID=AB12-CD34 /boot/efi vfat umask=0077 0 2" in lines


def test_grub_commands() -> None:
    argvs = [" ".join(a) for a in system.grub_argvs("/dev/vda")]
    efi = "grub-install --target=x86_64-efi --efi-directory=/boot/efi --bootloader-id=clawdie"
    # the signed chain (shim, signed GRUB), also at the removable path, no firmware boot entry
    signed = "--uefi-secure-boot --force-extra-removable --no-nvram"
    assert argvs == ["grub-install --target=i386-pc /dev/vda", f"{efi} {signed}"]


@pytest.mark.parametrize(
    ("chunk", "percents"),
    [
        ("[=====\\      ]  300/1600  18%[========|  ] 400/1600  25%", [18, 25]),
        ("\r[====================|] 1600/1600 100%\n", [100]),
        ("Parallel unsquashfs: Using 2 processors\n", []),
        ("7\n", []),
    ],
)
def test_parse_percentages(chunk: str, percents: list[int]) -> None:
    assert system.parse_percentages(chunk) == percents


@pytest.mark.parametrize(
    ("cmdline", "wait"),
    [
        ("BOOT_IMAGE=/live/vmlinuz boot=live clawdie.console_wait=30 quiet", 30.0),
        ("clawdie.console_wait=5", 5.0),
        ("clawdie.console_wait=1 clawdie.console_wait=2.5", 2.5),
        ("boot=live quiet", None),
        ("xclawdie.console_wait=9", None),
        ("clawdie.console_wait=abc", None),
    ],
)
def test_console_wait_from_kernel_command_line(cmdline: str, wait: float | None) -> None:
    assert parse_console_wait(cmdline) == wait


def test_failed_marker_is_one_line() -> None:
    marker = render_failed_marker("no disk to install to; passed over:\n  /dev/sdb: stick\n")
    assert marker == "CLAWDIE-INSTALL-FAILED: no disk to install to; passed over: /dev/sdb: stick"


def test_install_record_has_every_field_and_one_line_values() -> None:
    text = system.render_install_record(
        system.InstallRecord(
            "2025-01-01T00:00:00Z",
            "0.1",
            "2025.1\n",
            "/dev/vda",
            "QEMU  HARDDISK",
            "8.6 GB",
            "box",
            "the seed partition /dev/sr1",
            ("ASSISTANT_NAME",),
            disk_serial="CLAWDIE-DISK-1",
            disk_by_id="/dev/disk/by-id/virtio-CLAWDIE-DISK-1",
            disk_held="it held 1 partition(s):\next4 data",
        )
    )
    assert "IMAGE_VERSION=2025.1\n" in text
    assert "DISK_MODEL=QEMU HARDDISK\n" in text
    assert "DISK_SERIAL=CLAWDIE-DISK-1\n" in text
    assert "DISK_BY_ID=/dev/disk/by-id/virtio-CLAWDIE-DISK-1\n" in text
    assert "DISK_HELD=it held 1 partition(s): ext4 data\n" in text
    assert "ANSWERED_ON_CONSOLE=ASSISTANT_NAME\n" in text


def test_syslog_lines_reach_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "log"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(5)
    try:
        handler = syslog_handler(path)
        assert handler is not None
        out = io.StringIO()
        Console(out, None, handler).say("partitioning /dev/vda")
        assert b"clawdie-install: install: partitioning /dev/vda" in server.recv(4096)
        assert out.getvalue() == "install: partitioning /dev/vda\n"
        handler.close()
    finally:
        server.close()
    assert syslog_handler(tmp_path / "absent") is None


# -- the console question and the guard, typed through a pipe ---------------------------------


@pytest.fixture
def keyboard() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    yield read, write
    for fd in (read, write):
        with contextlib.suppress(OSError):
            os.close(fd)


def run_with(
    keys: bytes, keyboard: tuple[int, int], wait: float = 2.0
) -> tuple[InstallRun, io.StringIO]:
    read, write = keyboard
    os.write(write, keys)
    out = io.StringIO()
    return InstallRun(InstallConfig(console_wait=wait), Console(out, read), None), out


ASK_TWO = Choice("2 disks could be the target", ask=(blank("/dev/sda"), used("/dev/vda", DATA)))


@pytest.mark.parametrize(
    ("keys", "node"),
    [
        (b"/dev/sda\nERASE\n", "/dev/sda"),
        (b"vda\nERASE\n", "/dev/vda"),
        (b"sdz\nsda\nERASE\n", "/dev/sda"),  # a wrong name is asked again
    ],
)
def test_console_question_takes_the_typed_disk(
    keys: bytes, node: str, keyboard: tuple[int, int]
) -> None:
    run, out = run_with(keys, keyboard)
    assert run.ask_disk(ASK_TWO).node == node
    assert "/dev/vda" in out.getvalue()
    assert "1 partition(s): ext4 data" in out.getvalue()


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        (b"/dev/sda\nerase\n", "was not confirmed"),
        (b"/dev/sda\n", "was not confirmed"),  # nothing typed in time
        (b"", "nobody chose a disk within 1 s"),
    ],
)
def test_console_question_fails_cleanly(keys: bytes, words: str, keyboard: tuple[int, int]) -> None:
    run, _ = run_with(keys, keyboard, wait=1.0)
    with pytest.raises(TargetError, match=words):
        run.ask_disk(ASK_TWO)


def test_console_question_without_console_fails_with_the_unattended_hint() -> None:
    run = InstallRun(InstallConfig(console_wait=1), Console(io.StringIO(), None), None)
    with pytest.raises(TargetError) as raised:
        run.ask_disk(ASK_TWO)
    assert raised.value.message == (
        "2 disks could be the target; the disk must be chosen on the console, and there is no "
        "console"
    )
    assert "no disk here has a serial" in (raised.value.hint or "")  # neither test disk has one


def test_a_clawdie_disk_chosen_on_the_console_needs_reinstall(keyboard: tuple[int, int]) -> None:
    choice = Choice("one disk", ask=(used("/dev/sda", CLAWDIE_BY_NAME),))
    run, out = run_with(b"sda\nERASE\n", keyboard)
    with pytest.raises(TargetError, match="type REINSTALL"):
        run.ask_disk(choice)
    assert "remove the stick and restart" in out.getvalue()
    run, _ = run_with(b"sda\nREINSTALL\n", keyboard)
    assert run.ask_disk(choice).node == "/dev/sda"


def test_a_clawdie_disk_asked_about_with_no_console_says_to_remove_the_stick() -> None:
    run = InstallRun(InstallConfig(), Console(io.StringIO(), None), None)
    with pytest.raises(TargetError) as raised:
        run.ask_disk(Choice("one disk", ask=(used("/dev/sda", CLAWDIE_BY_NAME),)))
    assert (raised.value.hint or "").startswith(
        "to boot the installed system, remove the stick and restart; "
    )


@pytest.mark.parametrize(
    ("keys", "passes"), [(b"REINSTALL\n", True), (b"yes\n", False), (b"", False)]
)
def test_guard_waits_for_reinstall(keys: bytes, passes: bool, keyboard: tuple[int, int]) -> None:
    run, out = run_with(keys, keyboard, wait=1.0)
    disk = used("/dev/sda", CLAWDIE_BY_LABEL)
    if passes:
        run.guard_existing(disk)
    else:
        with pytest.raises(ExistingInstallError):
            run.guard_existing(disk)
    assert (
        "this disk already holds a Clawdie installation — remove the stick and restart to boot "
        "it, or type REINSTALL to erase it and install again" in out.getvalue()
    )


def test_guard_without_console_stops(caplog: pytest.LogCaptureFixture) -> None:
    run = InstallRun(InstallConfig(), Console(io.StringIO(), None), None)
    with caplog.at_level(logging.INFO), pytest.raises(ExistingInstallError) as raised:
        run.guard_existing(used("/dev/sda", CLAWDIE_BY_NAME))
    assert "remove the stick" in (raised.value.hint or "")


# -- the countdown before an unattended erase ------------------------------------------------


def test_the_countdown_is_fifteen_seconds_and_says_the_time_left_every_five() -> None:
    assert InstallConfig().erase_countdown == ERASE_COUNTDOWN_S == 15.0
    assert countdown_marks(15.0, 5.0) == [10.0, 5.0]
    assert countdown_marks(12.0, 5.0) == [7.0, 2.0]
    assert countdown_marks(0.5, 5.0) == []
    assert countdown_marks(3.0, 0.0) == []


def test_countdown_any_input_from_a_pipe_stops_it(keyboard: tuple[int, int]) -> None:
    read, write = keyboard
    os.write(write, b"x")  # no Enter needed
    out = io.StringIO()
    assert Console(out, read).countdown("erasing in 5 s", 5.0) is True
    assert out.getvalue() == "install: erasing in 5 s\n"


def test_countdown_runs_out_and_proceeds(keyboard: tuple[int, int]) -> None:
    read, _ = keyboard
    assert Console(io.StringIO(), read).countdown("erasing", 0.2, step=0.1) is False
    assert Console(io.StringIO(), None).countdown("erasing", 0.2, step=0.1) is False  # headless


def test_countdown_the_end_of_the_input_is_no_key(keyboard: tuple[int, int]) -> None:
    read, write = keyboard
    os.close(write)
    assert Console(io.StringIO(), read).countdown("erasing", 0.2) is False


def test_countdown_input_typed_before_it_stops_it(keyboard: tuple[int, int]) -> None:
    read, write = keyboard
    os.write(write, b"sda\nx")  # a pipe delivers both at once: "x" waits in the buffer
    console = Console(io.StringIO(), read)
    assert console.read_line(2) == "sda"
    assert console.countdown("erasing", 5.0) is True


def test_countdown_on_a_terminal_stops_at_one_key_and_restores_the_terminal() -> None:
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        assert before[3] & termios.ICANON  # a line-buffered terminal: a key alone is not read
        os.write(master, b"k")  # one key, no Enter
        assert Console(io.StringIO(), slave).countdown("erasing", 5.0) is True
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


COUNTDOWN_CHOICE = Choice("TARGET_DISK names it by its serial", disk=samsung(), countdown=True)


def test_an_unattended_erase_is_stopped_by_a_key(keyboard: tuple[int, int]) -> None:
    read, write = keyboard
    os.write(write, b"\n")
    out = io.StringIO()
    run = InstallRun(InstallConfig(erase_countdown=5), Console(out, read), None)
    with pytest.raises(TargetError) as raised:
        run.take(COUNTDOWN_CHOICE)
    assert raised.value.message == (
        "erasing ATA Samsung SSD 860 serial S3Z9NB0K123456 (/dev/sda) was stopped at the "
        "console; nothing was written"
    )
    assert (
        "install: erasing ATA Samsung SSD 860 serial S3Z9NB0K123456 (68.7 GB, /dev/sda, holds "
        "1 partition(s): ext4 data) in 5 s — press any key to stop\n" in out.getvalue()
    )


def test_an_unattended_erase_nobody_stops_goes_ahead() -> None:
    out = io.StringIO()
    run = InstallRun(InstallConfig(erase_countdown=0.2), Console(out, None), None)
    assert run.take(COUNTDOWN_CHOICE).node == "/dev/sda"
    assert "nobody stopped the countdown" in out.getvalue()


def test_no_countdown_for_a_blank_disk() -> None:
    out = io.StringIO()
    run = InstallRun(InstallConfig(erase_countdown=5), Console(out, None), None)
    assert run.take(Choice("blank", disk=blank("/dev/vda"))).node == "/dev/vda"
    assert "press any key" not in out.getvalue()


def test_a_clawdie_disk_named_for_erase_still_needs_reinstall() -> None:
    out = io.StringIO()
    run = InstallRun(InstallConfig(erase_countdown=5), Console(out, None), None)
    choice = Choice("serial", disk=samsung(CLAWDIE_BY_NAME), countdown=True)
    with pytest.raises(ExistingInstallError):
        run.take(choice)
    assert "press any key" not in out.getvalue()


def test_a_kernel_name_with_erase_and_no_console_fails_naming_the_stable_name() -> None:
    disks = [samsung(), blank("/dev/sdb", bus="usb", removable=True)]
    choice = choose(disks, named="/dev/sda", erase=True)
    run = InstallRun(InstallConfig(), Console(io.StringIO(), None), None)
    with pytest.raises(TargetError) as raised:
        run.take(choice, disks)
    assert raised.value.message.startswith(
        "TARGET_DISK=/dev/sda is a kernel name, which can be another disk on another machine; "
        "to erase it unattended write TARGET_DISK=serial:S3Z9NB0K123456"
    )
    assert raised.value.message.endswith(
        "; the disk must be chosen on the console, and there is no console"
    )
    assert raised.value.hint == (
        "to install unattended, name the disk in setup.txt by its serial or /dev/disk/by-id/ "
        "link, e.g. TARGET_DISK=serial:… and ERASE_TARGET_DISK=yes: "
        f"TARGET_DISK=serial:S3Z9NB0K123456 (or {SAMSUNG_LINK}) for /dev/sda"
    )


def test_run_streaming_passes_output_as_it_comes_and_reports_failure() -> None:
    seen: list[str] = []
    run_streaming(["sh", "-c", "printf '10%%'; sleep 0.2; printf ' 100%%'"], seen.append)
    assert system.parse_percentages("".join(seen)) == [10, 100]
    with pytest.raises(CommandFailedError, match=r"exit 3.*oops"):
        run_streaming(["sh", "-c", "echo oops >&2; exit 3"], seen.append)
    started = time.monotonic()
    with pytest.raises(CommandFailedError, match=r"timed out after 0\.3 s"):
        run_streaming(["sleep", "30"], seen.append, timeout=0.3)
    assert time.monotonic() - started < 5


def test_console_answers_reach_first_boot_so_it_never_asks_again(tmp_path: Path) -> None:
    data = b"".join(
        line + b"\n" for line in valid().splitlines() if not line.startswith(b"TELEGRAM_ADMIN_ID")
    )
    asked: list[list[str]] = []

    def asker(check: SeedCheck) -> dict[str, str]:
        asked.append(keys_to_ask(check))
        return {"TELEGRAM_ADMIN_ID": "42"}

    run = InstallRun(InstallConfig(), Console(io.StringIO(), None), asker)
    check, answers = run._check_seed(SeedInput("setup.txt", data, "test"))
    assert asked == [["TELEGRAM_ADMIN_ID"]]
    assert check.valid
    paths = TargetPaths(tmp_path)
    store_seed(paths, Stamps(paths.stamps_dir), data, answers, "test", check)
    assert paths.seed_copy.read_bytes() == data
    assert read_stored_seed(paths).require_resolved().telegram.admin_id == 42
    assert Stamps(paths.stamps_dir).done(SEED_STEP)


def test_the_copy_deadline_comes_from_the_bytes_at_a_slow_but_working_rate() -> None:
    """3 GB at 5 MB/s is 600 s, plus the 120 s margin: a stalled copy is recognised in 12
    minutes, not the 3 hours kept for a size that could not be read."""
    assert system.copy_deadline(3_000_000_000) == 720.0
    assert system.copy_deadline(None) == system.COPY_TIMEOUT_S
    assert system.render_copy_deadline(3_000_000_000) == "3,000 MB at 5 MB/s + 120 s = 720 s"
