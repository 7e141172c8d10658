"""The boot lane's pieces that need no VM: the port probe (tests/helpers/boot_lane.py) against real
sockets on this machine, and the kit's grub.cfg switch (tests/helpers/update_kit.py)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.helpers.boot_lane import HTTP_GET, probe
from tests.helpers.update_kit import SWITCH, with_switch


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, list[bytes]]]:
    """A TCP listener on 127.0.0.1 that accepts and keeps each connection open, silent."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    received: list[bytes] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            conn.settimeout(1)
            with contextlib.suppress(OSError):
                received.append(conn.recv(1024))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server, received
    finally:
        server.close()
        for conn in held:
            conn.close()


def test_probe_hears_a_service_that_speaks() -> None:
    server = socket.create_server(("127.0.0.1", 0))

    def banner() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n")

    thread = threading.Thread(target=banner, daemon=True)
    thread.start()
    with server:
        answer = probe(server.getsockname()[1], b"", 5.0)
    assert answer == b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n"


def test_probe_finds_nothing_where_the_other_end_accepts_and_stays_silent(
    listener: tuple[socket.socket, list[bytes]],
) -> None:
    """What QEMU's user-mode network does for a port the guest drops: the host side accepts."""
    server, received = listener
    assert probe(server.getsockname()[1], HTTP_GET, 0.5) == b""
    assert received == [HTTP_GET], "the probe sends its request"


def test_probe_finds_nothing_at_a_closed_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        assert probe(port, HTTP_GET, 0.5) == b""


def test_the_kit_switch_goes_on_each_linux_line() -> None:
    cfg = (
        "menuentry 'Clawdie' {\n"
        "    linux /boot/vmlinuz-6.1 root=UUID=x ro console=ttyS0\n"
        "    initrd /boot/initrd.img-6.1\n"
        "}\n"
    )
    lines = with_switch(cfg).splitlines()
    assert lines[1] == f"    linux /boot/vmlinuz-6.1 root=UUID=x ro console=ttyS0 {SWITCH}"
    assert lines[2] == "    initrd /boot/initrd.img-6.1"
    with pytest.raises(AssertionError, match="no linux line"):
        with_switch("set timeout=1\n")
