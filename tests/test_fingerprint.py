"""The installation fingerprint against systemd's own derivation of an app-specific id."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from installer.fingerprint import (
    APP_ID,
    NoMachineIdError,
    installation_id,
    matches,
    read_fingerprint,
    short_fingerprint,
)
from installer.paths import TargetPaths

MACHINE_IDS = ["3d1219c7c4c5404aaa1f6d2a48adfda4", "00000000000000000000000000000001"]


@pytest.mark.skipif(shutil.which("systemd-id128") is None, reason="needs systemd-id128")
@pytest.mark.parametrize("machine_id", MACHINE_IDS)
def test_same_as_systemds_app_specific_id(machine_id: str, tmp_path: Path) -> None:
    # systemd-id128 reads the running system's id; give it ours through a private mount namespace
    fake = tmp_path / "machine-id"
    fake.write_text(machine_id + "\n")
    script = (
        f"mount --bind {fake} /etc/machine-id && "
        f"systemd-id128 machine-id --app-specific={APP_ID.hex}"
    )
    out = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert installation_id(machine_id) == uuid.UUID(out)


def test_two_machines_two_fingerprints_and_the_id_is_not_shown() -> None:
    first, second = (installation_id(m) for m in MACHINE_IDS)
    assert first != second
    assert MACHINE_IDS[0][:8] not in first.hex


def test_read_from_a_root_and_matched_as_typed(tmp_path: Path) -> None:
    paths = TargetPaths(tmp_path)
    paths.machine_id.parent.mkdir(parents=True)
    paths.machine_id.write_text(MACHINE_IDS[0] + "\n")
    shown = read_fingerprint(paths)
    assert shown == short_fingerprint(installation_id(MACHINE_IDS[0]))
    assert len(shown) == 8
    assert matches(shown.upper(), shown)
    assert matches(f"{shown[:4]}-{shown[4:]}", shown)
    assert not matches(shown[:7], shown)
    assert not matches("0" * 8 if shown != "0" * 8 else "1" * 8, shown)


def test_an_empty_machine_id_has_no_fingerprint(tmp_path: Path) -> None:
    paths = TargetPaths(tmp_path)
    paths.machine_id.parent.mkdir(parents=True)
    paths.machine_id.write_text("")  # the image's state before the first boot
    with pytest.raises(NoMachineIdError, match="not 32 hex digits"):
        read_fingerprint(paths)
    paths.machine_id.unlink()
    with pytest.raises(NoMachineIdError, match="cannot read"):
        read_fingerprint(paths)
