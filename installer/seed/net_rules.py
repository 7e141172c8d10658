"""The value rules of the network fields (DESIGN §3, §7): Wi-Fi name, password and country, a
static address, its gateway and the DNS servers. Pure, like `installer.seed.rules` (whose
`SeedValueError` they raise): `check`, the wizard and first boot run the very same rule. Messages
never contain the Wi-Fi password or name; an address or country code is named where it helps.

Decisions documented here (DESIGN leaves them open):
- WPA-personal only: the password is a passphrase of 8-63 printable ASCII characters (IEEE
  802.11i, what `wpa_passphrase` accepts) or the raw 256-bit PSK as 64 hex digits. Open
  networks (no password) and WPA-Enterprise are not supported.
- The SSID is 1-32 bytes of UTF-8 without control characters (a line of setup.txt can hold no
  other bytes anyway).
- WIFI_COUNTRY is an ISO 3166-1 alpha-2 code (`installer.seed.countries`); `00` (the world
  domain) is refused: the box must say where it is. `UK` and `EL` get their ISO code as a hint.
- Addresses are typed with `ipaddress`, and the forms that are not an address of their own are
  refused wherever an address is given, each with its own words and fix: an IPv6 scope id
  (`%eth0`: it names an interface of one machine, and networkd would be handed it verbatim),
  IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`) forms (write the IPv4
  address), unspecified, loopback, multicast, the IPv4 broadcast 255.255.255.255 and the
  reserved 240.0.0.0/4.
- NET_ADDRESS needs its prefix (`192.168.1.50/24`; a dotted netmask is read as its prefix) and
  must be a host's address: not the network's own or broadcast address, not link-local (the
  box makes those itself).
- NET_GATEWAY lies inside NET_ADDRESS's network (an IPv6 gateway may also be link-local,
  `fe80::1`, as routers announce themselves; an IPv4 one may not); NET_DNS is 1-8 addresses,
  never a loopback one (127.0.0.53 is systemd-resolved's own stub: a loop) nor a link-local
  one (unreachable without an interface name).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import TYPE_CHECKING

from installer.seed.rules import SeedValueError

if TYPE_CHECKING:
    from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

MAX_SSID_BYTES = 32
MIN_WIFI_PASSWORD = 8
MAX_WIFI_PASSWORD = 63
MAX_DNS_SERVERS = 8
# Codes people write that ISO 3166 spells otherwise.
_COUNTRY_ALIASES = {"UK": "GB", "EL": "GR"}
_HEX_PSK_RE = re.compile(r"[0-9A-Fa-f]{64}")


def check_wifi_ssid(value: str) -> str:
    """The Wi-Fi network's name (SSID): 1-32 bytes of UTF-8, no control characters."""
    size = len(value.encode("utf-8"))
    if size > MAX_SSID_BYTES:
        raise SeedValueError(
            f"the Wi-Fi name is {size} bytes long; a Wi-Fi name has at most {MAX_SSID_BYTES} "
            "(letters outside A-Z take 2-4 bytes each)",
            "copy the name exactly as your phone or the router's label shows it",
        )
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise SeedValueError(
            "the Wi-Fi name contains control characters",
            "type the name again exactly as your phone or the router's label shows it",
        )
    return value


def is_raw_psk(value: str) -> bool:
    """Whether a checked WIFI_PASSWORD is the raw PSK (64 hex digits), not a passphrase."""
    return bool(_HEX_PSK_RE.fullmatch(value))


def check_wifi_password(value: str) -> str:
    """WPA password: 8-63 printable ASCII characters, or the raw PSK as 64 hex digits."""
    if is_raw_psk(value):
        return value.lower()
    if any(not (" " <= c <= "~") for c in value):
        raise SeedValueError(
            "the Wi-Fi password has characters a WPA password cannot have (only A-Z, a-z, 0-9, "
            "spaces and the punctuation of an English keyboard are allowed)",
            "check the password on the router's label; letters such as é or ß are not allowed",
        )
    if len(value) < MIN_WIFI_PASSWORD:
        raise SeedValueError(
            f"the Wi-Fi password has {len(value)} characters; a WPA password has at least "
            f"{MIN_WIFI_PASSWORD}",
            "copy the whole password from the router's label (open networks are not supported)",
        )
    if len(value) > MAX_WIFI_PASSWORD:
        raise SeedValueError(
            f"the Wi-Fi password has {len(value)} characters; a WPA password has at most "
            f"{MAX_WIFI_PASSWORD} (or is a raw key of exactly 64 hex digits)",
            "copy the password from the router's label again",
        )
    return value


