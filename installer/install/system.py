"""The installed system: a copy of the live squashfs, its fstab and machine id, the install
record, and the boot loader (grub for BIOS and UEFI, installed from inside the target).

Every mount is registered on an ExitStack, so it is undone in reverse order on success and on
failure alike.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from installer.errors import CommandFailedError, InstallerError
from installer.fsutil import write_atomic
from installer.paths import TargetPaths, in_root
from installer.run import run, run_streaming

log = logging.getLogger("clawdie.install")

COPY_TIMEOUT_S = 3 * 3600.0  # when the bytes to copy cannot be read
# The copy step's deadline: the bytes to copy at a slow-but-working rate (a USB 2 stick read and
# an old disk write both do better), plus a margin for starting and the last sync. The receipt
# names it; the copy itself is killed only at COPY_KILL_FACTOR times that.
COPY_FLOOR_BYTES_PER_S = 5 * 1000**2
COPY_MARGIN_S = 120.0
COPY_KILL_FACTOR = 3
GRUB_TIMEOUT_S = 600.0
BOOTLOADER_ID = "clawdie"
CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}
# Live-system file systems the boot loader tools need inside the target (source, type).
BIND_MOUNTS = (("/dev", None), ("/proc", "proc"), ("/sys", "sysfs"), ("/run", None))

_PERCENT = re.compile(r"(\d{1,3})%")


@dataclass(frozen=True)
class InstallRecord:
    """The non-secret facts kept in /var/lib/clawdie-setup/installed.txt."""

    installed_at: str
    installer_version: str
    image_version: str
    disk: str
    disk_model: str
    disk_size: str
    hostname: str
    seed_source: str
    answered_on_console: tuple[str, ...] = ()
    disk_serial: str = ""
    disk_by_id: str = ""
    disk_held: str = ""  # what the disk held before the install erased it
    disk_identity: str = ""  # model, serial, size and by-id as the operator reads them


def parse_percentages(text: str) -> list[int]:
    """Percentages in a chunk of unsquashfs progress output (its bar ends in "NN%")."""
    return [int(m) for m in _PERCENT.findall(text) if int(m) <= 100]


def render_install_record(record: InstallRecord) -> str:
    def one_line(value: str) -> str:
        return " ".join(value.split()) or "-"

    lines = [
        "# Written by clawdie-setup install on the installer stick. No secrets.",
        f"INSTALLED_AT={record.installed_at}",
        f"INSTALLER_VERSION={one_line(record.installer_version)}",
        f"IMAGE_VERSION={one_line(record.image_version)}",
        f"TARGET_DISK={record.disk}",
        f"DISK_MODEL={one_line(record.disk_model)}",
        f"DISK_SIZE={one_line(record.disk_size)}",
        f"DISK_SERIAL={one_line(record.disk_serial)}",
        f"DISK_BY_ID={one_line(record.disk_by_id)}",
        f"DISK_HELD={one_line(record.disk_held)}",
        f"DISK_IDENTITY={one_line(record.disk_identity)}",
        f"HOSTNAME={record.hostname}",
        f"SEED={one_line(record.seed_source)}",
        f"ANSWERED_ON_CONSOLE={','.join(record.answered_on_console)}",
    ]
    return "\n".join(lines) + "\n"


def read_image_version(live_root: Path) -> str:
    """The image version the build wrote into the live system, or "unknown"."""
    try:
        return TargetPaths(live_root).image_version.read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


# -- mounts --------------------------------------------------------------------------------------


def unmount(target: Path) -> None:
    """Unmount `target`; lazily when something still holds it (logged, never raised)."""
    result = run(["umount", str(target)], check=False, timeout=120)
    if result.returncode != 0:
        log.warning(
            "umount %s failed (%s); detaching it lazily",
            target,
            result.stderr.decode(errors="replace").strip(),
        )
        run(["umount", "--lazy", str(target)], check=False, timeout=60)


def mount(
    stack: contextlib.ExitStack,
    source: str,
    target: Path,
    *,
    fs_type: str | None = None,
    bind: bool = False,
) -> None:
    """Mount `source` on `target` (created if missing) and register its unmount on `stack`."""
    target.mkdir(parents=True, exist_ok=True)
    argv = ["mount"]
    if bind:
        argv.append("--bind")
    elif fs_type:
        argv += ["-t", fs_type]
    run([*argv, source, str(target)], timeout=120)
    log.debug("mounted %s on %s", source, target)
    stack.callback(unmount, target)


# -- the system ----------------------------------------------------------------------------------


def read_copy_bytes(squashfs: Path) -> int | None:
    """The bytes the copy writes: the sum of the squashfs's regular file sizes (its listing,
    read from the directory tables in seconds); None when it cannot be listed."""
    try:
        listing = run(["unsquashfs", "-n", "-lls", str(squashfs)], timeout=120).stdout
    except InstallerError as err:
        log.warning("install: the squashfs could not be listed: %s", err.message)
        return None
    total = 0
    for line in listing.decode(errors="replace").splitlines():
        fields = line.split(None, 3)
        if len(fields) == 4 and line.startswith("-") and fields[2].isdigit():
            total += int(fields[2])
    return total


def copy_deadline(copy_bytes: int | None) -> float:
    """The copy step's deadline in seconds: `copy_bytes` at COPY_FLOOR_BYTES_PER_S plus
    COPY_MARGIN_S (pure); COPY_TIMEOUT_S when the size is unknown."""
    if copy_bytes is None:
        return COPY_TIMEOUT_S
    return COPY_MARGIN_S + copy_bytes / COPY_FLOOR_BYTES_PER_S


def render_copy_deadline(copy_bytes: int | None) -> str:
    """How the copy's deadline was reckoned, for the console and the journal."""
    if copy_bytes is None:
        return f"the bytes to copy are unknown: {COPY_TIMEOUT_S / 3600:.0f} h"
    return (
        f"{copy_bytes / 1000**2:,.0f} MB at {COPY_FLOOR_BYTES_PER_S // 1000**2} MB/s + "
        f"{COPY_MARGIN_S:.0f} s = {copy_deadline(copy_bytes):.0f} s"
    )


