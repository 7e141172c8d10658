"""Keep the ESP's signed boot loaders equal to the packaged ones (DESIGN §5), run by apt after
every dpkg run (iso/overlay/etc/apt/apt.conf.d/90clawdie-esp).

Debian's grub-efi-amd64-signed has no maintainer scripts, and grub-efi-amd64 (whose postinst
runs grub-install) is not installed: a GRUB-only security update puts a new
grubx64.efi.signed under /usr/lib/grub/x86_64-efi-signed and nothing copies it to the ESP until
shim's postinst next runs grub-install. A firmware revocation (SBAT) of the old GRUB would then
stop the box from booting. So after each dpkg run the packaged shim, GRUB and MokManager are
compared with their copies in EFI/clawdie and EFI/BOOT (sizes, then bytes: nothing is read when
they differ in size, and equal files are read once), and when one differs the install's own
signed install (`system.install_signed_efi`) runs again, and the copies are compared again.

The outcome is one line (the journal, when something was renewed or failed), a status record in
/var/lib/clawdie-setup/boot-loader.txt, and while a renewal fails, a notice on the login screen.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from installer.errors import CommandFailedError, InstallerError
from installer.fsutil import write_atomic
from installer.install import system
from installer.paths import TargetPaths, in_root
from installer.run import run

log = logging.getLogger("clawdie.install")

ESP_MOUNT_POINT = "/boot/efi"
# EFI/clawdie's name -> the packaged file grub-install --uefi-secure-boot copies it from.
SIGNED_SOURCES = {
    "shimx64.efi": "/usr/lib/shim/shimx64.efi.signed",
    "grubx64.efi": "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
    "mmx64.efi": "/usr/lib/shim/mmx64.efi.signed",
}
CHUNK = 1 << 20

# The install function the renewal runs: `system.install_signed_efi` (a test gives its own).
Install = Callable[[Path, Callable[[str], None]], None]


class Result(enum.Enum):
    NO_UEFI = "not started by UEFI firmware"
    NO_ESP = "no EFI partition in /etc/fstab"
    CURRENT = "current"
    RENEWED = "renewed"


@dataclass(frozen=True)
class Outcome:
    result: Result
    renewed: tuple[str, ...] = ()  # ESP paths that differed from the packaged files

    @property
    def line(self) -> str:
        if self.result is Result.RENEWED:
            return (
                "boot loader renewed on the EFI partition from the updated packages: "
                + ", ".join(self.renewed)
            )
        if self.result is Result.CURRENT:
            return "boot loader on the EFI partition equals the packaged one"
        return f"boot loader: nothing to renew ({self.result.value})"


def esp_copies(paths: TargetPaths) -> list[tuple[Path, Path]]:
    """(ESP copy, packaged file) for shim, GRUB and MokManager at both ESP paths (pure)."""
    installed = paths.esp_dir.joinpath(*system.EFI_INSTALLED_DIR)
    removable = paths.esp_dir.joinpath(*system.EFI_REMOVABLE_DIR)
    pairs = []
    for source, removable_name in system.EFI_REMOVABLE_CHAIN:
        packaged = SIGNED_SOURCES.get(source)
        if packaged is not None:
            pairs.append((installed / source, in_root(paths.root, packaged)))
            pairs.append((removable / removable_name, in_root(paths.root, packaged)))
    return pairs


def same_bytes(a: Path, b: Path) -> bool:
    """Whether two files hold the same bytes: sizes first, then the bytes; a missing file
    differs."""
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
        with a.open("rb") as fa, b.open("rb") as fb:
            while True:
                block = fa.read(CHUNK)
                if block != fb.read(CHUNK):
                    return False
                if not block:
                    return True
    except FileNotFoundError:
        return False


def stale_copies(paths: TargetPaths) -> list[str]:
    """The ESP paths (`EFI/BOOT/grubx64.efi`) whose copy is missing or differs from the
    packaged file. A packaged file that is missing is an error: grub-install would fail."""
    pairs = esp_copies(paths)
    absent = sorted({f"/{p.relative_to(paths.root)}" for _, p in pairs if not p.is_file()})
    if absent:
        raise InstallerError(
            f"the signed boot loader packages are incomplete: no {', '.join(absent)}",
            "reinstall shim-signed, shim-helpers-amd64-signed and grub-efi-amd64-signed",
        )
    return [str(c.relative_to(paths.esp_dir)) for c, p in pairs if not same_bytes(c, p)]


def esp_in_fstab(paths: TargetPaths) -> tuple[str, str, str] | None:
    """(source, type, options) of /etc/fstab's /boot/efi line, None when it has none."""
    try:
        text = paths.fstab.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not fields[0].startswith("#") and fields[1] == ESP_MOUNT_POINT:
            return fields[0], fields[2], fields[3] if len(fields) > 3 else "defaults"
    return None


