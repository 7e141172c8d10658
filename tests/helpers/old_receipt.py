"""The receipt's write path before issue 22 (a temporary file, drop the old one, rename), kept
so the power-cut test can show it fails on it; a module of its own because the test runs it in
a traced child process, which imports it by name."""

from __future__ import annotations

import subprocess
from pathlib import Path

from installer.bundle import build_bundle
from installer.seed.entry import RECEIPT_NAME
from installer.seed.scrub import render_scrubbed_in_place

# mtools as the tests run it: no geometry check, UTC times, the system's own tools.
ENV = {"MTOOLS_SKIP_CHECK": "1", "TZ": "UTC", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def old_write_path(image: str, tmp: Path, text: str | bytes, name: str = RECEIPT_NAME) -> None:
    """The write path before: a temporary file, drop the old one, rename (seed_volume.py's
    MtoolsVolume.write_atomic, which the bundle and the scrubbed seed went through too)."""
    local = tmp / "write"
    local.write_bytes(text.encode() if isinstance(text, str) else text)
    tmp_name = f"::/.{name}.tmp"
    subprocess.run(["mcopy", "-o", "-i", image, str(local), tmp_name], env=ENV, check=True)
    # the old file is dropped when there is one (a first write has none)
    subprocess.run(["mdel", "-i", image, f"::/{name}"], env=ENV, capture_output=True)
    subprocess.run(["mren", "-i", image, tmp_name, f"::/{name}"], env=ENV, check=True)


# -- what the cut tests write (the same bytes in every process: the traced child imports these)

SECTOR = 512
BUNDLE_TEST_BYTES = 32 * 1024  # the bundle file's layout at a size with few sectors to cut


def bundle(number: int) -> bytes:
    """A real log bundle (tar.gz), the same bytes in every process."""
    text = f"bundle {number}\n" + "install: a log line of the failed run\n" * 100
    return build_bundle([("clawdie-setup.log", text)], 1_765_000_000 + number, clean=str)


TOKEN = "7012345678:AAH" + "t" * 32
SECRET_LINES = (
    f"TELEGRAM_BOT_TOKEN={TOKEN}",
    "OPENROUTER_API_KEY=sk-or-v1-" + "0123456789abcdef" * 4,
    "OPERATOR_PASSWORD=correct horse battery",
)


def operator_seed() -> bytes:
    """A filled-in setup.txt of a few sectors, CRLF as Notepad writes it, with the token's line
    across the first sector boundary and the other secrets in later sectors."""
    lines = [
        f"# line {n} of the operator's notes about this box, kept as written" for n in range(7)
    ]
    head = "\r\n".join(lines) + "\r\n"
    lines.append("#" + "-" * (SECTOR - 20 - len(head)))  # the token starts 20 bytes before 512
    lines += [
        SECRET_LINES[0],
        "TELEGRAM_ADMIN_ID=123456789",
        "ASSISTANT_NAME=Ada",
        *[
            f"# a comment the operator wrote, number {n}, which must never be lost"
            for n in range(9)
        ],
        SECRET_LINES[1],
        "PROFILE=economy",
        "OPERATOR_EMAIL=ada@example.org",
        *[f"# another note, number {n}" for n in range(12)],
        SECRET_LINES[2],
        "SEED_SCRUB=yes",
        "TIMEZONE=Europe/Berlin",
    ]
    data = ("\r\n".join(lines) + "\r\n").encode()
    assert data.index(b"TELEGRAM_BOT_TOKEN") < SECTOR < data.index(TOKEN.encode())
    return data


def scrubbed_seed() -> bytes:
    return render_scrubbed_in_place(operator_seed(), host="ada", when="2026-12-07T08:00:00Z").data