def copy_system(
    squashfs: Path,
    root: Path,
    on_percent: Callable[[int], None],
    timeout: float = COPY_TIMEOUT_S,
) -> None:
    """Unpack the live squashfs onto the mounted root: an exact copy (owners, modes, xattrs)."""
    last = -1

    def progress(chunk: str) -> None:
        nonlocal last
        for percent in parse_percentages(chunk):
            if percent != last:
                last = percent
                on_percent(percent)

    run_streaming(
        ["unsquashfs", "-f", "-d", str(root), str(squashfs)],
        progress,
        timeout=timeout,
    )


def read_kernel_version(root: Path) -> str | None:
    """The kernel release the target has modules for: the only one, else the running one."""
    for modules in (root / "usr/lib/modules", root / "lib/modules"):
        if modules.is_dir() and not modules.is_symlink():
            releases = sorted(p.name for p in modules.iterdir() if p.is_dir())
            if len(releases) == 1:
                return releases[0]
            if os.uname().release in releases:
                return os.uname().release
    return None


def copy_kernel(live_dir: Path, root: Path) -> str | None:
    """Put the medium's kernel and initrd (live/vmlinuz, live/initrd.img) in the target's /boot
    under the names grub.cfg (and a later update-grub) use; the image build leaves them out of
    the squashfs.

    Returns what was done, or None when there was nothing to copy (the caller decides).
    """
    boot = root / "boot"
    if list(boot.glob("vmlinuz-*")):
        return "the system carries its own kernel"
    kernel, initrd = live_dir / "vmlinuz", live_dir / "initrd.img"
    release = read_kernel_version(root)
    if not (kernel.is_file() and initrd.is_file() and release):
        return None
    boot.mkdir(exist_ok=True)
    for source, name in ((kernel, f"vmlinuz-{release}"), (initrd, f"initrd.img-{release}")):
        write_atomic(boot / name, source.read_bytes(), mode=0o644)
    return f"kernel {release} copied from {live_dir}"


def clear_machine_id(paths: TargetPaths) -> None:
    """An empty /etc/machine-id: systemd gives the installed system its own at first start."""
    if paths.machine_id.is_symlink():
        paths.machine_id.unlink()
    write_atomic(paths.machine_id, b"", mode=0o444)


def write_fstab(paths: TargetPaths, text: str) -> None:
    write_atomic(paths.fstab, text, mode=0o644)


def write_install_record(paths: TargetPaths, record: InstallRecord) -> None:
    write_atomic(paths.install_record, render_install_record(record), mode=0o644)


def write_install_complete(paths: TargetPaths, when: str, version: str) -> None:
    """The record written last: everything before it (the boot loader included) is on the disk
    (`sync` first), and its own write is durable (write_atomic fsyncs it and its folder). Its
    absence marks an install that was cut short (install/targets.py read_install_state)."""
    sync()
    write_atomic(
        paths.install_complete,
        "# Written last by clawdie-setup install: the installation finished. No secrets.\n"
        f"COMPLETED_AT={when}\nINSTALLER_VERSION={version}\n",
        mode=0o644,
    )


