"""Read files out of an installed disk image after its VM shut down: the root file system (GPT
partition 3, ext4) on a read-only loop device, read with debugfs (nothing is mounted, nothing
written). Needs root and e2fsprogs."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.helpers.vm import read_partitions

ROOT_PARTITION = 3


@contextlib.contextmanager
def root_filesystem(disk: Path, *, writable: bool = False) -> Iterator[str]:
    """A loop device over the disk image's root partition (read-only unless `writable`)."""
    part = next(p for p in read_partitions(disk) if p.number == ROOT_PARTITION)
    node = subprocess.run(
        ["losetup", *([] if writable else ["--read-only"]), "--find", "--show",
         "--offset", str(part.start), "--sizelimit", str(part.size), str(disk)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:
        yield node
    finally:
        subprocess.run(["losetup", "--detach", node], check=False)


def write_root(disk: Path, commands: str, what: str) -> None:
    """Run debugfs `commands` (one a line) writable on the disk image's root file system,
    offline; any complaint of debugfs fails the test, naming `what` was being written."""
    with root_filesystem(disk, writable=True) as node:
        proc = subprocess.run(
            ["debugfs", "-w", "-f", "-", node],
            input=commands,
            capture_output=True,
            text=True,
            check=False,
        )
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("debugfs ")]
    if proc.returncode != 0 or errors:
        raise AssertionError(f"debugfs could not write {what}: {proc.stderr}")


def raw_counts(image: Path, values: dict[str, str]) -> dict[str, int]:
    """How many times each value is in the raw bytes of `image` (a raw disk or file system
    image: every block, used or freed), read in chunks and skipping the sparse file's holes."""
    needles = {what: value.encode() for what, value in values.items()}
    overlap = max(len(n) for n in needles.values()) - 1
    counts = dict.fromkeys(needles, 0)
    with image.open("rb") as f:
        fd, end, pos = f.fileno(), os.fstat(f.fileno()).st_size, 0
        while pos < end:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            stop = os.lseek(fd, start, os.SEEK_HOLE)
            tail = b""
            while start < stop:
                chunk = os.pread(fd, min(16 << 20, stop - start), start)
                if not chunk:
                    break
                for what, needle in needles.items():
                    # the end of the previous chunk, too short to hold this needle whole
                    carried = tail[len(tail) - len(needle) + 1 :] if len(needle) > 1 else b""
                    counts[what] += (carried + chunk).count(needle)
                tail = (tail + chunk)[-overlap:] if overlap else b""
                start += len(chunk)
            pos = stop
    return counts


def read_file(device: str, path: str) -> bytes | None:
    """The bytes of `path` in the ext4 file system on `device`, None when it does not exist."""
    proc = subprocess.run(
        ["debugfs", "-R", f"cat {path}", device], capture_output=True, check=False
    )
    if b"File not found" in proc.stderr or proc.returncode != 0:
        return None
    return proc.stdout


def list_dir(device: str, path: str) -> str:
    """`debugfs ls` of a directory on `device` (names of its entries, links included)."""
    proc = subprocess.run(
        ["debugfs", "-R", f"ls {path}", device], capture_output=True, text=True, check=False
    )
    return proc.stdout if proc.returncode == 0 else ""


def telegram_retry_state(disk: Path) -> tuple[str, bytes | None]:
    """Whether the retry timer is enabled (the timers.target wants entry) and the queued
    report, on an installed (and shut down) disk."""
    with root_filesystem(disk) as device:
        wants = list_dir(device, "/etc/systemd/system/timers.target.wants")
        queued = read_file(device, "/var/lib/clawdie-setup/telegram-queue/first-boot.json")
    return wants, queued


def queued_adopt_code(disk: Path) -> str:
    """The adopt code the first-boot Telegram report shows its admin, read from that report
    where it waits (queued: the boot tests' machines have no network), on a shut-down disk."""
    import json
    import re

    _, queued = telegram_retry_state(disk)
    assert queued is not None, "no queued first-boot report on the disk"
    text = json.loads(queued)["text"]
    codes = re.findall(r"^  ADOPT_CODE=([2-9A-HJKMNP-Z]{4}(?:-[2-9A-HJKMNP-Z]{4}){3})$", text, re.M)
    assert len(codes) == 1, text
    return str(codes[0])


# What an adopt stick could change: compared before and after a refused one.
ADOPT_TARGETS = (
    "/etc/clawdie/system.env",
    "/etc/clawdie/setup.resolved.json",
    "/etc/shadow",
    "/etc/ssh/sshd_config.d/clawdie.conf",
    "/etc/hostname",
    "/var/lib/clawdie/.ssh/authorized_keys",
    "/var/lib/clawdie-setup/adopt-summary.txt",
)


def adopt_state(disk: Path, fmt: str = "raw") -> tuple[dict[str, bytes | None], list[str]]:
    """The files an adopt run writes (`ADOPT_TARGETS`) and the names in the Telegram queue, on
    a shut-down disk (a qcow2 overlay is read through a raw copy)."""
    raw = disk
    if fmt != "raw":
        raw = disk.with_suffix(".state.raw")
        subprocess.run(
            ["qemu-img", "convert", "-f", fmt, "-O", "raw", str(disk), str(raw)], check=True
        )
    try:
        with root_filesystem(raw) as device:
            files = {path: read_file(device, path) for path in ADOPT_TARGETS}
            queue = list_dir(device, "/var/lib/clawdie-setup/telegram-queue").split()
            messages = [
                (read_file(device, f"/var/lib/clawdie-setup/telegram-queue/{name}") or b"").decode()
                for name in queue
                if name.startswith("adopt-2")
            ]
    finally:
        if raw != disk:
            raw.unlink()
    return files, messages


def pg_system_identifier(control: bytes) -> int:
    """The cluster's system identifier: pg_control starts with it (uint64, little-endian)."""
    return int.from_bytes(control[:8], "little")


def machine_identities(disk: Path) -> dict[str, str]:
    """Every per-machine identity of an installed (and shut down) disk, as comparable text."""
    with root_filesystem(disk) as device:

        def text(path: str) -> str:
            data = read_file(device, path)
            assert data, f"{path} is missing or empty on {disk.name}"
            return data.decode().strip()

        def digest(path: str) -> str:
            data = read_file(device, path)
            assert data, f"{path} is missing or empty on {disk.name}"
            return hashlib.sha256(data).hexdigest()

        control = read_file(device, "/var/lib/postgresql/15/main/global/pg_control")
        assert control, f"no PostgreSQL cluster on {disk.name}"
        return {
            "machine id": text("/etc/machine-id"),
            "SSH host key": text("/etc/ssh/ssh_host_ed25519_key.pub").split()[1],
            "TLS key": digest("/etc/ssl/private/ssl-cert-snakeoil.key"),
            "PostgreSQL system identifier": str(pg_system_identifier(control)),
            "random seed": digest("/var/lib/systemd/random-seed"),
        }
