"""Real disks for tests: an image file with a real GPT or MBR table, on a loop device.

Needs root and `losetup`. `loop_disk()` always detaches the device and unmounts anything mounted
from it, also when the test fails.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

MIB = 1024 * 1024


def require_root() -> None:
    """Skip the calling test unless it runs as root on a machine with working loop devices."""
    if os.geteuid() != 0:
        pytest.skip("needs root (loop devices)")
    for tool in ("losetup", "sfdisk", "mkfs.vfat", "mcopy", "partx", "blkid"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    if not Path("/dev/loop-control").exists():
        pytest.skip("no loop devices on this machine")


def sh(*argv: str, data: bytes | None = None) -> str:
    """Run a command for the test fixture; fail the test with its stderr when it fails."""
    proc = subprocess.run(argv, input=data, capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


@dataclass
class Part:
    """A partition to create: size in MiB (None = the rest), GPT name, FAT label, files."""

    size_mib: int | None = 40
    name: str = ""
    label: str = ""
    fs: str | None = "vfat"
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class LoopDisk:
    """An attached loop device: its node, its partitions' nodes and the backing file."""

    image: Path
    node: str
    parts: list[str]

    def detach(self) -> None:
        """Unmount every partition of this disk, then detach the loop device."""
        detach_loop(self.node)


