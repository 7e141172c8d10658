"""The Wi-Fi boot test's kit, checked without a VM: its script parses, its disk is an ext4 volume
labelled CLAWDIE-TESTKIT with what the script runs, and its stub servers answer first boot's own
Telegram and OpenRouter clients (installer/online/preflight.py, telegram.py) on loopback."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from installer.online.preflight import check_openrouter, check_telegram
from installer.online.telegram import send_message
from tests.helpers.seeds import ADMIN, OPENROUTER, TOKEN
from tests.helpers.wifi_kit import (
    AP_ADDRESS,
    BOT_USERNAME,
    HOOK_UNIT,
    KIT_LABEL,
    STUBS,
    build_kit,
    missing_programs,
    render_hostapd_conf,
    render_start,
    with_kit_hook,
)


def test_the_start_script_parses(tmp_path: Path) -> None:
    script = tmp_path / "start"
    script.write_text(render_start("boot-test"))
    proc = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "clawdie.testkit" not in render_start("boot-test"), "the switch is the image's business"


def test_the_mdns_peer_asks_from_the_access_points_side_once_the_platform_is_up() -> None:
    start = render_start("boot-test")
    peer = start[start.index("mdns_peer() {") : start.index("mdns_peer &")]
    assert peer.index("PLATFORM-READY") < peer.index("mdns.py")
    assert f'ip netns exec ap python3 "$kit/mdns.py" boot-test.local {AP_ADDRESS}' in peer


def test_the_access_point_is_wpa2_personal() -> None:
    conf = render_hostapd_conf("ClawdieTest", "a password", "DE")
    assert "ssid=ClawdieTest\n" in conf
    assert "wpa=2\n" in conf
    assert "wpa_key_mgmt=WPA-PSK\n" in conf
    assert "wpa_passphrase=a password\n" in conf


@pytest.mark.skipif(
    bool(missing_programs()), reason="needs hostapd and dnsmasq (.ci/bootstrap installs them)"
)
def test_the_kit_disk(tmp_path: Path) -> None:
    kit = build_kit(
        tmp_path / "kit.img",
        ssid="ClawdieTest",
        password="pass-word",
        country="DE",
        hostname="boot-test",
    )
    label = subprocess.run(["e2label", str(kit)], capture_output=True, text=True, check=True)
    assert label.stdout.strip() == KIT_LABEL
    listing = subprocess.run(
        ["debugfs", "-R", "ls -l /", str(kit)], capture_output=True, text=True, check=True
    ).stdout
    for name in ("start", "stubs.py", "mdns.py", "hostapd.conf", "bin", "lib"):
        assert f" {name}\n" in listing or listing.rstrip().endswith(f" {name}")
    start = subprocess.run(
        ["debugfs", "-R", "stat /start", str(kit)], capture_output=True, text=True, check=True
    ).stdout
    assert "Mode:  0755" in start
    libs = subprocess.run(
        ["debugfs", "-R", "ls /lib", str(kit)], capture_output=True, text=True, check=True
    ).stdout
    assert "libnl-3.so.200" in libs
    assert "libc.so.6" not in libs, "glibc is the guest's own"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def stubs() -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    telegram, openrouter = _free_port(), _free_port()
    argv = [sys.executable, str(STUBS), "127.0.0.1", str(telegram), str(openrouter), BOT_USERNAME]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert "TESTKIT: stub servers" in proc.stdout.readline()
        yield f"http://127.0.0.1:{telegram}", f"http://127.0.0.1:{openrouter}/api/v1", proc
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_stubs_answer_first_boots_clients() -> None:
    with stubs() as (telegram, openrouter, proc):
        bot = check_telegram(SecretStr(TOKEN), api=telegram, timeout=10)
        key = check_openrouter(SecretStr(OPENROUTER), api=openrouter, timeout=10)
        sent, why = send_message(TOKEN, ADMIN, "Clawdie first boot: ok\nmore", api=telegram)
        time.sleep(0.2)
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert (bot.status, bot.fact("bot_username")) == ("valid", f"@{BOT_USERNAME}")
    assert (key.status, key.fact("credit_limit")) == ("valid", "10.00")
    assert sent, why
    assert f"TESTKIT: telegram sendMessage to {ADMIN}: Clawdie first boot: ok" in out
    assert TOKEN not in out
    assert OPENROUTER not in out


def test_the_kit_hook_goes_into_a_copy_of_the_installed_disk_only(tmp_path: Path) -> None:
    """The image carries no hook: the test writes it, enabled, into its own copy of a disk laid
    out like the installed one (GPT, root file system ext4 on partition 3); the original stays
    as it was."""
    from tests.helpers.disk_image import list_dir, read_file, root_filesystem
    from tests.helpers.loopdev import require_root, sh
    from tests.helpers.vm import read_partitions

    require_root()
    tree = tmp_path / "tree"
    (tree / "etc/systemd/system/multi-user.target.wants").mkdir(parents=True)
    rootfs = tmp_path / "rootfs.img"
    sh("mke2fs", "-q", "-t", "ext4", "-d", str(tree), str(rootfs), "16M")
    disk = tmp_path / "installed.img"
    with disk.open("wb") as handle:
        handle.truncate(24 * 1024 * 1024)
    script = "label: gpt\nsize=1MiB\nsize=1MiB\nsize=16MiB\n"
    sh("sfdisk", "--quiet", str(disk), data=script.encode())
    start = next(p.start for p in read_partitions(disk) if p.number == 3)
    with disk.open("r+b") as handle:
        handle.seek(start)
        handle.write(rootfs.read_bytes())
    before = disk.read_bytes()

    hooked = with_kit_hook(disk, tmp_path / "hooked.img")
    assert disk.read_bytes() == before
    unit = HOOK_UNIT.read_bytes()
    with root_filesystem(hooked) as device:
        assert read_file(device, "/etc/systemd/system/clawdie-testkit.service") == unit
        assert "clawdie-testkit.service" in list_dir(
            device, "/etc/systemd/system/multi-user.target.wants"
        )
        link = subprocess.run(
            ["debugfs", "-R", "stat /etc/systemd/system/multi-user.target.wants/"
             "clawdie-testkit.service", device],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    assert 'Fast link dest: "/etc/systemd/system/clawdie-testkit.service"' in link
    with root_filesystem(disk) as device:
        assert read_file(device, "/etc/systemd/system/clawdie-testkit.service") is None
