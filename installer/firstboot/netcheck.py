"""Is there a network to send on? Known in a moment, before any retry loop starts.

A message with no network cannot be sent however long one waits: without a default route or a
resolver, first boot says so at once, with the reason, instead of retrying for seconds. The
files read hang off the target root (/proc/net/route, /proc/net/ipv6_route, /etc/resolv.conf),
so a sandbox run sees its own (absent) network. A server on a loopback address needs none of
it. Reading the files is pure (`parse_*`); only `resolve_within` touches the network.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
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


def _read(path_text: Callable[[], str]) -> str:
    try:
        return path_text()
    except OSError:
        return ""


def network_problem(
    url: str,
    paths: TargetPaths,
    *,
    resolve: Resolver = resolve_within,
    timeout: float = RESOLVE_TIMEOUT_S,
) -> str | None:
    """Why `url`'s server cannot be reached from this system now (no default route, no
    resolver, the name does not resolve), or None when it is worth trying."""
    host = urlsplit(url).hostname
    if not host:
        return f"{url} names no host"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host == "localhost" or (address is not None and address.is_loopback):
        return None
    proc_net = paths.root / "proc/net"
    v4 = has_default_route_v4(_read((proc_net / "route").read_text))
    v6 = has_default_route_v6(_read((proc_net / "ipv6_route").read_text))
    if address is not None:
        if (address.version == 4 and v4) or (address.version == 6 and v6):
            return None
        return f"no default route for IPv{address.version}"
    if not (v4 or v6):
        return "no default route"
    resolv_conf = paths.root / "etc/resolv.conf"
    if not parse_nameservers(_read(resolv_conf.read_text)):
        return "no DNS resolver in /etc/resolv.conf"
    return resolve(host, timeout)