# -- the boot loader -----------------------------------------------------------------------------


def _in_target(root: Path, argv: list[str], env: Mapping[str, str] = CHROOT_ENV) -> None:
    run(["chroot", str(root), *argv], env=env, timeout=GRUB_TIMEOUT_S)


def bind_live_filesystems(stack: contextlib.ExitStack, root: Path) -> None:
    """/dev, /proc, /sys and /run of the live system inside the target, for grub's tools."""
    for source, fs_type in BIND_MOUNTS:
        target = in_root(root, source)
        if fs_type in ("proc", "sysfs"):
            mount(stack, fs_type, target, fs_type=fs_type)
        else:
            mount(stack, source, target, bind=True)


# The signed chain in the ESP (shim, signed GRUB, MokManager: `--uefi-secure-boot`, refused when
# the signed packages are missing; never an unsigned core image), also at the removable path,
# without a firmware boot entry: `--force-extra-removable` and `--no-nvram` are what shim's
# package update runs grub-install with too (the image's debconf answers). The one place these
# arguments are written: the install and the apt hook's renewal (`install_signed_efi`) run it.
GRUB_EFI_ARGV = (
    "grub-install",
    "--target=x86_64-efi",
    "--efi-directory=/boot/efi",
    f"--bootloader-id={BOOTLOADER_ID}",
    "--uefi-secure-boot",
    "--force-extra-removable",
    "--no-nvram",
)


def grub_argvs(disk: str) -> list[list[str]]:
    """The boot loader commands run inside the target, in order (pure): grub's core image on
    the BIOS boot partition, then the signed chain in the ESP (`GRUB_EFI_ARGV`). Neither asks
    the firmware for a boot entry: `install_signed_efi` puts the chain at the removable path
    too, which every firmware finds."""
    return [["grub-install", "--target=i386-pc", disk], list(GRUB_EFI_ARGV)]


# EFI/BOOT/BOOTX64.EFI: the path firmware without a boot entry starts. Under Secure Boot it must
# be shim (signed by Microsoft's third-party CA), with Debian's signed GRUB, MokManager and the
# GRUB stub config (which finds /boot/grub by the root's UUID) beside it, as in EFI/clawdie.
# Shim's fallback loader (fbx64.efi) is left out of it: it would write a firmware boot entry.
EFI_REMOVABLE_DIR = ("EFI", "BOOT")
EFI_INSTALLED_DIR = ("EFI", BOOTLOADER_ID)
EFI_REMOVABLE_CHAIN = (
    ("shimx64.efi", "BOOTX64.EFI"),
    ("grubx64.efi", "grubx64.efi"),
    ("mmx64.efi", "mmx64.efi"),
    ("grub.cfg", "grub.cfg"),
)
_GRUB_DEFAULT = re.compile(r"^(GRUB_[A-Z_]+)=(.*)$")


def read_grub_defaults(text: str) -> dict[str, str]:
    """The `GRUB_*=value` lines of /etc/default/grub (shell words, quotes removed)."""
    values = {}
    for line in text.splitlines():
        found = _GRUB_DEFAULT.match(line.strip())
        if found:
            words = shlex.split(found.group(2), comments=True)
            values[found.group(1)] = " ".join(words)
    return values


def render_grub_cfg(defaults: Mapping[str, str], root_uuid: str, release: str) -> str:
    """The installed system's /boot/grub/grub.cfg (pure): what `grub-mkconfig` makes of
    /etc/default/grub for one kernel, the normal entry and its recovery mode, without the
    seconds grub-mkconfig's probing takes. A later kernel upgrade runs update-grub, which
    writes its own from the same /etc/default/grub."""
    distributor = defaults.get("GRUB_DISTRIBUTOR", "") or "Debian"
    cmdline = defaults.get("GRUB_CMDLINE_LINUX", "")
    normal = " ".join(filter(None, [cmdline, defaults.get("GRUB_CMDLINE_LINUX_DEFAULT", "")]))
    terminal = defaults.get("GRUB_TERMINAL", "console")
    serial = defaults.get("GRUB_SERIAL_COMMAND", "")
    lines = [
        "# Written by clawdie-setup install from /etc/default/grub; update-grub rewrites it.",
        *([serial] if serial and "serial" in terminal.split() else []),
        f"terminal_input {terminal}",
        f"terminal_output {terminal}",
        f"set default={defaults.get('GRUB_DEFAULT', '0')}",
        f"set timeout={defaults.get('GRUB_TIMEOUT', '5')}",
        *(
            [f"set timeout_style={defaults['GRUB_TIMEOUT_STYLE']}"]
            if defaults.get("GRUB_TIMEOUT_STYLE")
            else []
        ),
        "insmod all_video",
        "insmod part_gpt",
        "insmod ext2",
        f"search --no-floppy --fs-uuid --set=root {root_uuid}",
    ]
    for title, args in ((distributor, normal), (f"{distributor} (recovery mode)", cmdline)):
        recovery = "recovery" in title
        lines += [
            f"menuentry '{title}' --id {BOOTLOADER_ID}{'-recovery' if recovery else ''} {{",
            f"    linux /boot/vmlinuz-{release} root=UUID={root_uuid} ro"
            + (" single" if recovery else "")
            + (f" {args}" if args else ""),
            f"    initrd /boot/initrd.img-{release}",
            "}",
        ]
    return "\n".join(lines) + "\n"


