"""The Wi-Fi kit's mDNS peer (tests/helpers/mdns.py), checked on the host: its question is the
one RFC 6762 describes, it reads answers the way responders write them (systemd-resolved's
multicast answer, a legacy-unicast answer that repeats the question and points back into it,
other records around the one asked for) and never trips on a malformed packet; and, over the
kernel's multicast on loopback, it finds a responder's answer, as the script the kit ships
(run by path, with nothing of this repository importable), and says `none` when nobody answers.

The answer parsed is a real one, captured from the installed box's systemd-resolved in the
Wi-Fi boot test (tests/test_boot_wifi.py), where the same peer asks it over the kit's access
point. The responder here is a thread that answers in the same shape (to the group, from port
5353, cache-flush set, TTL 120)."""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.helpers import mdns

NAME = "boot-test.local"
LOOPBACK = "127.0.0.1"


def record(name: bytes, rtype: int, rclass: int, data: bytes, ttl: int = 120) -> bytes:
    return name + struct.pack("!HHIH", rtype, rclass, ttl, len(data)) + data


def response(*records: bytes, question: bytes = b"", flags: int = 0x8400) -> bytes:
    """A response: ID 0, authoritative answer (resolved's flags), the records as answers."""
    header = struct.pack("!HHHHHH", 0, flags, 1 if question else 0, len(records), 0, 0)
    return header + question + b"".join(records)


# A real answer: Debian 12's systemd-resolved on the installed box, to this peer in the Wi-Fi
# boot test (the kit's `TESTKIT: mdns answer bytes:` line). ID 0, flags 0x8400 (a response,
# authoritative), no question, one A record for boot-test.local: class IN with the cache-flush
# bit (0x8001), TTL 120, 10.77.0.62 (the box's DHCP lease on the kit's access point).
RESOLVED_ANSWER = bytes.fromhex(
    "00008400000000010000000009626f6f742d74657374056c6f63616c00000180010000007800040a4d003e"
)


def test_the_question_is_rfc_6762s() -> None:
    query = mdns.build_query(NAME)
    # ID 0, no flags, one question, no records
    assert struct.unpack("!HHHHHH", query[:12]) == (0, 0, 1, 0, 0, 0)
    assert query[12:] == b"\x09boot-test\x05local\x00" + b"\x00\x01" + b"\x00\x01"  # A, IN, QM
    unicast = mdns.build_query(NAME, unicast_reply=True)
    assert unicast[-2:] == b"\x80\x01"  # the QU bit
    assert mdns.answer_addresses(query, NAME) == [], "a question is no answer"


@pytest.mark.parametrize("name", ["", "a..local", "x" * 64 + ".local"])
def test_a_name_that_is_not_dns_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a DNS name"):
        mdns.encode_name(name)


def test_resolveds_answer_gives_the_address() -> None:
    written = response(record(mdns.encode_name(NAME), 1, 0x8001, bytes([10, 77, 0, 62])))
    assert written == RESOLVED_ANSWER, "how this test writes an answer is how resolved writes one"
    assert mdns.answer_addresses(RESOLVED_ANSWER, NAME) == ["10.77.0.62"]
    assert mdns.answer_addresses(RESOLVED_ANSWER, "BOOT-TEST.local.") == ["10.77.0.62"]
    assert mdns.answer_addresses(RESOLVED_ANSWER, "other.local") == []


