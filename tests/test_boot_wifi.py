"""First boot on Wi-Fi under QEMU (`just boot-test`): a VM with no wired NIC joins the access point
of the test kit (tests/helpers/wifi_kit.py: mac80211_hwsim, hostapd, dnsmasq and stub Telegram and
OpenRouter servers, from a second disk, started by a hook this test writes into its own copy of the
installed disk, because the kernel command line says `clawdie.testkit=1`).

No install here: each run boots a qcow2 overlay of the disk the BIOS test installed and kept
before its first boot (build/iso/boot-test/bios-usb-installed.img, whose seed has the WIFI_*
lines below), its own kernel and initrd booted directly by QEMU with the installed command line
plus the switch. Two runs: the access point with the seed's password (first boot `ok`, the
address and the Telegram message through the stub, and the box's `<host>.local` answered by
mDNS to a peer on the access point's side with that address), and with another password
(`degraded`, "Wi-Fi: authentication refused for SSID ...", first boot still complete, and
the same peer gets no answer: the probe can fail).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import vm
from tests.helpers.boot_lane import (
    BOX_HOSTNAME,
    FIRSTBOOT_BOUND,
    LOGS,
    WIFI_COUNTRY,
    WIFI_PASSWORD,
    WIFI_SSID,
    flat_copy,
    keep_logs,
    qcow2_overlay,
    record,
)
from tests.helpers.disk_image import read_file, root_filesystem
from tests.helpers.seeds import OPENROUTER, PASSWORD, TOKEN
from tests.helpers.wifi_kit import BOT_USERNAME, build_kit, missing_programs, with_kit_hook

# in the worker that installs the BIOS machine, after it (tests/test_boot.py): its disk is this
# file's input
pytestmark = [pytest.mark.boot, pytest.mark.timeout(1800), pytest.mark.xdist_group("bios-disk")]

INSTALLED = LOGS / "bios-usb-installed.img"
SUMMARY = "/var/lib/clawdie-setup/install-summary.txt"
# The kit's mDNS peer asks after PLATFORM-READY, for at most 10 s (tests/helpers/mdns.py).
MDNS_ANSWER = re.compile(rf"TESTKIT: mdns {re.escape(BOX_HOSTNAME)}\.local -> (\S+)")
MDNS_BOUND = 120.0


def installed_boot_files(disk: Path, into: Path) -> tuple[Path, Path, str]:
    """The installed system's kernel, initrd and command line, as its grub.cfg boots them."""
    with root_filesystem(disk) as device:
        grub = (read_file(device, "/boot/grub/grub.cfg") or b"").decode()
        linux = re.search(r"^\s*linux\s+(\S+)\s+(.*)$", grub, re.M)
        initrd = re.search(r"^\s*initrd\s+(\S+)", grub, re.M)
        assert linux, "the installed grub.cfg has no linux line"
        assert initrd, "the installed grub.cfg has no initrd line"
        files = []
        for path in (linux.group(1), initrd.group(1)):
            data = read_file(device, path)
            assert data, f"{path} is missing on the installed disk"
            target = into / Path(path).name
            target.write_bytes(data)
            files.append(target)
    return files[0], files[1], linux.group(2).strip()


def read_summary(disk: Path, workdir: Path) -> str:
    """First boot's summary (what the receipt says), from the overlay after the VM stopped."""
    flat = workdir / "flat.img"
    flat_copy(disk, flat)
    try:
        with root_filesystem(flat) as device:
            data = read_file(device, SUMMARY)
    finally:
        flat.unlink()
    assert data is not None, f"no {SUMMARY} on the disk"
    return data.decode()


