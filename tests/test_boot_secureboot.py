"""UEFI Secure Boot on, as on a PC sold with Windows (DESIGN §5): OVMF's SMM build with
Microsoft's keys enrolled, enforcing. The stick boots Debian's signed chain (shim -> signed GRUB
-> signed kernel) and installs; the installed disk boots the same chain to PLATFORM-READY. The
kernel says it is locked down, and the receipt and summary (read inside the booted system:
the SecureBoot variable, /sys/kernel/security/lockdown, the loaders' versions and SBAT) say so.

A negative control in the same firmware: the image's ESP with an unsigned loader (the
grub-mkimage image the stick had before) is refused with Access Denied, so the lane can fail.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests import vm
from tests.disk_image import read_file, root_filesystem
from tests.image import copy_image, load_build
from tests.test_boot import (
    LOADERS,
    Machine,
    filled_seed,
    first_boot,
    install,
    keep_logs,
    record,
)

pytestmark = [
    pytest.mark.boot,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(
        not (vm.OVMF_CODE_SECBOOT.is_file() and vm.OVMF_VARS_MS.is_file()),
        reason="needs OVMF's Secure Boot build (Debian's ovmf package)",
    ),
]

RUN = "uefi-secureboot"
SECURE_BOOT_ON = "UEFI, Secure Boot on, kernel lockdown integrity"
# What Debian's kernel says when the firmware booted it with Secure Boot on, and locked down.
KERNEL_SECURE_BOOT = re.compile(r"Secure boot enabled")
KERNEL_LOCKDOWN = re.compile(r"Kernel is locked down from EFI Secure Boot")
SECURITY_SOURCE = "deb http://deb.debian.org/debian-security bookworm-security main"
MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}

build = load_build()


@pytest.fixture(scope="module")
def secureboot_machine(installer_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Machine:
    return Machine(tmp_path_factory.mktemp(RUN), installer_image, filled_seed(), "uefi-secureboot")


def esp_files(disk: Path, dest: Path) -> dict[str, Path]:
    """Every file of the disk image's ESP, copied out with mtools: ESP path -> the copy."""
    esp = next(p for p in vm.read_partitions(disk) if p.type_guid == vm.ESP_TYPE)
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mcopy", "-s", "-n", "-i", f"{disk}@@{esp.start}", "::*", str(dest)],
        check=True, capture_output=True, env=MTOOLS_ENV,
    )  # fmt: skip
    return {str(p.relative_to(dest)): p for p in sorted(dest.rglob("*")) if p.is_file()}


def check_installed_esp(disk: Path, dest: Path) -> None:
    """Shim, the signed GRUB, MokManager and GRUB's stub config in EFI/clawdie and at the
    removable path (shim as BOOTX64.EFI); every EFI binary signed, shim by Microsoft."""
    files = esp_files(disk, dest)
    for folder in ("EFI/clawdie", "EFI/BOOT"):
        shim = "shimx64.efi" if folder == "EFI/clawdie" else "BOOTX64.EFI"
        for name in (shim, "grubx64.efi", "mmx64.efi", "grub.cfg"):
            assert f"{folder}/{name}" in files, f"no {folder}/{name} on the ESP: {sorted(files)}"
    boot = files["EFI/BOOT/BOOTX64.EFI"].read_bytes()
    assert boot == files["EFI/clawdie/shimx64.efi"].read_bytes(), "the fallback path holds shim"
    build.check_signed(list(files.items()), "the installed disk's ESP")
    assert any("Microsoft" in i for i in build.efi_signatures(files["EFI/BOOT/BOOTX64.EFI"]))
    grub = files["EFI/BOOT/grubx64.efi"]
    assert any("Debian" in i for i in build.efi_signatures(grub)), "Debian's signed GRUB"


def test_secure_boot_stick_installs_and_the_disk_reaches_the_platform(
    secureboot_machine: Machine,
) -> None:
    machine = secureboot_machine
    install(machine, RUN)  # the receipt: Secure Boot on, lockdown, the loaders' versions
    install_log = (machine.workdir / "install.serial.log").read_text(errors="replace")
    assert KERNEL_SECURE_BOOT.search(install_log), "the stick's kernel started with Secure Boot"
    assert KERNEL_LOCKDOWN.search(install_log)
    check_installed_esp(machine.disk, machine.workdir / "esp")
    text = first_boot(machine, RUN)
    assert KERNEL_SECURE_BOOT.search(text), "the disk's kernel started with Secure Boot"
    assert KERNEL_LOCKDOWN.search(text)
    # the summary, which first boot wrote from the running system's /sys and dpkg status
    with root_filesystem(machine.disk) as device:
        summary = (read_file(device, "/var/lib/clawdie-setup/install-summary.txt") or b"").decode()
        sources = (read_file(device, "/etc/apt/sources.list") or b"").decode()
    assert f"Boot mode:      {SECURE_BOOT_ON}\n" in summary, summary
    assert LOADERS.search(summary), summary
    # shim and GRUB revocation updates reach the installed box
    assert SECURITY_SOURCE in sources, sources


def test_secure_boot_refuses_an_unsigned_loader(installer_image: Path, tmp_path: Path) -> None:
    """The negative control: the image's stick with today's grub-mkimage loader in place of
    shim at EFI/BOOT/BOOTX64.EFI. Firmware refuses it; nothing of GRUB or Linux starts."""
    stick = copy_image(installer_image, tmp_path / "stick.img")
    unsigned = tmp_path / "BOOTX64.EFI"
    early = tmp_path / "early.cfg"
    early.write_text(build.EARLY_CFG)
    subprocess.run(
        ["grub-mkimage", "-O", "x86_64-efi", "-p", "/boot/grub", "-c", str(early),
         "-o", str(unsigned), *build.GRUB_MODULES],
        check=True,
    )  # fmt: skip
    assert build.efi_signatures(unsigned) == []
    esp = next(p for p in vm.read_partitions(stick) if p.type_guid == vm.ESP_TYPE)
    subprocess.run(
        ["mcopy", "-o", "-i", f"{stick}@@{esp.start}", str(unsigned), "::EFI/BOOT/BOOTX64.EFI"],
        check=True, env=MTOOLS_ENV,
    )  # fmt: skip
    try:
        with vm.Vm(tmp_path, stick=stick, firmware="uefi-secureboot", name="unsigned") as guest:
            guest.wait_for(
                re.compile(r"failed to load Boot\d+ .*USB.*: Access Denied"), 600, name="refused"
            )
            guest.wait_for(re.compile(r"No bootable option|Shell>"), 300, name="nothing boots")
            text = guest.log_text()
            record(f"{RUN}-unsigned", guest)
    finally:
        keep_logs(tmp_path)
    assert "GRUB" not in text
    assert "Linux version" not in text
