"""The network configuration (DESIGN §7): systemd-networkd files and, for Wi-Fi, a supplicant, from
the seed's network lines, written into a target root (first boot's network step and the live
installer use it; installer/net/live.py brings it up on the running system).

What it writes (only what the seed asks for; files of ours it no longer asks for are removed):
- Wired links get DHCP from the image's own `20-clawdie-wired.network` (`Type=ether`), which this
  step never touches. `NET_ADDRESS` (with `NET_GATEWAY`), or `NET_DNS` alone, writes
  `10-clawdie-wired.network` for the same links: networkd applies the first file in lexical order
  that matches a link, so it replaces the image's for wired links and the image's file stays the
  default. A static address without `NET_DNS` uses the gateway as DNS server (home routers
  answer DNS), except an IPv6 link-local gateway, which names no link a DNS entry could use.
  The static address is for wired links only: Wi-Fi keeps DHCP.
- Wi-Fi: `25-clawdie-wifi.network` (`Type=wlan`, DHCP), the supplicant configuration
  `/etc/wpa_supplicant/clawdie-wifi.conf` (root, 0600), a template unit
  `clawdie-wifi@.service` and the udev rule `90-clawdie-wifi.rules`, which starts one instance
  per Wi-Fi interface whatever its name (`wlan0`, `wlp2s0`): the rule runs after udev's own
  `80-net-setup-link.rules`, so `$name` is the final name and the instance binds to that
  interface's device unit. No interface name is known in advance, and none has to be.

Why wpa_supplicant and not iwd (Debian 12 ships both): wpa_supplicant takes the PSK as 64 hex
digits in its configuration, so the password itself is never stored (iwd can too, but only in a
per-network file named after the SSID's bytes); it works with every driver that speaks nl80211 or
the older wext (iwd needs nl80211 and a set of kernel crypto modules some vendor kernels lack);
its per-interface unit pattern is the documented pairing with networkd, and the hostapd +
mac80211_hwsim kit the boot test will use is developed against it.

What is stored: the PSK, PBKDF2-HMAC-SHA1(password, SSID, 4096 rounds, 32 bytes), which is what
`wpa_passphrase` prints and what WPA2-personal uses; a 64-hex-digit WIFI_PASSWORD is that key
already. A WPA3-only (SAE) network needs the password itself, so it cannot join from a stored
PSK; WPA2/WPA3 mixed networks (the common "transition mode") accept the PSK. Adopt reads the PSK
back (`parse_supplicant_psk`) as the box's WIFI_PASSWORD: a seed without Wi-Fi lines keeps the
network, and this step then writes the very same bytes (an unchanged file is not rewritten).

The regulatory domain (which channels and power the radio may use) is set twice, each for a
different moment: `country=` in the supplicant configuration (the supplicant sets it when it
starts), and `options cfg80211 ieee80211_regdom=` in /etc/modprobe.d, so the kernel starts in the
right domain before any supplicant runs (Debian 12 has no crda; the kernel reads
`wireless-regdb`'s database itself).

The image needs (not in this step's power; iso/ installs them): `wpasupplicant`,
`wireless-regdb`, and the firmware of the Wi-Fi and wired chips (`firmware-iwlwifi`,
`firmware-realtek`, ... from non-free-firmware).

On the live system (`--root /`) the step then makes it take effect: udev rereads its rules,
networkd its files, and the supplicant starts on the Wi-Fi interfaces already present. With Wi-Fi
it then waits, bounded (`WIFI_JOIN_WAIT_S`, then `ADDRESS_WAIT_S` for DHCP), for the supplicant to
join (installer/net/wifi_join.py) and says what it found: joined with the address, the key
refused (a wrong password: "Wi-Fi: authentication refused for SSID ..."), not joined, or no Wi-Fi
interface at all. Anything but joined-with-an-address is left to fix (the `to_fix` fact makes
first boot `degraded`), never a failure: first boot goes on offline. The live installer brings
the seed's network up the same way (`bring_up`), so its receipt can show the address.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from installer.fsutil import ensure_dir, remove_durably, remove_stale_temps, write_atomic
from installer.paths import SERVICE_NAME, TargetPaths
from installer.seed.hashes import derive_psk
from installer.seed.net_rules import is_raw_psk
from installer.seed.resolved import Network, StaticAddress, Wifi

# Under TCG a hwsim join takes a few seconds; a real one two to ten. A wrong password is known
# at the supplicant's first or second try (it waits 10 s between them).
WIFI_JOIN_WAIT_S = 40.0
ADDRESS_WAIT_S = 20.0
SUPPLICANT_CTRL_DIR = "/run/wpa_supplicant"

log = logging.getLogger("clawdie.firstboot")
_HEADER = "# Written by clawdie-setup firstboot from setup.txt; a new seed (adopt) rewrites it.\n"
# Every link the box configures answers its <host>.local name by mDNS, and never LLMNR
# (DESIGN §10; systemd-resolved's side is in the image's resolved.conf.d/clawdie.conf).
_LINK_NAMES = ("MulticastDNS=yes", "LLMNR=no")


def _dns_section(dns: tuple[str, ...]) -> list[str]:
    return [f"DNS={server}" for server in dns]


def _ignore_network_dns() -> list[str]:
    """The DNS servers of setup.txt replace the ones DHCP and router adverts offer."""
    return [
        "",
        "[DHCPv4]",
        "UseDNS=no",
        "",
        "[DHCPv6]",
        "UseDNS=no",
        "",
        "[IPv6AcceptRA]",
        "UseDNS=no",
    ]


def static_dns(static: StaticAddress, dns: tuple[str, ...]) -> tuple[str, ...]:
    """The DNS servers of a static address: NET_DNS, else the gateway (unless link-local)."""
    if dns:
        return dns
    import ipaddress

    return () if ipaddress.ip_address(static.gateway).is_link_local else (static.gateway,)


def render_wired_network(network: Network) -> str | None:
    """The seed's wired configuration, or None when the image's DHCP default holds."""
    if network.static is None and not network.dns:
        return None
    lines = [_HEADER, "[Match]", "Type=ether", "", "[Network]", *_LINK_NAMES]
    if network.static is not None:
        lines += [
            f"Address={network.static.address}",
            f"Gateway={network.static.gateway}",
            *_dns_section(static_dns(network.static, network.dns)),
        ]
    else:
        lines += ["DHCP=yes", *_dns_section(network.dns), *_ignore_network_dns()]
    return "\n".join(lines) + "\n"


def render_wifi_network(network: Network) -> str:
    """Every Wi-Fi interface: DHCP once the supplicant has joined (with NET_DNS if given)."""
    lines = [_HEADER, "[Match]", "Type=wlan", "", "[Network]", *_LINK_NAMES, "DHCP=yes"]
    if network.dns:
        lines += [*_dns_section(network.dns), *_ignore_network_dns()]
    return "\n".join(lines) + "\n"


def render_supplicant_conf(wifi: Wifi) -> str:
    """wpa_supplicant's configuration: the country, and the network by the hex of its name's
    bytes (no quoting of any character can go wrong) with the PSK, never the password."""
    ssid_hex = wifi.ssid.encode("utf-8").hex()
    psk = derive_psk(wifi.password.get_secret_value(), wifi.ssid)
    # The name in words for a person reading the file; ssid= is what counts.
    shown = shown_ssid(wifi.ssid)
    return (
        f"{_HEADER}"
        "# The Wi-Fi password is not stored: psk= is the key derived from it (wpa_passphrase).\n"
        "ctrl_interface=/run/wpa_supplicant\n"
        "update_config=0\n"
        f"country={wifi.country}\n"
        "\n"
        f"# Wi-Fi: {shown}\n"
        "network={\n"
        f"\tssid={ssid_hex}\n"
        "\tscan_ssid=1\n"
        "\tkey_mgmt=WPA-PSK WPA-PSK-SHA256\n"
        "\tieee80211w=1\n"
        f"\tpsk={psk}\n"
        "}\n"
    )


def parse_supplicant_psk(text: str, ssid: str) -> SecretStr | None:
    """The PSK a configuration `render_supplicant_conf` wrote keeps for the network `ssid`, or
    None when it names no such network with a 64-hex-digit key (a file edited by hand, or the
    key of another network: the PSK is derived from the SSID too, so it joins no other)."""
    wanted = ssid.encode("utf-8").hex()
    for block in re.findall(r"^network=\{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL):
        pairs = (line.strip().partition("=") for line in block.splitlines())
        fields = {name: value for name, _, value in pairs}
        psk = fields.get("psk", "")
        if fields.get("ssid", "").lower() == wanted and is_raw_psk(psk):
            return SecretStr(psk.lower())
    return None


def shown_ssid(ssid: str) -> str:
    """A network's name as text for people: as it is, unless it holds control characters."""
    return ssid if ssid.isprintable() else "(a name with control characters)"