def check_wifi_country(value: str) -> str:
    """The country the box is in, as an ISO 3166 code (DE, US, GB): it sets the radio rules."""
    from installer.seed.countries import CODES  # only when WIFI_COUNTRY is given

    code = value.strip().upper()
    if code in _COUNTRY_ALIASES:
        raise SeedValueError(
            f"{code} is not an ISO 3166 country code",
            f"write {_COUNTRY_ALIASES[code]} (the ISO code of that country)",
        )
    if code == "00":
        raise SeedValueError(
            "00 is the world-wide default, not a country",
            "write the two-letter code of the country the box is in, e.g. DE or US",
        )
    if not re.fullmatch(r"[A-Z]{2}", code):
        raise SeedValueError(
            "the Wi-Fi country is a two-letter code",
            "write the ISO 3166 code of the country the box is in, e.g. DE for Germany, US, FR",
        )
    if code not in CODES:
        raise SeedValueError(
            f"{code} is not an ISO 3166 country code",
            "write the two-letter code of the country the box is in, e.g. DE, US or FR",
        )
    return code


# Where an address is used decides what cannot work there: the box's own address, its router,
# its DNS servers. Each class of unusable address has its own words and fix.
_OWN, _GATEWAY, _DNS = "own", "gateway", "dns"


def _address_problem(address: IPv4Address | IPv6Address, use: str) -> tuple[str, str] | None:
    """Why `address` cannot work as the box's own address, its gateway or a DNS server, as
    (what it is, how to fix it); None when it can."""
    if isinstance(address, ipaddress.IPv6Address):
        problem = _ipv6_form_problem(address)
        if problem is not None:
            return problem
    if address.is_unspecified:
        return "an unspecified address (all zeros)", _FIX[use]
    if address.is_loopback:
        return "a loopback address (this machine talking to itself)", _FIX[use]
    if address.is_multicast:
        return "a multicast address", _FIX[use]
    if address.version == 4 and address == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address (every machine on the link)", _FIX[use]
    if address.version == 4 and address.is_reserved:
        return "a reserved address (240.0.0.0/4 is not used on networks)", _FIX[use]
    link_local_works = use == _GATEWAY and address.version == 6  # routers announce fe80::
    if address.is_link_local and not link_local_works:
        what = (
            "a link-local address (169.254.x.x is chosen by a machine itself when no network "
            "gives it one)"
            if address.version == 4
            else "a link-local address (fe80::, which every machine makes for itself and "
            "which needs an interface name to be reached)"
        )
        return what, _FIX[use]
    return None


def _ipv6_form_problem(address: IPv6Address) -> tuple[str, str] | None:
    """An IPv6 form that is not an address of its own: a scope id, an IPv4 address dressed up."""
    if address.scope_id is not None:
        plain = str(address).split("%", 1)[0]
        return (
            f"an address with a scope id (%{address.scope_id}), which names an interface of "
            "one machine and is not part of an address",
            f"remove the % and what follows it: {plain}",
        )
    if address.ipv4_mapped is not None:
        return (
            "an IPv4 address written in IPv6 form (::ffff:…)",
            f"write the IPv4 address itself: {address.ipv4_mapped}",
        )
    if int(address) >> 32 == 0 and int(address) > 1:
        return (
            "an IPv4-compatible IPv6 address (::a.b.c.d, retired in 2006)",
            f"write the IPv4 address itself: {ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)}",
        )
    return None


_FIX = {
    _OWN: "use the address meant for this box",
    _GATEWAY: "write the router's address",
    _DNS: "write the address of a DNS server on the network or the internet",
}


def parse_interface(value: str) -> IPv4Interface | IPv6Interface:
    """A checked NET_ADDRESS as an interface address (address and network)."""
    return ipaddress.ip_interface(value)


def parse_dns_servers(value: str) -> list[IPv4Address | IPv6Address]:
    """A checked NET_DNS as typed addresses."""
    return [ipaddress.ip_address(word) for word in value.split()]


