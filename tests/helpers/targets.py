"""Shared test data and fakes (moved out of test_install_targets.py, which other tests use too)."""

from __future__ import annotations

from installer.install import layout
from installer.install.targets import (
    GIB,
    Edges,
    TargetDisk,
)
from installer.media.blockdev import BlockDevice


def dev(
    node: str,
    *,
    size: int = 64 * GIB,
    disk: str | None = None,
    removable: bool = False,
    read_only: bool = False,
    bus: str = "ata",
    fs_type: str = "",
    fs_label: str = "",
    part_name: str = "",
    model: str = "Test Disk",
    serial: str = "",
    by_id: tuple[str, ...] = (),
) -> BlockDevice:
    return BlockDevice(
        node=node,
        devnum="0:0",
        kind="disk" if disk is None else "partition",
        disk=disk or node,
        size=size,
        removable=removable,
        read_only=read_only,
        model=model,
        bus=bus,
        fs_type=fs_type,
        fs_label=fs_label,
        part_name=part_name,
        probed_by="test",
        sys_path="/nonexistent",
        serial=serial,
        by_id=by_id,
    )


ZEROS = Edges(first_zeros=True, last_zeros=True)


def blank(node: str, **kw: object) -> TargetDisk:
    return TargetDisk(dev(node, **kw), edges=ZEROS)  # type: ignore[arg-type]


def used(node: str, *parts: BlockDevice, signature: str = "gpt", **kw: object) -> TargetDisk:
    return TargetDisk(dev(node, **kw), partitions=parts, signature=signature, edges=ZEROS)  # type: ignore[arg-type]


def unsigned(node: str, edges: Edges, **kw: object) -> TargetDisk:
    """A disk blkid finds nothing on, whose ends read back as `edges` say."""
    return TargetDisk(dev(node, **kw), edges=edges)  # type: ignore[arg-type]


def part(disk: str, n: int, fs_type: str = "ext4", label: str = "", name: str = "") -> BlockDevice:
    return dev(layout.partition_node(disk, n), disk=disk, fs_type=fs_type, fs_label=label,
               part_name=name)  # fmt: skip


CLAWDIE_BY_NAME = part("/dev/sda", 3, name="CLAWDIE-ROOT")


CLAWDIE_BY_LABEL = part("/dev/sda", 1, label="clawdie-root")
