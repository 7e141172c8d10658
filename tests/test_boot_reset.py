"""Factory reset from a stick on the installed disk, under QEMU (issue 24, DESIGN §9): the seed's
secrets and a row the platform's database holds are on the raw disk before (the search finds
them: it can fail), and nowhere on it after the reset; the console says the box waits for a
seed.

The disk is a raw copy of the boots' one Secure Boot install (tests/helpers/boot_lane.py), with
the kit's hook written in offline: not a qcow2 overlay, because a guest's discard reaches a raw
file as holes (QEMU punches them), while a qcow2 overlay drops a discard smaller than its 64 KiB
cluster and keeps the backing file's bytes under it. First boot of the copy: the kit
(tests/helpers/reset_kit.py) writes the row once the platform is up. Second boot: the reset
stick (INSTALL_MODE=reset, the fingerprint and the adopt code, both read from the installed disk
offline) through the adopt gate; the disk's discards reach the image (`discard=unmap`).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from installer.fingerprint import installation_id, short_fingerprint
from installer.media.receipt_file import read_receipt
from tests.helpers import reset_kit, vm
from tests.helpers.boot_lane import (
    FIRSTBOOT_BOUND,
    Machine,
    keep_figures,
    keep_logs,
    record,
)
from tests.helpers.disk_image import (
    machine_identities,
    queued_adopt_code,
    raw_counts,
    read_file,
    root_filesystem,
)
from tests.helpers.image import copy_image
from tests.helpers.seeds import OPENROUTER, PASSWORD, TOKEN
from tests.helpers.sentinels import ROW
from tests.helpers.update_kit import switch_on
from tests.helpers.wifi_kit import with_kit_hook

pytestmark = [pytest.mark.boot, pytest.mark.timeout(3000)]

SECRETS = {"bot token": TOKEN, "OpenRouter key": OPENROUTER, "operator password": PASSWORD}
WAITS_FOR_A_SEED = "The box now waits for a seed"


def row_boot(disk: Path, workdir: Path) -> None:
    """The copy's later boot with the kit: the row written, then a clean power-off."""
    kit = reset_kit.build_kit(workdir / "kit.img", ROW)
    try:
        with vm.Vm(
            workdir=workdir, disk=disk, firmware="uefi", name="reset-row",
            extra_args=[
                "-drive", f"if=none,id=kit,format=raw,readonly=on,file={kit}",
                "-device", "virtio-blk-pci,drive=kit,serial=CLAWDIE-TESTKIT",
            ],
        ) as guest:  # fmt: skip
            guest.wait_for(
                re.compile(r"PLATFORM-READY role=clawdie"), FIRSTBOOT_BOUND, name="PLATFORM-READY"
            )
            found = guest.wait_for(
                re.compile(r"TESTKIT: row: (psql exit \d+|no PLATFORM-READY.*)"),
                FIRSTBOOT_BOUND,
                name="row",
            )
            assert found.group(1) == "psql exit 0", found.group(1)
            guest.wait_for("TESTKIT: row: written", 120, name="row written")
            guest.qmp.execute("system_powerdown")
            guest.wait_exit(300)
            assert guest.exit_reason() == "guest-shutdown"
            record("reset-row", guest)
    finally:
        keep_logs(workdir)


def reset_boot(disk: Path, stick: Path, workdir: Path) -> str:
    """The disk booted with the reset stick plugged in: the adopt unit's gate, the reset, its
    outcome on the console; then a clean power-off. The serial log's text. (The kit's disk is
    there and idle: without it the hook would wait 30 s for it before the login prompt.)"""
    kit = reset_kit.build_kit(workdir / "idle-kit.img", None)
    try:
        with vm.Vm(
            workdir=workdir, disk=disk, stick=stick, stick_boots=False, firmware="uefi",
            name="reset", disk_options=",discard=unmap",
            extra_args=[
                "-drive", f"if=none,id=kit,format=raw,readonly=on,file={kit}",
                "-device", "virtio-blk-pci,drive=kit,serial=CLAWDIE-TESTKIT",
            ],
        ) as guest:  # fmt: skip
            started = guest.wait_for(
                "Starting clawdie-adopt.service", FIRSTBOOT_BOUND, name="reset starts"
            )
            guest.wait_for(WAITS_FOR_A_SEED, FIRSTBOOT_BOUND, after=started, name="reset done")
            guest.wait_for(re.compile(r"login:"), 300, name="login prompt")
            text = guest.log_text()
            guest.qmp.execute("system_powerdown")
            guest.wait_exit(300)
            assert guest.exit_reason() == "guest-shutdown"
            record("reset", guest)
    finally:
        keep_logs(workdir)
    return text


def counted(disk: Path, values: dict[str, str]) -> tuple[dict[str, int], float]:
    began = time.monotonic()
    return raw_counts(disk, values), time.monotonic() - began


@pytest.mark.xdist_group("uefi-disk")
def test_a_reset_stick_leaves_no_secret_and_no_row_on_the_raw_disk(
    secureboot_machine: Machine, installer_image: Path, tmp_path: Path
) -> None:
    machine_id = machine_identities(secureboot_machine.disk)["machine id"].strip()
    fingerprint = short_fingerprint(installation_id(machine_id))
    code = queued_adopt_code(secureboot_machine.disk)
    began = time.monotonic()
    disk = with_kit_hook(secureboot_machine.disk, tmp_path / "disk.img")
    switch_on(disk, tmp_path)
    row_boot(disk, tmp_path)
    cluster_before = machine_identities(disk)["PostgreSQL system identifier"]
    wanted = {**SECRETS, "the platform's row": ROW}
    before, grep_s = counted(disk, wanted)
    for what in ("bot token", "OpenRouter key", "the platform's row"):
        assert before[what] >= 1, (what, before)  # the search finds what is there

    stick = copy_image(installer_image, tmp_path / "reset-stick.img")
    seed = ["INSTALL_MODE=reset", f"INSTALL_FINGERPRINT={fingerprint}", f"ADOPT_CODE={code}"]
    vm.write_seed(stick, ("\n".join(seed) + "\n").encode())
    text = reset_boot(disk, stick, tmp_path)
    after, _ = counted(disk, wanted)
    assert after == dict.fromkeys(wanted, 0), (before, after)

    data = vm.read_seed_file(stick, "SETUP-RESULT.txt")
    receipt = read_receipt(data or b"") or ""
    assert receipt.startswith("Clawdie factory reset: ok (setup.txt)"), receipt
    assert re.search(r"PostgreSQL \d+ cluster: \d+ files overwritten and removed", receipt), receipt
    assert WAITS_FOR_A_SEED in text  # on the console
    for secret in (*SECRETS.values(), ROW, code):
        assert secret not in text
        assert secret not in receipt
    with root_filesystem(disk) as device:
        assert read_file(device, "/var/lib/clawdie-setup/firstboot/complete.done") is None
        assert read_file(device, "/etc/clawdie/system.env") is None
    cluster_after = machine_identities(disk)["PostgreSQL system identifier"]
    assert cluster_after != cluster_before, "a new cluster, with its own system identifier"
    print(f"factory reset boot test: before {before}, after {after}; grep {grep_s:.1f} s")
    spent = round(time.monotonic() - began, 1)
    keep_figures("reset", {"grep of the raw disk (s)": round(grep_s, 1), "test (s)": spent})
