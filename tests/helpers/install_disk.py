"""The disk installer as its tests run it: the tools it needs, a small live system to copy, a
seed for it and its command line. The fixtures `root_tools` and `live` (conftest.py) wrap
`require_install_tools` and `make_live`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers.loopdev import require_root, sh
from tests.helpers.seeds import valid
from tests.helpers.sentinels import OPERATOR_PASSWORD

DISK_MIB = 4608  # just over the 4 GiB minimum; sparse


TOOLS = ("sgdisk", "wipefs", "mkfs.ext4", "mkfs.vfat", "mksquashfs", "unsquashfs", "mdir")


def require_install_tools() -> None:
    """Skip, with the reason, unless root with every tool the installer runs."""
    require_root()
    for tool in TOOLS:
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")


def make_live(tmp_path: Path) -> Path:
    """A small live system as a squashfs, and the live root with its image version."""
    tree = tmp_path / "tree"
    (tree / "etc/default").mkdir(parents=True)
    (tree / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (tree / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (tree / "etc/default/grub").write_text('GRUB_CMDLINE_LINUX="console=ttyS0"\n')
    (tree / "usr/bin").mkdir(parents=True)
    tool = tree / "usr/bin/tool"
    tool.write_bytes(b"#!/bin/sh\n" + os.urandom(300_000))
    tool.chmod(0o755)
    private = tree / "etc/private"
    private.write_text("owned\n")
    private.chmod(0o640)
    os.chown(private, 1000, 1000)
    (tree / "bin").symlink_to("usr/bin")
    (tree / "usr/lib/modules/6.1.0-test-amd64").mkdir(parents=True)
    (tree / "boot").mkdir()
    medium = tmp_path / "medium/live"  # the live medium: kernel and initrd beside the squashfs
    medium.mkdir(parents=True)
    (medium / "vmlinuz").write_bytes(b"kernel")
    (medium / "initrd.img").write_bytes(b"initrd")
    squashfs = medium / "filesystem.squashfs"
    sh("mksquashfs", str(tree), str(squashfs), "-noappend", "-quiet")
    live_root = tmp_path / "live-root"
    (live_root / "etc/clawdie").mkdir(parents=True)
    (live_root / "etc/clawdie/image-version").write_text("test-image 1\n")
    return squashfs


def seed_for(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "setup.txt"
    path.write_bytes(
        valid(
            "ASSISTANT_NAME=Loopy",
            "OPERATOR_EMAIL=op@example.com",
            f"OPERATOR_PASSWORD={OPERATOR_PASSWORD}",
            *lines,
        )
    )
    return path


def install_argv(tmp_path: Path, squashfs: Path, seed: Path, disk: str) -> list[str]:
    (tmp_path / "receipt").mkdir(exist_ok=True)
    return [
        "install",
        *("--seed", str(seed), "--squashfs", str(squashfs), "--only-disk", disk),
        *("--receipt-dir", str(tmp_path / "receipt"), "--live-root", str(tmp_path / "live-root")),
        *("--mount-dir", str(tmp_path / "target"), "--console-wait", "1", "--failure-wait", "0"),
        *("--no-bootloader", "--no-reboot", "--no-poweroff"),
    ]
