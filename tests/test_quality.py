"""ruff and mypy --strict are part of the suite: a lint or type error fails the tests. And the
version is written in one place, with a changelog section of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from installer import __version__

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, cwd=ROOT, check=False
    )


def test_ruff_check() -> None:
    result = run("ruff", "check", "installer", "tests", "bench", "iso")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run("ruff", "format", "--check", "installer", "tests", "bench", "iso")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = run("mypy", "--strict", "installer", "tests", "iso", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_version_is_written_once_and_the_changelog_has_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project
    assert project["dynamic"] == ["version"]
    changelog = (ROOT / "installer/CHANGELOG.md").read_text()
    assert f"\n## {__version__}\n" in changelog


def test_just_alone_lists_every_recipe_with_its_whole_description() -> None:
    # `.venv/bin/just` as the README shows it, with no `just` on the PATH.
    result = subprocess.run(
        [str(BIN / "just")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()[1:]
    described = dict(row.strip().split(" # ", 1) for row in rows)
    names = {name.split()[0] for name in described}
    assert {"default", "demo", "test", "test-all", "boot-test"} <= names
    for description in described.values():
        # a description is its recipe's summary, not the last line of a longer comment
        assert description[0].islower(), description
        assert not description.startswith(("(", "/")), description


def test_the_wheel_carries_the_product_and_not_the_dev_tools(tmp_path: Path) -> None:
    """What a box installs: the installer and its data, not installer/dev (the demo, its
    sandbox root, a throwaway PostgreSQL), which runs from the checkout only."""
    result = subprocess.run(
        [str(BIN / "uv"), "build", "--wheel", "--quiet", "--out-dir", str(tmp_path), "."],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "UV_OFFLINE": "1"},
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "installer/cli.py" in names
    assert "installer/data/profiles.toml" in names
    assert not [name for name in names if name.startswith("installer/dev/")]
