"""Bringing the seed's network up on the running system (first boot's network step, and the live
installer so that its receipt can show the address): udev and networkd reread their files, the
supplicant starts on the Wi-Fi interfaces present, and a bounded wait says whether it joined."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from installer.errors import InstallerError
from installer.machine import read_addresses
from installer.net.files import (
    ADDRESS_WAIT_S,
    SUPPLICANT_CTRL_DIR,
    WIFI_JOIN_WAIT_S,
    shown_ssid,
)
from installer.net.wifi_join import JoinResult, wait_for_join
from installer.paths import SERVICE_NAME, TargetPaths, in_root
from installer.run import run
from installer.seed.resolved import Network, ResolvedSeed


@dataclass
class LiveNetwork:
    """What bringing the network up on the running system found, in words."""

    done: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    to_fix: list[str] = field(default_factory=list)

    def fix(self, line: str) -> None:
        self.notes.append(line)
        self.to_fix.append(line)


def bring_up(
    paths: TargetPaths,
    seed: ResolvedSeed,
    changed: list[Path],
    *,
    join_wait: float = WIFI_JOIN_WAIT_S,
    address_wait: float = ADDRESS_WAIT_S,
) -> LiveNetwork:
    """On the running system: make the files take effect, and with Wi-Fi wait (bounded) to
    know whether it joined and got an address. Nothing on a target that is not running."""
    live = LiveNetwork()
    if not paths.is_live_system:
        return live
    network = seed.network
    live.notes += _apply_live(paths, network, changed)
    if network.wifi is None:
        return live
    ssid = shown_ssid(network.wifi.ssid)
    interfaces = wifi_interfaces(paths)
    if not interfaces:
        live.fix(
            f"Wi-Fi: no Wi-Fi interface on this machine, so SSID {ssid} was not joined "
            "(a chip whose firmware the image lacks shows none)"
        )
        return live
    result = _first_join(paths, interfaces, join_wait)
    address = None
    if result.state == "joined":
        address = wait_for_address(paths, result.interface, address_wait)
    source = seed.source("WIFI_PASSWORD")
    line = source.line if source is not None and source.kind == "line" else None
    joined, problem = render_join(ssid, result, address, line, join_wait, address_wait)
    if problem is not None:
        live.fix(problem)
    if joined is not None:
        live.done.append(joined)
    return live


def render_join(
    ssid: str,
    result: JoinResult,
    address: str | None,
    password_line: int | None,
    join_wait: float,
    address_wait: float,
) -> tuple[str | None, str | None]:
    """What the Wi-Fi's join came to, in words: (what holds, what is left to fix)."""
    if result.state == "refused":
        where = f"line {password_line} of setup.txt" if password_line else "setup.txt"
        return None, (
            f"Wi-Fi: authentication refused for SSID {ssid} on {result.interface}: the "
            f"WIFI_PASSWORD on {where} is not this network's password; correct it (a stick "
            "with INSTALL_MODE=adopt applies it)"
        )
    if result.state == "not joined":
        return None, (
            f"Wi-Fi: SSID {ssid} not joined within {join_wait:.0f} s (last state: "
            f"{result.detail}): is the network in range, and its name as in setup.txt?"
        )
    if address is None:
        return None, (
            f"Wi-Fi: joined SSID {ssid} on {result.interface}, but no address from DHCP "
            f"within {address_wait:.0f} s"
        )
    return f"Wi-Fi: joined SSID {ssid} on {result.interface}, address {address}", None


def _first_join(paths: TargetPaths, interfaces: list[str], timeout: float) -> JoinResult:
    """The first interface that joins or is refused (they share the wait), else the last."""
    deadline = time.monotonic() + timeout
    ctrl_dir = in_root(paths.root, SUPPLICANT_CTRL_DIR)
    result = JoinResult(interfaces[0], "not joined", "not asked")
    for name in interfaces:
        result = wait_for_join(ctrl_dir, name, max(1.0, deadline - time.monotonic()))
        if result.state != "not joined":
            break
    return result


def wait_for_address(paths: TargetPaths, interface: str, timeout: float) -> str | None:
    """The interface's first IPv4 address once it has one, or None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = [a for a in read_addresses(paths.root).get(interface, []) if ":" not in a]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            return None
        time.sleep(1.0)


def wifi_interfaces(paths: TargetPaths) -> list[str]:
    """The Wi-Fi interfaces the running kernel has (those with a `wireless` directory)."""
    if not paths.sys_class_net.is_dir():
        return []
    return sorted(p.name for p in paths.sys_class_net.iterdir() if (p / "wireless").is_dir())


def _apply_live(paths: TargetPaths, network: Network, changed: list[Path]) -> list[str]:
    """On the running system, make the configuration take effect now (the next boot would
    anyway: udev's coldplug starts the supplicant, networkd reads its files). No systemd reload:
    a unit file that is new is found when first started. The supplicant is started even when no
    file changed: a run resumed after a power cut finds the files but nothing running."""
    if not paths.is_live_system:
        return []
    commands: list[list[str]] = []
    if paths.wifi_udev_rule in changed:
        commands.append(["udevadm", "control", "--reload"])
    if network.wifi is not None:
        commands += [
            ["systemctl", "start", "--no-block", f"{SERVICE_NAME}-wifi@{name}.service"]
            for name in wifi_interfaces(paths)
        ]
    if any(p.suffix == ".network" for p in changed) or network.wifi is not None:
        commands.append(["networkctl", "reload"])
    notes = []
    for argv in commands:
        if shutil.which(argv[0]) is None:
            notes.append(f"{argv[0]} is not installed: the network takes effect at the next boot")
            continue
        try:
            result = run(argv, check=False, timeout=30)
        except InstallerError as err:  # timed out
            notes.append(f"{' '.join(argv)}: {err.message}")
            continue
        if result.returncode != 0:
            notes.append(f"{' '.join(argv)} exited {result.returncode}; the next boot applies it")
    return notes
