"""The disk installer's pure parts: target choice, the existing-install guard, names, the console
question (over a pipe), markers and the kernel command line."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer.blockdev import BlockDevice
from installer.errors import CommandFailedError
from installer.firstboot import SEED_STEP, read_stored_seed, store_seed
from installer.install import layout, system
from installer.install.console import (
    Console,
    parse_console_wait,
    render_failed_marker,
    syslog_handler,
)
from installer.install.flow import ExistingInstallError, InstallConfig, InstallRun, SeedInput
from installer.install.targets import (
    GIB,
    Choice,
    TargetDisk,
    TargetError,
    choose_target,
    judge_disk,
    match_typed_disk,
    render_contents,
)
from installer.paths import TargetPaths
from installer.resolve import SeedCheck, keys_to_ask
from installer.run import run_streaming
from installer.stamps import Stamps
from tests.seeds import valid


def dev(
    node: str,
    *,
    size: int = 64 * GIB,
    disk: str | None = None,
    removable: bool = False,
    read_only: bool = False,
    bus: str = "ata",
    fs_type: str = "",
    fs_label: str = "",
    part_name: str = "",
) -> BlockDevice:
    return BlockDevice(
        node=node,
        devnum="0:0",
        kind="disk" if disk is None else "partition",
        disk=disk or node,
        size=size,
        removable=removable,
        read_only=read_only,
        model="Test Disk",
        bus=bus,
        fs_type=fs_type,
        fs_label=fs_label,
        part_name=part_name,
        probed_by="test",
        sys_path="/nonexistent",
    )


def blank(node: str, **kw: object) -> TargetDisk:
    return TargetDisk(dev(node, **kw))  # type: ignore[arg-type]


def used(node: str, *parts: BlockDevice, signature: str = "gpt", **kw: object) -> TargetDisk:
    return TargetDisk(dev(node, **kw), partitions=parts, signature=signature)  # type: ignore[arg-type]


def part(disk: str, n: int, fs_type: str = "ext4", label: str = "", name: str = "") -> BlockDevice:
    return dev(layout.partition_node(disk, n), disk=disk, fs_type=fs_type, fs_label=label,
               part_name=name)  # fmt: skip


DATA = part("/dev/sda", 1, label="data")
CLAWDIE_BY_NAME = part("/dev/sda", 3, name="CLAWDIE-ROOT")
CLAWDIE_BY_LABEL = part("/dev/sda", 1, label="clawdie-root")


def choose(disks: list[TargetDisk], **kw: object) -> Choice:
    defaults: dict[str, object] = {"boot_disks": {"/dev/sdb"}, "seed_disks": {"/dev/sdb"}}
    return choose_target(disks, **{**defaults, **kw})  # type: ignore[arg-type]


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
        # TARGET_DISK: blank -> taken; data + ERASE -> taken; data without ERASE -> ask that one
        ([blank("/dev/sda"), blank("/dev/vda")], {"named": "/dev/vda"}, "/dev/vda", []),
        ([used("/dev/sda", DATA)], {"named": "/dev/sda", "erase": True}, "/dev/sda", []),
        ([used("/dev/sda", DATA), blank("/dev/vda")], {"named": "/dev/sda"}, None, ["/dev/sda"]),
        # TARGET_DISK may name a USB disk or a loop device
        ([blank("/dev/sdc", bus="usb")], {"named": "/dev/sdc"}, "/dev/sdc", []),
        ([blank("/dev/loop7")], {"named": "/dev/loop7"}, "/dev/loop7", []),
        # the guard comes after the choice: a sole Clawdie disk is asked about, not taken
        ([used("/dev/sda", CLAWDIE_BY_NAME)], {}, None, ["/dev/sda"]),
        ([used("/dev/sda", CLAWDIE_BY_NAME)], {"named": "/dev/sda", "erase": True}, "/dev/sda", []),
    ],
)
def test_choose_target(
    disks: list[TargetDisk], kw: dict[str, object], taken: str | None, asked: list[str]
) -> None:
    choice = choose(disks, **kw)
    assert (choice.disk.node if choice.disk else None) == taken
    assert [d.node for d in choice.ask] == asked
    assert choice.reason


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
    assert argvs == [
        "grub-install --target=i386-pc /dev/vda",
        f"{efi} --no-nvram",
        f"{efi} --no-nvram --removable",
        "grub-mkconfig -o /boot/grub/grub.cfg",
    ]


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
        )
    )
    assert "IMAGE_VERSION=2025.1\n" in text
    assert "DISK_MODEL=QEMU HARDDISK\n" in text
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
    assert "TARGET_DISK" in (raised.value.hint or "")


def test_a_clawdie_disk_chosen_on_the_console_needs_reinstall(keyboard: tuple[int, int]) -> None:
    choice = Choice("one disk", ask=(used("/dev/sda", CLAWDIE_BY_NAME),))
    run, out = run_with(b"sda\nERASE\n", keyboard)
    with pytest.raises(TargetError, match="type REINSTALL"):
        run.ask_disk(choice)
    assert "remove the stick and restart" in out.getvalue()
    run, _ = run_with(b"sda\nREINSTALL\n", keyboard)
    assert run.ask_disk(choice).node == "/dev/sda"


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
    store_seed(paths, Stamps(paths.stamps_dir), data, answers, "test")
    assert paths.seed_copy.read_bytes() == data
    assert read_stored_seed(paths).value("TELEGRAM_ADMIN_ID") == "42"
    assert Stamps(paths.stamps_dir).done(SEED_STEP)
