"""apt's hook that keeps the ESP's signed boot loaders equal to the packaged ones (DESIGN §5,
installer/install/esp_renewal.py, iso/overlay/etc/apt/apt.conf.d/90clawdie-esp).

Real parts: a target root in a temp folder with the packaged files, a FAT ESP on a loop device
named in the root's /etc/fstab (mounted by the renewal when it is not), the product's own
fallback copy (`system.copy_efi_removable`). grub-install itself needs the signed packages
and a chroot: a stand-in copies the packaged files into EFI/clawdie as it does (the boot lane,
tests/helpers/update_kit.py, runs the real one on the installed disk).
"""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from installer.errors import InstallerError
from installer.install import esp_renewal, system
from installer.paths import TargetPaths
from tests.helpers.loopdev import MIB, loop_file

REPO = Path(__file__).resolve().parent.parent
HOOK = REPO / "iso/overlay/etc/apt/apt.conf.d/90clawdie-esp"
WHEN = "2026-12-07T12:00:00+00:00"
ESP_NAMES = (
    "EFI/clawdie/shimx64.efi",
    "EFI/BOOT/BOOTX64.EFI",
    "EFI/clawdie/grubx64.efi",
    "EFI/BOOT/grubx64.efi",
    "EFI/clawdie/mmx64.efi",
    "EFI/BOOT/mmx64.efi",
)


def packaged(root: Path, grub: bytes = b"MZ grub 2.06-13+deb12u2 signed by Debian") -> None:
    """The signed packages' files in `root`, and a machine started by UEFI firmware."""
    files = {
        "shimx64.efi": b"MZ shim 16.1 signed by Microsoft",
        "grubx64.efi": grub,
        "mmx64.efi": b"MZ MokManager signed by Debian",
    }
    for name, data in files.items():
        source = root / esp_renewal.SIGNED_SOURCES[name].lstrip("/")
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(data)
    (root / "sys/firmware/efi").mkdir(parents=True, exist_ok=True)


class GrubInstall:
    """Stand-in for grub-install --uefi-secure-boot: the packaged files into EFI/clawdie, then
    the product's fallback copy (the real `install_signed_efi` runs both, in a chroot)."""

    def __init__(self, leave: dict[str, bytes] | None = None) -> None:
        self.calls: list[Path] = []
        self.leave = leave or {}  # ESP path -> bytes left there afterwards (a faulty install)

    def __call__(self, root: Path, say: Callable[[str], None]) -> None:
        say("boot loader: grub-install (stand-in)")
        self.calls.append(root)
        paths = TargetPaths(root)
        installed = paths.esp_dir / "EFI/clawdie"
        installed.mkdir(parents=True, exist_ok=True)
        for name, source in esp_renewal.SIGNED_SOURCES.items():
            shutil.copyfile(root / source.lstrip("/"), installed / name)
        (installed / "grub.cfg").write_text("search.fs_uuid 0b6a root\nconfigfile /grub.cfg\n")
        system.copy_efi_removable(paths)
        for name, data in self.leave.items():
            (paths.esp_dir / name).write_bytes(data)


def installed_esp(root: Path) -> TargetPaths:
    """An ESP (a folder) as the install left it: equal to the packaged files."""
    paths = TargetPaths(root)
    GrubInstall()(root, print)
    return paths


def test_equal_copies_are_current(tmp_path: Path) -> None:
    packaged(tmp_path)
    paths = installed_esp(tmp_path)
    assert esp_renewal.stale_copies(paths) == []


def test_a_differing_grub_is_found_at_both_paths(tmp_path: Path) -> None:
    packaged(tmp_path)
    paths = installed_esp(tmp_path)
    # a GRUB-only update: the packaged file changed, of the same size and of another
    same_size = b"MZ grub 2.06-13+deb12u3 signed by Debian"
    packaged(tmp_path, grub=same_size)
    assert esp_renewal.stale_copies(paths) == ["EFI/clawdie/grubx64.efi", "EFI/BOOT/grubx64.efi"]
    packaged(tmp_path, grub=b"MZ grub 2.12 signed by Debian, another size")
    assert esp_renewal.stale_copies(paths) == ["EFI/clawdie/grubx64.efi", "EFI/BOOT/grubx64.efi"]


def test_a_missing_copy_is_stale(tmp_path: Path) -> None:
    packaged(tmp_path)
    paths = installed_esp(tmp_path)
    (paths.esp_dir / "EFI/BOOT/mmx64.efi").unlink()
    assert esp_renewal.stale_copies(paths) == ["EFI/BOOT/mmx64.efi"]
    assert [str(c.relative_to(paths.esp_dir)) for c, _ in esp_renewal.esp_copies(paths)] == list(
        ESP_NAMES
    )


