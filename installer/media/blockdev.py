"""Block devices as the seed finder and the flasher see them: pyudev listing, mounts, swaps.

Labels and partition names come from the udev database when udev has processed the device;
where it has not (no udevd: early boot, containers, test machines) they come from a low-level
`blkid -p` probe, and the device says so in `probed_by`.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyudev  # type: ignore[import-untyped]

from installer.run import run

log = logging.getLogger("clawdie.blockdev")

# Kernel interfaces, not configuration: where the kernel lists mounts and active swap areas.
MOUNTINFO = Path("/proc/self/mountinfo")
SWAPS = Path("/proc/swaps")
# Where udev links each disk by an identity that moves with it (model and serial, WWN).
BY_ID = "/dev/disk/by-id/"
_HEX_ID = re.compile(r"0x[0-9a-fA-F]+")


@dataclass(frozen=True)
class BlockDevice:
    """One disk or partition. `disk` is the whole disk's node (itself for a disk).

    `serial` is the whole disk's serial number ("" when it reports none) and `by_id` its
    `/dev/disk/by-id/` links (empty without udev): the names that stay with the disk when it moves
    to another machine or another port, unlike the kernel name in `node`.
    """

    node: str
    devnum: str
    kind: str
    disk: str
    size: int
    removable: bool
    read_only: bool
    model: str
    bus: str
    fs_type: str
    fs_label: str
    part_name: str
    probed_by: str
    sys_path: str
    probe_error: str = ""
    serial: str = ""
    by_id: tuple[str, ...] = ()

    @property
    def is_disk(self) -> bool:
        return self.kind == "disk"


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo: the device number, where it is mounted, the fs type and source."""

    devnum: str
    mount_point: str
    fs_type: str
    source: str


def _unescape_mountinfo(field: str) -> str:
    """Mountinfo escapes space, tab, newline and backslash as three-digit octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts listed in /proc/self/mountinfo text (see proc(5))."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 5 or len(fields) < sep + 3:
            continue
        mounts.append(
            Mount(
                devnum=fields[2],
                mount_point=_unescape_mountinfo(fields[4]),
                fs_type=fields[sep + 1],
                source=_unescape_mountinfo(fields[sep + 2]),
            )
        )
    return mounts


def parse_swaps(text: str) -> list[str]:
    """The swap areas (paths) listed in /proc/swaps text."""
    lines = text.splitlines()[1:]
    return [_unescape_mountinfo(line.split()[0]) for line in lines if line.split()]


def parse_blkid_export(text: str) -> dict[str, str]:
    """`blkid -o export` output -> its KEY=value pairs."""
    pairs = (line.partition("=") for line in text.splitlines())
    return {key: value for key, sep, value in pairs if sep}


def read_mounts() -> list[Mount]:
    """The mounts of this process's mount namespace."""
    return parse_mountinfo(MOUNTINFO.read_text(encoding="utf-8", errors="replace"))


def read_swap_devnums() -> set[str]:
    """Device numbers ("major:minor") of active swap areas that are block devices."""
    try:
        text = SWAPS.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    numbers = set()
    for path in parse_swaps(text):
        try:
            st = Path(path).stat()
        except OSError:
            continue
        if stat.S_ISBLK(st.st_mode):
            numbers.add(f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}")
    return numbers


def read_blkid_probe(node: str) -> tuple[dict[str, str], str]:
    """Low-level probe of `node` (file system, partition entry), bypassing the blkid cache.

    Returns the probed values and the probe's error message ("" when it could look).
    """
    result = run(["blkid", "-p", "-o", "export", node], check=False, timeout=30)
    error = result.stderr.decode(errors="replace").strip().removeprefix("blkid: error: ")
    error = error.removeprefix(f"{node}: ")
    if error:
        log.debug("blkid -p %s: %s", node, error)
    return parse_blkid_export(result.stdout.decode(errors="replace")), error


def _attr(device: pyudev.Device, name: str) -> str:
    value = device.attributes.get(name)
    return value.decode(errors="replace").strip() if value is not None else ""


def _sys_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _bus_of(device: pyudev.Device) -> str:
    bus = device.properties.get("ID_BUS", "")
    if bus:
        return str(bus)
    path = device.sys_path
    for marker, name in (
        ("/usb", "usb"),
        ("/nvme", "nvme"),
        ("/mmc", "mmc"),
        ("/virtio", "virtio"),
    ):
        if marker in path:
            return name
    if "/virtual/" in path:
        return "virtual"
    return "ata" if "/ata" in path else "other"


def _identity(device: pyudev.Device) -> dict[str, str]:
    """File system type and label and GPT partition name, from udev or a blkid probe."""
    props = device.properties
    if device.is_initialized:
        return {
            "fs_type": str(props.get("ID_FS_TYPE", "")),
            "fs_label": str(props.get("ID_FS_LABEL", "")),
            "part_name": str(props.get("ID_PART_ENTRY_NAME", "")),
            "probed_by": "udev",
        }
    probe, error = read_blkid_probe(str(device.device_node))
    return {
        "fs_type": probe.get("TYPE", ""),
        "fs_label": probe.get("LABEL", ""),
        "part_name": probe.get("PART_ENTRY_NAME", ""),
        "probed_by": "blkid",
        "probe_error": error,
    }


