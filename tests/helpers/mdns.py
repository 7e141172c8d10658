"""A one-shot mDNS peer (RFC 6762): ask the link who `<host>.local` is, type A, and say the
address that answered. The box's `<host>.local` name is answered by systemd-resolved (DESIGN
§10); this is the other side, a machine on the same LAN.

Standard library only, and no import from this repository: the Wi-Fi test kit
(tests/helpers/wifi_kit.py) ships this very file into the VM and runs it with the image's python3
inside the access point's network namespace, once the platform is up:

    python3 mdns.py boot-test.local 10.77.0.1

and prints one line, `TESTKIT: mdns boot-test.local -> 10.77.0.57` (or `-> none` when nothing
answered within the wait), then the answer's bytes in hex (a real responder's answer, kept in
the serial log). tests/test_mdns_peer.py runs the same code on the host.

How it asks: like a full mDNS querier, not a legacy one-shot resolver. It binds UDP 5353 (with
SO_REUSEADDR, as mDNS responders do), joins 224.0.0.251 on the interface whose address it is
given, and sends the question from port 5353 to 224.0.0.251:5353 with TTL 255, again every
second until an answer comes or the wait ends. A responder then answers to the group (or, if it
honours the question's unicast-response bit, to this socket): both reach it. systemd-resolved
answers legacy one-shot queries (from another port) only in versions newer than Debian 12's.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
import time

MDNS_GROUP = "224.0.0.251"
MDNS_PORT = 5353
TYPE_A = 1
CLASS_IN = 1
# The top bit of a question's class asks for a unicast answer (QU); in a record's class it is
# the cache-flush bit. The class itself is the other 15 bits.
TOP_BIT = 0x8000
RESPONSE = 0x8000  # the QR bit of the header's flags
HEADER = struct.Struct("!HHHHHH")
RECORD = struct.Struct("!HHIH")  # type, class, TTL, data length
WAIT_S = 10.0
RESEND_S = 1.0
MAX_POINTERS = 32  # name compression pointers followed before a name is called malformed


class Malformed(ValueError):
    """A packet that is not a well-formed DNS message (ignored, never fatal)."""


def encode_name(name: str) -> bytes:
    """`boot-test.local` as DNS labels: length-prefixed, ending with the root's empty label."""
    labels = [label.encode("ascii") for label in name.rstrip(".").split(".")]
    if any(not label or len(label) > 63 for label in labels):
        raise ValueError(f"not a DNS name: {name!r}")
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def build_query(name: str, *, unicast_reply: bool = False) -> bytes:
    """An mDNS query for `name`, type A: ID 0, no flags, one question (RFC 6762 §18)."""
    qclass = CLASS_IN | (TOP_BIT if unicast_reply else 0)
    return HEADER.pack(0, 0, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", TYPE_A, qclass)


def read_name(packet: bytes, offset: int) -> tuple[str, int]:
    """The name at `offset` (following compression pointers) and the offset after it."""
    labels: list[str] = []
    end = None
    for _ in range(MAX_POINTERS):
        if offset >= len(packet):
            raise Malformed("a name runs past the packet's end")
        length = packet[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(packet):
                raise Malformed("a compression pointer is cut off")
            end = offset + 2 if end is None else end
            offset = ((length & 0x3F) << 8) | packet[offset + 1]
            continue
        if length & 0xC0:
            raise Malformed("a label with an unknown type")
        if length == 0:
            return ".".join(labels), offset + 1 if end is None else end
        label = packet[offset + 1 : offset + 1 + length]
        if len(label) != length:
            raise Malformed("a label runs past the packet's end")
        labels.append(label.decode("ascii", "replace"))
        offset += 1 + length
    raise Malformed("too many compression pointers (a loop?)")


def _records(packet: bytes) -> list[tuple[str, int, int, bytes]]:
    """Every record of a response (answers, authority, additional): name, type, class, data."""
    if len(packet) < HEADER.size:
        raise Malformed("shorter than a DNS header")
    _, flags, questions, *counts = HEADER.unpack_from(packet)
    if not flags & RESPONSE:
        return []  # a query (our own, looped back, or another peer's)
    offset = HEADER.size
    for _ in range(questions):
        offset = read_name(packet, offset)[1] + 4
    records = []
    for _ in range(sum(counts)):
        name, offset = read_name(packet, offset)
        if offset + RECORD.size > len(packet):
            raise Malformed("a record's header runs past the packet's end")
        rtype, rclass, _, length = RECORD.unpack_from(packet, offset)
        offset += RECORD.size
        data = packet[offset : offset + length]
        if len(data) != length:
            raise Malformed("a record's data runs past the packet's end")
        records.append((name, rtype, rclass & ~TOP_BIT, data))
        offset += length
    return records


def answer_addresses(packet: bytes, name: str) -> list[str]:
    """The IPv4 addresses a response gives for `name` (A records, any section); none for a
    query, another name, or a packet that is not well formed."""
    wanted = name.rstrip(".").lower()
    try:
        records = _records(packet)
    except (Malformed, struct.error):
        return []
    return [
        str(ipaddress.IPv4Address(data))
        for owner, rtype, rclass, data in records
        if owner.lower() == wanted and rtype == TYPE_A and rclass == CLASS_IN and len(data) == 4
    ]


def open_socket(interface_address: str) -> socket.socket:
    """UDP 5353 on every address, in the mDNS group on the interface of `interface_address`,
    sending from that interface with TTL 255 (RFC 6762 §11)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("", MDNS_PORT))
        local = socket.inet_aton(interface_address)
        membership = socket.inet_aton(MDNS_GROUP) + local
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, local)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
    except OSError:
        sock.close()
        raise
    return sock


def ask(
    name: str, interface_address: str, wait_s: float = WAIT_S, resend_s: float = RESEND_S
) -> tuple[list[str], bytes | None]:
    """Ask the link for `name` (type A) until an answer or `wait_s`: the addresses and the
    answer's bytes, or ([], None)."""
    query = build_query(name)
    deadline = time.monotonic() + wait_s
    with open_socket(interface_address) as sock:
        next_send = 0.0
        while (now := time.monotonic()) < deadline:
            if now >= next_send:
                sock.sendto(query, (MDNS_GROUP, MDNS_PORT))
                next_send = now + resend_s
            sock.settimeout(max(0.01, min(next_send, deadline) - now))
            try:
                packet, _ = sock.recvfrom(9000)
            except TimeoutError:
                continue
            found = answer_addresses(packet, name)
            if found:
                return found, packet
    return [], None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: mdns.py NAME.local INTERFACE_ADDRESS", file=sys.stderr)
        return 2
    name, interface_address = argv
    try:
        found, packet = ask(name, interface_address)
    except OSError as exc:
        print(f"TESTKIT: mdns {name}: the peer could not ask: {exc}", flush=True)
        return 1
    print(f"TESTKIT: mdns {name} -> {' '.join(found) or 'none'}", flush=True)
    if packet is not None:
        print(f"TESTKIT: mdns answer bytes: {packet.hex()}", flush=True)
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
