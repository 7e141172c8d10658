"""The QEMU harness (tests/helpers/vm.py) against real QEMU, sfdisk and mtools, without the
product image.

Guests are a 30-byte boot sector that prints a message on COM1 and resets the machine, the OVMF
shell running a startup.nsh, and a real hybrid GPT ISO from grub-mkrescue with an appended seed
partition (the product's layout). BIOS boots take about a second under TCG; UEFI ones are slow.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import vm
from tests.helpers.vm import (
    BASIC_DATA,
    OVMF_CODE,
    OVMF_VARS,
    LogTail,
    Vm,
    accel_args,
    clean_text,
    format_timing,
    make_blank_disk,
    print_timing,
    probe_kvm,
    read_partitions,
    read_seed_file,
    seed_offset,
    seed_partition,
    write_seed,
)

MIB = 1024 * 1024
TCG = accel_args(kvm=False)
MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}

needs_qemu = pytest.mark.skipif(shutil.which(vm.QEMU) is None, reason=f"needs {vm.QEMU}")
needs_ovmf = pytest.mark.skipif(not OVMF_CODE.exists(), reason=f"needs {OVMF_CODE}")
needs_layout_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("sgdisk", "sfdisk", "mformat", "mcopy", "mlabel")),
    reason="needs sgdisk, sfdisk and mtools",
)

# 16-bit, position independent (runs at 0000:7C00 from a disk and 07C0:0000 from a CD): print the
# NUL-terminated message that follows the code on COM1, then reset through the keyboard
# controller. From `as --32` on: call next; pop si; add si,msg-next; push cs; pop ds; lodsb loop
# with out dx(0x3f8),al; mov al,0xfe; out 0x64,al; hlt.
BOOT_CODE = bytes.fromhex("fae800005e81c61a000e1ffcbaf803ac84c07403eeebf8b0fee664f4ebfd")


def boot_sector(message: str) -> bytes:
    sector = bytearray(512)
    code = BOOT_CODE + message.encode() + b"\r\n\0"
    sector[: len(code)] = code
    sector[510:] = b"\x55\xaa"
    return bytes(sector)


def bootable_disk(path: Path, message: str) -> Path:
    make_blank_disk(path, 4 * MIB)
    with path.open("r+b") as disk:
        disk.write(boot_sector(message))
    return path


def sh(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, env=MTOOLS_ENV, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr}"
    return proc.stdout


def gpt_image(path: Path) -> Path:
    """64 MiB: 1 = ESP at 1 MiB, 2 = unlabelled FAT Basic Data, 3 = CLAWDIESEED at 40 MiB."""
    make_blank_disk(path, 100 * MIB)
    sh(
        "sgdisk", "-n", "1:1M:+8M", "-t", "1:EF00", "-c", "1:EFI",
        "-n", "2:10M:+8M", "-t", f"2:{BASIC_DATA}", "-c", "2:Gap",
        "-n", "3:40M:+33M", "-t", f"3:{BASIC_DATA}", "-c", "3:seed", str(path),
    )  # fmt: skip
    sh("mformat", "-i", f"{path}@@{1 * MIB}", "-v", "ESP", "::")
    sh("mformat", "-i", f"{path}@@{10 * MIB}", "::")
    sh("mformat", "-i", f"{path}@@{40 * MIB}", "-F", "-c", "1", "-v", "CLAWDIESEED", "::")
    return path


# --- accelerator ------------------------------------------------------------------------------


def test_probe_reports_a_missing_device(tmp_path: Path) -> None:
    ok, reason = probe_kvm(tmp_path / "kvm")
    assert not ok
    assert "cannot open" in reason
    assert str(tmp_path / "kvm") in reason


def test_probe_reports_a_device_that_is_not_kvm(tmp_path: Path) -> None:
    fake = tmp_path / "kvm"
    fake.write_bytes(b"")
    ok, reason = probe_kvm(fake)
    assert not ok
    assert "ioctl failed" in reason


def test_accel_args_choose_kvm_or_multithreaded_tcg() -> None:
    assert accel_args(kvm=True) == ["-accel", "kvm", "-cpu", "host"]
    assert accel_args(kvm=False) == ["-accel", "tcg,thread=multi", "-cpu", "max"]


@needs_qemu
@needs_ovmf
@pytest.mark.slow
def test_probe_agrees_with_a_real_uefi_boot_under_kvm(tmp_path: Path) -> None:
    if not Path("/dev/kvm").exists():
        pytest.skip("no /dev/kvm")
    ok, reason = probe_kvm()
    assert reason
    accel = accel_args(kvm=True)
    if ok:
        with Vm(tmp_path, firmware="uefi", accel=accel) as machine:
            machine.wait_for("BdsDxe", timeout=30)
        return
    # A KVM the probe rejects either stops QEMU at start (seen: "failed to set MSR") or starts a
    # guest that makes no progress (seen: "KVM internal error"); either way no firmware output.
    with pytest.raises(AssertionError), Vm(tmp_path, firmware="uefi", accel=accel) as machine:
        machine.wait_for("BdsDxe", timeout=8)


# --- command line -----------------------------------------------------------------------------


def option_values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == option]


def test_command_line_has_no_network_and_ends_on_reboot(tmp_path: Path) -> None:
    argv = Vm(tmp_path, disk=tmp_path / "d.img", accel=TCG).argv()
    assert option_values(argv, "-nic") == ["none"]
    assert "-nodefaults" in argv
    assert not [a for a in argv if re.search(r"netdev|nic,|e1000|virtio-net|user,", a)]
    assert "-no-reboot" in argv
    assert option_values(argv, "-machine") == ["q35"]
    assert option_values(argv, "-m") == ["2048"]
    assert option_values(argv, "-smp") == ["2"]
    assert option_values(argv, "-display") == ["none"]
    assert option_values(argv, "-serial") == [f"file:{tmp_path / 'boot.serial.log'}"]
    assert not [a for a in argv if "pflash" in a]


def test_boot_order_is_stick_then_cd_then_disk(tmp_path: Path) -> None:
    argv = Vm(
        tmp_path, stick=tmp_path / "s.iso", cdrom=tmp_path / "c.iso", disk=tmp_path / "d.img"
    ).argv()
    devices = option_values(argv, "-device")
    assert "usb-storage,bus=xhci.0,drive=stick,removable=on,bootindex=0" in devices
    assert "ide-cd,bus=ide.0,drive=cd,bootindex=1" in devices
    assert "virtio-blk-pci,drive=disk,bootindex=2,serial=CLAWDIE-DISK-1" in devices
    drives = option_values(argv, "-drive")
    assert f"if=none,id=stick,format=raw,file={tmp_path / 's.iso'}" in drives
    assert any("media=cdrom" in d and "readonly=on" in d for d in drives)


def test_uefi_uses_readonly_code_and_the_machines_own_vars(tmp_path: Path) -> None:
    machine = Vm(tmp_path, firmware="uefi", accel=TCG)
    flash = [d for d in option_values(machine.argv(), "-drive") if d.startswith("if=pflash")]
    assert flash == [
        f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
        f"if=pflash,format=raw,unit=1,file={tmp_path / 'OVMF_VARS.fd'}",
    ]
    assert str(OVMF_VARS) not in " ".join(machine.argv())


def test_secure_boot_uses_the_smm_firmware_and_microsofts_keys(tmp_path: Path) -> None:
    machine = Vm(tmp_path, firmware="uefi-secureboot", accel=TCG)
    argv = machine.argv()
    assert option_values(argv, "-machine") == ["q35,smm=on"]
    assert option_values(argv, "-global") == ["driver=cfi.pflash01,property=secure,value=on"]
    flash = [d for d in option_values(argv, "-drive") if d.startswith("if=pflash")]
    assert flash == [
        f"if=pflash,format=raw,unit=0,readonly=on,file={vm.OVMF_CODE_SECBOOT}",
        f"if=pflash,format=raw,unit=1,file={tmp_path / 'OVMF_VARS.secboot.fd'}",
    ]
    assert str(vm.OVMF_VARS_MS) not in " ".join(argv), "the machine's own copy, not the template"


def test_a_comma_in_a_drive_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="comma"):
        Vm(tmp_path, disk=tmp_path / "a,b.img", accel=TCG).argv()


# --- serial log -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\x1b[2J\x1b[01;01HBdsDxe: ok\r\n", "BdsDxe: ok\n"),
        ("\x1b[=3h\x1b[0;1;32mOK\x1b[0m] Started\r\n", "OK] Started\n"),
        ("\x1b]0;title\x07login: ", "login: "),
        ("a\x1b(Bb\x1b7c\x08\x00d\ttab", "abcd\ttab"),
        ("plain\n", "plain\n"),
    ],
)
def test_clean_text_strips_escapes_and_carriage_returns(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_log_tail_times_each_line_when_it_arrived_and_matches_a_partial_line(
    tmp_path: Path,
) -> None:
    log = tmp_path / "serial.log"
    now = [1.0]
    tail = LogTail(log, lambda: now[0])
    tail.read()  # no file yet
    assert tail.snapshot() == ("", 0)
    log.write_bytes(b"first line\r\nsecond \x1b[1mbo")
    tail.read()
    now[0] = 7.5
    with log.open("ab") as out:
        out.write(b"ld\x1b[0m line\nlogin: ")
    tail.read()
    text, partial_start = tail.snapshot()
    assert text == "first line\nsecond bold line\nlogin: "
    assert text[partial_start:] == "login: "
    assert tail.time_at(text.index("first")) == 1.0
    assert tail.time_at(text.index("second")) == 7.5  # the line completed at 7.5
    assert tail.time_at(text.index("login")) == 7.5


# --- timing -----------------------------------------------------------------------------------


def test_timing_line() -> None:
    fields = {"install done": 312.44, "PLATFORM-READY": 655.06}
    line = "boot-test: bios-usb: install done at 312.4 s, PLATFORM-READY at 655.1 s"
    assert format_timing("bios-usb", fields) == line
    out = io.StringIO()
    assert print_timing("bios-usb", fields, file=out) == line
    assert out.getvalue() == line + "\n"


# --- image layout -----------------------------------------------------------------------------


def test_blank_disk_is_sparse(tmp_path: Path) -> None:
    disk = make_blank_disk(tmp_path / "disk.img", 20 * 1024**3)
    assert disk.stat().st_size == 20 * 1024**3
    assert disk.stat().st_blocks == 0


@needs_layout_tools
def test_partitions_are_read_in_bytes(tmp_path: Path) -> None:
    parts = read_partitions(gpt_image(tmp_path / "disk.img"))
    assert [(p.number, p.start, p.size, p.name) for p in parts] == [
        (1, 1 * MIB, 8 * MIB, "EFI"),
        (2, 10 * MIB, 8 * MIB, "Gap"),
        (3, 40 * MIB, 33 * MIB, "seed"),
    ]
    assert parts[0].type_guid == vm.ESP_TYPE
    assert parts[2].type_guid == BASIC_DATA


@needs_layout_tools
def test_seed_is_found_by_label_among_basic_data_partitions(tmp_path: Path) -> None:
    image = gpt_image(tmp_path / "disk.img")
    assert seed_partition(image).number == 3
    assert seed_offset(image) == 40 * MIB


@needs_layout_tools
def test_an_image_without_seed_fails_naming_its_partitions(tmp_path: Path) -> None:
    image = gpt_image(tmp_path / "disk.img")
    sh("mlabel", "-i", f"{image}@@{40 * MIB}", "::OTHER")
    with pytest.raises(AssertionError, match=r"no FAT partition labelled CLAWDIESEED.*3: EBD0"):
        seed_offset(image)


@needs_layout_tools
def test_write_and_read_back_seed_files(tmp_path: Path) -> None:
    image = gpt_image(tmp_path / "disk.img")
    write_seed(image, b"HOSTNAME=first\n")
    write_seed(image, b"HOSTNAME=clawdie\r\nTIMEZONE=Europe/Ljubljana\r\n")  # replaces
    assert (
        read_seed_file(image, "setup.txt") == b"HOSTNAME=clawdie\r\nTIMEZONE=Europe/Ljubljana\r\n"
    )
    assert read_seed_file(image, "SETUP-RESULT.txt") is None
    write_seed(image, b"\x00\xffbinary", name="SETUP-RESULT.txt")
    assert read_seed_file(image, "setup-result.TXT") == b"\x00\xffbinary"
    # Only the seed partition changed: the gap partition is still empty.
    assert sh("mdir", "-b", "-i", f"{image}@@{10 * MIB}", "::") == ""
    listing = sh("mdir", "-b", "-i", f"{image}@@{40 * MIB}", "::")
    assert sorted(listing.split()) == ["::/SETUP-RESULT.txt", "::/setup.txt"]


# --- booting ----------------------------------------------------------------------------------


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone too (not ours to reap if Popen already did).
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split()[2] == "Z"


@needs_qemu
def test_bios_boots_the_stick_before_the_disk_and_reboot_ends_qemu(tmp_path: Path) -> None:
    stick = bootable_disk(tmp_path / "stick.img", "HELLO FROM STICK")
    disk = bootable_disk(tmp_path / "disk.img", "HELLO FROM DISK")
    with Vm(tmp_path, stick=stick, disk=disk, accel=TCG) as machine:
        hello = machine.wait_for(re.compile(r"HELLO FROM (\w+)"), timeout=20, name="hello")
        assert hello.group(1) == "STICK"
        assert machine.wait_exit(timeout=20) == 0
        assert machine.exit_reason() == "guest-reset"
    assert 0 < hello.elapsed <= machine.marks["exit"] < 20
    assert machine.marks["hello"] == hello.elapsed
    assert "HELLO FROM DISK" not in machine.log_text()
    assert "Booting from" in machine.firmware_log_text()


@needs_qemu
def test_bios_boots_the_disk_when_there_is_no_stick(dir_on_each_fs: Path) -> None:
    # The boot tests' machines live wherever TMPDIR is: QEMU starts on a tmpfs as on a disk.
    disk = bootable_disk(dir_on_each_fs / "disk.img", "HELLO FROM DISK")
    with Vm(dir_on_each_fs, disk=disk, accel=TCG) as machine:
        machine.wait_for("HELLO FROM DISK", timeout=20)
        assert machine.wait_exit(timeout=20) == 0


@needs_qemu
@pytest.mark.skipif(shutil.which("xorriso") is None, reason="needs xorriso")
def test_bios_boots_the_cd_before_the_disk(tmp_path: Path) -> None:
    (tmp_path / "cd").mkdir()
    (tmp_path / "cd" / "boot.bin").write_bytes(boot_sector("HELLO FROM CD"))
    iso = tmp_path / "cd.iso"
    sh("xorriso", "-as", "mkisofs", "-quiet", "-o", str(iso), "-b", "boot.bin",
       "-no-emul-boot", "-boot-load-size", "4", str(tmp_path / "cd"))  # fmt: skip
    disk = bootable_disk(tmp_path / "disk.img", "HELLO FROM DISK")
    with Vm(tmp_path, cdrom=iso, disk=disk, accel=TCG) as machine:
        assert machine.wait_for(re.compile(r"HELLO FROM \w+"), timeout=20).group(0).endswith("CD")


@needs_qemu
def test_the_guest_has_no_network_device_and_seabios_logs_to_the_firmware_log(
    tmp_path: Path,
) -> None:
    disk = make_blank_disk(tmp_path / "disk.img", 4 * MIB)
    with Vm(tmp_path, disk=disk, accel=TCG) as machine:
        nothing = machine.wait_for("No bootable device", timeout=20, source="firmware")
        assert 0 < nothing.elapsed < 20
        assert machine.running
        assert machine.qmp.hmp("info network").strip() == ""
        pci = machine.qmp.execute("query-pci")
        classes = [d["class_info"].get("desc", "") for bus in pci for d in bus["devices"]]
        assert classes, "query-pci listed no devices at all"
        assert not [c for c in classes if "net" in c.lower() or "ethernet" in c.lower()]


@needs_qemu
def test_waiting_fails_with_the_log_when_qemu_exits_first(tmp_path: Path) -> None:
    disk = bootable_disk(tmp_path / "disk.img", "ABOUT TO REBOOT")
    with (
        Vm(tmp_path, disk=disk, accel=TCG) as machine,
        pytest.raises(AssertionError) as failure,
    ):
        machine.wait_for("INSTALL-DONE", timeout=20)
    message = str(failure.value)
    assert "QEMU exited (code 0, guest-reset)" in message
    assert "'INSTALL-DONE'" in message
    assert "ABOUT TO REBOOT" in message  # the log's last lines


@needs_qemu
def test_waiting_times_out_with_the_log_and_exit_kills_qemu(tmp_path: Path) -> None:
    disk = make_blank_disk(tmp_path / "disk.img", 4 * MIB)
    machine = Vm(tmp_path, disk=disk, accel=TCG)
    with pytest.raises(AssertionError, match=r"'never' did not appear .* within 1 s"), machine:
        machine.wait_for("never", timeout=1)
    assert machine._proc is not None
    assert machine._proc.returncode is not None
    assert process_gone(machine._proc.pid)
    assert not machine.running


@needs_qemu
def test_a_second_boot_of_the_same_machine_keeps_its_own_logs(tmp_path: Path) -> None:
    disk = bootable_disk(tmp_path / "disk.img", "FROM DISK")
    for name in ("install", "firstboot"):
        with Vm(tmp_path, disk=disk, accel=TCG, name=name) as machine:
            machine.wait_exit(timeout=20)
    assert "FROM DISK" in (tmp_path / "install.serial.log").read_text()
    assert "FROM DISK" in (tmp_path / "firstboot.serial.log").read_text()
    with pytest.raises(RuntimeError, match="runs once"):
        machine.start()


@needs_qemu
@needs_ovmf
@pytest.mark.slow
def test_uefi_shell_runs_a_script_from_the_stick(tmp_path: Path) -> None:
    stick = make_blank_disk(tmp_path / "stick.img", 32 * MIB)
    sh("mformat", "-i", str(stick), "-v", "NSH", "::")
    script = tmp_path / "startup.nsh"
    script.write_bytes(b"echo UEFI-STICK-OK\r\nreset\r\n")
    sh("mcopy", "-i", str(stick), str(script), "::startup.nsh")
    with Vm(tmp_path, stick=stick, firmware="uefi", accel=TCG) as machine:
        machine.wait_for(re.compile(r"^UEFI-STICK-OK$", re.MULTILINE), timeout=90)
        assert machine.wait_exit(timeout=30) == 0
        assert machine.exit_reason() == "guest-reset"
    assert (tmp_path / "OVMF_VARS.fd").stat().st_size == OVMF_VARS.stat().st_size


# --- a real hybrid ISO with the product's layout ----------------------------------------------

GRUB_CFG = """\
serial --unit=0 --speed=115200
terminal_output serial
echo "GRUB-UP platform=${grub_platform}"
reboot
"""


@pytest.fixture(scope="module")
def hybrid_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A grub-mkrescue ISO (BIOS + UEFI, GPT) with a FAT32 CLAWDIESEED partition appended."""
    if not all(shutil.which(t) for t in ("grub-mkrescue", "xorriso", "mformat", "sfdisk")):
        pytest.skip("needs grub-mkrescue, xorriso, mtools and sfdisk")
    if not Path("/usr/lib/grub/i386-pc").is_dir() or not Path("/usr/lib/grub/x86_64-efi").is_dir():
        pytest.skip("needs GRUB for i386-pc and x86_64-efi")
    work = tmp_path_factory.mktemp("hybrid")
    (work / "root" / "boot" / "grub").mkdir(parents=True)
    (work / "root" / "boot" / "grub" / "grub.cfg").write_text(GRUB_CFG)
    seed = make_blank_disk(work / "seed.img", 64 * MIB)
    sh("mformat", "-i", str(seed), "-F", "-c", "1", "-v", "CLAWDIESEED", "::")
    iso = work / "hybrid.iso"
    append = [
        "-append_partition",
        "3",
        "0x0c",
        str(seed),
        "-boot_image",
        "any",
        "appended_part_as=gpt",
    ]
    sh("grub-mkrescue", "-o", str(iso), str(work / "root"), "--", *append)
    return iso


