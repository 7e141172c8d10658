"""UEFI Secure Boot on, as on a PC sold with Windows (DESIGN §5): OVMF's SMM build with
Microsoft's keys enrolled, enforcing. The stick boots Debian's signed chain (shim -> signed GRUB
-> signed kernel) and installs; the installed disk boots the same chain to PLATFORM-READY, and
still does after a kernel update (the package reinstalled offline, update-grub run by it). The
kernel says it is locked down, and the receipt and summary (read inside the booted system:
the SecureBoot variable, /sys/kernel/security/lockdown, the loaders' versions and SBAT) say so.

A negative control in the same firmware: the image's ESP with an unsigned loader (the
grub-mkimage image the stick had before) is refused with Access Denied, so the lane can fail.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import vm
from tests.disk_image import read_file, root_filesystem
from tests.image import copy_image, load_build
from tests.test_boot import (
    FIRSTBOOT_BOUND,
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


@contextlib.contextmanager
def mounted_system(disk: Path, mnt: Path) -> Iterator[Path]:
    """The installed disk's root, with /proc, /sys and /dev, on a loop device of its root
    partition: what a chroot needs to run a kernel package's scripts (they leave the ESP alone:
    it is not mounted)."""
    parts = {p.number: p for p in vm.read_partitions(disk)}
    loops: list[str] = []
    mounts: list[Path] = []
    # grub-mkconfig's 10_linux writes no entry for a root on a loop device whose backing file
    # lies outside /dev ("devices loop-mounted from files"), which a real disk never is: the
    # image is reached through a bind mount of its folder under /dev/shm (no copy, no RAM).
    via = Path(tempfile.mkdtemp(prefix="clawdie-disk-", dir="/dev/shm"))
    subprocess.run(["mount", "--bind", str(disk.parent), str(via)], check=True)

    def loop(number: int) -> str:
        node = subprocess.run(
            ["losetup", "--find", "--show", "--offset", str(parts[number].start),
             "--sizelimit", str(parts[number].size), str(via / disk.name)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        loops.append(node)
        return node

    def mount(*argv: str) -> None:
        subprocess.run(["mount", *argv], check=True)
        mounts.append(Path(argv[-1]))

    mnt.mkdir(parents=True, exist_ok=True)
    links: list[Path] = []
    try:
        node = loop(3)
        # and it names the root by UUID only when udev's link to it exists (none for a loop
        # device here): made as udev would, removed after
        uuid = subprocess.run(
            ["blkid", "-s", "UUID", "-o", "value", node], capture_output=True, text=True, check=True
        ).stdout.strip()
        link = Path("/dev/disk/by-uuid") / uuid
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(node)
            links.append(link)
        mount(node, str(mnt))
        mount("-t", "proc", "proc", str(mnt / "proc"))
        mount("-t", "sysfs", "sysfs", str(mnt / "sys"))
        mount("--bind", "/dev", str(mnt / "dev"))
        yield mnt
    finally:
        for target in reversed(mounts):
            subprocess.run(["umount", str(target)], check=False)
        for link in links:
            link.unlink()
        for node in loops:
            subprocess.run(["losetup", "--detach", node], check=False)
        subprocess.run(["umount", str(via)], check=False)
        via.rmdir()


def kernel_deb(root: Path) -> Path:
    """The installed kernel's package from the image build's package cache (offline)."""
    release = next(p.name for p in (root / "usr/lib/modules").iterdir())
    cache = Path(os.environ.get("CLAWDIE_ISO_CACHE", "/var/cache/clawdie-iso")) / "debs"
    debs = sorted(cache.glob(f"linux-image-{release}_*_amd64.deb"))
    if not debs:
        pytest.skip(f"no linux-image-{release} package in {cache} (the image build keeps it)")
    return debs[-1]


def test_secure_boot_disk_boots_after_a_kernel_update(
    secureboot_machine: Machine, tmp_path: Path
) -> None:
    """The kernel package reinstalled offline in a chroot of the installed disk, the way an
    update arrives: its scripts make the initramfs again and run update-grub, whose grub.cfg
    replaces the installer's. The disk still boots with Secure Boot on to PLATFORM-READY."""
    machine = secureboot_machine
    if not (machine.workdir / "firstboot.serial.log").exists():
        pytest.skip("needs the installed machine from the test before")
    with mounted_system(machine.disk, tmp_path / "root") as root:
        deb = kernel_deb(root)
        archives = root / "var/cache/apt/archives"
        archives.mkdir(parents=True, exist_ok=True)
        (archives / deb.name).write_bytes(deb.read_bytes())
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}
        env["DEBIAN_FRONTEND"] = "noninteractive"
        proc = subprocess.run(
            ["chroot", str(root), "dpkg", "-i", f"/var/cache/apt/archives/{deb.name}"],
            capture_output=True, text=True, env=env, timeout=1200, check=False,
        )  # fmt: skip
        output = proc.stdout + proc.stderr
        (machine.workdir / "kernel-update.log").write_text(output)
        assert proc.returncode == 0, output[-3000:]
        grub_cfg = (root / "boot/grub/grub.cfg").read_text()
    assert "Generating grub configuration file" in output, output[-3000:]
    assert "Found linux image: /boot/vmlinuz-" in output, output[-3000:]
    assert "### BEGIN /etc/grub.d/10_linux ###" in grub_cfg, "update-grub wrote grub.cfg"
    assert re.search(r"^\s*linux\s+/boot/vmlinuz-\S+ root=UUID=", grub_cfg, re.MULTILINE), grub_cfg
    try:
        with machine.boot("after-kernel-update", stick=False) as guest:
            guest.wait_for(KERNEL_SECURE_BOOT, FIRSTBOOT_BOUND, name="Secure Boot")
            guest.wait_for(KERNEL_LOCKDOWN, 300, name="lockdown")
            guest.wait_for(
                re.compile(r"PLATFORM-READY role=clawdie"), FIRSTBOOT_BOUND, name="PLATFORM-READY"
            )
            guest.wait_for(re.compile(r"login:"), 300, name="login prompt")
            guest.qmp.execute("system_powerdown")
            guest.wait_exit(300)
            assert guest.exit_reason() == "guest-shutdown"
            record(RUN, guest)
    finally:
        keep_logs(machine.workdir)


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
