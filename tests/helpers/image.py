"""The installer image for the boot tests: the one `just iso` built, or built here.

Each test works on its own copy (`copy_image`), so the built image stays as `just iso` made it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "build" / "iso"
IMAGE = OUT / "clawdie-installer.iso"
FIGURES = OUT / "build-figures.json"


def ensure_image() -> Path:
    """The built image; build it now when there is none (`just boot-test` builds it first)."""
    if os.geteuid() != 0:
        pytest.skip("the image build needs root")
    for tool in ("debootstrap", "xorriso", "mksquashfs", "grub-mkimage"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}: run `just iso` once (it installs the tools)")
    if not IMAGE.is_file():
        proc = subprocess.run([sys.executable, str(REPO / "iso/build.py")], check=False)
        if proc.returncode != 0:
            pytest.fail(f"the image build failed (exit {proc.returncode})")
    return IMAGE


def read_figures() -> dict[str, object]:
    return dict(json.loads(FIGURES.read_text()))


def copy_image(image: Path, dest: Path) -> Path:
    """A sparse copy of `image` at `dest` (the tests write their seed into the copy)."""
    subprocess.run(["cp", "--sparse=always", str(image), str(dest)], check=True)
    return dest


def load_build() -> ModuleType:
    """iso/build.py as a module (it is a script, not part of a package): its checks and names."""
    spec = importlib.util.spec_from_file_location("iso_build", REPO / "iso/build.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["iso_build"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