@needs_layout_tools
def test_seed_on_a_hybrid_iso(hybrid_iso: Path, tmp_path: Path) -> None:
    iso = tmp_path / "copy.iso"
    shutil.copyfile(hybrid_iso, iso)
    parts = read_partitions(iso)
    assert vm.ESP_TYPE in [p.type_guid for p in parts]
    assert len([p for p in parts if p.type_guid == BASIC_DATA]) > 1  # the gaps are Basic Data
    seed = seed_partition(iso)
    assert seed.size == 64 * MIB
    assert seed.start + seed.size <= iso.stat().st_size
    write_seed(iso, b"HOSTNAME=clawdie\n")
    assert read_seed_file(iso, "setup.txt") == b"HOSTNAME=clawdie\n"


@needs_qemu
@pytest.mark.parametrize(
    ("firmware", "medium"),
    [
        ("bios", "stick"),
        ("bios", "cdrom"),
        pytest.param("uefi", "stick", marks=[pytest.mark.slow, needs_ovmf]),
        pytest.param("uefi", "cdrom", marks=[pytest.mark.slow, needs_ovmf]),
    ],
)
def test_hybrid_iso_boots(hybrid_iso: Path, tmp_path: Path, firmware: str, medium: str) -> None:
    platform = {"bios": "pc", "uefi": "efi"}[firmware]
    disk = make_blank_disk(tmp_path / "disk.img", 64 * MIB)
    machine = Vm(tmp_path, disk=disk, firmware=firmware, accel=TCG)  # type: ignore[arg-type]
    setattr(machine, medium, hybrid_iso)
    with machine:
        up = machine.wait_for(re.compile(r"GRUB-UP platform=(\w+)"), timeout=60)
        assert up.group(1) == platform
        assert machine.wait_exit(timeout=30) == 0