def test_a_missing_packaged_file_is_worded(tmp_path: Path) -> None:
    packaged(tmp_path)
    paths = installed_esp(tmp_path)
    (tmp_path / "usr/lib/shim/mmx64.efi.signed").unlink()
    with pytest.raises(InstallerError, match=r"incomplete: no /usr/lib/shim/mmx64\.efi\.signed"):
        esp_renewal.stale_copies(paths)


def test_without_uefi_firmware_nothing_is_read_or_run(tmp_path: Path) -> None:
    """A BIOS start (no /sys/firmware/efi): no-op, whatever the ESP holds."""
    packaged(tmp_path)
    (tmp_path / "sys/firmware/efi").rmdir()
    install = GrubInstall()
    outcome = esp_renewal.renew_and_record(TargetPaths(tmp_path), WHEN, install)
    assert outcome.result is esp_renewal.Result.NO_UEFI
    assert install.calls == []
    assert not TargetPaths(tmp_path).boot_loader_status.exists()


def test_without_an_esp_in_fstab_nothing_is_run(tmp_path: Path) -> None:
    """The image's build chroot and the live stick: no /boot/efi line."""
    packaged(tmp_path)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/fstab").write_text("overlay / overlay rw 0 0\n# x /boot/efi vfat 0 0\n")
    install = GrubInstall()
    outcome = esp_renewal.renew(TargetPaths(tmp_path), install)
    assert outcome.result is esp_renewal.Result.NO_ESP
    assert install.calls == []


def test_the_renewal_runs_the_installs_own_signed_install() -> None:
    """One function writes the grub-install arguments: the install's and the hook's."""
    default = inspect.signature(esp_renewal.renew).parameters["install"].default
    assert default is system.install_signed_efi
    default = inspect.signature(esp_renewal.renew_and_record).parameters["install"].default
    assert default is system.install_signed_efi
    assert "install_signed_efi(root, say)" in inspect.getsource(system.install_bootloader)
    assert "list(GRUB_EFI_ARGV)" in inspect.getsource(system.install_signed_efi)


def fstab(root: Path, source: str, fs: str = "vfat umask=0077") -> None:
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/fstab").write_text(
        f"UUID=1111 / ext4 errors=remount-ro 0 1\n{source} /boot/efi {fs} 0 2\n"
    )


def esp_filesystem(node: str) -> str:
    """The ESP's file system on `node`: FAT as on the box, or ext2 where the kernel has no
    vfat driver (some containers); fstab's type and options for it."""
    if "vfat" in Path("/proc/filesystems").read_text().split():
        subprocess.run(["mkfs.vfat", "-n", "CLAWDIEEFI", node], check=True, capture_output=True)
        return "vfat umask=0077"
    subprocess.run(["mke2fs", "-q", "-t", "ext2", node], check=True, capture_output=True)
    return "ext2 defaults"


@pytest.mark.usefixtures("loop_devices")
def test_an_unmounted_esp_is_mounted_renewed_and_unmounted(tmp_path: Path) -> None:
    root = tmp_path / "root"
    packaged(root)
    with loop_file(tmp_path / "esp.img", 32 * MIB) as disk:
        fstab(root, disk.node, esp_filesystem(disk.node))
        paths = TargetPaths(root)
        paths.esp_dir.mkdir(parents=True)
        install = GrubInstall()
        outcome = esp_renewal.renew_and_record(paths, WHEN, install)
        assert outcome.result is esp_renewal.Result.RENEWED
        assert outcome.renewed == ESP_NAMES  # a fresh ESP: every copy was missing
        assert install.calls == [root]
        assert not os.path.ismount(paths.esp_dir), "mounted by the renewal, unmounted after"
        assert outcome.line.startswith("boot loader renewed on the EFI partition from the")
        status = esp_renewal.read_status(paths)
        assert status["STATUS"] == "ok", status
        assert status["CHECKED_AT"] == WHEN
        # nothing differs now: nothing runs, and the record is not rewritten
        record = paths.boot_loader_status
        record.write_text(record.read_text() + "# kept\n")
        again = esp_renewal.renew_and_record(paths, "later", install)
        assert again.result is esp_renewal.Result.CURRENT
        assert install.calls == [root]
        assert record.read_text().endswith("# kept\n")
        # a GRUB-only update: the ESP (mounted as on the box) gets the new GRUB at both paths
        packaged(root, grub=b"MZ grub 2.06-13+deb12u3 signed by Debian")
        subprocess.run(["mount", disk.node, str(paths.esp_dir)], check=True)
        try:
            renewed = esp_renewal.renew_and_record(paths, WHEN, install)
            assert renewed.renewed == ("EFI/clawdie/grubx64.efi", "EFI/BOOT/grubx64.efi")
            assert os.path.ismount(paths.esp_dir), "a mounted ESP stays mounted"
            for name in ("EFI/clawdie/grubx64.efi", "EFI/BOOT/grubx64.efi"):
                assert (paths.esp_dir / name).read_bytes().endswith(b"deb12u3 signed by Debian")
        finally:
            subprocess.run(["umount", str(paths.esp_dir)], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount)")
