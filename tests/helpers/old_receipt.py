"""The receipt's write path before issue 22 (a temporary file, drop the old one, rename), kept
so the power-cut test can show it fails on it; a module of its own because the test runs it in
a traced child process, which imports it by name."""

from __future__ import annotations

import subprocess
from pathlib import Path

from installer.seed.entry import RECEIPT_NAME

# mtools as the tests run it: no geometry check, UTC times, the system's own tools.
ENV = {"MTOOLS_SKIP_CHECK": "1", "TZ": "UTC", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def old_write_path(image: str, tmp: Path, text: str) -> None:
    """The write path before: a temporary file, drop the old one, rename (seed_volume.py)."""
    local = tmp / "write"
    local.write_text(text)
    tmp_name = f"::/.{RECEIPT_NAME}.tmp"
    subprocess.run(["mcopy", "-o", "-i", image, str(local), tmp_name], env=ENV, check=True)
    # the old file is dropped when there is one (a first write has none)
    subprocess.run(["mdel", "-i", image, f"::/{RECEIPT_NAME}"], env=ENV, capture_output=True)
    subprocess.run(["mren", "-i", image, tmp_name, f"::/{RECEIPT_NAME}"], env=ENV, check=True)
