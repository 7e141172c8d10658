"""The installer's own venv in a target root, from this checkout's lock file: one recipe for the
image build (iso/build.py) and the existing host (`install-platform`).

`/opt/clawdie/venv` holds exactly what `uv.lock` pins (hashes required, wheels only) and the
installer's own wheel, for the target's Python and architecture; `/usr/local/bin/clawdie-setup`
runs it. The venv is made by hand (pyvenv.cfg and the interpreter links) rather than by
`python3 -m venv`, so making it runs nothing inside the target: a sandbox root or an image
under construction gets the same files as a running host.

Idempotent: the venv carries a key made of everything it is built from (the lock file, the
project's metadata and source, the target's Python and architecture). A run whose key matches
writes nothing; otherwise the venv is made again from nothing and the key is written last, so a
run cut short is redone in full.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from installer.errors import InstallerError
from installer.fsutil import ensure_dir, write_atomic
from installer.paths import in_root
from installer.run import run

VENV_DIR = "/opt/clawdie/venv"
COMMAND = "/usr/local/bin/clawdie-setup"
KEY_FILE = ".clawdie-venv-key"
# uv's names of the platforms the appliance runs on; Debian 12's glibc is 2.36.
UV_PLATFORMS = {"amd64": "x86_64-manylinux_2_36", "arm64": "aarch64-manylinux_2_36"}
# Installing a few dozen wheels (downloaded when uv's cache lacks them) is bounded by this.
INSTALL_TIMEOUT_S = 900.0
# The wheel's file times when the caller names no build epoch (zip cannot go before 1980).
DEFAULT_EPOCH = 315532800


class VenvError(InstallerError):
    """The venv cannot be made from this checkout for this target."""


@dataclass(frozen=True)
class VenvSource:
    """What the venv is made from: a checkout (its pyproject.toml, uv.lock, installer/) and
    the uv that installs it."""

    checkout: Path
    uv: Path

    @classmethod
    def find(cls, checkout: Path) -> VenvSource:
        missing = [n for n in ("pyproject.toml", "uv.lock") if not (checkout / n).is_file()]
        if missing:
            raise VenvError(
                f"{checkout} is not a checkout of the installer (no {', '.join(missing)})",
                "run install-platform from a clone of the repository, after .ci/bootstrap",
            )
        beside = Path(sys.executable).parent / "uv"
        found = beside if beside.is_file() else None
        if found is None:
            which = shutil.which("uv")
            found = Path(which) if which else None
        if found is None:
            raise VenvError(
                "uv is not installed next to this Python, nor on PATH",
                "run .ci/bootstrap in the checkout first (it installs uv into .venv)",
            )
        return cls(checkout=checkout, uv=found)


# `set-operator EMAIL` is the command the summary and the design name for unlocking the
# dashboard: on the box's PATH as itself, not only as `clawdie-setup set-operator`.
SET_OPERATOR = "/usr/local/bin/set-operator"


def render_command_wrapper(command: str = "") -> str:
    """/usr/local/bin/clawdie-setup (or, with `command`, a wrapper for that one command): the
    installer, from its own venv."""
    args = f"{command} " if command else ""
    return (
        "#!/bin/sh\n# The Clawdie installer, from its own venv.\n"
        f'exec {VENV_DIR}/bin/python -m installer.cli {args}"$@"\n'
    )


def target_python(root: Path) -> str:
    """The target's python3 as `python3.N` (following /usr/bin/python3's links inside root)."""
    link = root / "usr/bin/python3"
    name = "python3"
    for _ in range(8):
        if not link.is_symlink():
            break
        name = os.path.basename(os.readlink(link))
        link = link.with_name(name)
    if not name.startswith("python3.") or not (root / "usr/bin" / name).exists():
        raise VenvError(
            f"no Debian python3 in {root} (/usr/bin/python3 -> python3.N)",
            "install it with `apt-get install python3`, then run this again",
        )
    return name


def source_key(source: VenvSource, python: str, arch: str) -> str:
    """A digest of everything the venv is made from."""
    digest = hashlib.sha256()
    for part in (python, arch):
        digest.update(part.encode() + b"\0")
    files = [source.checkout / "pyproject.toml", source.checkout / "uv.lock"]
    package = source.checkout / "installer"
    files += sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        digest.update(str(path.relative_to(source.checkout)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def write_venv_skeleton(venv: Path, python: str) -> Path:
    """pyvenv.cfg and bin/python* links to the target's /usr/bin/python3.N; returns the
    site-packages folder."""
    ensure_dir(venv / "bin", 0o755)
    version = python.removeprefix("python")
    write_atomic(
        venv / "pyvenv.cfg",
        f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {version}\n",
        mode=0o644,
    )
    (venv / "bin/python").symlink_to(f"/usr/bin/{python}")
    (venv / "bin/python3").symlink_to("python")
    (venv / "bin" / python).symlink_to("python")
    site = venv / "lib" / python / "site-packages"
    site.mkdir(parents=True)
    (venv / "lib64").symlink_to("lib")
    return site


def export_requirements(source: VenvSource, out: Path) -> str:
    """uv.lock's pins (with hashes) for the installer's runtime, without the dev tools."""
    run(
        [
            str(source.uv),
            "export",
            "--frozen",
            "--no-dev",
            "--no-emit-project",
            "--no-header",
            "--quiet",
            "-o",
            str(out),
        ],
        env={"UV_PROJECT": str(source.checkout)},
    )
    return out.read_text(encoding="utf-8")


def forget_wheel_path(site: Path) -> None:
    """Drop what records where and when the project's wheel lay at build time: PEP 610's
    direct_url.json (a build folder's path) and uv's uv_cache.json (the wheel file's mtime).
    Neither means anything on the target, and they made two builds of the same inputs differ."""
    for dist_info in site.glob("*.dist-info"):
        names = [n for n in ("direct_url.json", "uv_cache.json") if (dist_info / n).exists()]
        if not names:
            continue
        record = dist_info / "RECORD"
        dropped = tuple(f"{dist_info.name}/{name}," for name in names)
        kept = [
            line
            for line in record.read_text().splitlines(keepends=True)
            if not line.startswith(dropped)
        ]
        record.write_text("".join(kept))
        for name in names:
            (dist_info / name).unlink()


def install_venv(
    source: VenvSource,
    root: Path,
    work: Path,
    *,
    arch: str = "amd64",
    epoch: int = DEFAULT_EPOCH,
    compile_site: Callable[[Path], None] | None = None,
) -> tuple[bool, str]:
    """The venv and the command wrapper in `root`; returns (whether anything was written, the
    pin list). `work` is a scratch folder outside the target; `compile_site` (given the
    site-packages folder as seen inside the target) compiles its bytecode, before the key."""
    if arch not in UV_PLATFORMS:
        raise VenvError(f"no wheels are locked for the {arch} architecture (amd64, arm64 only)")
    python = target_python(root)
    key = source_key(source, python, arch)
    venv = in_root(root, VENV_DIR)
    work.mkdir(parents=True, exist_ok=True)
    requirements = export_requirements(source, work / "requirements.txt")
    wrappers = [
        write_atomic(in_root(root, path), render_command_wrapper(command), mode=0o755)
        for path, command in ((COMMAND, ""), (SET_OPERATOR, "set-operator"))
    ]
    wrapper = any(wrappers)
    key_path = venv / KEY_FILE
    if key_path.is_file() and key_path.read_text(encoding="utf-8").strip() == key:
        return wrapper, requirements
    if venv.exists() or venv.is_symlink():
        shutil.rmtree(venv) if venv.is_dir() and not venv.is_symlink() else venv.unlink()
    wheels = work / "wheel"
    shutil.rmtree(wheels, ignore_errors=True)
    run(
        [str(source.uv), "build", "--wheel", "--quiet", "--out-dir", str(wheels), "."],
        cwd=source.checkout,
        env={"SOURCE_DATE_EPOCH": str(epoch)},
        timeout=INSTALL_TIMEOUT_S,
    )
    ensure_dir(venv.parent, 0o755)
    site = write_venv_skeleton(venv, python)
    common = [
        "--target",
        str(site),
        "--python-platform",
        UV_PLATFORMS[arch],
        "--python-version",
        python.removeprefix("python"),
        "--quiet",
        "--no-build",
    ]
    uv = str(source.uv)
    run(
        [uv, "pip", "install", *common, "--require-hashes", "-r", str(work / "requirements.txt")],
        timeout=INSTALL_TIMEOUT_S,
    )
    run(
        [uv, "pip", "install", *common, "--no-deps", *map(str, sorted(wheels.glob("*.whl")))],
        timeout=INSTALL_TIMEOUT_S,
    )
    forget_wheel_path(site)
    shutil.rmtree(site / "bin", ignore_errors=True)
    if compile_site is not None:
        compile_site(Path("/") / site.relative_to(root))
    write_atomic(key_path, key + "\n", mode=0o644)
    return True, requirements
