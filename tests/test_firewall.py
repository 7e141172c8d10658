"""The box shows only what it serves (DESIGN §10, issue 21), checked without a VM: the image's
nftables ruleset (iso/nftables.conf as iso/build.py writes it) admits SSH, the dashboard port the
payload declares, mDNS, DHCP replies and ICMP, drops the rest, and is valid for nft itself; the
payload's `port` is checked at build time; PostgreSQL listens on localhost only. The boot test
proves the same from the outside (tests/test_boot_secureboot.py, through a user-mode NIC)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from installer.errors import UsageError
from tests.helpers.image import load_build

BUILD = load_build()
REPO = Path(__file__).resolve().parents[1]


def input_rules(ruleset: str) -> list[str]:
    body = ruleset.split("chain input {", 1)[1].split("}", 1)[0]
    return [line.strip() for line in body.splitlines() if line.strip()]


def test_input_drops_all_but_what_the_box_serves() -> None:
    rules = input_rules(BUILD.render_firewall(3000))
    assert rules[0] == "type filter hook input priority filter; policy drop;"
    accepted = [rule for rule in rules if " accept" in rule]
    assert accepted == [
        'iif "lo" accept',
        "ct state established,related accept",
        "meta l4proto icmp accept",
        "meta l4proto ipv6-icmp accept",  # neighbour discovery, router advertisements
        'udp dport 68 accept comment "DHCPv4 replies"',
        'udp dport 546 accept comment "DHCPv6 replies"',
        'udp dport 5353 accept comment "mDNS: <host>.local"',
        'tcp dport 22 accept comment "SSH"',
        'tcp dport 3000 accept comment "the dashboard"',
    ]
    assert "5432" not in BUILD.render_firewall(3000)


def test_mdns_is_admitted_over_ipv4_and_ipv6() -> None:
    """One `inet` table filters both families: UDP 5353 in reaches resolved from 224.0.0.251
    and from ff02::fb alike (the box answers <host>.local to IPv4 and IPv6 peers)."""
    ruleset = BUILD.render_firewall(3000)
    tables = [line.split()[1] for line in ruleset.splitlines() if line.startswith("table ")]
    assert tables == ["inet"]
    mdns = [rule for rule in input_rules(ruleset) if "5353" in rule]
    assert mdns == ['udp dport 5353 accept comment "mDNS: <host>.local"']  # no family, no address


def test_without_a_declared_port_only_ssh_is_open_over_tcp() -> None:
    rules = input_rules(BUILD.render_firewall(None))
    assert [rule for rule in rules if rule.startswith("tcp ")] == [
        'tcp dport 22 accept comment "SSH"'
    ]
    assert "@DASHBOARD_RULE@" not in BUILD.render_firewall(None)


@pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft (nftables, .ci/bootstrap)")
@pytest.mark.parametrize("port", [3000, None])
def test_nft_accepts_the_ruleset(tmp_path: Path, port: int | None) -> None:
    """`nft --check`: parsed and evaluated by nftables itself, nothing loaded."""
    ruleset = tmp_path / "nftables.conf"
    ruleset.write_text(BUILD.render_firewall(port))
    proc = subprocess.run(
        ["nft", "--check", "--file", str(ruleset)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


def payload(tmp_path: Path, port_line: str) -> Path:
    folder = tmp_path / "payload"
    (folder / "bin").mkdir(parents=True)
    (folder / "bin/run").write_text("#!/bin/sh\n")
    (folder / "bin/run").chmod(0o755)
    (folder / "platform.toml").write_text(
        f'name = "p"\nversion = "1"\nstart = ["bin/run"]\n{port_line}\n'
    )
    return folder


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('port = "3000"', "port must be a TCP port number"),
        ("port = 0", "port must be a TCP port number"),
        ("port = 70000", "port must be a TCP port number"),
        ("port = true", "port must be a TCP port number"),
        ("port = 22", "port 22 is the box's own SSH port"),
        ("port = 5432", "port 5432 is the box's own PostgreSQL port"),
    ],
)
def test_a_payload_port_that_cannot_be_the_dashboards_is_refused(
    tmp_path: Path, line: str, words: str
) -> None:
    with pytest.raises(UsageError) as caught:
        BUILD.read_platform_manifest(payload(tmp_path, line))
    assert words in caught.value.message


def test_the_port_is_optional_and_the_reference_payload_declares_one(tmp_path: Path) -> None:
    assert "port" not in BUILD.read_platform_manifest(payload(tmp_path, ""))
    manifest = BUILD.read_platform_manifest(REPO / "iso/reference_platform")
    assert manifest["port"] == 443, "the dashboard URL (https://<host>.local/) has no port"


def test_postgresql_listens_on_localhost_only() -> None:
    settings = [
        line.split("#", 1)[0].strip()
        for line in (REPO / "iso/postgresql.conf").read_text().splitlines()
    ]
    assert "listen_addresses = 'localhost'" in settings
