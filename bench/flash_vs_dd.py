"""Benchmark: `clawdie-setup flash` (write + verify) against `dd bs=4M conv=fsync` + `cmp`.

Needs root (loop devices). Run: `.venv/bin/python bench/flash_vs_dd.py [--reps 3] [--mib 512]`.
Installs Debian's bmap-tools on first use to also time `bmaptool copy`.

The target's backing file is in memory by default: this VM's disk speed drifts by 3x from one
run to the next, which drowns the tools' own differences. Two images, each written to the same
target (a loop device over a file), median of --reps runs:
- dense: random data only, nothing to skip (worst case for us);
- seed-empty: random data (the ISO part) followed by a real, mostly empty seed partition built by
  `clawdie-setup seed image` (half the image).
And two target states: a blank stick (reads zeros: a new stick, or one flashed before with a
layout like this) and a used stick (random junk everywhere, so zero blocks must be written).

For a fair readback, dd's `cmp` runs after `blockdev --flushbufs`, so it reads the device rather
than the page cache dd just filled; our verify reads with O_DIRECT for the same reason.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
MIB = 1024 * 1024


def sh(*argv: str, quiet: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, check=True, capture_output=quiet)


def ensure_bmaptool() -> bool:
    """Install bmap-tools from Debian when missing; False when that is not possible."""
    if shutil.which("bmaptool"):
        return True
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "bmap-tools"],
        capture_output=True,
        env=env,
        check=False,
    )
    return done.returncode == 0 and shutil.which("bmaptool") is not None


def write_random(handle: object, size: int) -> None:
    with open("/dev/urandom", "rb") as rnd:
        left = size
        while left:
            chunk = rnd.read(min(left, 16 * MIB))
            handle.write(chunk)  # type: ignore[attr-defined]
            left -= len(chunk)


def make_images(work: Path, mib: int) -> dict[str, Path]:
    dense = work / "dense.img"
    with dense.open("wb") as handle:
        write_random(handle, mib * MIB)
    seed = work / "seed.part"
    sh(str(VENV_BIN / "clawdie-setup"), "seed", "image", str(seed), "--size", f"{mib // 2}M")
    seeded = work / "seed-empty.img"
    with seeded.open("wb") as handle:
        write_random(handle, mib * MIB - seed.stat().st_size)
        handle.write(seed.read_bytes())
    return {"dense": dense, "seed-empty": seeded}


def reset_target(path: Path, size: int, junk: bool) -> None:
    """Recreate the target file: blank (all zeros) or filled with random junk."""
    path.unlink(missing_ok=True)
    with path.open("wb") as handle:
        if junk:
            write_random(handle, size)
        else:
            handle.truncate(size)
        handle.flush()
        os.fsync(handle.fileno())


def drop_caches(image: Path) -> None:
    """Start every run alike: dirty data written, caches dropped, the image read once (warm)."""
    os.sync()
    with contextlib.suppress(OSError):
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    with image.open("rb") as handle:
        while handle.read(16 * MIB):
            pass


def run_dd(image: Path, node: str) -> None:
    sh("dd", f"if={image}", f"of={node}", "bs=4M", "conv=fsync", "status=none")
    sh("blockdev", "--flushbufs", node)
    sh("cmp", "-n", str(image.stat().st_size), str(image), node)


def run_bmaptool(image: Path, node: str) -> None:
    sh("bmaptool", "-q", "copy", "--bmap", f"{image}.bmap", str(image), node)


def run_ours(image: Path, node: str, *extra: str) -> None:
    argv = [str(VENV_BIN / "clawdie-setup"), "flash", str(image), node, "--yes"]
    sh(*argv, "--allow-non-removable", "--json", *extra)


def time_once(method: Callable[[Path, str], None], image: Path, target: Path, junk: bool) -> float:
    """One timed run on a freshly reset target, caches dropped first."""
    reset_target(target, image.stat().st_size + 8 * MIB, junk)
    node = sh("losetup", "--find", "--show", str(target)).stdout.decode().strip()
    try:
        drop_caches(image)
        started = time.perf_counter()
        method(image, node)
        return time.perf_counter() - started
    finally:
        subprocess.run(["losetup", "--detach", node], check=False)


def time_methods(
    methods: dict[str, Callable[[Path, str], None]],
    image: Path,
    target: Path,
    junk: bool,
    reps: int,
) -> dict[str, float]:
    """Median time of each method; the methods take turns within each round (the VM's disk
    speed drifts, and interleaving spreads that drift over all of them alike)."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(reps):
        for name, method in methods.items():
            times[name].append(time_once(method, image, target, junk))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--mib", type=int, default=512, help="image size in MiB")
    parser.add_argument(
        "--target-dir",
        type=Path,
        default=Path("/dev/shm"),
        help="where the loop device's backing file lives (default: memory, for stable figures; "
        "a folder on disk adds that disk's speed and noise)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("flash_vs_dd: needs root (loop devices)", file=sys.stderr)
        return 2
    have_bmap = ensure_bmaptool()
    ratios = []
    with tempfile.TemporaryDirectory(prefix="clawdie-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        images = make_images(work, args.mib)
        if have_bmap:
            for image in images.values():
                # bmaptool needs holes to skip anything: dig them, as an image pipeline would.
                sh("fallocate", "--dig-holes", str(image))
                sh("bmaptool", "-q", "create", "-o", f"{image}.bmap", str(image))
        target = args.target_dir / f"clawdie-bench-{os.getpid()}.bin"
        print(
            f"image size {args.mib} MiB, median of {args.reps} runs, "
            f"target: loop device over a file in {args.target_dir}"
        )
        for name, image in images.items():
            for junk in (False, True):
                state = "used stick" if junk else "blank stick"
                methods: dict[str, Callable[[Path, str], None]] = {
                    "dd+cmp": run_dd,
                    "ours+verify": run_ours,
                    "ours --sparse": lambda i, n: run_ours(i, n, "--sparse"),
                }
                if have_bmap:
                    methods["bmaptool copy"] = run_bmaptool
                got = time_methods(methods, image, target, junk, args.reps)
                dd = got["dd+cmp"]
                shown = [f"{m} {t:5.2f} s ({t / dd:.2f}x)" for m, t in got.items()]
                print(f"{name:<10} {state:<11}  " + "   ".join(shown), flush=True)
                ratios.append(f"{name}/{state}: {got['ours+verify'] / dd:.2f}x")
        target.unlink(missing_ok=True)
        if not have_bmap:
            print("bmaptool: not available (apt-get install bmap-tools failed)")
    print("ratio ours (with verify) / dd+cmp: " + ", ".join(ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
