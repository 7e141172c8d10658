"""`clawdie-setup seed find` and `clawdie-setup seed image OUT [--size 64M] [--from FILE]`."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from installer.commands._seed_check import add_incomplete_argument

HELP = "find the seed partition (seed find), or build its FAT32 image (seed image)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    find = sub.add_parser("find", help="find the seed partition and show what was looked at")
    find.add_argument("--json", action="store_true", help="print a JSON document instead")
    image = sub.add_parser("image", help="build the seed partition's FAT32 image")
    image.add_argument("out", type=Path, help="the image file to write")
    image.add_argument("--size", default="64M", help="image size (default 64M, at least 33M)")
    image.add_argument(
        "--from",
        dest="setup_from",
        type=Path,
        help="the setup.txt to put in (default: setup.txt.example of this source tree); "
        "it must pass `check`",
    )
    add_incomplete_argument(image, "--from")


def run(args: argparse.Namespace) -> int:
    if args.action == "image":
        return run_image(args)
    return run_find(args)


def run_image(args: argparse.Namespace) -> int:
    """Build the seed image and say what is in it."""
    from installer.commands._seed_check import read_checked_seed
    from installer.media.seed_image import MIB, make_plan, parse_size, write_seed_image

    plan = make_plan(args.out, parse_size(args.size), args.setup_from, os.environ)
    if args.setup_from is not None:
        read_checked_seed(
            plan.setup_source,
            incomplete=args.incomplete,
            nothing_written="no seed image was written",
        )
    write_seed_image(plan)
    print(
        f"wrote {plan.out}: {plan.size // MIB} MiB FAT32, label CLAWDIESEED, "
        f"setup.txt (from {plan.setup_source}) and README.txt"
    )
    return 0


def run_find(args: argparse.Namespace) -> int:
    """Find and read the seed; print every device looked at, the seed and the file."""
    from installer.media.seed_device import find_seed, read_seed, render_candidate

    if not args.verbose:
        # We print the same facts below; the log lines would only repeat them.
        logging.getLogger("clawdie.seed").setLevel(logging.ERROR)
    device, search = find_seed()
    seed = read_seed(device)
    if args.json:
        document: dict[str, Any] = {
            "looked_at": [item.__dict__ for item in search.looked],
            "seed": {
                "device": device.node,
                "disk": device.disk,
                "fs_type": device.fs_type,
                "label": device.fs_label,
                "partition_name": device.part_name,
            },
            "file": {"name": seed.name, "size": len(seed.data), "warnings": list(seed.warnings)},
        }
        print(json.dumps(document, indent=2))
        return 0
    print("looked at:")
    for item in search.looked:
        print(f"  {item.render()}")
    print(f"seed: {render_candidate(device)}")
    print(f"file: {seed.name} ({len(seed.data)} bytes)")
    for warning in seed.warnings:
        print(f"warning: {warning}")
    return 0
