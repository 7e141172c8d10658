"""Build the seed partition's FAT32 image: label CLAWDIESEED, setup.txt, README.txt and the
offline check page CHECK-SETUP.html (generated here from the checker, `media.check_page`).

Debian's `mkfs.vfat` makes the file system and mtools copies the files in, so no mount and no root
are needed. The output is reproducible: `--invariant` fixes mkfs's random and time-based fields,
the volume id is derived from the content, and file times come from SOURCE_DATE_EPOCH (a fixed
date when it is unset), written in UTC.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from installer.errors import InstallerError, UsageError
from installer.media.check_page import PAGE_NAME, render_check_page
from installer.media.seed_device import SEED_FS_LABEL
from installer.run import run
from installer.seed.reader import MAX_SEED_BYTES, SEED_NAME

log = logging.getLogger("clawdie.seed")

MIB = 1024 * 1024
DEFAULT_SIZE = 64 * MIB
# FAT32 needs at least 65,525 clusters; with 512-byte clusters that is just over 32 MiB.
MIN_SIZE = 33 * MIB
MAX_SIZE = 2048 * MIB
README_NAME = "README.txt"
# 2024-01-01T00:00:00Z: file times when SOURCE_DATE_EPOCH is not set.
DEFAULT_EPOCH = 1_704_067_200
# FAT cannot store times before 1980.
FAT_EPOCH_MIN = 315_532_800
_SIZE_RE = re.compile(r"(\d+)\s*([KMG]?)(i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": MIB, "G": 1024 * MIB}


@dataclass(frozen=True)
class SeedImagePlan:
    """What goes into the image: where it is written, its size, its files and their time."""

    out: Path
    size: int
    setup_source: Path
    readme_source: Path
    epoch: int
    private: bool


def source_root() -> Path:
    """The top of the source tree this package was loaded from."""
    return Path(__file__).resolve().parents[2]


def parse_size(text: str) -> int:
    """`64M`, `64MiB`, `100K`, `1G` or plain bytes -> bytes (binary units)."""
    match = _SIZE_RE.fullmatch(text.strip())
    if not match:
        raise UsageError(f"cannot read size {text!r}", "write it like 64M or 1G")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def parse_epoch(env: Mapping[str, str]) -> int:
    """SOURCE_DATE_EPOCH from `env` (clamped to what FAT can store), else the fixed default."""
    raw = env.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return DEFAULT_EPOCH
    if not raw.isdigit():
        raise UsageError(f"SOURCE_DATE_EPOCH={raw!r} is not a number of seconds")
    return max(int(raw), FAT_EPOCH_MIN)


def render_volume_id(*contents: bytes) -> str:
    """An 8-hex-digit FAT volume id derived from the files, so equal input gives an equal id."""
    digest = hashlib.sha256()
    for content in contents:
        digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()[:8].upper()


def make_plan(
    out: Path, size: int, setup_from: Path | None, env: Mapping[str, str]
) -> SeedImagePlan:
    """Check the options and locate the sources; raise UsageError for anything wrong."""
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UsageError(
            f"a seed image of {size:,} bytes is not possible",
            f"use a size from {MIN_SIZE // MIB}M (the smallest FAT32) to {MAX_SIZE // MIB}M",
        )
    root = source_root()
    setup_source = setup_from or root / "setup.txt.example"
    readme_source = root / "seed" / README_NAME
    for path, what in ((setup_source, "the setup.txt to put in the image"), (readme_source, "")):
        if not path.is_file():
            raise UsageError(
                f"{path} does not exist",
                f"give {what} with --from" if what else "this source tree is incomplete",
            )
    if setup_source.stat().st_size > MAX_SEED_BYTES:
        raise UsageError(f"{setup_source} is larger than a setup.txt can be")
    if out.is_dir():
        raise UsageError(f"{out} is a folder; give the image file to write")
    return SeedImagePlan(
        out, size, setup_source, readme_source, parse_epoch(env), setup_from is not None
    )


def ensure_tools() -> None:
    """Raise a clear error when mkfs.vfat or mcopy is missing."""
    missing = [tool for tool in ("mkfs.vfat", "mcopy") if shutil.which(tool) is None]
    if missing:
        raise InstallerError(
            f"{' and '.join(missing)} not found",
            "install the Debian packages dosfstools and mtools",
        )


def _stage(directory: Path, name: str, data: bytes, epoch: int) -> Path:
    path = directory / name
    path.write_bytes(data)
    os.utime(path, (epoch, epoch))
    return path


def write_seed_image(plan: SeedImagePlan) -> None:
    """Build the image in a temporary file next to `plan.out`, then rename it into place."""
    ensure_tools()
    setup = plan.setup_source.read_bytes()
    readme = plan.readme_source.read_bytes()
    page = render_check_page()
    volume_id = render_volume_id(setup, readme, page, str(plan.epoch).encode())
    plan.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = plan.out.with_name(f".{plan.out.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if plan.private else 0o644)
    try:
        os.ftruncate(fd, plan.size)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        run(
            ["mkfs.vfat", "--invariant", "-F", "32", "-i", volume_id, "-n", SEED_FS_LABEL, str(tmp)]
        )
        with tempfile.TemporaryDirectory(prefix="clawdie-seed-image-") as staging:
            files = [
                _stage(Path(staging), SEED_NAME, setup, plan.epoch),
                _stage(Path(staging), README_NAME, readme, plan.epoch),
                _stage(Path(staging), PAGE_NAME, page, plan.epoch),
            ]
            env = {"TZ": "UTC", "MTOOLS_SKIP_CHECK": "1", "SOURCE_DATE_EPOCH": str(plan.epoch)}
            run(["mcopy", "-m", "-i", str(tmp), *map(str, files), "::"], env=env)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.replace(plan.out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.debug("seed image: wrote %s (%d MiB, volume id %s)", plan.out, plan.size // MIB, volume_id)