def _serial_of(disk: pyudev.Device) -> str:
    """The disk's serial: udev's short then long form, else what sysfs says (virtio keeps it in
    `serial`, NVMe and some SCSI drivers in `device/serial`); "" when there is none."""
    props = disk.properties
    for key in ("ID_SERIAL_SHORT", "ID_SERIAL"):
        value = str(props.get(key, "")).strip()
        if value:
            return value
    sys_path = Path(disk.sys_path)
    return _sys_text(sys_path / "serial") or _sys_text(sys_path / "device" / "serial")


def _by_id_links(device: pyudev.Device) -> tuple[str, ...]:
    """The device's /dev/disk/by-id/ links as udev made them (none without udev)."""
    return tuple(sorted(str(link) for link in device.device_links if link.startswith(BY_ID)))


def make_block_device(device: pyudev.Device) -> BlockDevice | None:
    """Our view of a pyudev block device; None for one without a node or with no medium."""
    node = device.device_node
    if node is None:
        return None
    disk_dev = device if device.device_type == "disk" else device.find_parent("block", "disk")
    if disk_dev is None:
        return None
    size = int(_attr(device, "size") or 0) * 512
    if size == 0:
        return None
    model = _sys_text(Path(disk_dev.sys_path) / "device" / "model")
    vendor = _sys_text(Path(disk_dev.sys_path) / "device" / "vendor")
    return BlockDevice(
        node=str(node),
        devnum=f"{os.major(device.device_number)}:{os.minor(device.device_number)}",
        kind="disk" if device.device_type == "disk" else "partition",
        disk=str(disk_dev.device_node),
        size=size,
        removable=_attr(disk_dev, "removable") == "1",
        read_only=_attr(device, "ro") == "1",
        model=" ".join(part for part in (vendor, model) if part),
        bus=_bus_of(disk_dev),
        sys_path=str(device.sys_path),
        serial=_serial_of(disk_dev),
        by_id=_by_id_links(device),
        **_identity(device),
    )


def read_block_devices(context: pyudev.Context | None = None) -> list[BlockDevice]:
    """Every disk and partition that has a medium, in udev's order."""
    context = context or pyudev.Context()
    found = []
    for device in context.list_devices(subsystem="block"):
        if device.device_type not in ("disk", "partition"):
            continue
        made = make_block_device(device)
        if made is not None:
            found.append(made)
    return found


def read_block_device(node: str) -> BlockDevice | None:
    """The block device at `node` (a /dev path or a symlink to one), or None if it is none."""
    try:
        st = Path(node).stat()
    except OSError:
        return None
    if not stat.S_ISBLK(st.st_mode):
        return None
    device = pyudev.Devices.from_device_number(pyudev.Context(), "block", st.st_rdev)
    return make_block_device(device)


def iter_holders(sys_path: str) -> Iterator[str]:
    """Device numbers of everything stacked on `sys_path` (dm-crypt, LVM, md), recursively."""
    holders = Path(sys_path) / "holders"
    try:
        names = sorted(entry.name for entry in holders.iterdir())
    except OSError:
        return
    for name in names:
        held = holders / name
        number = _sys_text(held / "dev")
        if number:
            yield number
        yield from iter_holders(str(held.resolve()))


def iter_backing(sys_path: str) -> Iterator[str]:
    """Sysfs paths of the devices under `sys_path` (the slaves of dm/md, recursively)."""
    slaves = Path(sys_path) / "slaves"
    try:
        names = sorted(entry.name for entry in slaves.iterdir())
    except OSError:
        names = []
    if not names:
        yield sys_path
        return
    for name in names:
        yield from iter_backing(str((slaves / name).resolve()))


def disk_devnums(disk: BlockDevice, devices: Iterable[BlockDevice]) -> set[str]:
    """The disk's own number, its partitions' and everything stacked on any of them."""
    members = [d for d in devices if d.disk == disk.node] or [disk]
    numbers = {d.devnum for d in members}
    for member in members:
        numbers.update(iter_holders(member.sys_path))
    return numbers


def disk_of_devnum(devnum: str) -> set[str]:
    """Whole-disk nodes backing the device `devnum` (through partitions, dm and md)."""
    try:
        major, minor = (int(x) for x in devnum.split(":"))
        device = pyudev.Devices.from_device_number(
            pyudev.Context(), "block", os.makedev(major, minor)
        )
    except (ValueError, pyudev.DeviceNotFoundError):
        return set()
    disks = set()
    for path in iter_backing(device.sys_path):
        backing = pyudev.Devices.from_path(pyudev.Context(), path)
        disk = backing if backing.device_type == "disk" else backing.find_parent("block", "disk")
        if disk is not None and disk.device_node is not None:
            disks.add(str(disk.device_node))
    return disks


def render_model(model: str) -> str:
    """A disk's model for people: a bare vendor id (virtio's "0x1af4") is no model."""
    words = [word for word in model.split() if not _HEX_ID.fullmatch(word)]
    return " ".join(words) or "unknown model"


def render_size(size: int) -> str:
    """A size the way a USB stick's box says it: decimal units, one decimal."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
