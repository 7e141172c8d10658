"""The restored box's test kit (tests/test_boot_restore.py): a small ext4 disk labelled
CLAWDIE-TESTKIT, run by the boot tests' hook (tests/helpers/clawdie-testkit.service, written into
box B's installed disk with debugfs before its first boot, GRUB's switch with it, as the update
kit's). The product carries no test hook.

What `start` does (every line it prints is `TESTKIT:`, on the serial console through journald):
in the background, once the platform said PLATFORM-READY, the row the backed-up box's kit wrote
(tests/helpers/update_kit.py, `ROW_TABLE`) as the restored database answers it, and the SSH host
keys' fingerprints as the box itself prints them; then `restore: done`.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

from tests.helpers.update_kit import KIT_SIZE, ROW_TABLE
from tests.helpers.wifi_kit import KIT_LABEL

PLATFORM_WAIT_S = 1500  # first boot restores first: its bound and the platform's start

START = """#!/bin/sh
# Clawdie boot-test kit of the restored box (tests/helpers/restore_kit.py).
set -eu
kit=$(dirname "$(readlink -f "$0")")
systemd-run --quiet --unit=testkit-restore "$kit/check"
echo "TESTKIT: started: the check waits for the platform"
"""

CHECK = """#!/bin/sh
# After PLATFORM-READY: the backed-up box's row and the SSH host keys, as this box has them.
set -u
say() { echo "TESTKIT: $*"; }
n=0
until journalctl -b -o cat -u clawdie.service | grep -q PLATFORM-READY; do
    n=$((n + 1))
    if [ "$n" -gt @WAIT@ ]; then say "restore: no PLATFORM-READY in @WAIT@ s"; exit 1; fi
    sleep 1
done
rows=$(runuser -u postgres -- psql -X -tA -d system_brain -c 'SELECT note FROM @TABLE@' 2>&1)
say "restore: rows $(echo "$rows" | tr '\\n' ';')"
keys=$(for k in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf "$k"; done)
say "restore: ssh host keys $(echo "$keys" | tr '\\n' ';')"
say "restore: done"
"""


def build_kit(dest: Path) -> Path:
    """The kit disk at `dest` (ext4, made with mke2fs -d: no root, no mount)."""
    staging = dest.with_name(dest.name + ".d")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    check = CHECK.replace("@WAIT@", str(PLATFORM_WAIT_S)).replace("@TABLE@", ROW_TABLE)
    for name, text in (("start", START), ("check", check)):
        script = staging / name
        script.write_text(text)
        script.chmod(0o755)
    dest.unlink(missing_ok=True)
    argv = ["mke2fs", "-q", "-t", "ext4", "-L", KIT_LABEL, "-d", str(staging), str(dest), KIT_SIZE]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{shlex.join(argv)} exited {proc.returncode}: {proc.stderr}")
    shutil.rmtree(staging)
    return dest