def test_a_legacy_answer_with_the_question_and_a_pointer() -> None:
    """A unicast answer repeats the question; its record names the question's name by a
    compression pointer (offset 12); an AAAA record and another host's A record come along."""
    question = mdns.encode_name(NAME) + b"\x00\x01\x00\x01"
    packet = response(
        record(b"\xc0\x0c", 28, 1, bytes(15) + b"\x01"),
        record(b"\x05other\xc0\x16", 1, 1, bytes([10, 77, 0, 9])),  # other.local
        record(b"\xc0\x0c", 1, 1, bytes([10, 77, 0, 58])),
        question=question,
    )
    assert mdns.answer_addresses(packet, NAME) == ["10.77.0.58"]
    assert mdns.answer_addresses(packet, "other.local") == ["10.77.0.9"]


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        RESOLVED_ANSWER[:11],  # a header cut off
        RESOLVED_ANSWER[:-1],  # the address cut off
        RESOLVED_ANSWER[:20],  # the name cut off
        response(record(b"\xc0\x0c", 1, 1, bytes(4))),  # a pointer past the end
        response(record(b"\xc0", 1, 1, bytes(4))),  # a pointer cut off
        response(record(b"\x40abc\x00", 1, 1, bytes(4))),  # an unknown label type
        b"\x00\x00\x84\x00\x00\x00\x00\x01\x00\x00\x00\x00\xc0\x0c",  # a pointer to itself
        response(record(mdns.encode_name(NAME), 1, 1, bytes(16))),  # an A record of 16 bytes
    ],
)
def test_a_malformed_packet_gives_nothing_and_raises_nothing(packet: bytes) -> None:
    assert mdns.answer_addresses(packet, NAME) == []


@contextlib.contextmanager
def responder(name: str, address: str) -> Iterator[list[bytes]]:
    """A responder on loopback that answers questions for `name` (type A) with `address`, as
    systemd-resolved does; yields the questions it heard."""
    heard: list[bytes] = []
    sock = mdns.open_socket(LOOPBACK)
    sock.settimeout(0.1)
    answer = response(record(mdns.encode_name(name), 1, 0x8001, socket.inet_aton(address)))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                packet, _ = sock.recvfrom(9000)
            except TimeoutError:
                continue
            if struct.unpack_from("!H", packet, 2)[0] & 0x8000:
                continue  # an answer (our own, looped back)
            heard.append(packet)
            if mdns.encode_name(name) in packet:
                sock.sendto(answer, (mdns.MDNS_GROUP, mdns.MDNS_PORT))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield heard
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def test_the_peer_finds_a_responder_over_multicast() -> None:
    with responder(NAME, "10.77.0.57") as heard:
        found, packet = mdns.ask(NAME, LOOPBACK, wait_s=5)
    assert found == ["10.77.0.57"]
    assert packet is not None
    assert mdns.answer_addresses(packet, NAME) == ["10.77.0.57"]
    assert heard[0] == mdns.build_query(NAME)


def test_the_shipped_script_says_the_address() -> None:
    """Run by path in isolated mode, as the kit runs it: it needs nothing of this repository."""
    with responder(NAME, "10.77.0.57"):
        proc = subprocess.run(
            [sys.executable, "-I", mdns.__file__, NAME, LOOPBACK],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"TESTKIT: mdns {NAME} -> 10.77.0.57"
    assert lines[1].startswith("TESTKIT: mdns answer bytes: 0000840000000001")


def test_without_a_responder_the_peer_says_none() -> None:
    with responder("someone-else.local", "10.77.0.9") as heard:
        assert mdns.ask(NAME, LOOPBACK, wait_s=2.5, resend_s=1.0) == ([], None)
    assert len(heard) >= 2, "it asks again while it waits"


def test_the_script_says_none_and_its_usage() -> None:
    script = [sys.executable, "-I", mdns.__file__]
    usage = subprocess.run(script, capture_output=True, text=True, timeout=30, check=False)
    assert (usage.returncode, usage.stderr.strip()) == (
        2,
        "usage: mdns.py NAME.local INTERFACE_ADDRESS",
    )
    refused = subprocess.run(
        [*script, NAME, "203.0.113.250"], capture_output=True, text=True, timeout=30, check=False
    )
    assert refused.returncode == 1
    assert refused.stdout.startswith(f"TESTKIT: mdns {NAME}: the peer could not ask: ")