def test_an_install_that_leaves_a_difference_fails_loudly(tmp_path: Path) -> None:
    packaged(tmp_path)
    paths = TargetPaths(tmp_path)
    paths.esp_dir.mkdir(parents=True)
    fstab(tmp_path, "/dev/clawdie-no-such-esp")
    install = GrubInstall(leave={"EFI/BOOT/grubx64.efi": b"MZ old grub"})
    # an ESP already mounted: here a folder that is a mount point of its own
    subprocess.run(["mount", "-t", "tmpfs", "esp", str(paths.esp_dir)], check=True)
    try:
        GrubInstall()(tmp_path, print)
        (paths.esp_dir / "EFI/BOOT/grubx64.efi").write_bytes(b"MZ old grub")
        with pytest.raises(InstallerError, match=r"EFI/BOOT/grubx64\.efi still differ"):
            esp_renewal.renew_and_record(paths, WHEN, install)
    finally:
        subprocess.run(["umount", str(paths.esp_dir)], check=True)
    assert install.calls == [tmp_path]
    assert esp_renewal.read_status(paths)["STATUS"] == "failed"
    issue = paths.boot_loader_issue.read_text()
    assert issue.startswith("Boot loader NOT renewed after an update: the boot loader was")
    assert "\\" not in issue, "agetty reads backslashes as escapes"


def broken_box(root: Path) -> None:
    """A UEFI box whose ESP is neither mounted nor mountable (fstab names no such device)."""
    packaged(root)
    fstab(root, "/dev/clawdie-no-such-esp")
    (root / "boot/efi").mkdir(parents=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount)")
def test_from_apt_a_failure_is_worded_and_exits_0(tmp_path: Path) -> None:
    broken_box(tmp_path)
    argv = [sys.executable, "-m", "installer.cli", "renew-boot-loader", "--root", str(tmp_path)]
    hook = subprocess.run([*argv, "--from-apt"], capture_output=True, text=True, check=False)
    assert hook.returncode == 0, hook.stderr
    assert "boot loader NOT renewed on the EFI partition: the EFI partition is not mounted" in (
        hook.stderr
    )
    assert "/dev/clawdie-no-such-esp" in hook.stderr
    assert "Traceback" not in hook.stderr
    paths = TargetPaths(tmp_path)
    assert esp_renewal.read_status(paths)["STATUS"] == "failed"
    assert paths.boot_loader_issue.is_file()
    # by hand, the same failure is the command's exit 1
    by_hand = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert by_hand.returncode == 1
    assert "clawdie-setup renew-boot-loader: error: the EFI partition is not mounted" in (
        by_hand.stderr
    )
    # once it works again, the login screen's notice goes and the record says ok
    fstab(tmp_path, "/dev/clawdie-no-such-esp-either")
    (tmp_path / "sys/firmware/efi").rmdir()  # (started by BIOS this time: nothing to do)
    assert subprocess.run([*argv, "--from-apt"], capture_output=True, check=False).returncode == 0
    assert esp_renewal.read_status(paths)["STATUS"] == "failed", "nothing checked: kept"


def test_the_hook_file_runs_the_command_after_every_dpkg_run() -> None:
    text = HOOK.read_text()
    assert HOOK.name == "90clawdie-esp"
    commands = [line for line in text.splitlines() if line.startswith("DPkg::Post-Invoke")]
    assert commands == [
        'DPkg::Post-Invoke { "if [ -d /sys/firmware/efi ] && [ -x /usr/local/bin/clawdie-setup ];'
        ' then /usr/local/bin/clawdie-setup renew-boot-loader --from-apt || true; fi"; };'
    ]
    assert all(line.startswith("//") for line in text.splitlines() if line not in commands)
    if shutil.which("apt-config") is None:
        pytest.skip("needs apt-config to read the file as apt does")
    dump = subprocess.run(
        ["apt-config", "-c", str(HOOK), "dump", "DPkg::Post-Invoke"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "renew-boot-loader --from-apt || true" in dump, dump
    # the command as apt runs it (sh -c); on a machine without UEFI firmware it does nothing
    hook = commands[0].split('"')[1]
    if not Path("/sys/firmware/efi").exists():
        done = subprocess.run(["sh", "-c", hook], capture_output=True, text=True, check=False)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