@contextlib.contextmanager
def esp_mounted(paths: TargetPaths, source: str, fs_type: str, options: str) -> Iterator[None]:
    """The ESP mounted at /boot/efi for the block: as it is when it is mounted already, else
    mounted from its fstab line and unmounted again after."""
    if os.path.ismount(paths.esp_dir):
        yield
        return
    try:
        run(["mount", "-t", fs_type, "-o", options, source, str(paths.esp_dir)], timeout=60)
    except CommandFailedError as err:
        raise InstallerError(
            f"the EFI partition is not mounted at {ESP_MOUNT_POINT} and mounting it ({source}, "
            f"from /etc/fstab) failed: {err.message}",
            "check the disk and /etc/fstab, then run `clawdie-setup renew-boot-loader` as root",
        ) from err
    try:
        yield
    finally:
        system.unmount(paths.esp_dir)


def renew(paths: TargetPaths, install: Install = system.install_signed_efi) -> Outcome:
    """Compare the ESP's signed loaders with the packaged ones; when one differs run `install`
    (the install's own signed install) and check they are equal now. InstallerError when the
    ESP cannot be mounted, the packages are incomplete, or the install fails or leaves a copy
    that still differs."""
    if not paths.efi_firmware.is_dir():
        return Outcome(Result.NO_UEFI)
    fstab_line = esp_in_fstab(paths)
    if fstab_line is None:
        return Outcome(Result.NO_ESP)
    with esp_mounted(paths, *fstab_line):
        stale = stale_copies(paths)
        if not stale:
            return Outcome(Result.CURRENT)
        install(paths.root, log.debug)
        still = stale_copies(paths)
    if still:
        raise InstallerError(
            f"the boot loader was installed again, but the EFI partition's {', '.join(still)} "
            "still differ from the packaged files",
            "check the EFI partition (fsck.vfat) and free space on it",
        )
    return Outcome(Result.RENEWED, tuple(stale))


# -- what it leaves for the operator ---------------------------------------------------------------


def render_status(ok: bool, when: str, line: str) -> str:
    return (
        "# Written by clawdie-setup renew-boot-loader (run by apt after dpkg). No secrets.\n"
        f"STATUS={'ok' if ok else 'failed'}\nCHECKED_AT={when}\nRESULT={' '.join(line.split())}\n"
    )


def read_status(paths: TargetPaths) -> dict[str, str]:
    try:
        text = paths.boot_loader_status.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#")


def record(paths: TargetPaths, ok: bool, when: str, line: str) -> None:
    """The status record, and the login screen's notice while it says failed. A run that
    found everything current writes nothing unless the record said failed."""
    if ok and line == Outcome(Result.CURRENT).line and read_status(paths).get("STATUS") != "failed":
        return
    write_atomic(paths.boot_loader_status, render_status(ok, when, line), mode=0o644)
    issue = paths.boot_loader_issue
    if ok:
        issue.unlink(missing_ok=True)
        return
    write_atomic(
        issue,
        "Boot loader NOT renewed after an update: " + line + "\n"
        "The machine may not start under Secure Boot once the old boot loader is revoked.\n"
        "As root: clawdie-setup renew-boot-loader (details: journalctl -t clawdie-boot-loader)\n\n",
        mode=0o644,
    )


def renew_and_record(
    paths: TargetPaths, when: str, install: Install = system.install_signed_efi
) -> Outcome:
    """`renew` and its status record. A failure (worded: InstallerError, an OSError made one) is
    recorded as failed, with the login screen's notice, and raised."""
    try:
        outcome = renew(paths, install)
    except InstallerError as err:
        _record_failure(paths, when, err)
        raise
    except OSError as err:
        failure = InstallerError(
            f"the boot loader check failed: {err.strerror or err} ({err.filename or '-'})",
            "run `clawdie-setup renew-boot-loader -v` as root to see the step that failed",
        )
        _record_failure(paths, when, failure)
        raise failure from err
    if outcome.result in (Result.CURRENT, Result.RENEWED):
        record(paths, True, when, outcome.line)
    return outcome


def _record_failure(paths: TargetPaths, when: str, err: InstallerError) -> None:
    try:
        record(paths, False, when, err.message)
    except OSError as write_err:  # a read-only or full disk: the journal still says it
        log.error("boot loader status not written: %s", write_err)
