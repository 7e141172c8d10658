"""`just demo [SEED]`: the README's main job, for real (a throwaway PostgreSQL, a sandbox root)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from installer.dev.throwaway_pg import unavailable_reason

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_runs_an_operators_own_seed_and_ends_with_the_next_step(tmp_path: Path) -> None:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    seed = tmp_path / "my-setup.txt"
    text = (ROOT / "seed/demo-setup.txt").read_text()
    seed.write_text(text.replace("ASSISTANT_NAME=", "ASSISTANT_NAME=Zora\n#was ", 1))
    result = subprocess.run(
        [sys.executable, "-m", "installer.dev.demo", seed.name],
        cwd=tmp_path,  # a seed named from where the operator stands
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "zora" in result.stdout + result.stderr  # the host name made from this seed's name
    last = result.stderr.rstrip().splitlines()[-1]
    assert last.startswith("demo: first boot ran from my-setup.txt and the platform started.")
    assert "Next: flash a stick" in last
    assert "files first boot wrote" not in result.stderr  # the file list is --keep's