def boot_on_wifi(workdir: Path, run: str, ap_password: str) -> tuple[str, str]:
    """Boot an overlay of the installed disk with the kit whose access point has `ap_password`,
    to the login prompt; returns the serial log and first boot's summary."""
    if not INSTALLED.is_file():
        pytest.skip(f"needs {INSTALLED.name}: run the BIOS boot test first (tests/test_boot.py)")
    if missing_programs():
        pytest.skip(f"the kit needs {', '.join(missing_programs())}: run `just boot-test`")
    workdir.mkdir(parents=True, exist_ok=True)
    kernel, initrd, cmdline = installed_boot_files(INSTALLED, workdir)
    # the installed disk carries no test hook: this run's copy gets it, offline
    hooked = with_kit_hook(INSTALLED, workdir / "installed-with-kit-hook.img")
    disk = qcow2_overlay(hooked, workdir / "disk.qcow2")
    kit = build_kit(
        workdir / "kit.img",
        ssid=WIFI_SSID,
        password=ap_password,
        country=WIFI_COUNTRY,
        hostname=BOX_HOSTNAME,
    )
    guest = vm.Vm(
        workdir=workdir,
        disk=disk,
        disk_format="qcow2",
        name=run,
        extra_args=[
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", f"{cmdline} clawdie.testkit=1",
            "-drive", f"if=none,id=kit,format=raw,readonly=on,file={kit}",
            "-device", "virtio-blk-pci,drive=kit,serial=CLAWDIE-TESTKIT",
        ],
    )  # fmt: skip
    try:
        with guest:
            guest.wait_for("TESTKIT: ready", FIRSTBOOT_BOUND, name="kit ready")
            started = guest.wait_for(
                "Starting clawdie-firstboot.service", FIRSTBOOT_BOUND, name="first boot starts"
            )
            finished = guest.wait_for(
                "Finished clawdie-firstboot.service",
                FIRSTBOOT_BOUND,
                after=started,
                name="first boot done",
            )
            guest.wait_for(re.compile(r"PLATFORM-READY role=clawdie"), 300, name="PLATFORM-READY")
            guest.wait_for(re.compile(r"login:"), 300, after=finished, name="login prompt")
            guest.wait_for(MDNS_ANSWER, MDNS_BOUND, name="mDNS peer")
            text = guest.log_text()
            guest.qmp.execute("system_powerdown")
            guest.wait_exit(300)
            assert guest.exit_reason() == "guest-shutdown"
            record(run, guest, **{"our first-boot service (s)": finished.elapsed - started.elapsed})
    finally:
        keep_logs(workdir)
    for secret in (PASSWORD, OPENROUTER, TOKEN, WIFI_PASSWORD):
        assert secret not in text
    return text, read_summary(disk, workdir)


def test_wifi_joins_and_first_boot_is_ok(tmp_path: Path) -> None:
    text, summary = boot_on_wifi(tmp_path / "wifi-ok", "wifi-ok", WIFI_PASSWORD)
    joined = re.search(rf"Wi-Fi: joined SSID {WIFI_SSID} on (\S+), address (10\.77\.0\.\d+)", text)
    assert joined, "first boot should say it joined, with the address DHCP gave"
    assert summary.startswith("Clawdie first boot: ok"), summary
    assert f"Wi-Fi: joined SSID {WIFI_SSID} on {joined.group(1)}" in summary
    # the report went out over the Wi-Fi, to the stub in the access point's namespace
    assert "Telegram message to the admin: sent" in text
    assert "TESTKIT: telegram sendMessage to" in text
    assert "Clawdie first boot: ok" in text[text.rfind("TESTKIT: telegram sendMessage") :]
    # the credential preflight, against the stubs: the bot's name in the summary
    assert f"Telegram bot: @{BOT_USERNAME}" in summary
    assert "TESTKIT: openrouter key" in text
    # the LAN asks for the dashboard URL's name: the box answers with its Wi-Fi address
    mdns = MDNS_ANSWER.search(text)
    assert mdns, "the kit's mDNS peer said nothing"
    assert mdns.group(1) == joined.group(2), f"{BOX_HOSTNAME}.local by mDNS: {mdns.group(1)}"


def test_wifi_wrong_password_is_degraded_and_first_boot_completes(tmp_path: Path) -> None:
    text, summary = boot_on_wifi(tmp_path / "wifi-refused", "wifi-refused", "not-the-seed-pass")
    refused = f"Wi-Fi: authentication refused for SSID {WIFI_SSID}"
    assert refused in text
    assert summary.startswith("Clawdie first boot: degraded"), summary
    assert refused in summary
    assert "TESTKIT: telegram sendMessage" not in text, "there was no network to send on"
    mdns = MDNS_ANSWER.search(text)
    assert mdns, "the kit's mDNS peer said nothing"
    assert mdns.group(1) == "none", "off the access point, the box cannot answer its peer"
