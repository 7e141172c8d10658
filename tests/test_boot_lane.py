"""The boot lane's pieces that need no VM: the port probe (tests/helpers/boot_lane.py) against real
sockets on this machine, the kit's grub.cfg switch (tests/helpers/update_kit.py), and how the boot
tests share one run's two workers (lanes, the one Secure Boot install, the figures)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import boot_lane
from tests.helpers.boot_lane import HTTP_GET, probe
from tests.helpers.image import REPO
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


# Collects the boot tests in a process of its own (pytest inside pytest upsets the snapshot
# plugin's session) and prints each one's node id, lane and fixtures as JSON.
COLLECT_LANES = """
import json, sys, pytest
class Lanes:
    def pytest_collection_finish(self, session):
        for item in session.items:
            lanes = sorted({str(m.args[0]) for m in item.iter_markers("xdist_group")})
            row = [item.nodeid, "_".join(lanes), list(item.fixturenames)]  # as xdist joins them
            print("LANE " + json.dumps(row))
sys.exit(pytest.main(["-q", "--collect-only", "-m", "boot", "-p", "no:cacheprovider",
                      "tests/"], plugins=[Lanes()]))
"""


def test_the_boot_tests_split_into_two_lanes_that_keep_their_inputs() -> None:
    """`just boot-test` runs two workers, one lane each: every boot test has its lane; whatever
    boots the BIOS machine's disk (and the Wi-Fi runs, which boot a copy of it made by the BIOS
    test) is in that machine's lane, after its install; the Secure Boot machine's tests in the
    other. Only the identity test reads both machines (the shared install waits for the other)."""
    proc = subprocess.run(
        [sys.executable, "-c", COLLECT_LANES], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(line[5:]) for line in proc.stdout.splitlines() if line.startswith("LANE ")]
    items = [(nodeid, lane, set(names)) for nodeid, lane, names in rows]
    boot = [(nodeid, lane, names) for nodeid, lane, names in items if "test_boot" in nodeid]
    assert len(boot) >= 15
    assert {lane for _, lane, _ in items} == {"bios-disk", "uefi-disk"}
    for nodeid, lane, names in boot:
        if "bios_machine" in names or "test_boot_wifi.py" in nodeid:
            assert lane == "bios-disk", nodeid
        elif names & {"secureboot_machine", "uefi_later"}:
            assert lane == "uefi-disk", nodeid
    order = [nodeid for nodeid, _, _ in items]
    installs = order.index(
        "tests/test_boot.py::test_bios_usb_installs_and_first_boot_reaches_the_platform"
    )
    wifi = [i for i, nodeid in enumerate(order) if "test_boot_wifi.py" in nodeid]
    assert wifi
    assert min(wifi) > installs


def test_the_shared_install_is_made_once_and_a_failed_one_is_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Secure Boot install across two workers: the first asks installs (here a stand-in
    for the three VM boots), the second takes the same machine; when the install failed, the
    other worker fails with where to look instead of installing again."""
    made: list[Path] = []

    def install(_image: Path, workdir: Path) -> boot_lane.Machine:
        made.append(workdir)
        workdir.mkdir()
        (workdir / "disk.img").write_bytes(b"disk")
        return boot_lane.Machine.installed(workdir, "uefi-secureboot")

    monkeypatch.setattr(boot_lane, "secure_boot_installed", install)
    first = boot_lane.shared_secure_boot_install(tmp_path / "image.iso", tmp_path)
    second = boot_lane.shared_secure_boot_install(tmp_path / "image.iso", tmp_path)
    assert len(made) == 1
    assert second.disk == first.disk
    assert second.disk.read_bytes() == b"disk"

    def fails(_image: Path, workdir: Path) -> boot_lane.Machine:
        workdir.mkdir()
        raise RuntimeError("install failed")

    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setattr(boot_lane, "secure_boot_installed", fails)
    with pytest.raises(RuntimeError):
        boot_lane.shared_secure_boot_install(tmp_path / "image.iso", other)
    with pytest.raises(pytest.fail.Exception, match="failed in the other worker"):
        boot_lane.shared_secure_boot_install(tmp_path / "image.iso", other)


def test_a_lock_holds_the_other_worker_until_it_is_let_go(tmp_path: Path) -> None:
    lock = tmp_path / "figures.lock"
    entered = threading.Event()
    with boot_lane.locked(lock):
        waiter = threading.Thread(target=lambda: _enter(lock, entered))
        waiter.start()
        assert not entered.wait(0.5), "the second holder got in while the first held the lock"
    waiter.join(10)
    assert entered.is_set()


def _enter(lock: Path, entered: threading.Event) -> None:
    with boot_lane.locked(lock):
        entered.set()


def test_figures_of_both_workers_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boot_lane, "LOGS", tmp_path)
    monkeypatch.setattr(boot_lane, "FIGURES_FILE", tmp_path / "figures.json")
    boot_lane.keep_figures("bios-usb", {"install: install done": 494.0})
    boot_lane.keep_figures("uefi-secureboot", {"install: install done": 547.2})
    boot_lane.keep_figures("bios-usb", {"firstboot: PLATFORM-READY": 171.8})
    kept = json.loads((tmp_path / "figures.json").read_text())
    assert kept == {
        "bios-usb": {"install: install done": 494.0, "firstboot: PLATFORM-READY": 171.8},
        "uefi-secureboot": {"install: install done": 547.2},
    }
