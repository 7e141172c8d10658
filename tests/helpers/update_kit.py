"""The UEFI later boot's test kit (tests/helpers/boot_lane.py, `uefi_later_boot`): a small ext4 disk
labelled CLAWDIE-TESTKIT, run by the boot tests' hook (tests/helpers/clawdie-testkit.service,
written into this run's copy of the installed disk with debugfs, as the Wi-Fi kit's is). The
installed disk boots through its firmware and GRUB here (not QEMU's -kernel), so the copy's grub.cfg
gets the hook's switch, `clawdie.testkit=1`; the update's update-grub writes a grub.cfg without it.

What `start` does (every line it prints is `TESTKIT:`, on the serial console through journald):
1. a listener on every address, TCP 8080 (python3's http.server): the firewall must hide it
   from the LAN, so a probe from the host that finds it silent is a probe that can fail;
2. once the platform said PLATFORM-READY: whether the listener answers on the box itself, and
   what systemd-resolved says of mDNS (per link, its UDP 5353 sockets) and LLMNR (UDP 5355);
   then `ready for the probes`. (resolved never answers its own name by mDNS to itself, so
   whether a LAN peer gets an answer for `<host>.local` needs a peer: not checked here);
3. a GRUB-only update (the ESP's grubx64.efi at both paths made to differ from the packaged
   one: the CD variant, signed too), then apt installing a local package offline, which runs
   the DPkg::Post-Invoke hook (iso/overlay/etc/apt/apt.conf.d/90clawdie-esp) after dpkg: the
   ESP's and the packaged GRUB's digests before and after, and the hook's status record;
4. what a kernel and boot-loader package update runs, offline: the kernel's boot-loader hook
   (`run-parts /etc/kernel/postinst.d` with the running version, zz-update-grub: update-grub;
   initramfs-tools' hook is left out, it takes over ten minutes under TCG and writes nothing
   the firmware or shim checks) and
   shim-signed's postinst (`dpkg-reconfigure`: grub-install for the signed EFI files, with the
   image's debconf answers), with the ESP's files (time, digest) before and after; `update: done`;
5. the box's side of the restore boot test (tests/test_boot_restore.py): a row the platform's
   database keeps (a table of the platform's role in system_brain, `ROW`), then the scheduled
   backup as its timer starts it (`systemctl start clawdie-backup.service`) with a stick
   labelled CLAWDIE-BAK plugged in (`backup_stick`, FAT as an owner's stick), and its outcome
   record; `backup: done`.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

from tests.helpers.disk_image import read_file, root_filesystem, write_root
from tests.helpers.sentinels import ROW
from tests.helpers.wifi_kit import KIT_LABEL

LISTENER_PORT = 8080
SWITCH = "clawdie.testkit=1"
KIT_SIZE = "4M"
# The owner's backup stick: FAT, whose labels hold 11 characters (installer/backup/scheduled.py).
BACKUP_LABEL = "CLAWDIE-BAK"
BACKUP_STICK_KIB = 128 * 1024
ROW_TABLE = "testkit_memory"

START = """#!/bin/sh
# Clawdie boot-test kit of the UEFI later boot (tests/helpers/update_kit.py).
set -eu
kit=$(dirname "$(readlink -f "$0")")
systemd-run --quiet --unit=testkit-listener python3 -m http.server @PORT@ --bind 0.0.0.0 \\
    --directory "$kit"
systemd-run --quiet --unit=testkit-update "$kit/update"
echo "TESTKIT: started: a listener on every address, TCP @PORT@; the update waits for the platform"
"""

UPDATE = """#!/bin/sh
# After PLATFORM-READY: the listener and mDNS seen from inside, then a package update's hooks.
set -u
say() { echo "TESTKIT: $*"; }
n=0
until journalctl -b -o cat -u clawdie.service | grep -q PLATFORM-READY; do
    n=$((n + 1))
    if [ "$n" -gt 900 ]; then say "update: no PLATFORM-READY in 900 s"; exit 1; fi
    sleep 1
