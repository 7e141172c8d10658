"""`clawdie-setup install` onto loop disks: the real partition table, file systems, the copied
system, fstab, seed copy, install record, receipt, the existing-install guard, and failures.

The EFI partition is made and checked with mtools but not mounted, and grub is not run
(`--no-bootloader`): this kernel has no vfat driver. The boot loader is proven by the QEMU boot
test of the image.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import random
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from installer import cli
from installer.bundle import build_bundle
from installer.install import layout, system
from installer.install.console import Console
from installer.install.flow import (
    ExistingInstallError,
    InstallConfig,
    InstallRun,
    receipt_for,
    scrub_seed,
)
from installer.install.targets import (
    AGAIN_LINE,
    FIRSTBOOT_DONE_FILE,
    INSTALL_COMPLETE_FILE,
    TargetDisk,
    choose_target,
    read_target_disks,
    read_target_name,
    render_contents,
)
from installer.media import bundle_file
from installer.media.blockdev import read_block_devices, read_mounts
from installer.media.receipt_file import read_receipt
from installer.paths import TargetPaths
from installer.seed.hashes import verify_better_auth_password
from installer.seed.io import SeedInput, files_on_device
from installer.seed.stored import read_stored_seed
from tests.helpers.install_disk import DISK_MIB, install_argv, seed_for
from tests.helpers.loopdev import (
    MIB,
    LoopDisk,
    Part,
    attach_loop,
    image_digest,
    loop_disk,
    loop_file,
    require_root,
    sh,
    write_at,
)
from tests.helpers.seeds import valid
from tests.helpers.sentinels import SENTINEL


def receipt(tmp_path: Path) -> str:
    return (tmp_path / "receipt/SETUP-RESULT.txt").read_text()


def probe(node: str) -> dict[str, str]:
    out = sh("blkid", "-p", "-o", "export", node)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Path]:
    """Where a test mounts the installed root to look at it (unmounted afterwards)."""
    point = tmp_path / "check"
    point.mkdir()
    yield point
    subprocess.run(["umount", str(point)], capture_output=True, check=False)


def assert_nothing_mounted_from(disk: LoopDisk) -> None:
    assert not [m for m in read_mounts() if m.source.startswith(disk.node)]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SENTINEL not in text


@pytest.mark.root
@pytest.mark.usefixtures("root_tools")
def test_installs_onto_a_blank_disk(
    tmp_path: Path,
    live: Path,
    mounted: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with loop_file(tmp_path / "disk.img", DISK_MIB * MIB) as disk:
        seed = seed_for(tmp_path, f"TARGET_DISK={disk.node}", "SEED_SCRUB=yes")
        given = seed.read_bytes()
        assert cli.main(install_argv(tmp_path, live, seed, disk.node)) == 0
        out, err = capsys.readouterr()
        assert f"install: partitioning {disk.node}\n" in out
        assert "install: copying the system 100%\n" in out
        assert out.splitlines()[-1] == "CLAWDIE-INSTALL-DONE"
        assert_nothing_mounted_from(disk)

        table = sh("sgdisk", "-p", disk.node)
        for code, name in (
            ("EF02", "BIOS-BOOT"),
            ("EF00", "CLAWDIE-EFI"),
            ("8300", "CLAWDIE-ROOT"),
        ):
            assert any(code in line and line.endswith(name) for line in table.splitlines())
        p2, p3 = f"{disk.node}p2", f"{disk.node}p3"
        esp, root = probe(p2), probe(p3)
        assert (esp["TYPE"], esp["LABEL"], esp["VERSION"]) == ("vfat", "CLAWDIEEFI", "FAT32")
        assert (root["TYPE"], root["LABEL"]) == ("ext4", "clawdie-root")
        sh("mdir", "-i", p2, "::/")  # a readable, empty FAT

        sh("mount", "-o", "ro", p3, str(mounted))
        paths = TargetPaths(mounted)
        # the system is the squashfs, owners, modes and links included
        assert (mounted / "etc/passwd").read_text().startswith("root:")
        private = (mounted / "etc/private").stat()
        assert (private.st_uid, private.st_gid, stat.S_IMODE(private.st_mode)) == (
            1000,
            1000,
            0o640,
        )
        assert os.readlink(mounted / "bin") == "usr/bin"
        assert (mounted / "usr/bin/tool").stat().st_size == 300_010
        assert (mounted / "etc/default/grub").read_text() == 'GRUB_CMDLINE_LINUX="console=ttyS0"\n'
        # the medium's kernel and initrd, named as grub.cfg boots them
        assert (mounted / "boot/vmlinuz-6.1.0-test-amd64").read_bytes() == b"kernel"
        assert (mounted / "boot/initrd.img-6.1.0-test-amd64").read_bytes() == b"initrd"
        # fstab by UUID, an empty machine id
        fstab = paths.fstab.read_text()
        assert f"UUID={root['UUID']} / ext4 errors=remount-ro 0 1\n" in fstab
        assert f"UUID={esp['UUID']} /boot/efi vfat umask=0077 0 2\n" in fstab
        assert paths.machine_id.stat().st_size == 0
        # the seed copy, private, without the password in clear (its Better Auth hash on its
        # line, every other line as given), and first boot accepts it without asking
        copy = paths.seed_copy.read_bytes().decode().split("\n")
        assert SENTINEL.encode() not in paths.seed_copy.read_bytes()
        password_line = given.decode().split("\n").index(f"OPERATOR_PASSWORD=op {SENTINEL} pass")
        key, _, hashed = copy[password_line].partition("=")
        assert key == "OPERATOR_PASSWORD"
        assert verify_better_auth_password(f"op {SENTINEL} pass", hashed)
        del copy[password_line]
        assert copy == [line for line in given.decode().split("\n") if SENTINEL not in line]
        assert stat.S_IMODE(paths.seed_copy.stat().st_mode) == 0o600
        assert stat.S_IMODE(paths.seed_copy.parent.stat().st_mode) == 0o700
        assert read_stored_seed(paths).require_resolved().host.hostname == "loopy"
        record = paths.install_record.read_text()
        for line in (
            f"TARGET_DISK={disk.node}",
            "DISK_SERIAL=-",  # a loop device has none
            "DISK_HELD=it was blank",
            "DISK_IDENTITY=unknown model, serial (none), 4.8 GB, no /dev/disk/by-id/ name",
            "HOSTNAME=loopy",
            "IMAGE_VERSION=test-image 1",
        ):
            assert f"{line}\n" in record
        assert "INSTALLED_AT=20" in record
        result = receipt(tmp_path)
        assert result.startswith("Clawdie installer: ok\n")
        assert "Remove the stick; first boot runs on the next start." in result
        assert f"Disk: {disk.node}: unknown model, serial (none), 4.8 GB, " in result
        assert "Erased: it was blank\n" in result
        # SEED_SCRUB=yes: the secrets the install used are gone from the seed it read
        scrubbed = seed.read_text()
        # rewritten in place: each secret line a comment of its own length (the note as far as
        # it fits), the file as long as it was
        assert "# OPERATOR_PASSWORD removed" in scrubbed
        assert "# TELEGRAM_BOT_TOKEN removed" in scrubbed
        assert "ASSISTANT_NAME=Loopy\n" in scrubbed
        assert "SEED_SCRUB=yes: removed from setup.txt: TELEGRAM_BOT_TOKEN" in result
        assert "setup.txt was left as it is" not in result
        assert_no_secret(out, err, caplog.text, record, fstab, result, scrubbed)


# -- what is blank: the bytes on the disk, not only what blkid names ---------------------------


def noise(seed: int, size: int) -> bytes:
    """Bytes no prober recognises, the same on every run (an encrypted volume looks like this)."""
    return random.Random(seed).randbytes(size)  # noqa: S311  (test data: repeatable, not secret)


def random_everywhere(image: Path) -> None:
    """Random data over the whole disk (sampled every 256 MiB to keep the image sparse)."""
    size = image.stat().st_size
    for offset in (*range(0, size - MIB, 256 * MIB), size - MIB):
        write_at(image, offset, noise(offset, MIB))


def unknown_header(image: Path) -> None:
    """4 KiB of a header no blkid prober knows at the start, zeros everywhere else."""
    write_at(image, 0, b"CLAWDIE-TEST-VAULT\x00\x01" + noise(1, 4096 - 20))


def wiped_table_over_data(image: Path) -> None:
    """Old data in the middle and in the last MiB (a backup GPT lives there), the first MiB
    zeroed as `wipefs` or `dd` over the table leaves it."""
    size = image.stat().st_size
    write_at(image, size // 2, noise(2, 8 * MIB))
    write_at(image, size - MIB, noise(3, MIB))


DATA_CASES: list[tuple[Callable[[Path], None], str]] = [
    (random_everywhere, "data with no signature blkid knows (first and last MiB not empty)"),
    (unknown_header, "data with no signature blkid knows (first MiB not empty)"),
    (wiped_table_over_data, "data with no signature blkid knows (last MiB not empty)"),
]


def read_loop(image: Path) -> tuple[LoopDisk, TargetDisk]:
    disk = attach_loop(image)
    [target] = read_target_disks(read_block_devices(), only=[disk.node])
    return disk, target


def as_internal_disk(target: TargetDisk) -> TargetDisk:
    """The same bytes read, seen as an internal disk: a loop device is eligible only when
    named, and this is about what is on the disk, not about its name."""
    return dataclasses.replace(target, device=dataclasses.replace(target.device, node="/dev/sdz"))


@pytest.mark.root
@pytest.mark.parametrize(("fill", "contents"), DATA_CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_data_without_a_signature_is_data_and_always_asked(
    tmp_path: Path, fill: Callable[[Path], None], contents: str
) -> None:
    require_root()
    image = tmp_path / "disk.img"
    with image.open("wb") as handle:
        handle.truncate(DISK_MIB * MIB)
    fill(image)
    disk, target = read_loop(image)
    try:
        assert target.signature == ""  # blkid knows none of it
        assert not target.partitions
        assert not target.blank
        assert render_contents(target) == contents
        # the only eligible disk: asked, not taken
        choice = choose_target([as_internal_disk(target)], boot_disks=set(), seed_disks=set())
        assert choice.disk is None
        assert [d.node for d in choice.ask] == ["/dev/sdz"]
        # named by its kernel name with ERASE_TARGET_DISK=yes: asked, never erased unattended
        named = choose_target(
            [target],
            boot_disks=set(),
            seed_disks=set(),
            named=read_target_name(disk.node),
            erase=True,
        )
        assert named.disk is None
        assert [d.node for d in named.ask] == [disk.node]
        assert f"TARGET_DISK={disk.node} is a kernel name" in named.reason
    finally:
        disk.detach()


@pytest.mark.root
def test_an_all_zero_disk_is_blank_and_taken(tmp_path: Path) -> None:
    require_root()
    image = tmp_path / "disk.img"
    with image.open("wb") as handle:
        handle.truncate(DISK_MIB * MIB)
    disk, target = read_loop(image)
    try:
        assert target.blank
        assert render_contents(target) == "blank"
        choice = choose_target([as_internal_disk(target)], boot_disks=set(), seed_disks=set())
        assert choice.disk is not None
        assert not choice.countdown
        # a kernel name may take a blank disk: nothing is erased
        named = read_target_name(disk.node)
        choice = choose_target([target], boot_disks=set(), seed_disks=set(), named=named)
        assert choice.disk is not None
        assert choice.disk.node == disk.node
    finally:
        disk.detach()


@pytest.mark.root
@pytest.mark.usefixtures("root_tools")
def test_a_kernel_name_with_erase_does_not_erase_a_disk_holding_data(
    tmp_path: Path, live: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "disk.img"
    with image.open("wb") as handle:
        handle.truncate(DISK_MIB * MIB)
    unknown_header(image)
    before = image_digest(image)
    disk = attach_loop(image)
    try:
        seed = seed_for(tmp_path, f"TARGET_DISK={disk.node}", "ERASE_TARGET_DISK=yes")
        assert cli.main(install_argv(tmp_path, live, seed, disk.node)) == 1
        out, _ = capsys.readouterr()
    finally:
        disk.detach()
    assert image_digest(image) == before  # not a byte written
    reason = (
        f"TARGET_DISK={disk.node} is a kernel name, which can be another disk on another "
        "machine, and this disk (unknown model, 4.8 GB) has no stable name (no serial, no "
        "/dev/disk/by-id/ link), so only the console can choose it; the disk must be chosen "
        "on the console, and there is no console"
    )
    assert f"CLAWDIE-INSTALL-FAILED: {reason}" in out.splitlines()
    assert f"\n  {disk.node} " in out  # listed, with what it holds
    assert "data with no signature blkid knows (first MiB not empty)" in out
    assert "partitioning" not in out
    text = receipt(tmp_path)
    assert f"Reason: {reason}\n" in text
    assert "What to do: choose the disk on the console" in text


@pytest.mark.root
@pytest.mark.usefixtures("root_tools")
def test_existing_installation_named_by_kernel_name_is_asked_then_needs_reinstall(
    tmp_path: Path, live: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ERASE_TARGET_DISK=yes with a kernel name is no unattended erase: the disk is asked about,
    and a Clawdie installation on it takes REINSTALL typed (a stable name meets the guard
    directly: the boot test's stick-left-in run and test_install_targets prove that)."""
    parts = [Part(64, name="DATA", label="DATA"), Part(None, name="CLAWDIE-ROOT", fs=None)]
    with loop_disk(tmp_path, parts, size_mib=DISK_MIB) as disk:
        make_root(disk.parts[1], COMPLETE)  # a finished installation (its record written last)
        seed = seed_for(tmp_path, f"TARGET_DISK={disk.node}", "ERASE_TARGET_DISK=yes")
        assert cli.main(install_argv(tmp_path, live, seed, disk.node)) == 1
        out, _ = capsys.readouterr()
        [marker] = [line for line in out.splitlines() if line.startswith("CLAWDIE-INSTALL-FAILED")]
        assert marker.startswith(
            f"CLAWDIE-INSTALL-FAILED: TARGET_DISK={disk.node} is a kernel name, which can be "
            "another disk on another machine"
        )
        assert "ext4 clawdie-root; a Clawdie installation\n" in out
        assert "to start an installed system instead, remove the stick and restart" in out
        assert "What to do: to boot the installed system, remove the stick and restart" in (
            receipt(tmp_path)
        )
        assert probe(disk.parts[0])["LABEL"] == "DATA"  # untouched

        # Chosen on the console, REINSTALL erases it and installs again.
        read, write = os.pipe()
        try:
            os.write(write, f"{disk.node}\nREINSTALL\n".encode())
            config = InstallConfig(
                squashfs=live,
                seed=seed,
                receipt_dir=tmp_path / "receipt",
                console_wait=2,
                failure_wait=0,
                reboot=False,
                poweroff=False,
                bootloader=False,
                only_disks=(disk.node,),
            )
            console_out = io.StringIO()
            assert InstallRun(config, Console(console_out, read), None).execute() == 0
        finally:
            os.close(read)
            os.close(write)
        assert console_out.getvalue().splitlines()[-1] == "CLAWDIE-INSTALL-DONE"
        assert probe(f"{disk.node}p3")["LABEL"] == "clawdie-root"
        assert_nothing_mounted_from(disk)
        assert (
            "Erased: it held 2 partition(s): vfat DATA, ext4 clawdie-root; a Clawdie "
            "installation\n" in receipt(tmp_path)
        )
        assert "This stick can install further machines: setup.txt was left as it is." in (
            receipt(tmp_path)
        )
        assert SENTINEL in seed.read_text()  # no SEED_SCRUB: the stick keeps its seed


