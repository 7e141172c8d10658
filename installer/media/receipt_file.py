"""SETUP-RESULT.txt on the stick's FAT seed partition, rewritten so that a power cut at any moment
leaves a consistent file system and a whole receipt (the previous one or the new one).

Why this design: on FAT a temporary file and a rename are not crash-atomic (mtools, like any
FAT writer, changes the FAT tables, the directory entry and the data in several writes; a cut
between them leaves lost or free clusters under a file). So the file is made once at a fixed
size (`FILE_BYTES`) and afterwards only its own clusters are rewritten in place: the FAT tables
and the directory entry never change during a rewrite, so the file system is the same at every
cut. A torn multi-sector write inside the data is what is left, and the content is ordered for
it: the file holds two fixed slots, each a whole receipt between a numbered head line and a
foot line carrying the number and a check of the text. A rewrite goes into the slot that does
not hold the newest whole receipt, so a cut leaves the newest whole one untouched in the other.
The operator reads a plain text file in Notepad: two receipts, the higher number is the newest
(the head line says so); software (`read_receipt`) takes the newest whole one.

Made once: the file's first write (a stick that never had one, or one an operator changed) is
an ordinary mtools write; every later write is in place.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from installer.errors import InstallerError
from installer.run import run

log = logging.getLogger("clawdie.seed")

SLOT_BYTES = 16 * 1024
FILE_BYTES = 2 * SLOT_BYTES
MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1", "TZ": "UTC"}
MTOOLS_TIMEOUT_S = 60.0
CUT_NOTE = "\n(the rest of this receipt did not fit; the log bundle next to it has everything)\n"
_HEAD = re.compile(r"==== Clawdie receipt (\d+)\b[^\n]*====\n")
_FOOT = re.compile(r"==== end of receipt (\d+) \(check ([0-9a-f]{8})\) ====\n")
_CHAIN = re.compile(r"<(\d+)(?:-(\d+))?>")


class ReceiptFileError(InstallerError):
    """The receipt file cannot be rewritten in place (its clusters cannot be found)."""


@dataclass(frozen=True)
class Slot:
    """One whole receipt found in a slot: its number and text."""

    number: int
    text: str


def render_head(number: int) -> str:
    return (
        f"==== Clawdie receipt {number} (this file keeps the last two receipts: "
        "the one with the higher number is the newest) ====\n"
    )


def render_slot(number: int, text: str) -> bytes:
    """A slot of exactly SLOT_BYTES: the head, the text, the foot with its check, then spaces
    and one newline (a cut text says so)."""
    head = render_head(number).encode()
    foot_size = len(f"==== end of receipt {number} (check 00000000) ====\n")
    room = SLOT_BYTES - len(head) - foot_size - 1
    body = text.encode("utf-8")
    if len(body) > room:
        body = body[: room - len(CUT_NOTE)].decode("utf-8", errors="ignore").encode() + (
            CUT_NOTE.encode()
        )
    if not body.endswith(b"\n"):
        body += b"\n"
    check = zlib.crc32(head + body)
    foot = f"==== end of receipt {number} (check {check:08x}) ====\n".encode()
    slot = head + body + foot
    return slot + b" " * (SLOT_BYTES - len(slot) - 1) + b"\n"


def parse_slot(data: bytes) -> Slot | None:
    """The whole receipt in a slot, or None (blank, torn by a cut, or not ours)."""
    text = data.decode("utf-8", errors="replace")
    head = _HEAD.match(text)
    if head is None:
        return None
    foot = _FOOT.search(text, head.end())
    if foot is None or foot.group(1) != head.group(1):
        return None
    whole = data[: len(text[: foot.start()].encode("utf-8"))]
    if f"{zlib.crc32(whole):08x}" != foot.group(2):
        return None
    return Slot(int(head.group(1)), text[head.end() : foot.start()])


def parse_slots(data: bytes) -> list[Slot | None]:
    """Both slots of a receipt file in place order (None for each one not whole)."""
    if len(data) != FILE_BYTES:
        return []
    return [parse_slot(data[i * SLOT_BYTES : (i + 1) * SLOT_BYTES]) for i in range(2)]


def read_receipt(data: bytes) -> str | None:
    """The newest whole receipt in a receipt file's bytes; a file that is not two slots (an
    older installer's plain receipt) is returned as it is."""
    if len(data) != FILE_BYTES:
        return data.decode("utf-8", errors="replace") if data else None
    whole = [slot for slot in parse_slots(data) if slot is not None]
    return max(whole, key=lambda slot: slot.number).text if whole else None


def next_write(data: bytes | None) -> tuple[int, int]:
    """(slot index, number) for the next receipt given the file's bytes now (pure): the slot
    not holding the newest whole receipt, numbered one past it."""
    slots = parse_slots(data) if data is not None else []
    whole = [(slot.number, i) for i, slot in enumerate(slots) if slot is not None]
    if not whole:
        return 0, 1
    number, index = max(whole)
    return 1 - index, number + 1


def render_new_file(text: str) -> bytes:
    """The file as it is first made: receipt 1 in the first slot, the second slot blank."""
    return render_slot(1, text) + b" " * (SLOT_BYTES - 1) + b"\n"


# -- the file system ------------------------------------------------------------------------


@dataclass(frozen=True)
class FatGeometry:
    """Where a FAT volume's clusters are: byte offset of cluster 2 and the cluster size."""

    data_start: int
    cluster_bytes: int

    def offset(self, cluster: int) -> int:
        return self.data_start + (cluster - 2) * self.cluster_bytes


