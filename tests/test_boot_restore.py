"""Backup and restore onto a new box, booted (DESIGN §9, issue 24): a dead disk costs an evening.

Box A is the shared Secure Boot install (tests/helpers/boot_lane.py), whose seed names the
owner's backup key (BACKUP_RECIPIENT); in its plain-UEFI later boot (`uefi_later`) the kit writes
a row into the platform's database and starts the scheduled backup with a stick labelled
CLAWDIE-BAK plugged in (tests/helpers/update_kit.py). Box B is a new blank disk: the installer
stick with a restore seed (INSTALL_MODE=restore, the owner's BACKUP_IDENTITY, the backup copied
from A's stick next to setup.txt) installs it under plain UEFI, and its first boot restores
instead of setting a new box up, with the stick still in (the receipt is written back to it)
and a kit that asks the restored database for A's row (tests/helpers/restore_kit.py). B reaches
PLATFORM-READY with A's operator, A's host name and SSH host keys, its own machine id, and the
receipt lists what was restored.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pyrage  # type: ignore[import-untyped]
import pytest

from installer.backup.manifest import MANIFEST_NAME
from tests.helpers import vm
from tests.helpers.boot_lane import (
    FIRSTBOOT_BOUND,
    LaterBoot,
    Machine,
    install,
    keep_logs,
    record,
    record_journal,
    serial_text,
)
from tests.helpers.disk_image import list_dir, read_file, root_filesystem
from tests.helpers.restore_kit import build_kit
from tests.helpers.sentinels import BACKUP_IDENTITY, ROW, leaked
from tests.helpers.update_kit import switch_on
from tests.helpers.wifi_kit import write_kit_hook

pytestmark = [
    pytest.mark.boot,
    pytest.mark.timeout(3600),
    pytest.mark.xdist_group("uefi-disk"),  # box A is the Secure Boot machine's later boot
    pytest.mark.skipif(
        not (vm.OVMF_CODE_SECBOOT.is_file() and vm.OVMF_VARS_MS.is_file()),
        reason="needs OVMF's Secure Boot build (Debian's ovmf package)",
    ),
]

RUN = "uefi-restore"
HOST = "boot-test"  # box A's host name (derived from the seed's ASSISTANT_NAME)
BACKUP_NAME = re.compile(rf"^{HOST}-\d{{4}}-\d\d-\d\d\.backup\.age$")
MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


@dataclass(frozen=True)
class Backup:
    name: str
    data: bytes


def stick_backups(stick: Path) -> list[Backup]:
    """The .backup.age files at the top of the FAT stick image `stick` (read with mtools)."""
    listing = subprocess.run(
        ["mdir", "-b", "-i", str(stick), "::/"], capture_output=True, text=True, env=MTOOLS_ENV,
        check=True,
    ).stdout  # fmt: skip
    names = [line.removeprefix("::/") for line in listing.splitlines()]
    found = []
    for name in sorted(n for n in names if n.endswith(".backup.age")):
        data = subprocess.run(
            ["mcopy", "-n", "-i", str(stick), f"::/{name}", "-"], capture_output=True,
            env=MTOOLS_ENV, check=True,
        ).stdout  # fmt: skip
        found.append(Backup(name, data))
    return found


def manifest_of(data: bytes) -> dict[str, object]:
    """The backup's manifest, decrypted with the owner's identity (the box cannot)."""
    plain = pyrage.decrypt(data, [pyrage.x25519.Identity.from_str(BACKUP_IDENTITY)])
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        member = tar.extractfile(MANIFEST_NAME)
        assert member is not None, "no manifest in the backup"
        return json.loads(member.read())  # type: ignore[no-any-return]


def kit_line(text: str, head: str) -> str:
    found = re.search(rf"TESTKIT: {head} ?(.*)", text)
    assert found, f"the kit printed no `{head}` line"
    return found.group(1).strip()


def host_key_fingerprints(disk: Path) -> dict[str, str]:
    """Every SSH host public key of a (shut down) installed disk: file -> `ssh-keygen -l`'s
    fingerprint, computed here from the bytes read offline."""
    found = {}
    with root_filesystem(disk) as device:
        names = re.findall(r"ssh_host_\w+_key\.pub", list_dir(device, "/etc/ssh"))
        for name in sorted(set(names)):
            data = read_file(device, f"/etc/ssh/{name}")
            assert data, f"/etc/ssh/{name} is empty on {disk.name}"
            out = subprocess.run(
                ["ssh-keygen", "-l", "-f", "-"], input=data, capture_output=True, check=True
            ).stdout.decode()
            found[name] = out.split()[1]
    return found


def machine_id(disk: Path) -> str:
    with root_filesystem(disk) as device:
        return (read_file(device, "/etc/machine-id") or b"").decode().strip()


def the_backup(later: LaterBoot) -> Backup:
    assert later.backup_stick is not None, "the later boot had no backup stick"
    backups = stick_backups(later.backup_stick)
    assert len(backups) == 1, f"the stick should hold one backup: {[b.name for b in backups]}"
    return backups[0]


def test_a_box_backs_up_to_its_clawdie_backup_stick(uefi_later: LaterBoot) -> None:
    """Box A, after PLATFORM-READY: a row in the platform's database, then the scheduled
    backup service with a CLAWDIE-BAK stick plugged in. The outcome record says ok and names the
    stick; the stick holds one file named for the host and the date, age-encrypted (the row is
    not in it in clear), whose manifest the owner's identity opens: A's host name and its three
    databases."""
    text = uefi_later.text
    assert kit_line(text, "backup: planted row exit") == "0"
    assert "CLAWDIE-BAK" in kit_line(text, "backup: sticks"), "the guest saw no backup stick"
    assert kit_line(text, "backup: service exit") == "0", kit_line(text, "backup: outcome")
    outcome = json.loads(kit_line(text, "backup: outcome"))
    assert outcome["outcome"] == "ok", outcome
    backup = the_backup(uefi_later)
    assert BACKUP_NAME.match(backup.name), backup.name
    assert backup.data.startswith(b"age-encryption.org/v1\n")
    assert ROW.encode() not in backup.data
    manifest = manifest_of(backup.data)
    assert manifest["host"] == HOST, manifest
    parts = manifest["parts"]
    assert isinstance(parts, list)
    databases = {str(p["name"]) for p in parts if p.get("kind") == "database"}
    names = ("system_ops", "system_brain", "system_skills")
    assert databases == {f"databases/{d}.dump" for d in names}, databases


@dataclass(frozen=True)
class Restored:
    machine: Machine
    backup: str  # the backup's file name
    install_log: str  # B's install's serial text
    text: str  # B's first boot's serial text
    ready: vm.VmMatch


def restore_seed(backup: Backup) -> bytes:
    lines = [
        "INSTALL_MODE=restore",
        f"BACKUP_IDENTITY={BACKUP_IDENTITY}",
        f"BACKUP_FILE={backup.name}",
    ]
    return ("\n".join(lines) + "\n").encode()


def restoring_first_boot(machine: Machine, kit: Path) -> tuple[str, vm.VmMatch]:
    """B's first boot: the disk boots (the stick stays in, not booted), first boot restores, the
    platform says PLATFORM-READY, the kit asks the database; a clean power-off."""
    try:
        with vm.Vm(
            workdir=machine.workdir, disk=machine.disk, stick=machine.stick, stick_boots=False,
            firmware=machine.firmware, name="firstboot",
            extra_args=[
                "-drive", f"if=none,id=kit,format=raw,readonly=on,file={kit}",
                "-device", "virtio-blk-pci,drive=kit,serial=CLAWDIE-TESTKIT",
            ],
        ) as guest:  # fmt: skip
            started = guest.wait_for(
                "Starting clawdie-firstboot.service", FIRSTBOOT_BOUND, name="first boot starts"
            )
            finished = guest.wait_for(
                re.compile(r"(Finished|Failed to start) clawdie-firstboot\.service"),
                FIRSTBOOT_BOUND, after=started, name="first boot done",
            )  # fmt: skip
            ready = guest.wait_for(
                re.compile(r"PLATFORM-READY role=(\S+) db=(\S+) operators=(\d+)"),
                FIRSTBOOT_BOUND,
                name="PLATFORM-READY",
            )
            guest.wait_for("TESTKIT: restore: done", 600, name="kit checked")
            guest.wait_for(re.compile(r"login:"), 300, after=finished, name="login prompt")
            text = guest.log_text()
            guest.qmp.execute("system_powerdown")
            guest.wait_exit(300)
            assert guest.exit_reason() == "guest-shutdown", "the power button should shut down"
            record(RUN, guest, **{"our first-boot service (s)": finished.elapsed - started.elapsed})
    finally:
        keep_logs(machine.workdir)
    record_journal(RUN, machine, guest, "first boot (restore)", text)
    return text, ready


@pytest.fixture(scope="module")
def restored(
    uefi_later: LaterBoot, installer_image: Path, tmp_path_factory: pytest.TempPathFactory
) -> Restored:
    """Box B: a new blank disk, the installer stick with the restore seed and A's backup next to
    it; installed under plain UEFI, then its first boot (the kit's hook written in first)."""
    backup = the_backup(uefi_later)
    workdir = tmp_path_factory.mktemp(RUN)
    machine = Machine(workdir, installer_image, restore_seed(backup), "uefi")
    vm.write_seed(machine.stick, backup.data, backup.name)
    install(machine, RUN)
    write_kit_hook(machine.disk)
    switch_on(machine.disk, workdir)
    text, ready = restoring_first_boot(machine, build_kit(workdir / "kit.img"))
    return Restored(machine, backup.name, serial_text(workdir, "install"), text, ready)


def test_a_new_box_restored_from_the_backup_is_the_backed_up_one(
    restored: Restored, secureboot_machine: Machine
) -> None:
    """Box B after its first boot: PLATFORM-READY with A's operator (B's seed has none), A's
    row in the restored database, A's SSH host keys (clients see no warning) and host name, its
    own machine id, and the receipt on the stick lists the restore. The owner's identity is in
    no log and not on the receipt."""
    text, machine = restored.text, restored.machine
    assert "Finished clawdie-firstboot.service" in text, "first boot did not finish"
    assert restored.ready.group(1) == "clawdie"
    assert restored.ready.group(3) == "1", "A's dashboard operator should be restored"
    assert ROW in kit_line(text, "restore: rows").split(";"), kit_line(text, "restore: rows")
    # the SSH host keys, read offline from both disks (A's as its install left them)
    theirs = host_key_fingerprints(secureboot_machine.disk)
    ours = host_key_fingerprints(machine.disk)
    assert ours == theirs, f"B's host keys differ from A's: {ours} != {theirs}"
    assert ours, "no SSH host keys on A"
    for fingerprint in ours.values():  # and as the running box printed them
        assert fingerprint in kit_line(text, "restore: ssh host keys")
    assert machine_id(machine.disk) != machine_id(secureboot_machine.disk)
    with root_filesystem(machine.disk) as device:
        hostname = (read_file(device, "/etc/hostname") or b"").decode().strip()
    assert hostname == HOST
    assert f"install: restore seed and backup {restored.backup} (" in restored.install_log
    receipt = machine.receipt()  # first boot's, written back to the stick left in
    assert f"Restored from {restored.backup}: host {HOST}" in receipt, receipt
    assert "Databases: system_ops, system_brain, system_skills" in receipt, receipt
    assert "machine id: this machine's own" in receipt, receipt
    assert not leaked(text + receipt + restored.install_log)