@pytest.mark.root
@pytest.mark.usefixtures("root_tools")
def test_a_failure_after_partitioning_unmounts_and_writes_the_reason(
    tmp_path: Path, live: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.squashfs"
    broken.write_bytes(live.read_bytes()[:4096] + b"\0" * 4096)
    with loop_file(tmp_path / "disk.img", DISK_MIB * MIB) as disk:
        seed = seed_for(tmp_path, f"TARGET_DISK={disk.node}")
        assert cli.main(install_argv(tmp_path, broken, seed, disk.node)) == 1
        out, err = capsys.readouterr()
        assert_nothing_mounted_from(disk)
        assert not (tmp_path / "target").is_mount()
        marker = [line for line in out.splitlines() if line.startswith("CLAWDIE-INSTALL-FAILED: ")]
        assert len(marker) == 1
        assert "unsquashfs" in marker[0]
        text = receipt(tmp_path)
        assert text.startswith("Clawdie installer: failed\n")
        assert "Reason: command failed" in text
        assert "unsquashfs" in text
        assert_no_secret(out, err, text)


def test_an_invalid_seed_without_console_fails_with_every_problem_in_the_receipt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    squashfs = tmp_path / "filesystem.squashfs"
    squashfs.write_bytes(b"not used")
    seed = tmp_path / "setup.txt"
    seed.write_text(f"TELEGRAM_ADMIN_ID=12\nOPERATOR_PASSWORD=op {SENTINEL} pass\n")
    assert cli.main(install_argv(tmp_path, squashfs, seed, "/dev/nonexistent")) == 1
    out, err = capsys.readouterr()
    # the cause first: the seed's first problem, then what followed from it
    assert (
        "CLAWDIE-INSTALL-FAILED: setup.txt: OPENROUTER_API_KEY: required (profile balanced uses "
        "it) (and 2 more problems); there is no console to ask on\n"
    ) in out
    text = receipt(tmp_path)
    assert "TELEGRAM_BOT_TOKEN" in text
    assert "OPERATOR_EMAIL" in text
    assert "What to do: fix setup.txt" in text
    assert "restart the machine from the stick to install again" in text
    assert "first boot" not in text.lower()  # the hint fits the installer
    assert_no_secret(out, err, caplog.text, text)


def test_an_adopt_seed_installs_nothing_and_says_where_it_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stick carrying INSTALL_MODE=adopt booted by mistake: no disk is looked at, and the
    receipt says how the installed box takes it."""
    squashfs = tmp_path / "filesystem.squashfs"
    squashfs.write_bytes(b"not used")
    seed = tmp_path / "setup.txt"
    seed.write_text("INSTALL_MODE=adopt\nINSTALL_FINGERPRINT=0123abcd\nPROFILE=economy\n")
    assert cli.main(install_argv(tmp_path, squashfs, seed, "/dev/nonexistent")) == 1
    out, _ = capsys.readouterr()
    assert "CLAWDIE-INSTALL-FAILED: setup.txt says INSTALL_MODE=adopt" in out
    assert "/dev/nonexistent" not in out  # the disk was never looked at
    text = receipt(tmp_path)
    assert "no disk was touched" in text
    assert "boot the installed box from its own disk, then plug this stick in" in text


def test_not_on_the_installer_stick_fails_without_powering_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = seed_for(tmp_path)
    argv = install_argv(tmp_path, tmp_path / "absent.squashfs", seed, "/dev/nonexistent")
    argv = [a for a in argv if a != "--no-poweroff"]  # it must not even try
    assert cli.main(argv) == 1
    out, _ = capsys.readouterr()
    assert "CLAWDIE-INSTALL-FAILED: not running on the installer stick" in out
    assert "powers off" not in out


@pytest.mark.root
def test_receipt_goes_to_the_seed_partition(tmp_path: Path) -> None:
    require_root()
    parts = [Part(None, name="CLAWDIE-SEED", label="CLAWDIESEED", files={"setup.txt": b"x=1\n"})]
    with loop_disk(tmp_path, parts) as stick:
        device = next(d for d in read_block_devices() if d.node == stick.parts[0])
        write = receipt_for(InstallConfig(), SeedInput("setup.txt", b"", "stick", device))
        assert write is not None
        assert write("Clawdie installer: INSTALLED\n")[0]
        copy = tmp_path / "copy.txt"
        sh("mcopy", "-i", stick.parts[0], "::/SETUP-RESULT.txt", str(copy))
        assert read_receipt(copy.read_bytes()) == "Clawdie installer: INSTALLED\n"


@pytest.mark.root
def test_seed_scrub_rewrites_setup_txt_on_the_seed_partition(tmp_path: Path) -> None:
    require_root()
    data = valid(f"OPERATOR_PASSWORD=op {SENTINEL} pass", "SEED_SCRUB=yes")
    parts = [Part(None, name="CLAWDIE-SEED", label="CLAWDIESEED", files={"setup.txt": data})]
    with loop_disk(tmp_path, parts) as stick:
        device = next(d for d in read_block_devices() if d.node == stick.parts[0])
        note = scrub_seed(SeedInput("setup.txt", data, "stick", device), "ada", "2026-12-01")
        assert note.startswith("SEED_SCRUB=yes: removed from setup.txt: ")
        copy = tmp_path / "copy.txt"
        sh("mcopy", "-i", stick.parts[0], "::/setup.txt", str(copy))
        text = copy.read_text()
        assert SENTINEL not in text
        assert "# OPERATOR_PASSWORD removed (SEED_SCRUB=yes)" in text
        assert "# TELEGRAM_BOT_TOKEN removed: used to install ada on 2026-12-01" in text
        assert "TELEGRAM_ADMIN_ID=" in text  # not a secret: kept
        assert len(copy.read_bytes()) == len(data)  # in place: the FAT never changed
    # A stick that cannot be written any more is said, and the install is still done.
    gone = SeedInput("setup.txt", data, "stick", device)  # the partition is gone now
    note = scrub_seed(gone, "ada", "2026-12-01")
    assert note.startswith("SEED_SCRUB=yes, but the secrets are still in setup.txt (")
    assert note.endswith("delete the file or reformat the stick.")
    assert SENTINEL not in note


@pytest.mark.root
def test_log_bundles_go_into_the_two_fixed_bundle_files_on_the_seed_partition(
    tmp_path: Path,
) -> None:
    """On a FAT stick the bundles alternate between clawdie-logs-1 and -2.tar.gz, made once at
    their fixed size and rewritten in place after (media/bundle_file.py); the newest whole one
    is the last bundle written, and each file opens with tar."""
    require_root()
    parts = [Part(None, name="CLAWDIE-SEED", label="CLAWDIESEED", files={"setup.txt": valid()})]
    bundles = [
        build_bundle([("clawdie-setup.log", f"run {n}\n")], 1_765_000_000 + n) for n in (1, 2, 3)
    ]
    with loop_disk(tmp_path, parts) as stick:
        device = next(d for d in read_block_devices() if d.node == stick.parts[0])
        write = files_on_device(device)
        said = [write(f"clawdie-logs-ada-{n}.tar.gz", data) for n, data in enumerate(bundles)]
        assert [ok for ok, _ in said] == [True, True, True]
        assert said[0][1].endswith(
            "as clawdie-logs-1.tar.gz (the newer of the two bundles kept there)"
        )
        assert "as clawdie-logs-2.tar.gz" in said[1][1]
        assert "as clawdie-logs-1.tar.gz" in said[2][1]  # in place, over the oldest
        files = {}
        for name in bundle_file.NAMES:
            copy = tmp_path / name
            sh("mcopy", "-i", stick.parts[0], f"::/{name}", str(copy))
            files[name] = copy.read_bytes()
            assert len(files[name]) == bundle_file.FILE_BYTES
            assert subprocess.run(["tar", "-tzf", str(copy)], capture_output=True).returncode == 0
        assert bundle_file.newest_bundle(files) == bundles[2]


# -- an install cut short: the disk knows it, and an unattended-erase seed finishes it -----------


def make_root(node: str, files: dict[str, bytes], label: str = "clawdie-root") -> None:
    """An ext4 on `node` holding `files` (absolute paths), written with debugfs, no mount."""
    sh("mkfs.ext4", "-q", "-F", "-L", label, node)
    with tempfile.TemporaryDirectory() as staging:
        script = []
        for number, (path, data) in enumerate(files.items()):
            parts = Path(path).parts[1:-1]
            script += [f"mkdir /{'/'.join(parts[: i + 1])}" for i in range(len(parts))]
            local = Path(staging) / str(number)
            local.write_bytes(data)
            script.append(f"write {local} {path}")
        commands = Path(staging) / "commands"
        commands.write_text("\n".join(script) + "\n")
        sh("debugfs", "-w", "-f", str(commands), node)


COMPLETE = {INSTALL_COMPLETE_FILE: b"COMPLETED_AT=2026-01-01T00:00:00Z\n"}
FIRSTBOOT_DONE = {FIRSTBOOT_DONE_FILE: b""}
ROOT_ONLY = {"/etc/fstab": b"# fstab\n"}


def with_serial(disk: TargetDisk, serial: str = "LOOP-SERIAL-1") -> TargetDisk:
    """Loop devices have no serial: give the read disk one, as a real disk reports it."""
    return dataclasses.replace(disk, device=dataclasses.replace(disk.device, serial=serial))


@pytest.mark.root
@pytest.mark.usefixtures("root_tools")
@pytest.mark.parametrize(
    ("root_name", "root_files", "state", "erase_seed", "taken", "again"),
    [
        # an unfinished install of ours with an unattended-erase seed: taken, installed again
        ("CLAWDIE-ROOT", ROOT_ONLY, "unfinished", True, True, True),
        ("CLAWDIE-ROOT", None, "unfinished", True, True, True),  # cut before its file system
        # without the unattended-erase seed: asked
        ("CLAWDIE-ROOT", ROOT_ONLY, "unfinished", False, False, False),
        # a complete one: chosen, but past the REINSTALL guard (not `again`)
        ("CLAWDIE-ROOT", COMPLETE, "complete", True, True, False),
        ("CLAWDIE-ROOT", FIRSTBOOT_DONE, "complete", True, True, False),  # booted before records
        ("CLAWDIE-ROOT", COMPLETE, "complete", False, False, False),
        # a foreign disk: never an unfinished install of ours, never taken without its name
        ("DATA", ROOT_ONLY, "", True, True, False),
        ("DATA", ROOT_ONLY, "", False, False, False),
    ],
)
def test_the_judgement_of_a_disk_holding_our_partitions(
    tmp_path: Path,
    root_name: str,
    root_files: dict[str, bytes] | None,
    state: str,
    erase_seed: bool,
    taken: bool,
    again: bool,
) -> None:
    parts = [Part(64, name="CLAWDIE-EFI", label="CLAWDIEEFI"), Part(None, name=root_name, fs=None)]
    with loop_disk(tmp_path, parts, size_mib=DISK_MIB) as loop:
        if root_files is not None:
            make_root(loop.parts[1], root_files, "clawdie-root" if root_name != "DATA" else "data")
        [read] = read_target_disks(read_block_devices(), only=[loop.node])
        disk = with_serial(read)
        assert disk.install_state == state
        assert disk.unfinished_clawdie is (state == "unfinished")
        named = read_target_name("serial:LOOP-SERIAL-1")  # a loop device is taken only named
        choice = choose_target(
            [disk], boot_disks=set(), seed_disks=set(), named=named, erase=erase_seed
        )
        assert (choice.disk is not None) is taken
        assert choice.again is again
        if not taken:
            assert choice.ask == (disk,)
        if again:
            assert choice.reason.endswith(AGAIN_LINE)
        if taken and not again and state == "complete":
            # the guard: with no console, a complete installation is never erased
            run = InstallRun(InstallConfig(failure_wait=0), Console(io.StringIO()), None)
            with pytest.raises(ExistingInstallError, match="type REINSTALL"):
                run.take(choice, [disk])


@pytest.mark.root
@pytest.mark.usefixtures("root_tools")
def test_an_install_cut_short_is_finished_by_the_next_boot_of_an_unattended_seed(
    tmp_path: Path, live: Path, monkeypatch: pytest.MonkeyPatch, mounted: Path
) -> None:
    """The whole system written but not the record written last (a cut before it): the disk is
    an unfinished install; the same seed with nobody at the console installs again by itself and
    says so on the console and the receipt. Without the unattended erase the question's timeout
    says what this machine can do (restart from the stick), not to boot the disk."""
    with loop_file(tmp_path / "disk.img", DISK_MIB * MIB) as loop:
        import installer.install.flow as flow

        def read_with_serial(*args: object, **kwargs: object) -> list[TargetDisk]:
            return [with_serial(d) for d in read_target_disks(*args, **kwargs)]  # type: ignore[arg-type]

        monkeypatch.setattr(flow, "read_target_disks", read_with_serial)

        def unattended() -> Path:
            return seed_for(tmp_path, "TARGET_DISK=serial:LOOP-SERIAL-1", "ERASE_TARGET_DISK=yes")

        def install(seed: Path, fault: str = "") -> tuple[int, str]:
            monkeypatch.setenv("CLAWDIE_INSTALL_FAULT", fault)
            config = InstallConfig(
                squashfs=live,
                seed=seed,
                receipt_dir=tmp_path / "receipt",
                live_root=tmp_path / "live-root",
                mount_dir=tmp_path / "target",
                console_wait=0,
                erase_countdown=0,
                failure_wait=0,
                reboot=False,
                poweroff=False,
                bootloader=False,
                only_disks=(loop.node,),
            )
            (tmp_path / "receipt").mkdir(exist_ok=True)
            out = io.StringIO()
            code = InstallRun(config, Console(out), None).execute()
            return code, out.getvalue()

        code, _ = install(unattended(), "fail:before:complete")
        assert code == 1
        [cut] = read_target_disks(read_block_devices(), only=[loop.node])
        assert cut.install_state == "unfinished"
        assert "a Clawdie installation that did not finish (it cannot start)" in (
            render_contents(cut)
        )

        # No unattended erase (a kernel name): asked, and the advice is what this box can do.
        asked = seed_for(tmp_path, f"TARGET_DISK={loop.node}", "ERASE_TARGET_DISK=yes")
        code, out = install(asked)
        assert code == 1
        assert f"install: {loop.node}: the last install on this disk did not finish\n" in out
        assert "remove the stick and restart" not in out + receipt(tmp_path)

        # The unattended-erase seed: installed again, nobody asked.
        code, out = install(unattended())
        assert code == 0, out
        assert f"install: {AGAIN_LINE}\n" in out
        copied = 300_010 + sum(len(b) for b in (b"root:x:0:0:root:/root:/bin/bash\n",))
        assert "install: copy deadline: 0 MB at 5 MB/s + 120 s = 120 s\n" in out
        assert (system.read_copy_bytes(live) or 0) >= copied
        assert out.splitlines()[-1] == "CLAWDIE-INSTALL-DONE"
        text = receipt(tmp_path)
        assert f"Note: {AGAIN_LINE}.\n" in text
        assert f"Target disk: {loop.node}: unknown model, serial LOOP-SERIAL-1" in text
        [done] = read_target_disks(read_block_devices(), only=[loop.node])
        assert done.install_state == "complete"
        sh("mount", "-o", "ro", f"{loop.node}p3", str(mounted))
        assert TargetPaths(mounted).install_complete.read_text().startswith("# Written last")
        sh("umount", str(mounted))

        # Complete now: the same seed meets the REINSTALL guard and changes nothing.
        code, out = install(unattended())
        assert code == 1
        assert (
            f"{loop.node} already holds a Clawdie installation and REINSTALL was not typed" in out
        )


@pytest.mark.root
@pytest.mark.usefixtures("root_tools")
def test_the_table_is_not_reread_when_the_kernel_has_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Once the kernel has the new table (sgdisk told it, or a re-read did), no BLKRRPART
    re-read follows (on a disk in use it only logs a 'busy' warning); a loop device without
    partition scanning never has it."""
    caplog.set_level(logging.DEBUG)
    with loop_file(tmp_path / "disk.img", DISK_MIB * MIB) as disk:
        layout.write_partition_table(disk.node)
        assert layout.read_disk_table(disk.node)
        if not layout.kernel_has_table(disk.node):  # sgdisk's own re-read did not reach it
            layout.reread_partitions(disk.node)
            assert "no re-read" not in caplog.text
        layout.wait_for_partitions(disk.node)
        assert layout.kernel_has_table(disk.node)
        caplog.clear()
        layout.reread_partitions(disk.node)
        assert "the kernel already has the new table" in caplog.text
        assert "partprobe" not in caplog.text
        assert "blockdev" not in caplog.text
    image = tmp_path / "plain.img"
    with image.open("wb") as handle:
        handle.truncate(DISK_MIB * MIB)
    node = sh("losetup", "--find", "--show", str(image)).strip()  # no --partscan
    try:
        layout.write_partition_table(node)
        assert layout.read_disk_table(node)
        assert not layout.kernel_has_table(node)
    finally:
        subprocess.run(["losetup", "--detach", node], check=False)