def parse_fat_geometry(boot_sector: bytes) -> FatGeometry:
    """The data area's place from a FAT12/16/32 boot sector (pure)."""
    if len(boot_sector) < 512 or boot_sector[510:512] != b"\x55\xaa":
        raise ReceiptFileError(
            "the seed partition has no FAT boot sector", "check the stick in another computer"
        )
    sector, per_cluster, reserved, fats, root_entries = struct.unpack_from(
        "<HBHBH", boot_sector, 11
    )
    fat16_size = struct.unpack_from("<H", boot_sector, 22)[0]
    fat_size = fat16_size or struct.unpack_from("<I", boot_sector, 36)[0]
    if not sector or not per_cluster or not fats or not fat_size:
        raise ReceiptFileError(
            "the seed partition's FAT boot sector is not valid",
            "check the stick in another computer",
        )
    root_sectors = (root_entries * 32 + sector - 1) // sector
    start = (reserved + fats * fat_size + root_sectors) * sector
    return FatGeometry(start, sector * per_cluster)


def parse_chain(listing: str) -> list[int]:
    """The clusters of a file from `mshowfat`'s `<3-81><90>` (pure)."""
    clusters: list[int] = []
    for first, last in _CHAIN.findall(listing):
        clusters += range(int(first), int(last or first) + 1)
    return clusters


def data_runs(
    geometry: FatGeometry, clusters: list[int], start: int, length: int
) -> list[tuple[int, int, int]]:
    """(device offset, file offset, length) of each piece of the file's bytes [start,
    start + length), one per cluster (pure)."""
    runs = []
    position = start
    while position < start + length:
        index, within = divmod(position, geometry.cluster_bytes)
        if index >= len(clusters):
            raise ReceiptFileError(
                "the receipt file's clusters are fewer than its size", "delete SETUP-RESULT.txt"
            )
        size = min(geometry.cluster_bytes - within, start + length - position)
        runs.append((geometry.offset(clusters[index]) + within, position, size))
        position += size
    return runs


def _mtools(*argv: str) -> bytes:
    return run([*argv], env=MTOOLS_ENV, timeout=MTOOLS_TIMEOUT_S).stdout


def read_file_bytes(
    node: str, name: str, staging: Path, limit: int = 4 * FILE_BYTES
) -> bytes | None:
    """The file's bytes as mtools reads them, None when it is not there, b"" when it is larger
    than `limit` (not ours: made again)."""
    local = staging / "stick-file-read"
    result = run(
        ["mcopy", "-n", "-i", node, f"::/{name}", str(local)],
        env=MTOOLS_ENV,
        check=False,
        timeout=MTOOLS_TIMEOUT_S,
    )
    try:
        if result.returncode != 0 or not local.is_file():
            return None
        if local.stat().st_size > limit:
            return b""
        return local.read_bytes()
    finally:
        local.unlink(missing_ok=True)


def make_file(node: str, name: str, data: bytes, staging: Path) -> None:
    """Make `name` on the FAT volume `node` holding `data`, with mtools: the one write that
    changes the FAT tables (a file made once, at its final size; rewritten in place after)."""
    local = staging / "stick-file-new"
    local.write_bytes(data)
    try:
        _mtools("mcopy", "-o", "-i", node, str(local), f"::/{name}")
    finally:
        local.unlink(missing_ok=True)
    _fsync(node)


def rewrite_range(node: str, name: str, start: int, data: bytes) -> None:
    """Write `data` at byte `start` of the file `name` on the FAT volume `node`, into the file's
    own clusters, in ascending order, then fsync: the FAT tables and the directory entry are not
    touched, so the file system is the same at every moment of the write."""
    chain = parse_chain(_mtools("mshowfat", "-i", node, f"::/{name}").decode(errors="replace"))
    fd = os.open(node, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        geometry = parse_fat_geometry(os.pread(fd, 512, 0))
        for device_offset, file_offset, size in data_runs(geometry, chain, start, len(data)):
            os.pwrite(fd, data[file_offset - start :][:size], device_offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def rewrite_changed(node: str, name: str, before: bytes, after: bytes, staging: Path) -> int:
    """Rewrite the file `name`, which must hold exactly `before`, as `after` (the same length)
    in place: only the bytes from the first that differs to the last, in ascending order.
    Returns how many bytes were written."""
    if len(after) != len(before):
        raise ReceiptFileError(
            f"{name} cannot be rewritten in place at another length", "delete it on the stick"
        )
    current = read_file_bytes(node, name, staging, limit=len(before))
    if current != before:
        raise ReceiptFileError(
            f"{name} on the stick is not the file that was read (changed or gone since): it was "
            "not rewritten",
            f"check {name} on the stick in another computer",
        )
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    if not changed:
        return 0
    first, last = changed[0], changed[-1] + 1
    rewrite_range(node, name, first, after[first:last])
    return last - first


def write_in_place(node: str, name: str, text: str, staging: Path) -> str:
    """Write `text` as the newest receipt in `name` on the FAT volume `node`: in place into the
    file's own clusters when it is a two-slot file already, else made once with mtools. Returns
    how it was written."""
    current = read_file_bytes(node, name, staging)
    if current is None or len(current) != FILE_BYTES:
        make_file(node, name, render_new_file(text), staging)
        return "made (two receipts kept, rewritten in place from now on)"
    index, number = next_write(current)
    rewrite_range(node, name, index * SLOT_BYTES, render_slot(number, text))
    log.debug("seed: receipt %d written in place (slot %d of %s)", number, index + 1, name)
    return f"receipt {number} rewritten in place"


def _fsync(node: str) -> None:
    fd = os.open(node, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
