"""Shared test data and fakes (moved out of test_better_auth.py, which other tests use too)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

BETTER_AUTH_VERSION = "1.7.25"  # pinned: the verified version (DESIGN §4, password hashes)


PG_VERSION = "8.16.3"  # node-postgres, for the migration planner


PACKAGES = [f"better-auth@{BETTER_AUTH_VERSION}", f"pg@{PG_VERSION}"]


def _cache_root() -> Path:
    base = os.environ.get("CLAWDIE_TEST_CACHE") or Path.home() / ".cache" / "clawdie-tests"
    return Path(base) / f"better-auth-{BETTER_AUTH_VERSION}-pg-{PG_VERSION}"


def _better_auth(tmp_path: Path) -> Path:
    """A directory whose node_modules holds better-auth@BETTER_AUTH_VERSION."""
    cached = _cache_root()
    if (cached / "node_modules" / "better-auth" / "package.json").exists():
        return cached
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are needed to check the hash against better-auth")
    work = tmp_path / "npm"
    work.mkdir()
    (work / "package.json").write_text('{"name": "clawdie-hash-check", "private": true}\n')
    npm_into(
        work, ["install", "--no-audit", "--no-fund", *PACKAGES], f"npm install {' '.join(PACKAGES)}"
    )
    return keep_cached(work, cached)


def npm_into(work: Path, args: list[str], what: str) -> None:
    """`npm ARGS` in `work`; the test skips, saying why, when npm cannot (no registry)."""
    proc = subprocess.run(
        ["npm", *args], cwd=work, capture_output=True, text=True, timeout=300, check=False
    )
    if proc.returncode != 0:
        pytest.skip(f"{what} failed: {proc.stderr[-400:]}")


def keep_cached(work: Path, cached: Path) -> Path:
    """`work` kept at `cached` for the next run (renamed into place whole); `work` itself when
    that fails (the next run then only installs again)."""
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        staging = cached.with_name(cached.name + f".{os.getpid()}")
        shutil.copytree(work, staging, symlinks=True)
        staging.rename(cached)
    except OSError:
        return work
    return cached


# a cold npm install takes 25-40 s: `slow` until the cache exists, in the fast suite after
COLD = not (_cache_root() / "node_modules" / "better-auth" / "package.json").exists()


def node(where: Path, name: str, script: str, stdin: str, env: dict[str, str] | None = None) -> Any:
    path = where / name
    if not path.exists() or path.read_text() != script:
        path.write_text(script)
    proc = subprocess.run(
        ["node", str(path)],
        cwd=where,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
