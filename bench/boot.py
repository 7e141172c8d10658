"""Benchmark: what our units cost a boot of the installed disk, in the boot test's VM.

One run boots the installed disk (as the installer left it, before its first boot) three times:

1. its first boot: our first-boot service runs, the platform says PLATFORM-READY;
2. a later boot of the same disk: first boot is complete, so its unit must not start at all;
3. a fresh copy of the installed disk with our units masked (`clawdie-firstboot.service` and
   `clawdie.service` linked to /dev/null): the same image's boot to the login prompt without us.

Each boot is timed from power-on (QEMU's start) to the login prompt, and its journal is read
from the disk afterwards (tests/helpers/boot_timing.py: our service per phase, the platform unit's
start). Prints those tables, then our service's share of the first boot and of a later boot;
the last line is the later boot's share, a ratio.

The installed disk: `--disk PATH`, else the one the boot test keeps
(build/iso/boot-test/bios-usb-installed.img), else one installed now from build/iso's image (a
TCG install takes minutes). Needs root (loop devices, debugfs) and QEMU; KVM when it works.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import boot_timing, vm  # noqa: E402
from tests.helpers.disk_image import write_root  # noqa: E402
from tests.helpers.image import IMAGE, OUT, copy_image  # noqa: E402

KEPT_DISK = OUT / "boot-test/bios-usb-installed.img"
WORK = OUT / "bench-boot"
BOUND = 1500.0  # seconds: generous under TCG
LOGIN = re.compile(r"^\S+ login:", re.MULTILINE)
MASKED = ("clawdie-firstboot.service", "clawdie.service")


def install_disk(image: Path, workdir: Path) -> Path:
    """Install the image onto a blank disk as the boot test does (BIOS, unattended erase)."""
    from tests.helpers.boot_lane import DISK_SIZE, filled_seed

    stick = copy_image(image, workdir / "stick.img")
    vm.write_seed(
        stick, filled_seed(f"TARGET_DISK=serial:{vm.DISK_SERIAL}", "ERASE_TARGET_DISK=yes")
    )
    disk = vm.make_blank_disk(workdir / "installed.img", DISK_SIZE)
    with vm.Vm(workdir=workdir, disk=disk, stick=stick, firmware="bios", name="install") as guest:
        guest.wait_for("CLAWDIE-INSTALL-DONE", BOUND, name="install done")
        guest.wait_exit(300)
        print(f"bench-boot: installed in {guest.marks['install done']:.0f} s", flush=True)
    stick.unlink()
    return disk


def copy_disk(source: Path, target: Path) -> Path:
    subprocess.run(["cp", "--sparse=always", str(source), str(target)], check=True)
    return target


def mask_units(disk: Path) -> None:
    """Link our units to /dev/null on the disk's root file system (what `systemctl mask` does;
    it refuses for unit files in /etc itself), through a loop device with debugfs."""
    commands = "".join(
        f"rm /etc/systemd/system/{unit}\nsymlink /etc/systemd/system/{unit} /dev/null\n"
        for unit in MASKED
    )
    write_root(disk, commands, "the masked units")


def boot(
    disk: Path, workdir: Path, name: str, *, platform: bool
) -> tuple[float, list[boot_timing.Row]]:
    """Boot `disk` to the login prompt (and PLATFORM-READY when the platform runs), power it
    off, and read that boot's rows from its journal; returns power-on to login and the rows."""
    with vm.Vm(workdir=workdir, disk=disk, firmware="bios", name=name) as guest:
        if platform:
            guest.wait_for(re.compile(r"PLATFORM-READY role="), BOUND, name="PLATFORM-READY")
        guest.wait_for(LOGIN, BOUND, name="login prompt")
        guest.qmp.execute("system_powerdown")
        guest.wait_exit(300)
    rows = boot_timing.firstboot_rows(boot_timing.split_boots(boot_timing.read_journal(disk))[-1])
    extra = [
        boot_timing.Row(f"power-on to {mark}", at)
        for mark, at in guest.marks.items()
        if mark != "exit"
    ]
    print(boot_timing.render_table(f"bench-boot: {name}", rows, extra), end="", flush=True)
    return guest.marks["login prompt"], rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--disk", type=Path, help="an installed disk image before its first boot")
    args = parser.parse_args(argv)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    accel = "KVM" if vm.kvm_usable()[0] else "TCG"
    pristine = args.disk or (KEPT_DISK if KEPT_DISK.is_file() else None)
    if pristine is None:
        if not IMAGE.is_file():
            print(
                "bench-boot: no installed disk and no image: run `just iso` first", file=sys.stderr
            )
            return 2
        pristine = install_disk(IMAGE, WORK)
    print(f"bench-boot: {accel}; installed disk {pristine}", flush=True)

    disk = copy_disk(pristine, WORK / "disk.img")
    first_login, first_rows = boot(disk, WORK, "first-boot", platform=True)
    later_login, later_rows = boot(disk, WORK, "later-boot", platform=True)
    masked = copy_disk(pristine, WORK / "masked.img")
    mask_units(masked)
    masked_login, _ = boot(masked, WORK, "units-masked", platform=False)
    for image in (disk, masked):
        image.unlink()

    first = boot_timing.service_seconds(first_rows)
    later = boot_timing.service_seconds(later_rows)
    print(
        f"bench-boot: first boot: our service {first:.1f} s of {first_login:.1f} s to the login "
        f"prompt: share {first / first_login:.3f}"
    )
    print(
        f"bench-boot: later boot: our service {later:.1f} s of {later_login:.1f} s to the login "
        f"prompt; with our units masked {masked_login:.1f} s (later / masked "
        f"{later_login / masked_login:.2f})"
    )
    print(f"ratio (our first-boot service's share of a later boot): {later / later_login:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