done
if python3 -c 'import urllib.request as u; u.urlopen("http://127.0.0.1:@PORT@/", timeout=10)'; then
    say "listener: TCP @PORT@ answers on the box"
else
    say "listener: TCP @PORT@ does not answer on the box"
fi
say "mdns links: $(resolvectl mdns 2>&1 | tr -s ' ' | tr '\\n' ';')"
say "udp 5353 sockets: $(ss -ulnpH 'sport = :5353' | tr -s ' ' | tr '\\n' ';')"
say "llmnr sockets (udp 5355): $(ss -ulnpH 'sport = :5355' | wc -l)"
say "ready for the probes"

# A GRUB-only security update, as it reaches the box: grub-efi-amd64-signed (no maintainer
# scripts) leaves a grubx64.efi.signed that differs from the ESP's copies. Here the ESP's copies
# become another Debian-signed GRUB (the CD variant) instead, so the two differ in real bytes.
# Then apt installs a local package, offline (no --no-download: with it apt 2.6 refuses a local
# .deb, "Pathname to install is not absolute"), and runs its DPkg::Post-Invoke hooks after dpkg,
# as for any update: 90clawdie-esp must put the packaged GRUB back at both paths.
packaged=/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed
digest() { sha256sum < "$1" | cut -c1-16; }
grubs() {
    echo "$(digest /boot/efi/EFI/clawdie/grubx64.efi) $(digest /boot/efi/EFI/BOOT/grubx64.efi)"
}
cp /usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed /boot/efi/EFI/clawdie/grubx64.efi
cp /usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed /boot/efi/EFI/BOOT/grubx64.efi
sync
say "grub-only update: packaged $(digest $packaged), ESP $(grubs)"
say "grub-only update: apt's hook: $(apt-config dump DPkg::Post-Invoke | grep -c renew-boot-loader)"
noop=/run/testkit-noop
mkdir -p "$noop/DEBIAN"
printf '%s\\n' 'Package: clawdie-testkit-noop' 'Version: 1' 'Architecture: all' \\
    'Maintainer: Clawdie tests <tests@example.invalid>' 'Description: nothing' \\
    > "$noop/DEBIAN/control"
dpkg-deb --build "$noop" "$noop.deb" >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -o DPkg::Lock::Timeout=300 \\
    "$noop.deb" 2>&1
say "grub-only update: apt-get exit $?"
say "grub-only update: after apt, packaged $(digest $packaged), ESP $(grubs)"
say "grub-only update: status $(grep -v '^#' /var/lib/clawdie-setup/boot-loader.txt | tr '\\n' ';')"
DEBIAN_FRONTEND=noninteractive apt-get remove -y -o DPkg::Lock::Timeout=300 \\
    clawdie-testkit-noop >/dev/null 2>&1
say "grub-only update: removed again, exit $?"

