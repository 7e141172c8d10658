"""`clawdie-setup flash IMAGE [DEVICE]`: list candidate disks, or write the image and verify it."""

from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from installer.commands._seed_check import add_incomplete_argument
from installer.errors import InstallerError, UsageError

if TYPE_CHECKING:
    from installer.media.blockdev import BlockDevice

HELP = "write the installer image to a USB stick, safely, and verify it"


class FlashInterruptedError(InstallerError):
    """Ctrl-C during the write or the verification: the stick is incomplete."""

    exit_code = 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", type=Path, help="the installer image (.img or .iso)")
    parser.add_argument("device", nargs="?", help="the whole disk to overwrite, e.g. /dev/sdb")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--allow-non-removable",
        action="store_true",
        help="accept a disk that does not say it is removable (USB-SATA adapters, loop devices)",
    )
    parser.add_argument(
        "--sparse",
        action="store_true",
        help="never write all-zero blocks, and do not verify them (the stick keeps old data there)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON progress lines")
    parser.add_argument(
        "--seed",
        type=Path,
        metavar="FILE",
        help="your filled setup.txt: checked first, then written onto the stick's seed partition",
    )
    add_incomplete_argument(parser, "--seed")


def run(args: argparse.Namespace) -> int:
    from installer.media import flash

    size = flash.read_image_size(args.image)
    seed = None
    if args.seed is not None:  # checked before anything is erased
        from installer.commands._seed_check import read_checked_seed

        seed = read_checked_seed(
            args.seed, incomplete=args.incomplete, nothing_written="nothing was written"
        )
    if args.device is None:
        return print_candidates(args, size)
    state = flash.read_target(args.device)
    flash.ensure_target_allowed(state, size, allow_non_removable=args.allow_non_removable)
    expected = flash.read_expected_sha256(args.image)
    confirm(args, state.device, size)
    return write_and_verify(args, state.device.node, size, expected, seed)


def print_candidates(args: argparse.Namespace, size: int) -> int:
    """The disk list shown when no DEVICE is given."""
    from installer.media import flash

    states = flash.read_disk_states()
    if args.json:
        rows = []
        for state in states:
            refusals = flash.parse_refusals(
                state, size, allow_non_removable=args.allow_non_removable
            )
            device = state.device
            rows.append(
                {
                    "device": device.node,
                    "size": device.size,
                    "model": device.model,
                    "bus": device.bus,
                    "removable": device.removable,
                    "mounted": list(state.mount_points),
                    "refusals": [r.reason for r in refusals],
                }
            )
        print(json.dumps({"event": "devices", "devices": rows}))
        return 0
    print(flash.render_disk_table(states, size, allow=args.allow_non_removable))
    print(f"\nthen: clawdie-setup flash {args.image} DEVICE")
    return 0


def confirm(args: argparse.Namespace, device: BlockDevice, size: int) -> None:
    """Ask before erasing; `--yes` skips the question, no terminal without it is an error."""
    from installer.media.blockdev import render_size

    if args.yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("no terminal to confirm on", "add --yes to confirm from a script")
    what = f"{device.node} ({device.model or device.bus}, {render_size(device.size)})"
    print(f"This erases everything on {what} and writes {args.image.name} ({render_size(size)}).")
    answer = input(f"Type yes to erase {device.node}: ").strip().lower()
    if answer != "yes":
        raise InstallerError("nothing written", "type yes to confirm, or pick another device")


def write_and_verify(
    args: argparse.Namespace, node: str, size: int, expected: str | None, seed: bytes | None = None
) -> int:
    """Write, check the image's checksum, read back; a clear message for Ctrl-C and I/O errors."""
    from installer.media import flash
    from installer.media.flash_io import VerifyError, verify_device, write_image
    from installer.progress import JsonProgress, RichProgress

    progress = JsonProgress() if args.json else RichProgress()
    started = time.monotonic()
    try:
        result = write_image(
            args.image, node, progress, sparse=args.sparse, whole_hash=expected is not None
        )
        if expected is not None and result.image_sha256 != expected:
            raise VerifyError(
                f"{args.image.name} does not match {args.image.name}.sha256: the download is "
                f"damaged, and so is what was written to {node}",
                "download the image again, then flash again",
            )
        verify_device(node, size, result, progress)
    except KeyboardInterrupt:
        raise FlashInterruptedError(
            f"interrupted: {node} is incomplete and will not boot",
            "run the same flash command again before using the stick",
        ) from None
    except OSError as err:
        raise write_failure(node, err) from None
    reread = reread_partition_table(node)
    seeded = None if seed is None else flash.write_seed_onto(node, seed, reread is None)
    report(args, node, result.written, result.skipped, time.monotonic() - started, expected)
    if not args.json:
        print(seeded or reread or NEXT_STEP)
    return 0


NEXT_STEP = (
    "Next: open the stick's CLAWDIESEED drive on any computer, fill in the first lines of "
    "setup.txt (its comments say where each value comes from), save, then start the machine "
    "from the stick. To check the file first: clawdie-setup check <drive>/setup.txt"
)


def reread_partition_table(node: str) -> str | None:
    """Tell the kernel about the image's partitions (the seed partition among them) so the stick
    can be opened without unplugging it; returns what to do instead when that failed."""
    from installer.run import run

    if not stat.S_ISBLK(os.stat(node).st_mode):
        return None  # an image file: nothing for the kernel to read
    try:
        shown = run(["partx", "--show", "--noheadings", "--output", "NR", node], timeout=30)
    except InstallerError:
        return None  # no partition table in what was written
    wanted = len(shown.stdout.split())
    # BLKRRPART first (what a USB stick answers); where the kernel does not re-scan (some
    # loop devices, a busy disk), partx adds the partitions one by one.
    for argv in (["blockdev", "--rereadpt", node], ["partx", "--add", node]):
        if _kernel_partitions(node) >= wanted:
            return None
        try:
            run(argv, timeout=30)
        except InstallerError:  # busy, or a tool missing: the next way, then words
            continue
    if _kernel_partitions(node) >= wanted:
        return None
    return (
        f"The kernel has not re-read {node}'s partitions: unplug the stick and plug it in "
        "again, then open its CLAWDIESEED drive and fill in setup.txt."
    )


def _kernel_partitions(node: str) -> int:
    """How many partitions of the disk `node` the kernel has now."""
    disk = Path("/sys/class/block") / Path(node).name
    return sum(1 for child in disk.glob("*") if (child / "partition").is_file())


def write_failure(node: str, err: OSError) -> InstallerError:
    """An operator's message for an I/O error while flashing."""
    if err.errno == errno.EBUSY:
        return InstallerError(
            f"{node} is in use by another program", "close what uses it (file manager, mount)"
        )
    if err.errno in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return InstallerError(f"{node} disappeared: the stick was removed and is incomplete")
    return InstallerError(
        f"writing {node} failed: {err.strerror}; the stick is incomplete",
        "try again, or another stick or USB port",
    )


def report(
    args: argparse.Namespace, node: str, written: int, skipped: int, seconds: float, sha: str | None
) -> None:
    """The closing line (or JSON object)."""
    checked = "image checksum matched .sha256, " if sha else ""
    if args.json:
        line = {
            "event": "done",
            "device": node,
            "blocks_written": written,
            "blocks_skipped": skipped,
            "seconds": round(seconds, 3),
            "sha256_checked": sha is not None,
            "verified": True,
        }
        print(json.dumps(line))
        return
    print(
        f"{node}: written and verified in {seconds:.1f} s ({checked}{written} blocks written, "
        f"{skipped} zero blocks skipped)."
    )