def render_wifi_unit(conf: str) -> str:
    """One supplicant per Wi-Fi interface (`%i`), bound to that interface's device."""
    return (
        f"{_HEADER}"
        "[Unit]\n"
        "Description=Wi-Fi on %i (WPA supplicant, from the Clawdie seed)\n"
        "BindsTo=sys-subsystem-net-devices-%i.device\n"
        "After=sys-subsystem-net-devices-%i.device\n"
        "Before=network.target\n"
        "Wants=network.target\n"
        f"ConditionPathExists={conf}\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart=/sbin/wpa_supplicant -c {conf} -i %I -D nl80211,wext\n"
        "Restart=on-failure\n"
        "RestartSec=5\n"
    )


def render_wifi_udev_rule() -> str:
    """Start the supplicant's instance for each Wi-Fi interface, under its final name."""
    return (
        f"{_HEADER}"
        'ACTION=="add", SUBSYSTEM=="net", ENV{DEVTYPE}=="wlan", TAG+="systemd", '
        f'ENV{{SYSTEMD_WANTS}}+="{SERVICE_NAME}-wifi@$name.service"\n'
    )


def render_regdom(country: str) -> str:
    return f"{_HEADER}options cfg80211 ieee80211_regdom={country}\n"


@dataclass(frozen=True)
class NetworkFile:
    path: Path
    content: str | None  # None: not wanted (removed if there)
    mode: int = 0o644


