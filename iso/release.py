"""Make a platform release (DESIGN §9) from a payload folder: `just release PAYLOAD`.

The publisher's side of `clawdie-setup update` and `install-platform --platform FILE`: the
payload copied without any node_modules of its own, each Node part's modules built from its lock
file (`npm ci --omit=dev --ignore-scripts --no-bin-links`, as the image build does, npm's cache
in $CLAWDIE_ISO_CACHE/npm), checked against the lock, and the whole packed as one tar of plain
files (`NAME-VERSION.tar`) that a box unpacks and runs offline. Signing stays with the
publisher's key, outside this tool: `minisign -S -m NAME-VERSION.tar`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from installer.errors import InstallerError  # noqa: E402
from installer.update.manifest import MANIFEST, parse_manifest  # noqa: E402
from installer.update.nodeparts import MODULES, build_modules, check_modules  # noqa: E402
from installer.update.signed import pack  # noqa: E402

CACHE = Path(os.environ.get("CLAWDIE_ISO_CACHE", "/var/cache/clawdie-iso"))


def make_release(payload: Path, out: Path, npm_cache: Path) -> tuple[Path, int]:
    """`payload` as `out/NAME-VERSION.tar` with its Node parts' modules; returns the file and
    how many files it holds. A payload that is not a release is an InstallerError."""
    manifest = payload / MANIFEST
    try:
        text = manifest.read_text(encoding="utf-8")
    except OSError as err:
        raise InstallerError(
            f"cannot read {manifest}: {err.strerror}", "give the payload folder"
        ) from None
    release = parse_manifest(text, str(manifest), need_ready=True)
    with tempfile.TemporaryDirectory(prefix="clawdie-release-") as work:
        folder = Path(work) / "payload"
        shutil.copytree(payload, folder, ignore=shutil.ignore_patterns(MODULES))
        build_modules(folder, npm_cache)
        problems = check_modules(folder)
        if problems:
            raise InstallerError(
                "the built modules are not the locked ones: " + "; ".join(problems)
            )
        out.mkdir(parents=True, exist_ok=True)
        target = out / f"{release.name}-{release.version}.tar"
        files = pack(folder, target)
    return target, files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="iso/release.py", description=__doc__)
    parser.add_argument("payload", type=Path, help="the platform payload folder")
    parser.add_argument("--out", type=Path, default=REPO / "build/release", help="where to write")
    parser.add_argument("--npm-cache", type=Path, default=CACHE / "npm", help="npm's cache")
    args = parser.parse_args(argv)
    try:
        target, files = make_release(args.payload, args.out, args.npm_cache)
    except InstallerError as err:
        print(f"release: error: {err.message}", file=sys.stderr)
        if err.hint:
            print(f"  hint: {err.hint}", file=sys.stderr)
        return 1
    size_mb = target.stat().st_size / 1e6
    print(f"release: {target} ({files} files, {size_mb:.1f} MB, Node modules included)")
    print(f"release: sign it with the publisher's key: minisign -S -m {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
