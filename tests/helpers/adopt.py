"""Adopt as its tests run it: a box first boot set up (with the owner's adopt code kept next to
it), an adopt seed for it, `clawdie-setup adopt` in a new process, and what the box shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from installer.envfile import parse_env_file
from installer.fingerprint import read_fingerprint
from installer.paths import TargetPaths
from tests.helpers.firstboot import ROOT, firstboot
from tests.helpers.pg import PgCluster, db_cli_args
from tests.helpers.seeds import ED25519, firstboot_box
from tests.helpers.sentinels import OPENROUTER, TOKEN

MACHINE_ID = "4f1c2a9be07d4c3a9a51d2e8b6c07f13"


SEED = f"""\
TELEGRAM_BOT_TOKEN={TOKEN}
TELEGRAM_ADMIN_ID=123456789
OPENROUTER_API_KEY={OPENROUTER}
ASSISTANT_NAME=Ada
PROFILE=balanced
SSH_AUTHORIZED_KEY={ED25519}
"""


def installed_box(where: Path, pg: PgCluster, seed: str = SEED) -> Path:
    """A box first boot set up from `seed`, with a machine id (so it has a fingerprint). The
    adopt code its receipt showed the owner is kept next to the box (outside its root and the
    stick, which later receipts overwrite) in `owner-code`."""
    box = firstboot_box(where, seed)
    (box / "root/etc/machine-id").write_text(f"{MACHINE_ID}\n")
    result = firstboot(box, pg)
    assert result.returncode == 0, result.stderr
    (box / "owner-code").write_text(code_on_receipt(receipt(box)))
    return box


def code_on_receipt(text: str) -> str:
    """The adopt code a first-boot receipt (or a Telegram report) shows, once."""
    codes = re.findall(r"^  ADOPT_CODE=([2-9A-HJKMNP-Z]{4}(?:-[2-9A-HJKMNP-Z]{4}){3})$", text, re.M)
    assert len(codes) == 1, text
    return str(codes[0])


def owner_code(box: Path) -> str:
    return (box / "owner-code").read_text()


def fingerprint(box: Path) -> str:
    return read_fingerprint(TargetPaths(box / "root"))


def adopt_seed(
    box: Path, *lines: str, fingerprint_line: str | None = None, code_line: str | None = None
) -> Path:
    """An adopt seed of just `lines` (the installation fills in everything else), with the
    box's fingerprint and its owner's code unless told otherwise ("" leaves a line out)."""
    fp = f"INSTALL_FINGERPRINT={fingerprint(box)}" if fingerprint_line is None else fingerprint_line
    code = f"ADOPT_CODE={owner_code(box)}" if code_line is None else code_line
    path = box / "adopt.txt"
    head = [line for line in ("INSTALL_MODE=adopt", fp, code) if line]
    path.write_text("\n".join([*head, *lines]) + "\n")
    return path


def adopt(
    box: Path, pg: PgCluster, seed: Path, *, fault: str | None = None, timeout_ms: int = 20000
) -> subprocess.CompletedProcess[str]:
    """`clawdie-setup adopt` in a new process; a restart appends a line to box/restarts."""
    env = {k: v for k, v in os.environ.items() if k != "CLAWDIE_FIRSTBOOT_FAULT"}
    if fault:
        env["CLAWDIE_FIRSTBOOT_FAULT"] = fault
    argv = [
        sys.executable,
        "-m",
        "installer.cli",
        "adopt",
        "--root",
        str(box / "root"),
        "--seed",
        str(seed),
        *db_cli_args(pg, timeout_ms),
        "--platform-start",
        f"sh -c 'echo restarted >> {box}/restarts'",
        "--receipt-dir",
        str(box / "stick"),
    ]
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=ROOT, env=env, check=False, timeout=120
    )


def env_of(box: Path) -> dict[str, str]:
    return parse_env_file((box / "root/etc/clawdie/system.env").read_text())


def restarts(box: Path) -> int:
    path = box / "restarts"
    return len(path.read_text().splitlines()) if path.exists() else 0


def receipt(box: Path) -> str:
    return (box / "stick/SETUP-RESULT.txt").read_text()