def _partition_script(table: str, parts: Sequence[Part]) -> str:
    lines = [f"label: {table}"]
    for part in parts:
        fields = [f"size={part.size_mib}MiB"] if part.size_mib else []
        fields.append(
            "type=" + ("0c" if table == "dos" else "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
        )
        if part.name and table == "gpt":
            fields.append(f'name="{part.name}"')
        lines.append(", ".join(fields))
    return "\n".join(lines) + "\n"


def _wait_for_partitions(node: str, count: int) -> list[str]:
    name = Path(node).name
    nodes = [f"{node}p{i}" for i in range(1, count + 1)]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(Path(f"/sys/class/block/{name}p{i}").exists() for i in range(1, count + 1)) and all(
            Path(n).exists() for n in nodes
        ):
            return nodes
        subprocess.run(["partx", "-a", node], capture_output=True, check=False)
        time.sleep(0.1)
    pytest.fail(f"partitions of {node} did not appear")


def attach_loop(image: Path, *, read_only: bool = False, partitions: int = 0) -> LoopDisk:
    """Attach `image` to a free loop device (with partition scanning)."""
    argv = ["losetup", "--find", "--show", "--partscan"] + (["--read-only"] if read_only else [])
    node = sh(*argv, str(image)).strip()
    return LoopDisk(image, node, _wait_for_partitions(node, partitions) if partitions else [])


def detach_loop(node: str) -> None:
    """Unmount whatever is mounted from `node` or its partitions, then detach it."""
    for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
        fields = line.split()
        source = fields[fields.index("-") + 2]
        if source == node or source.startswith(f"{node}p"):
            subprocess.run(["umount", "--lazy", fields[4]], check=False)
    subprocess.run(["losetup", "--detach", node], capture_output=True, check=False)


def make_disk_image(
    path: Path, parts: Sequence[Part], *, table: str = "gpt", size_mib: int = 100
) -> None:
    """Create `path` with a partition table and file systems holding the parts' files."""
    with path.open("wb") as handle:
        handle.truncate(size_mib * MIB)
    sh("sfdisk", "--quiet", str(path), data=_partition_script(table, parts).encode())
    disk = attach_loop(path, partitions=len(parts))
    try:
        for part, node in zip(parts, disk.parts, strict=True):
            format_partition(node, part)
    finally:
        disk.detach()


def format_partition(node: str, part: Part) -> None:
    """mkfs.vfat on `node` with the part's label, then copy its files with mtools."""
    if part.fs is None:
        return
    if part.fs == "exfat":
        format_exfat(node, part)
        return
    argv = ["mkfs.vfat", "-F", "32" if (part.size_mib or 64) >= 40 else "16"]
    argv += (["-n", part.label] if part.label else []) + [node]
    sh(*argv)
    with tempfile.TemporaryDirectory() as staging:
        for name, data in part.files.items():
            source = Path(staging) / name
            source.write_bytes(data)
            sh("mcopy", "-i", node, str(source), f"::{name}")


def exfat_mount_type() -> str | None:
    """`exfat` when the kernel has the driver, `exfat-fuse` when the FUSE helper is installed."""
    if "exfat" in Path("/proc/filesystems").read_text().split():
        return "exfat"
    return "exfat-fuse" if shutil.which("mount.exfat-fuse") else None


def format_exfat(node: str, part: Part) -> None:
    """mkfs.exfat on `node`, then mount it to copy the part's files in."""
    mount_type = exfat_mount_type()
    if shutil.which("mkfs.exfat") is None or mount_type is None:
        pytest.skip("needs exfatprogs and an exFAT driver (kernel or exfat-fuse)")
    sh("mkfs.exfat", *(["-L", part.label] if part.label else []), node)
    with tempfile.TemporaryDirectory() as mount_point:
        sh("mount", "-t", mount_type, node, mount_point)
        try:
            for name, data in part.files.items():
                (Path(mount_point) / name).write_bytes(data)
        finally:
            sh("umount", mount_point)


@contextlib.contextmanager
def loop_disk(
    tmp_path: Path,
    parts: Sequence[Part],
    *,
    table: str = "gpt",
    size_mib: int = 100,
    read_only: bool = False,
    name: str = "disk.img",
) -> Iterator[LoopDisk]:
    """A disk image with `parts` on a loop device for the duration of the block."""
    image = tmp_path / name
    make_disk_image(image, parts, table=table, size_mib=size_mib)
    disk = attach_loop(image, read_only=read_only, partitions=len(parts))
    try:
        yield disk
    finally:
        disk.detach()


@contextlib.contextmanager
def loop_file(path: Path, size: int) -> Iterator[LoopDisk]:
    """A loop device over a fresh zero-filled file of `size` bytes (a blank stick)."""
    with path.open("wb") as handle:
        handle.truncate(size)
    disk = attach_loop(path)
    try:
        yield disk
    finally:
        disk.detach()


def write_at(path: Path, offset: int, data: bytes) -> None:
    """Write `data` into the image at `offset` (the file keeps its size)."""
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(data)


def image_digest(path: Path) -> str:
    """A digest of every byte of a sparse image, reading only its data extents (a 4.5 GiB
    sparse disk is hashed in milliseconds): the extents' places and their contents. A write of
    anything, zeros included, changes it."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        size, offset = os.fstat(fd).st_size, 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as err:
                if err.errno == errno.ENXIO:  # only a hole after `offset`
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            digest.update(f"{start}-{end}:".encode())
            for at in range(start, end, 16 * MIB):
                digest.update(os.pread(fd, min(16 * MIB, end - at), at))
            offset = end
    finally:
        os.close(fd)
    return digest.hexdigest()


def make_ext4(image: Path) -> None:
    """A fresh ext4 file system (Debian's defaults: data=ordered, no discard) in `image`."""
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("needs mkfs.ext4 (e2fsprogs)")
    with image.open("wb") as f:
        f.truncate(96 * 1024 * 1024)
    # no lazy init: nothing writes the image in the background after the mount
    sh("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(image))


@contextlib.contextmanager
def ext4_at(image: Path, mount_point: Path) -> Iterator[None]:
    """The file system in `image` on a loop device, mounted at `mount_point` for the block;
    unmounted and detached after, whatever happens."""
    node = sh("losetup", "--find", "--show", str(image)).strip()
    try:
        mount_point.mkdir(parents=True, exist_ok=True)
        sh("mount", "-t", "ext4", node, str(mount_point))
        try:
            yield
        finally:
            sh("umount", str(mount_point))
    finally:
        subprocess.run(["losetup", "--detach", node], check=False)
