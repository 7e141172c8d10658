"""The Wi-Fi boot test's kit: a small ext4 disk labelled CLAWDIE-TESTKIT that makes a Wi-Fi world
inside the VM. The product image carries none of it, not even a hook: the test writes its hook
(tests/helpers/clawdie-testkit.service, enabled) into its own copy of the installed disk with
debugfs (`with_kit_hook`), and the hook runs the kit's `start` only when the kernel command line
says `clawdie.testkit=1`.

What `start` does, before first boot (the hook is ordered before it):
1. `modprobe mac80211_hwsim radios=2`: two simulated radios that hear each other;
2. the second radio goes into its own network namespace `ap`, where hostapd runs a WPA2-personal
   access point (the test's SSID and password), dnsmasq gives addresses (10.77.0.50-99, router
   and DNS 10.77.0.1), and stub Telegram and OpenRouter servers listen on 10.77.0.1
   (tests/helpers/wifi_stubs.py);
3. a runtime drop-in (/run/systemd/system/clawdie-firstboot.service.d/) points first boot at the
   stubs: `Environment=CLAWDIE_TELEGRAM_API=... CLAWDIE_OPENROUTER_API=...` (the variables of the
   credential preflight), and, for the first boot on main that reads no such variable yet, the
   same unit command line with `--telegram-api`.
4. in the background, once the platform said PLATFORM-READY: a peer on the access point's side
   asks the link for the box's `<host>.local` by mDNS (tests/helpers/mdns.py, shipped as
   `mdns.py`) and prints `TESTKIT: mdns <host>.local -> <address>` (or `-> none`).

The first radio stays in the machine's own namespace with no wired NIC beside it: the appliance
joins with its seed's WIFI_* lines like on any Wi-Fi box. hostapd and dnsmasq come from this
(Debian 12) host, with the shared libraries they need that are not glibc's (the guest's glibc is
the same Debian 12 one); `just boot-test` installs them (`iso_apt` in the justfile).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

KIT_LABEL = "CLAWDIE-TESTKIT"
HOOK_UNIT = Path(__file__).with_name("clawdie-testkit.service")
HOOK_DIR = "/etc/systemd/system"
AP_ADDRESS = "10.77.0.1"
TELEGRAM_PORT = 8081
OPENROUTER_PORT = 8082
TELEGRAM_API = f"http://{AP_ADDRESS}:{TELEGRAM_PORT}"
OPENROUTER_API = f"http://{AP_ADDRESS}:{OPENROUTER_PORT}/api/v1"
BOT_USERNAME = "clawdie_boot_test_bot"
PROGRAMS = {"hostapd": Path("/usr/sbin/hostapd"), "dnsmasq": Path("/usr/sbin/dnsmasq")}
# glibc's own libraries: the guest's are the same release and must not be mixed with the host's.
GLIBC = re.compile(r"^(libc|libm|libdl|libpthread|librt|libresolv|ld-linux-x86-64)\.so")
KIT_SIZE = "24M"
STUBS = Path(__file__).with_name("wifi_stubs.py")
MDNS_PEER = Path(__file__).with_name("mdns.py")
PLATFORM_WAIT_S = 1200  # the peer's wait for PLATFORM-READY (first boot's bound)


def missing_programs() -> list[str]:
    return [f"{name} ({path})" for name, path in PROGRAMS.items() if not path.is_file()]


def shared_libraries(program: Path) -> list[Path]:
    """The libraries `program` loads (ldd), without glibc's."""
    out = subprocess.run(["ldd", str(program)], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        match = re.search(r"=>\s+(/\S+)", line)
        if match and not GLIBC.match(Path(match.group(1)).name):
            found.append(Path(match.group(1)))
    return found


def render_hostapd_conf(ssid: str, password: str, country: str) -> str:
    """A WPA2-personal access point on channel 1 (`@IFACE@`: the radio's name, known at start)."""
    return (
        "interface=@IFACE@\n"
        "driver=nl80211\n"
        f"ssid={ssid}\n"
        f"country_code={country}\n"
        "hw_mode=g\n"
        "channel=1\n"
        "wpa=2\n"
        "wpa_key_mgmt=WPA-PSK\n"
        "rsn_pairwise=CCMP\n"
        f"wpa_passphrase={password}\n"
    )


def render_start(hostname: str) -> str:
    """The kit's script, run as root by the image's hook; every line it prints is `TESTKIT:`.
    `hostname`: the box's host name, whose `.local` name the mDNS peer asks for."""
    dropin = "/run/systemd/system/clawdie-firstboot.service.d/50-testkit.conf"
    return f"""#!/bin/sh
# Clawdie boot-test kit: a Wi-Fi access point, DHCP and stub servers (tests/helpers/wifi_kit.py).
set -eu
kit=$(dirname "$(readlink -f "$0")")
state=/run/clawdie-testkit-state
mkdir -p "$state"
say() {{ echo "TESTKIT: $*"; }}

modprobe mac80211_hwsim radios=2
ap_phy=$(ls /sys/class/ieee80211 | sort | tail -n 1)
say "radios: $(ls /sys/class/ieee80211 | tr '\\n' ' ')- the access point takes $ap_phy"
ip netns add ap
iw phy "$ap_phy" set netns name ap
ap_if=$(ip netns exec ap sh -c 'ls /sys/class/net' | grep -v '^lo$' | head -n 1)
ip -n ap link set lo up
ip -n ap addr add {AP_ADDRESS}/24 dev "$ap_if"
sed "s/@IFACE@/$ap_if/" "$kit/hostapd.conf" > "$state/hostapd.conf"
ip netns exec ap env LD_LIBRARY_PATH="$kit/lib" "$kit/bin/hostapd" "$state/hostapd.conf" &
n=0
while ! ip -n ap link show "$ap_if" | grep -q 'state UP' && [ "$n" -lt 50 ]; do
    sleep 0.2; n=$((n + 1))
done
ip netns exec ap env LD_LIBRARY_PATH="$kit/lib" "$kit/bin/dnsmasq" --keep-in-foreground \\
    --conf-file=/dev/null --no-resolv --no-hosts --user=root --bind-dynamic --interface="$ap_if" \\
    --dhcp-range=10.77.0.50,10.77.0.99,255.255.255.0,1h --dhcp-leasefile="$state/leases" \\
    --pid-file="$state/dnsmasq.pid" --log-dhcp --log-facility=- &
ip netns exec ap python3 "$kit/stubs.py" {AP_ADDRESS} {TELEGRAM_PORT} {OPENROUTER_PORT} \\
    {BOT_USERNAME} &

# The LAN's view of the box's name: asked from the access point's side once the platform is up.
mdns_peer() {{
    n=0
    until journalctl -b -o cat -u clawdie.service | grep -q PLATFORM-READY; do
        n=$((n + 1))
        if [ "$n" -gt {PLATFORM_WAIT_S} ]; then
            say "mdns: no PLATFORM-READY in {PLATFORM_WAIT_S} s"
            return
        fi
        sleep 1
    done
    ip netns exec ap python3 "$kit/mdns.py" {shlex.quote(hostname + ".local")} {AP_ADDRESS} || true
}}
mdns_peer &

mkdir -p "$(dirname {dropin})"
cat > {dropin} <<'EOF'
[Service]
Environment=CLAWDIE_TELEGRAM_API={TELEGRAM_API} CLAWDIE_OPENROUTER_API={OPENROUTER_API}
EOF
systemctl daemon-reload
say "ready: access point on $ap_if in namespace ap, first boot pointed at {AP_ADDRESS}"
"""


def build_kit(dest: Path, *, ssid: str, password: str, country: str, hostname: str) -> Path:
    """The kit disk at `dest` (ext4, made with mke2fs -d: no root, no mount)."""
    staging = dest.with_name(dest.name + ".d")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "bin").mkdir(parents=True)
    (staging / "lib").mkdir()
    for name, program in PROGRAMS.items():
        shutil.copyfile(program, staging / "bin" / name)
        (staging / "bin" / name).chmod(0o755)
        for library in shared_libraries(program):
            shutil.copyfile(library, staging / "lib" / library.name)
    shutil.copyfile(STUBS, staging / "stubs.py")
    shutil.copyfile(MDNS_PEER, staging / "mdns.py")
    (staging / "hostapd.conf").write_text(render_hostapd_conf(ssid, password, country))
    start = staging / "start"
    start.write_text(render_start(hostname))
    start.chmod(0o755)
    dest.unlink(missing_ok=True)
    argv = ["mke2fs", "-q", "-t", "ext4", "-L", KIT_LABEL, "-d", str(staging), str(dest), KIT_SIZE]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{shlex.join(argv)} exited {proc.returncode}: {proc.stderr}")
    shutil.rmtree(staging)
    return dest


def with_kit_hook(installed: Path, dest: Path) -> Path:
    """A copy of the installed disk `installed` at `dest` (sparse) with the test kit's hook
    written into its root file system and enabled, offline with debugfs: the product image and
    the installed disk the BIOS test kept carry no test hook."""
    subprocess.run(["cp", "--sparse=always", str(installed), str(dest)], check=True)
    write_kit_hook(dest)
    return dest


def write_kit_hook(disk: Path) -> None:
    """The test kit's hook written into the raw `disk`'s root file system and enabled, offline
    with debugfs (a disk of this test run's own, which no other test boots)."""
    from tests.helpers.disk_image import write_root

    wants = f"{HOOK_DIR}/multi-user.target.wants"
    commands = "\n".join(
        [
            f"cd {HOOK_DIR}",
            f"write {HOOK_UNIT} {HOOK_UNIT.name}",
            f"sif {HOOK_UNIT.name} mode 0100644",
            f"sif {HOOK_UNIT.name} uid 0",
            f"sif {HOOK_UNIT.name} gid 0",
            f"cd {wants}",
            f"symlink {HOOK_UNIT.name} {HOOK_DIR}/{HOOK_UNIT.name}",
        ]
    )
    write_root(disk, commands, "the kit's hook")
