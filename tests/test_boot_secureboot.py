"""UEFI, installed once, under Secure Boot on, as on a PC sold with Windows (DESIGN §5): OVMF's
SMM build with Microsoft's keys enrolled, enforcing. The stick boots Debian's signed chain (shim
-> signed GRUB -> signed kernel) and installs; the installed disk boots the same chain to
PLATFORM-READY. The kernel says it is locked down, and the receipt and summary (read inside the
booted system: the SecureBoot variable, /sys/kernel/security/lockdown, the loaders' versions and
SBAT) say so. The machine is shared (tests/helpers/boot_lane.py, the `secureboot_machine` fixture):
tests/test_boot.py compares its identities with the BIOS machine's.

Plain UEFI is a later boot of that disk (a qcow2 overlay) under OVMF without Secure Boot: the same
chain with Secure Boot off (`uefi_later`). In that boot the host probes the box through a
user-mode NIC: only SSH and the dashboard answer (DESIGN §10); resolved offers mDNS there, not
LLMNR; and a kit runs what a kernel and boot-loader package update runs. Then the updated disk
boots under Secure Boot again, to PLATFORM-READY, locked down.

A negative control in the same firmware: the image's ESP with an unsigned loader (the
grub-mkimage image the stick had before) is refused with Access Denied, so the lane can fail.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import vm
from tests.helpers.boot_lane import (
    DASHBOARD_PORT,
    KERNEL_LOCKDOWN,
    KERNEL_SECURE_BOOT,
    KERNEL_SECURE_BOOT_OFF,
    LOADERS,
    OPERATOR_EMAIL,
    PROBES,
    SECURE_BOOT_RUN,
    LaterBoot,
    Machine,
    after_update_boot,
    flat_copy,
    keep_logs,
    record,
    serial_text,
)
from tests.helpers.disk_image import read_file, root_filesystem
from tests.helpers.image import copy_image, load_build
from tests.helpers.update_kit import LISTENER_PORT, SWITCH

pytestmark = [
    pytest.mark.boot,
    pytest.mark.timeout(3600),
    pytest.mark.xdist_group("uefi-disk"),  # the second worker's lane (tests/test_boot.py)
    pytest.mark.skipif(
        not (vm.OVMF_CODE_SECBOOT.is_file() and vm.OVMF_VARS_MS.is_file()),
        reason="needs OVMF's Secure Boot build (Debian's ovmf package)",
    ),
]

RUN = SECURE_BOOT_RUN
SECURE_BOOT_ON = "UEFI, Secure Boot on, kernel lockdown integrity"
SECURITY_SOURCE = "deb http://deb.debian.org/debian-security bookworm-security main"
MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
HOST = "boot-test"  # the host name first boot derived from the seed's ASSISTANT_NAME

build = load_build()


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
    """The fixture installed (the receipt: Secure Boot on, lockdown, the loaders' versions) and
    booted the disk to PLATFORM-READY, both under Secure Boot; here what the logs and disk say."""
    machine = secureboot_machine
    install_log = serial_text(machine.workdir, "install")
    assert KERNEL_SECURE_BOOT.search(install_log), "the stick's kernel started with Secure Boot"
    assert KERNEL_LOCKDOWN.search(install_log)
    check_installed_esp(machine.disk, machine.workdir / "esp")
    text = serial_text(machine.workdir, "firstboot")
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


def test_plain_uefi_boots_the_secure_boot_install(uefi_later: LaterBoot) -> None:
    """The same disk under OVMF without Secure Boot (its own NVRAM, no boot entry: the removable
    path, shim -> signed GRUB -> kernel): a later boot, first boot skipped, PLATFORM-READY."""
    text = uefi_later.text
    assert KERNEL_SECURE_BOOT_OFF.search(text), "the kernel should say Secure Boot is off"
    assert not KERNEL_SECURE_BOOT.search(text)
    assert not KERNEL_LOCKDOWN.search(text)
    assert "Starting clawdie-firstboot.service" not in text


def test_the_box_answers_only_ssh_and_the_dashboard_from_outside(uefi_later: LaterBoot) -> None:
    """From the host through the user-mode NIC's forwarded ports: SSH's banner and the
    dashboard's HTTPS answer; PostgreSQL, port 80 and a listener the kit opened on every address
    (it answers on the box itself) say nothing. The served ports prove the probe hears a
    service; the kit's listener proves the firewall, not an absent service, keeps it silent."""
    answers = uefi_later.answers
    assert answers[22].startswith(b"SSH-2.0-"), answers
    assert answers[DASHBOARD_PORT].startswith(b"HTTP/"), answers
    assert f"TESTKIT: listener: TCP {LISTENER_PORT} answers on the box" in uefi_later.text
    speaking = {
        PROBES[port][0]: answer
        for port, answer in answers.items()
        if port not in (22, DASHBOARD_PORT)
    }
    assert speaking == dict.fromkeys(speaking, b""), f"these answered from outside: {speaking}"


def test_the_operator_signs_in_to_the_dashboard_from_outside(uefi_later: LaterBoot) -> None:
    """The operator's first hour: from the host through the forwarded 443, headless Chromium
    trusting the box's certificate only by the key hash the box's own summary prints (so the
    certificate served is the one the box made and names), the seed's operator signs in over
    HTTPS (Better Auth on Debian's node, the session cookie Secure and HttpOnly) and a wrong
    password is refused. The signed-in page: build/iso/boot-test/dashboard-signed-in.png."""
    visit = uefi_later.dashboard
    assert visit is not None, "the install summary names no TLS key (SPKI) hash"
    assert "Sign-in refused: wrong email or password." in visit.refused
    assert f"Signed in as {OPERATOR_EMAIL}" in visit.signed_in
    assert visit.secure
    assert visit.http_only
    assert "DASHBOARD-READY https on port 443 (Node v18." in uefi_later.text


def test_the_box_offers_mdns_and_no_llmnr(uefi_later: LaterBoot) -> None:
    """systemd-resolved has mDNS on for the NIC's link (the wired .network and resolved.conf.d
    say MulticastDNS=yes) and listens on UDP 5353; nothing listens for LLMNR (UDP 5355). Whether
    a LAN peer gets `<host>.local` answered needs a peer: resolved never resolves its own name by
    mDNS for itself ("No appropriate name servers or networks")."""
    text = uefi_later.text
    links = re.search(r"TESTKIT: mdns links: (.*)", text)
    assert links, "the kit said nothing of mDNS"
    assert re.search(r"Global: yes;Link \d+ \(\w+\): yes;", links.group(1)), links.group(1)
    sockets = re.search(r"TESTKIT: udp 5353 sockets: (.*)", text)
    assert sockets, "the kit listed no UDP 5353 sockets"
    assert re.search(r"0\.0\.0\.0:5353 .*systemd-resolve", sockets.group(1)), sockets.group(1)
    assert "TESTKIT: llmnr sockets (udp 5355): 0" in text


def test_apts_hook_renews_the_esp_after_a_grub_only_update(uefi_later: LaterBoot) -> None:
    """A GRUB-only update (grub-efi-amd64-signed has no maintainer scripts: nothing else would
    copy its new grubx64.efi.signed to the ESP): the kit makes the ESP's GRUB at both paths
    differ from the packaged one (another Debian-signed GRUB), then apt installs a local
    package offline and runs its DPkg::Post-Invoke hook (90clawdie-esp): both copies equal the
    packaged GRUB afterwards, the journal says what was renewed, and the record says ok. The
    kit's next step (shim's postinst) and the Secure Boot boot after the update follow."""
    text = uefi_later.text
    assert "TESTKIT: grub-only update: apt's hook: 1" in text, "the image has no apt hook"
    packaged, installed, removable = grub_digests(text, "packaged")
    assert installed == removable != packaged, "the kit's GRUB-only update did not take"
    assert "TESTKIT: grub-only update: apt-get exit 0" in text
    after = grub_digests(text, "after apt, packaged")
    assert after == (packaged, packaged, packaged), f"the hook did not renew the ESP: {after}"
    assert (
        "boot loader renewed on the EFI partition from the updated packages: "
        "EFI/clawdie/grubx64.efi, EFI/BOOT/grubx64.efi"
    ) in text
    assert re.search(r"TESTKIT: grub-only update: status STATUS=ok;CHECKED_AT=\S+;RESULT=boot "
                     r"loader renewed", text), "no ok status record"  # fmt: skip
    assert "TESTKIT: grub-only update: removed again, exit 0" in text


def grub_digests(text: str, head: str) -> tuple[str, str, str]:
    """The kit's `grub-only update: <head> ...` line: (packaged GRUB, EFI/clawdie's, EFI/BOOT's)
    digests."""
    found = re.search(rf"TESTKIT: grub-only update: {head} (\w+), ESP (\w+) (\w+)", text)
    assert found, f"the kit printed no GRUB digests ({head})"
    return found.group(1), found.group(2), found.group(3)


def test_secure_boot_after_a_kernel_and_boot_loader_update(
    secureboot_machine: Machine, uefi_later: LaterBoot
) -> None:
    """What a kernel and boot-loader package update runs (the kit, in the plain-UEFI boot: the
    kernel's update-grub hook, shim-signed's postinst with its grub-install) leaves every EFI
    binary signed, shim at both paths renewed, a grub.cfg update-grub wrote, and no firmware
    boot entry; the next boot under Secure Boot reaches PLATFORM-READY, locked down."""
    text = uefi_later.text
    assert "TESTKIT: update: kernel hooks exit 0" in text
    assert "TESTKIT: update: shim-signed postinst exit 0" in text
    before = esp_times(text, "before")
    after = esp_times(text, "after")
    for path in ("EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/grubx64.efi", "EFI/clawdie/shimx64.efi",
                 "EFI/clawdie/grubx64.efi"):  # fmt: skip
        assert after[path][0] > before[path][0], f"the update did not renew {path}: {after}"
    # --no-nvram, as the installer: the firmware's own variables name no clawdie entry
    nvram = (uefi_later.workdir / "OVMF_VARS.fd").read_bytes()
    assert "clawdie".encode("utf-16-le") not in nvram.lower()
    flat = flat_copy(uefi_later.disk, uefi_later.workdir / "updated.img")
    try:
        check_installed_esp(flat, uefi_later.workdir / "esp-updated")
        with root_filesystem(flat) as device:
            grub = (read_file(device, "/boot/grub/grub.cfg") or b"").decode()
    finally:
        flat.unlink()
    assert "### BEGIN /etc/grub.d/10_linux ###" in grub, "update-grub wrote grub.cfg"
    assert SWITCH not in grub
    guest = after_update_boot(secureboot_machine, uefi_later)
    booted = guest.log_text()
    assert KERNEL_SECURE_BOOT.search(booted), "the updated disk's kernel started with Secure Boot"
    assert KERNEL_LOCKDOWN.search(booted)
    cmdline = re.search(r"Kernel command line: (.*)", booted)
    assert cmdline, "the kernel printed no command line"
    assert SWITCH not in cmdline.group(1), "GRUB read the grub.cfg update-grub wrote"


def esp_times(text: str, when: str) -> dict[str, tuple[int, str]]:
    """The kit's `esp before|after:` line: ESP path -> (modification time, digest prefix)."""
    found = re.search(rf"TESTKIT: esp {when}: (.*)", text)
    assert found, f"the kit printed no ESP listing {when} the update"
    entries = [item.split() for item in found.group(1).split(";") if item.strip()]
    return {path: (int(mtime), digest) for path, mtime, digest in entries}


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
