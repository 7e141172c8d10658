"""Is there a network to send on, and if not, why not? Known in a moment, before any retry loop.

A message with no network cannot be sent however long one waits: first boot says so at once,
with the reason, instead of retrying for seconds. The reason is one of four classes, checked in
the order a network comes up, and the first that fails is the one reported (DESIGN §7):

- `no link`: no interface but loopback, or none has a carrier (no cable, Wi-Fi not joined);
- `no address`: a link is up but has no address a router would answer (DHCP did not answer);
- `no route`: no default route;
- `no DNS`: no resolver in /etc/resolv.conf, or the provider's name does not resolve.

The files read hang off the target root (/sys/class/net, /proc/net/route, /proc/net/ipv6_route,
/etc/resolv.conf), so a sandbox run sees its own (absent) network; a root without /sys/class/net
(a sandbox) skips the link and address classes. Addresses come from `ip` on the running system
(installer.machine). A server on a loopback address needs none of it. Reading and classifying
are pure (`parse_*`, `classify`); only `resolve_within` touches the network.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from installer.paths import TargetPaths

RESOLVE_TIMEOUT_S = 2.0
RTF_UP = 0x0001
RTF_REJECT = 0x0200

Resolver = Callable[[str, float], "str | None"]


def has_default_route_v4(route: str) -> bool:
    """/proc/net/route has an up default route (destination and mask 0) on a real interface."""
    for line in route.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        iface, destination, flags, mask = fields[0], fields[1], int(fields[3], 16), fields[7]
        if iface != "lo" and destination == mask == "00000000" and flags & RTF_UP:
            return True
    return False


def has_default_route_v6(route: str) -> bool:
    """/proc/net/ipv6_route has an up, not rejecting, default route (::/0) on a real interface
    (the kernel's own unreachable ::/0 on `lo` does not count)."""
    for line in route.splitlines():
        fields = line.split()
        if len(fields) < 10:
            continue
        destination, prefix, flags, iface = fields[0], fields[1], int(fields[8], 16), fields[9]
        if (
            iface != "lo"
            and int(destination, 16) == 0
            and int(prefix, 16) == 0
            and flags & RTF_UP
            and not flags & RTF_REJECT
        ):
            return True
    return False


def parse_nameservers(resolv_conf: str) -> list[str]:
    """The `nameserver` addresses of a resolv.conf, in order."""
    servers = []
    for line in resolv_conf.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            servers.append(fields[1])
    return servers


def resolve_within(host: str, timeout: float) -> str | None:
    """Resolve `host` within `timeout` seconds; None when it resolved, else why not. The
    lookup runs in a daemon thread, so a resolver that never answers cannot hold us."""
    outcome: list[str | None] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
        except OSError as err:
            outcome.append(err.strerror or type(err).__name__)
        else:
            outcome.append(None)

    worker = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        return f"{host} did not resolve within {timeout:.0f} s"
    reason = outcome[0]
    return None if reason is None else f"{host} does not resolve: {reason}"


@dataclass(frozen=True)
class NetworkProblem:
    """Why there is no network: its class (`no link`, `no address`, `no route`, `no DNS`) and
    the details in words."""

    kind: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


@dataclass(frozen=True)
class Link:
    """A network interface as the kernel sees it: operstate, carrier (None: the kernel would
    not say, the interface is down) and its addresses (None: not known here)."""

    name: str
    operstate: str
    carrier: bool | None
    addresses: tuple[str, ...] | None = None
    wifi: bool = False

    @property
    def up(self) -> bool:
        return self.carrier is True or self.operstate == "up"

    @property
    def routable(self) -> tuple[str, ...]:
        """Its addresses a router would answer: not link-local (169.254/16, fe80::/10)."""
        found = []
        for address in self.addresses or ():
            try:
                ip = ipaddress.ip_interface(address).ip
            except ValueError:
                continue
            if not (ip.is_link_local or ip.is_loopback):
                found.append(address)
        return tuple(found)


def _link_state(link: Link) -> str:
    if link.wifi:
        return "Wi-Fi not joined"
    return "no carrier" if link.carrier is False else link.operstate


def _read(path_text: Callable[[], str]) -> str:
    try:
        return path_text()
    except OSError:  # also EINVAL: `carrier` of an interface that is down
        return ""


def read_links(
    paths: TargetPaths, addresses: Mapping[str, Sequence[str]] | None = None
) -> list[Link] | None:
    """Every interface but loopback under the root's /sys/class/net; None when the root has
    none to read (a sandbox). `addresses` (interface -> addresses) when known."""
    net = paths.sys_class_net
    try:
        names = sorted(p.name for p in net.iterdir())
    except OSError:
        return None
    links = []
    for name in names:
        if name == "lo":
            continue
        carrier = _read((net / name / "carrier").read_text).strip()
        links.append(
            Link(
                name,
                _read((net / name / "operstate").read_text).strip() or "unknown",
                {"1": True, "0": False}.get(carrier),
                None if addresses is None else tuple(addresses.get(name, ())),
                (net / name / "wireless").is_dir(),
            )
        )
    return links


def classify(
    links: Sequence[Link] | None,
    *,
    route_v4: bool,
    route_v6: bool,
    nameservers: Sequence[str] | None,
    family: int | None = None,
) -> NetworkProblem | None:
    """The first class of problem, in the order a network comes up; None when the name lookup
    is all that is left to try (or, for an address, nothing). `links` None: not known (sandbox);
    `nameservers` None: no lookup needed (the server is an address); `family` 4 or 6 for an
    address, whose route alone counts."""
    if links is not None:
        if not links:
            return NetworkProblem("no link", "no network interface but loopback")
        up = [link for link in links if link.up]
        if not up:
            states = ", ".join(f"{link.name} {_link_state(link)}" for link in links)
            return NetworkProblem("no link", f"no cable or Wi-Fi connection ({states})")
        known = [link for link in up if link.addresses is not None]
        if known and len(known) == len(up) and not any(link.routable for link in known):
            names = ", ".join(link.name for link in up)
            return NetworkProblem("no address", f"{names} up, but DHCP gave no address")
    if family == 4 and not route_v4:
        return NetworkProblem("no route", "no default route for IPv4")
    if family == 6 and not route_v6:
        return NetworkProblem("no route", "no default route for IPv6")
    if family is None and not (route_v4 or route_v6):
        return NetworkProblem("no route", "no default route")
    if nameservers is not None and not nameservers:
        return NetworkProblem("no DNS", "no resolver in /etc/resolv.conf")
    return None


def _read_addresses(paths: TargetPaths) -> dict[str, list[str]] | None:
    """The running system's addresses (`ip`); None for a sandbox root or when `ip` cannot say."""
    if not paths.is_live_system:
        return None
    from installer.machine import read_addresses

    return read_addresses(paths.root) or None


def network_problem(
    url: str,
    paths: TargetPaths,
    *,
    resolve: Resolver = resolve_within,
    timeout: float = RESOLVE_TIMEOUT_S,
    addresses: Mapping[str, Sequence[str]] | None = None,
) -> NetworkProblem | None:
    """Why `url`'s server cannot be reached from this system now, or None when it is worth
    trying. `addresses` stands in for the running system's (tests)."""
    host = urlsplit(url).hostname
    if not host:
        return NetworkProblem("not reachable", f"{url} names no host")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host == "localhost" or (address is not None and address.is_loopback):
        return None
    proc_net = paths.root / "proc/net"
    links = read_links(paths, addresses if addresses is not None else _read_addresses(paths))
    problem = classify(
        links,
        route_v4=has_default_route_v4(_read((proc_net / "route").read_text)),
        route_v6=has_default_route_v6(_read((proc_net / "ipv6_route").read_text)),
        nameservers=(
            None
            if address is not None
            else parse_nameservers(_read((paths.root / "etc/resolv.conf").read_text))
        ),
        family=None if address is None else address.version,
    )
    if problem is not None or address is not None:
        return problem
    why = resolve(host, timeout)
    return None if why is None else NetworkProblem("no DNS", why)