esp() {
    for f in /boot/efi/EFI/BOOT/* /boot/efi/EFI/clawdie/*; do
        printf '%s %s %s;' "${f#/boot/efi/}" "$(stat -c %Y "$f")" "$(sha256sum < "$f" | cut -c1-16)"
    done
}
say "esp before: $(esp)"
sleep 2  # FAT keeps times to 2 s
v=$(uname -r)
say "update: kernel $v, its postinst hooks: $(ls /etc/kernel/postinst.d | tr '\\n' ' ')"
# The boot loader's: update-grub. (initramfs-tools' hook, which touches nothing the firmware or
# shim checks, takes over ten minutes under TCG: left out.)
run-parts --verbose --exit-on-error --regex='^zz-update-grub$' --arg="$v" \\
    --arg="/boot/vmlinuz-$v" /etc/kernel/postinst.d 2>&1
say "update: kernel hooks exit $?"
DEBIAN_FRONTEND=noninteractive dpkg-reconfigure shim-signed 2>&1
say "update: shim-signed postinst exit $?"
scripts=$(ls /var/lib/dpkg/info | grep '^grub-efi-amd64-signed\\.' | tr '\\n' ' ')
say "update: grub-efi-amd64-signed's dpkg files: $scripts"
say "esp after: $(esp)"
say "grub.cfg: $(head -n 3 /boot/grub/grub.cfg | tr '\\n' ';')"
sync
say "update: done"

# A row the platform's database keeps, then the daily backup as its timer starts it, with the
# CLAWDIE-BAK stick plugged in: what a restored box must have again (tests/test_boot_restore.py).
runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d system_brain \\
    -c "CREATE TABLE @TABLE@ (id serial PRIMARY KEY, note text)" \\
    -c "ALTER TABLE @TABLE@ OWNER TO clawdie" \\
    -c "INSERT INTO @TABLE@ (note) VALUES ('@ROW@')" 2>&1
say "backup: planted row exit $?"
say "backup: sticks $(lsblk -rno NAME,FSTYPE,LABEL | grep -i clawdie-bak | tr '\\n' ';')"
systemctl start clawdie-backup.service
say "backup: service exit $?"
say "backup: outcome $(tr -d '\\n' < /var/lib/clawdie-setup/backup-last.json)"
keys=$(for k in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf "$k"; done)
say "backup: ssh host keys $(echo "$keys" | tr '\\n' ';')"
sync
say "backup: done"
"""


def build_kit(dest: Path) -> Path:
    """The kit disk at `dest` (ext4, made with mke2fs -d: no root, no mount)."""
    staging = dest.with_name(dest.name + ".d")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, text in (("start", START), ("update", UPDATE)):
        script = staging / name
        script.write_text(
            text.replace("@PORT@", str(LISTENER_PORT))
            .replace("@TABLE@", ROW_TABLE)
            .replace("@ROW@", ROW)
        )
        script.chmod(0o755)
    dest.unlink(missing_ok=True)
    argv = ["mke2fs", "-q", "-t", "ext4", "-L", KIT_LABEL, "-d", str(staging), str(dest), KIT_SIZE]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{shlex.join(argv)} exited {proc.returncode}: {proc.stderr}")
    shutil.rmtree(staging)
    return dest


def with_switch(grub_cfg: str) -> str:
    """The installed grub.cfg with the hook's switch on each `linux` line (pure)."""
    lines = [
        f"{line} {SWITCH}" if line.lstrip().startswith("linux ") else line
        for line in grub_cfg.splitlines()
    ]
    assert any(SWITCH in line for line in lines), "the installed grub.cfg has no linux line"
    return "\n".join(lines) + "\n"


def switch_on(disk: Path, workdir: Path) -> None:
    """Put the hook's switch into the raw `disk`'s /boot/grub/grub.cfg, offline with debugfs."""
    with root_filesystem(disk) as node:
        cfg = read_file(node, "/boot/grub/grub.cfg")
    assert cfg is not None, "the installed disk has no /boot/grub/grub.cfg"
    local = workdir / "grub.cfg"
    local.write_text(with_switch(cfg.decode()))
    commands = "\n".join(
        [
            "cd /boot/grub",
            "rm grub.cfg",
            f"write {local} grub.cfg",
            "sif grub.cfg mode 0100444",
            "sif grub.cfg uid 0",
            "sif grub.cfg gid 0",
        ]
    )
    write_root(disk, commands, "grub.cfg")


def backup_stick(dest: Path) -> Path:
    """An owner's empty backup stick at `dest`: one FAT file system on the whole device,
    labelled CLAWDIE-BAK (made with mkfs.fat on a sparse file: no root, no mount)."""
    dest.unlink(missing_ok=True)
    with dest.open("wb") as stick:
        stick.truncate(BACKUP_STICK_KIB * 1024)
    argv = ["mkfs.fat", "-n", BACKUP_LABEL, str(dest)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{shlex.join(argv)} exited {proc.returncode}: {proc.stderr}")
    return dest
