"""The factory reset boot test's kit (tests/test_boot_reset.py): a small ext4 disk labelled
CLAWDIE-TESTKIT, run by the boot tests' hook (tests/helpers/clawdie-testkit.service, written into
the test's copy of the installed disk with debugfs, as the other kits' are). Once the platform
said PLATFORM-READY, it writes a sentinel row into the platform's database (the value only in a
file on the kit: never in an argument, a log line or the console), forces it to the disk with a
checkpoint, and says `row: written`.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

from tests.helpers.wifi_kit import KIT_LABEL

KIT_SIZE = "4M"
DATABASE = "system_ops"  # the platform's database PLATFORM-READY names

START = """#!/bin/sh
# Clawdie boot-test kit of the factory reset's boot (tests/helpers/reset_kit.py).
set -eu
kit=$(dirname "$(readlink -f "$0")")
systemd-run --quiet --unit=testkit-row "$kit/row"
echo "TESTKIT: started: the row waits for the platform"
"""

ROW = """#!/bin/sh
# After PLATFORM-READY: a row in the platform's database, on the disk.
set -u
say() { echo "TESTKIT: $*"; }
kit=$(dirname "$(readlink -f "$0")")
n=0
until journalctl -b -o cat -u clawdie.service | grep -q PLATFORM-READY; do
    n=$((n + 1))
    if [ "$n" -gt 900 ]; then say "row: no PLATFORM-READY in 900 s"; exit 1; fi
    sleep 1
done
runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d @DATABASE@ -f "$kit/row.sql" \\
    >/dev/null 2>&1
say "row: psql exit $?"
sync
say "row: written"
"""

# The reset's boot: the kit's disk is there (the hook finds it at once) and does nothing.
IDLE = """#!/bin/sh
echo "TESTKIT: started: nothing to do on this boot"
"""

SQL = """\
CREATE TABLE testkit_planted (note text NOT NULL);
INSERT INTO testkit_planted (note) VALUES ('@ROW@');
CHECKPOINT;
"""


def build_kit(dest: Path, row: str | None) -> Path:
    """The kit disk at `dest` (ext4, made with mke2fs -d: no root, no mount) that writes `row`,
    or (None) does nothing."""
    staging = dest.with_name(dest.name + ".d")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    files = [("start", IDLE, 0o755)]
    if row is not None:
        files = [
            ("start", START, 0o755),
            ("row", ROW.replace("@DATABASE@", DATABASE), 0o755),
            ("row.sql", SQL.replace("@ROW@", row), 0o644),
        ]
    for name, text, mode in files:
        path = staging / name
        path.write_text(text)
        path.chmod(mode)
    dest.unlink(missing_ok=True)
    argv = ["mke2fs", "-q", "-t", "ext4", "-L", KIT_LABEL, "-d", str(staging), str(dest), KIT_SIZE]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{shlex.join(argv)} exited {proc.returncode}: {proc.stderr}")
    shutil.rmtree(staging)
    return dest
