"""The network step in a sandbox root: the files it writes for DHCP, a static address and Wi-Fi,
their modes, the PSK (equal to wpa_passphrase's), no Wi-Fi password anywhere, and a rerun that
changes nothing."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from installer.dev.sandbox import make_sandbox_root
from installer.firstboot.config import FirstbootConfig
from installer.firstboot.context import StepContext
from installer.firstboot.steps import network
from installer.net import files as net_files
from installer.paths import TargetPaths
from installer.seed import hashes
from installer.seed.resolve import check_seed_bytes
from installer.seed.resolved import Wifi
from tests.helpers.seeds import valid
from tests.helpers.sentinels import SENTINEL, WIFI_PASSWORD
from tests.helpers.units import unit_problems

WIFI_LINES = ('WIFI_SSID=Zoë\'s "Wi-Fi" 5G', f"WIFI_PASSWORD={WIFI_PASSWORD}", "WIFI_COUNTRY=de")
# The image's file (iso/overlay), as the installed system has it.
IMAGE_WIRED = Path(__file__).resolve().parents[1] / (
    "iso/overlay/etc/systemd/network/20-clawdie-wired.network"
)


def context(root: Path, *lines: str) -> StepContext:
    check = check_seed_bytes(valid(*lines))
    assert check.valid, check.problems
    return StepContext(FirstbootConfig(root=root), TargetPaths(root), check.require_resolved())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = make_sandbox_root(tmp_path / "root")
    (root / "etc/systemd/network").mkdir(parents=True)
    shutil.copy(IMAGE_WIRED, root / "etc/systemd/network/20-clawdie-wired.network")
    return root


def files_under(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file: (mode, inode, mtime) - a rewrite changes the inode, a touch the mtime."""
    return {
        str(p.relative_to(root)): (
            stat.S_IMODE(p.stat().st_mode),
            p.stat().st_ino,
            p.stat().st_mtime_ns,
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def networkd_file(text: str) -> dict[str, list[str]]:
    """A .network file as section -> its `Key=value` lines (comments left out)."""
    sections: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections.setdefault(current, [])
        elif line and not line.startswith("#"):
            sections[current].append(line)
    return sections


# Every link the box configures answers <host>.local by mDNS and never LLMNR (DESIGN §10).
LINK_NAMES = ["MulticastDNS=yes", "LLMNR=no"]


def test_every_link_answers_its_name_by_mdns_and_never_llmnr() -> None:
    """The image's wired default and resolved's drop-in: mDNS on, LLMNR off."""
    image_wired = networkd_file(IMAGE_WIRED.read_text())["Network"]
    assert all(line in image_wired for line in LINK_NAMES)
    resolved = IMAGE_WIRED.parents[1] / "resolved.conf.d/clawdie.conf"
    assert networkd_file(resolved.read_text())["Resolve"] == ["MulticastDNS=yes", "LLMNR=no"]


def test_no_network_lines_leave_the_images_dhcp_alone(root: Path) -> None:
    before = files_under(root)
    record = network.apply(context(root))
    assert files_under(root) == before  # nothing written: the image's DHCP default holds
    assert record.created == (
        "wired links: DHCP (20-clawdie-wired.network)",
        "Wi-Fi: not configured",
    )
    assert "DHCP=yes" in networkd_file(IMAGE_WIRED.read_text())["Network"]


def test_a_static_address_replaces_dhcp_on_wired_links(root: Path) -> None:
    ctx = context(
        root, "NET_ADDRESS=192.168.1.50/255.255.255.0", "NET_GATEWAY=192.168.1.1", "NET_DNS=9.9.9.9"
    )
    record = network.apply(ctx)
    wired = root / "etc/systemd/network/10-clawdie-wired.network"
    assert sorted(p.name for p in wired.parent.iterdir()) == [
        "10-clawdie-wired.network",
        "20-clawdie-wired.network",  # kept; networkd takes the first file that matches
    ]
    assert wired.name < "20-clawdie-wired.network"
    sections = networkd_file(wired.read_text())
    assert sections["Match"] == networkd_file(IMAGE_WIRED.read_text())["Match"] == ["Type=ether"]
    assert sections["Network"] == [
        *LINK_NAMES,
        "Address=192.168.1.50/24",
        "Gateway=192.168.1.1",
        "DNS=9.9.9.9",
    ]
    assert stat.S_IMODE(wired.stat().st_mode) == 0o644
    assert record.created[0] == "wired links: 192.168.1.50/24 via 192.168.1.1, DNS 9.9.9.9"
    assert not (root / "etc/wpa_supplicant").exists()


def test_a_static_address_without_dns_asks_the_gateway(root: Path) -> None:
    network.apply(context(root, "NET_ADDRESS=10.0.0.7/8", "NET_GATEWAY=10.0.0.1"))
    text = (root / "etc/systemd/network/10-clawdie-wired.network").read_text()
    assert networkd_file(text)["Network"] == [
        *LINK_NAMES,
        "Address=10.0.0.7/8",
        "Gateway=10.0.0.1",
        "DNS=10.0.0.1",
    ]


def test_an_ipv6_link_local_gateway_is_no_dns_server(root: Path) -> None:
    record = network.apply(context(root, "NET_ADDRESS=2001:db8::7/64", "NET_GATEWAY=fe80::1"))
    text = (root / "etc/systemd/network/10-clawdie-wired.network").read_text()
    assert networkd_file(text)["Network"] == [
        *LINK_NAMES,
        "Address=2001:db8::7/64",
        "Gateway=fe80::1",
    ]
    assert record.created[0].endswith("DNS none")


def test_dns_alone_keeps_dhcp_and_replaces_its_dns(root: Path) -> None:
    network.apply(context(root, "NET_DNS=1.1.1.1, 2606:4700:4700::1111"))
    sections = networkd_file((root / "etc/systemd/network/10-clawdie-wired.network").read_text())
    assert sections["Network"] == [
        *LINK_NAMES,
        "DHCP=yes",
        "DNS=1.1.1.1",
        "DNS=2606:4700:4700::1111",
    ]
    assert sections["DHCPv4"] == sections["DHCPv6"] == sections["IPv6AcceptRA"] == ["UseDNS=no"]


def test_wifi_files_modes_and_the_psk(root: Path) -> None:
    record = network.apply(context(root, *WIFI_LINES))
    conf = root / "etc/wpa_supplicant/clawdie-wifi.conf"
    st = conf.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.getuid()  # root on the appliance: first boot runs as root
    text = conf.read_text()
    ssid = 'Zoë\'s "Wi-Fi" 5G'
    assert "country=DE\n" in text
    assert f"\tssid={ssid.encode().hex()}\n" in text
    assert f"\tpsk={hashes.derive_psk(WIFI_PASSWORD, ssid)}\n" in text
    assert "key_mgmt=WPA-PSK WPA-PSK-SHA256" in text
    wifi = networkd_file((root / "etc/systemd/network/25-clawdie-wifi.network").read_text())
    assert wifi == {"Match": ["Type=wlan"], "Network": [*LINK_NAMES, "DHCP=yes"]}
    unit = (root / "etc/systemd/system/clawdie-wifi@.service").read_text()
    assert "ExecStart=/sbin/wpa_supplicant -c /etc/wpa_supplicant/clawdie-wifi.conf -i %I" in unit
    assert "BindsTo=sys-subsystem-net-devices-%i.device" in unit
    rule = (root / "etc/udev/rules.d/90-clawdie-wifi.rules").read_text()
    assert 'ENV{DEVTYPE}=="wlan"' in rule
    assert 'ENV{SYSTEMD_WANTS}+="clawdie-wifi@$name.service"' in rule
    assert (
        (root / "etc/modprobe.d/clawdie-wifi.conf")
        .read_text()
        .endswith("options cfg80211 ieee80211_regdom=DE\n")
    )
    for path in (unit, rule):
        assert SENTINEL not in path
    assert record.created[1] == (
        f"Wi-Fi: {ssid} (country DE), DHCP; key stored in /etc/wpa_supplicant/clawdie-wifi.conf "
        "(0600)"
    )
    # the image's wired DHCP is untouched and no wired file of the seed's is written
    assert not (root / "etc/systemd/network/10-clawdie-wired.network").exists()


def test_the_wifi_password_is_nowhere_under_the_root(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    record = network.apply(context(root, *WIFI_LINES, "NET_DNS=1.1.1.1"))
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SENTINEL.encode() not in data, path
            assert WIFI_PASSWORD.encode().hex().encode() not in data, path
    assert SENTINEL not in caplog.text
    assert SENTINEL not in repr(record)
    wifi = networkd_file((root / "etc/systemd/network/25-clawdie-wifi.network").read_text())
    assert wifi["Network"] == [*LINK_NAMES, "DHCP=yes", "DNS=1.1.1.1"]  # NET_DNS for Wi-Fi too
    assert wifi["DHCPv4"] == ["UseDNS=no"]


def test_a_rerun_changes_nothing(root: Path) -> None:
    lines = (*WIFI_LINES, "NET_ADDRESS=192.168.1.50/24", "NET_GATEWAY=192.168.1.1")
    first = network.apply(context(root, *lines))
    before = files_under(root)
    assert network.apply(context(root, *lines)) == first
    assert files_under(root) == before


def test_the_stored_key_reads_back_for_its_own_network_only() -> None:
    """Adopt reads the PSK back as the box's WIFI_PASSWORD (installer/adopt/run.py)."""
    ssid = 'Zoë\'s "Wi-Fi" 5G'
    text = net_files.render_supplicant_conf(Wifi(ssid, SecretStr(WIFI_PASSWORD), "DE"))
    key = net_files.parse_supplicant_psk(text, ssid)
    assert key is not None
    assert key.get_secret_value() == hashes.derive_psk(WIFI_PASSWORD, ssid)
    assert key.get_secret_value() not in repr(key) + str(key)
    assert net_files.parse_supplicant_psk(text, "Zoë") is None  # the key joins no other network
    assert net_files.parse_supplicant_psk(text.replace("\tpsk=", "\tpsk=0"), ssid) is None
    by_hand = f'network={{\n\tssid={ssid.encode().hex()}\n\tpsk="{WIFI_PASSWORD}"\n}}\n'
    assert net_files.parse_supplicant_psk(by_hand, ssid) is None  # a passphrase, not our key
    assert net_files.parse_supplicant_psk("", ssid) is None


def test_the_stored_key_as_the_password_rewrites_nothing(root: Path) -> None:
    """An adopt seed without Wi-Fi lines gives the step the box's own key: not one file of the
    Wi-Fi is written again (same inode and mtime), let alone removed."""
    lines = (*WIFI_LINES, "NET_DNS=1.1.1.1")
    first = network.apply(context(root, *lines))
    before = files_under(root)
    conf = (root / "etc/wpa_supplicant/clawdie-wifi.conf").read_text()
    key = net_files.parse_supplicant_psk(conf, 'Zoë\'s "Wi-Fi" 5G')
    assert key is not None
    kept = [line for line in lines if not line.startswith("WIFI_PASSWORD=")]
    again = network.apply(context(root, *kept, f"WIFI_PASSWORD={key.get_secret_value()}"))
    assert again == first
    assert files_under(root) == before


def test_a_new_seed_without_wifi_removes_what_wifi_needed(root: Path) -> None:
    """Reconfiguring from a stick (adopt) rewrites the network: nothing of the old one stays."""
    network.apply(context(root, *WIFI_LINES, "NET_ADDRESS=10.0.0.7/8", "NET_GATEWAY=10.0.0.1"))
    network.apply(context(root))
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*clawdie*")) == [
        "etc/systemd/network/20-clawdie-wired.network"
    ]


# IEEE 802.11i-2004 Annex H.4.1 test vectors: (passphrase, SSID, PSK).
IEEE_VECTORS = [
    ("password", "IEEE", "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"),
    (
        "ThisIsAPassword",
        "ThisIsASSID",
        "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af",
    ),
    (
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ",
        "becb93866bb8c3832cb777c2f559807c8c59afcb6eae734885001300a981cc62",
    ),
]


@pytest.mark.parametrize(("passphrase", "ssid", "psk"), IEEE_VECTORS)
def test_the_psk_is_the_standards(passphrase: str, ssid: str, psk: str) -> None:
    assert hashes.derive_psk(passphrase, ssid) == psk


def test_a_raw_key_is_stored_as_it_is() -> None:
    assert hashes.derive_psk("AB" * 32, "any") == "ab" * 32


@pytest.mark.skipif(shutil.which("wpa_passphrase") is None, reason="wpa_passphrase not here")
@pytest.mark.parametrize(
    ("ssid", "passphrase"),
    [("HomeNet", "correct horse battery"), ('Zoë\'s "Wi-Fi"', ' ~!@#$%^&*()_+{}|:"<>?`-=')],
)
def test_the_psk_equals_wpa_passphrases(ssid: str, passphrase: str) -> None:
    result = subprocess.run(
        ["wpa_passphrase", ssid],  # the passphrase on stdin, never on a command line
        input=passphrase + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("psk="))
    assert hashes.derive_psk(passphrase, ssid) == line.strip().removeprefix("psk=")


def test_the_supplicant_conf_quotes_nothing_a_name_could_break() -> None:
    wifi = Wifi('a"}\nnetwork={', SecretStr("long enough"), "DE")
    text = net_files.render_supplicant_conf(wifi)
    assert text.count("network={") == 1
    assert f"\tssid={wifi.ssid.encode().hex()}\n" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_reads_the_wifi_unit(root: Path) -> None:
    """systemd-analyze verify parses the unit (a missing wpa_supplicant binary aside)."""
    network.apply(context(root, *WIFI_LINES))
    unit_dir = root / "etc/systemd/system"
    instance = unit_dir / "clawdie-wifi@wlan0.service"
    instance.symlink_to("clawdie-wifi@.service")
    problems = unit_problems(instance, "clawdie-wifi", "wpa_supplicant")
    assert problems == [], problems