def check_net_address(value: str) -> str:
    """A static address with its prefix (CIDR), e.g. 192.168.1.50/24 or 2001:db8::50/64."""
    if "/" not in value:
        raise SeedValueError(
            "the address needs its network size after a /",
            "write it like 192.168.1.50/24 (/24 is the usual home network)",
        )
    try:
        interface = ipaddress.ip_interface(value)
    except ValueError:
        raise SeedValueError(
            "not an IP address with a network size",
            "write it like 192.168.1.50/24 or 2001:db8::50/64",
        ) from None
    problem = _address_problem(interface.ip, _OWN)
    if isinstance(interface, ipaddress.IPv6Interface) and interface.scope_id is not None:
        problem = _ipv6_form_problem(interface)
    if problem is not None:
        raise SeedValueError(f"{interface.ip} is {problem[0]}", problem[1])
    network = interface.network
    host_bits = network.max_prefixlen - network.prefixlen
    if host_bits >= 2 and interface.ip == network.network_address:
        raise SeedValueError(
            f"{interface.ip} is the address of the network {network} itself, not of a machine",
            "use an address inside the network for this box, e.g. one ending in .50",
        )
    if interface.version == 4 and host_bits >= 2 and interface.ip == network.broadcast_address:
        raise SeedValueError(
            f"{interface.ip} is the broadcast address of {network}, not a machine's",
            "use an address inside the network for this box, e.g. one ending in .50",
        )
    return str(interface)


def check_net_gateway(value: str) -> str:
    """The router's address (one address, no /prefix), inside NET_ADDRESS's network."""
    if "/" in value:
        raise SeedValueError(
            "the gateway is one address, without a /network size",
            "write it like 192.168.1.1 (the network size belongs on NET_ADDRESS)",
        )
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise SeedValueError(
            "not an IP address", "write the router's address, e.g. 192.168.1.1"
        ) from None
    problem = _address_problem(address, _GATEWAY)
    if problem is not None:
        raise SeedValueError(f"the gateway cannot be {problem[0]}", problem[1])
    return str(address)


def gateway_problem(address: str, gateway: str) -> SeedValueError | None:
    """Why a checked NET_GATEWAY does not fit a checked NET_ADDRESS, or None."""
    interface = ipaddress.ip_interface(address)
    router = ipaddress.ip_address(gateway)
    network = interface.network
    if router.version != interface.version:
        return SeedValueError(
            f"the gateway is an IPv{router.version} address but NET_ADDRESS is IPv"
            f"{interface.version}",
            "give both as IPv4 (192.168.1.1) or both as IPv6",
        )
    if router == interface.ip:
        return SeedValueError(
            "the gateway is the box's own address",
            "write the router's address, e.g. 192.168.1.1",
        )
    if router.version == 6 and router.is_link_local:
        return None  # IPv6 routers are reached on the link (fe80::1)
    if router not in network:
        return SeedValueError(
            f"the gateway {router} is not inside the network {network} of NET_ADDRESS",
            "check both lines: the router's address and the box's usually share all but "
            "the last number (192.168.1.1 and 192.168.1.50/24)",
        )
    host_bits = network.max_prefixlen - network.prefixlen
    if host_bits >= 2 and router in (network.network_address, network.broadcast_address):
        return SeedValueError(
            f"the gateway {router} is the network's own or broadcast address",
            "write the router's address, e.g. 192.168.1.1",
        )
    return None


def check_net_dns(value: str) -> str:
    """DNS servers: 1-8 addresses separated by commas or spaces (1.1.1.1, 9.9.9.9)."""
    words = [w for w in re.split(r"[\s,;]+", value) if w]
    if not words:
        raise SeedValueError("no DNS server given", "write addresses like 1.1.1.1, 9.9.9.9")
    servers: list[str] = []
    for number, word in enumerate(words, 1):
        try:
            address = ipaddress.ip_address(word)
        except ValueError:
            raise SeedValueError(
                f"DNS server {number} is not an IP address (names cannot be looked up before "
                "DNS works)",
                "write addresses like 1.1.1.1, 9.9.9.9 or 2606:4700:4700::1111",
            ) from None
        problem = _address_problem(address, _DNS)
        if problem is not None:
            raise SeedValueError(f"DNS server {number} ({word}) is {problem[0]}", problem[1])
        if str(address) not in servers:
            servers.append(str(address))
    if len(servers) > MAX_DNS_SERVERS:
        raise SeedValueError(
            f"{len(servers)} DNS servers; at most {MAX_DNS_SERVERS}", "keep the first few"
        )
    return " ".join(servers)