def planned_files(paths: TargetPaths, network: Network) -> list[NetworkFile]:
    """Every file this step owns, with what it should hold for `network`."""
    wifi = network.wifi
    conf = f"/{paths.wifi_supplicant_conf.relative_to(paths.root)}"
    return [
        NetworkFile(paths.wired_network, render_wired_network(network)),
        NetworkFile(paths.wifi_network, render_wifi_network(network) if wifi else None),
        NetworkFile(
            paths.wifi_supplicant_conf, render_supplicant_conf(wifi) if wifi else None, 0o600
        ),
        NetworkFile(paths.wifi_unit, render_wifi_unit(conf) if wifi else None),
        NetworkFile(paths.wifi_udev_rule, render_wifi_udev_rule() if wifi else None),
        NetworkFile(paths.wifi_regdom, render_regdom(wifi.country) if wifi else None),
    ]


def describe(paths: TargetPaths, network: Network) -> list[str]:
    """What holds now, in words for the summary (never the password or its key)."""
    if network.static is not None:
        dns = static_dns(network.static, network.dns)
        wired = (
            f"wired links: {network.static.address} via {network.static.gateway}, "
            f"DNS {', '.join(dns) or 'none'}"
        )
    elif network.dns:
        wired = f"wired links: DHCP, DNS {', '.join(network.dns)}"
    else:
        wired = f"wired links: DHCP ({paths.image_wired_network.name})"
    if network.wifi is None:
        return [wired, "Wi-Fi: not configured"]
    conf = f"/{paths.wifi_supplicant_conf.relative_to(paths.root)}"
    return [
        wired,
        f"Wi-Fi: {shown_ssid(network.wifi.ssid)} (country {network.wifi.country}), DHCP; "
        f"key stored in {conf} (0600)",
    ]


def write_files(paths: TargetPaths, network: Network) -> list[Path]:
    """Every file of `network` in the target root; returns the ones that changed."""
    changed: list[Path] = []
    for item in planned_files(paths, network):
        if item.content is None:
            if remove_durably(item.path):
                changed.append(item.path)
            continue
        ensure_dir(item.path.parent, 0o755)
        remove_stale_temps(item.path.parent)
        # the supplicant's file holds the PSK: no earlier version is left in freed blocks
        if write_atomic(item.path, item.content, mode=item.mode, scrub_old=True):
            changed.append(item.path)
    return changed
