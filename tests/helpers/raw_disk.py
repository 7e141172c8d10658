"""Shared test data and fakes (moved out of test_raw_disk.py, which other tests use too)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from installer.paths import TargetPaths
from installer.seed.ask import resolve_seed
from installer.seed.stored import store_seed
from installer.stamps import Stamps
from tests.helpers.adopt import MACHINE_ID
from tests.helpers.firstboot import SEED
from tests.helpers.loopdev import ext4_at, make_ext4, sh
from tests.helpers.seeds import firstboot_box


@contextlib.contextmanager
def installed_on_ext4(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A box whose root is an ext4 loop device, holding the seed copy as the disk installer
    leaves it (synced to the disk). Yields the box (setup.txt and the stick outside the image)
    and the image."""
    box = tmp_path / "box"
    image = tmp_path / "root.img"
    make_ext4(image)
    with ext4_at(image, box / "root"):
        firstboot_box(box, SEED)
        (box / "root/etc/machine-id").write_text(f"{MACHINE_ID}\n")
        paths = TargetPaths(box / "root")
        data = SEED.encode()
        check, answers = resolve_seed(data, "setup.txt", None)
        store_seed(paths, Stamps(paths.stamps_dir), data, answers, "the test's seed", check)
        sh("sync")
        yield box, image