def write_grub_cfg(paths: TargetPaths, root_uuid: str) -> None:
    """/boot/grub/grub.cfg for the kernel copied into the target, from its /etc/default/grub."""
    release = read_kernel_version(paths.root)
    if release is None or not (paths.root / f"boot/vmlinuz-{release}").is_file():
        raise InstallerError(
            "no kernel in the installed system's /boot to start",
            "the installer image is incomplete; rebuild it",
        )
    defaults = read_grub_defaults(paths.grub_defaults.read_text(encoding="utf-8"))
    write_atomic(paths.grub_cfg, render_grub_cfg(defaults, root_uuid, release), mode=0o444)


def copy_efi_removable(paths: TargetPaths) -> None:
    """The signed chain grub-install put in EFI/clawdie also at the fallback path EFI/BOOT (shim
    as BOOTX64.EFI), whatever `--force-extra-removable` already copied there."""
    installed = paths.esp_dir.joinpath(*EFI_INSTALLED_DIR)
    missing = [name for name, _ in EFI_REMOVABLE_CHAIN if not (installed / name).is_file()]
    if missing:
        raise InstallerError(
            f"grub-install left no {', '.join(missing)} in /boot/efi/{'/'.join(EFI_INSTALLED_DIR)}",
            "the image must carry shim-signed and grub-efi-amd64-signed; rebuild it",
        )
    target = paths.esp_dir.joinpath(*EFI_REMOVABLE_DIR)
    target.mkdir(parents=True, exist_ok=True)
    for source, name in EFI_REMOVABLE_CHAIN:
        write_atomic(target / name, (installed / source).read_bytes(), mode=0o644)


def _grub_install(root: Path, argv: list[str], say: Callable[[str], None]) -> None:
    say(f"boot loader: {' '.join(argv)}")
    try:
        _in_target(root, argv)
    except CommandFailedError as err:
        err.hint = (
            "the image may lack grub-pc-bin, grub-efi-amd64-bin, grub-efi-amd64-signed or "
            "shim-signed; see the journal"
        )
        raise


def install_signed_efi(root: Path, say: Callable[[str], None]) -> None:
    """Debian's signed chain from the packages in `root` into the ESP mounted at its /boot/efi,
    in EFI/clawdie and at the removable path EFI/BOOT: grub-install inside `root` (a chroot;
    `/` on the installed box itself), then the fallback copy. The install runs it, and so does
    the apt hook when a package update left the ESP's copies behind (install/esp_renewal.py)."""
    _grub_install(root, list(GRUB_EFI_ARGV), say)
    copy_efi_removable(TargetPaths(root))


def install_bootloader(
    stack: contextlib.ExitStack,
    root: Path,
    disk: str,
    esp: str,
    root_uuid: str,
    say: Callable[[str], None],
) -> None:
    """Mount the ESP in the target and install grub both ways (the live file systems are
    mounted there already: `bind_live_filesystems`), then write its grub.cfg."""
    paths = TargetPaths(root)
    mount(stack, esp, paths.esp_dir, fs_type="vfat")
    bios, _ = grub_argvs(disk)
    _grub_install(root, bios, say)
    install_signed_efi(root, say)
    write_grub_cfg(paths, root_uuid)
    say(
        f"boot loader: shim, signed GRUB and MokManager in /boot/efi/{'/'.join(EFI_INSTALLED_DIR)}"
        f" and {'/'.join(EFI_REMOVABLE_DIR)}; /{paths.grub_cfg.relative_to(root)} written"
    )


def sync() -> None:
    os.sync()
