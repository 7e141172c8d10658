"""A payload's Node parts: each folder holding a `package-lock.json` (outside `node_modules`), such
as the reference platform's `dashboard/`. The box runs them offline, so their modules travel with
the payload: `npm ci` from the lock file (production only, no install scripts, no `.bin` links: a
release holds plain files only) where the payload is made (the image build, the publisher's
release), never on the box. `check_modules` says which parts lack modules built from their lock
(npm's own record of what it installed, `node_modules/.package-lock.json`, against the lock)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from installer.run import run

LOCK = "package-lock.json"
MODULES = "node_modules"
INSTALLED = f"{MODULES}/.package-lock.json"  # what npm ci installed, written by npm itself
NPM_CI = [
    "npm",
    "ci",
    "--omit=dev",
    "--ignore-scripts",
    "--no-bin-links",
    "--no-audit",
    "--no-fund",
]
NPM_TIMEOUT_S = 900.0


def node_parts(folder: Path) -> list[Path]:
    """The folders of `folder` that hold a package-lock.json (not those inside node_modules)."""
    return sorted(
        lock.parent
        for lock in folder.rglob(LOCK)
        if MODULES not in lock.relative_to(folder).parts and not lock.is_symlink()
    )


def _versions(packages: dict[str, dict[str, object]], runtime_only: bool) -> dict[str, object]:
    return {
        name: entry.get("version")
        for name, entry in packages.items()
        if name and not (runtime_only and any(entry.get(k) for k in ("dev", "optional", "peer")))
    }


def module_problem(part: Path) -> str | None:
    """Why `part`'s modules are not the ones its lock file names (None: they are)."""
    installed = part / INSTALLED
    if not installed.is_file():
        return f"has no {MODULES} (built with `npm ci` from its {LOCK})"
    try:
        lock = json.loads((part / LOCK).read_text(encoding="utf-8"))["packages"]
        have = json.loads(installed.read_text(encoding="utf-8"))["packages"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"has modules npm's record of cannot be read ({err})"
    wanted, built = _versions(lock, True), _versions(have, False)
    every = _versions(lock, False)
    stray = sorted(n for n, v in built.items() if every.get(n) != v)
    absent = sorted(n for n in wanted if n not in built)
    if stray or absent:
        names = ", ".join([*absent, *stray][:5])
        return f"has {MODULES} that do not match its {LOCK} ({names})"
    return None


def check_modules(folder: Path) -> list[str]:
    """Each Node part of `folder` whose modules are missing or not its lock's, in words."""
    problems = []
    for part in node_parts(folder):
        why = module_problem(part)
        if why is not None:
            problems.append(f"{part.relative_to(folder).as_posix() or '.'}/ {why}")
    return problems


def build_modules(folder: Path, cache: Path) -> int:
    """Each Node part of `folder` gets its locked modules (`npm ci`, npm's cache in `cache`);
    returns how many parts were built. A failure is the command's error (npm's words)."""
    parts = node_parts(folder)
    for part in parts:
        shutil.rmtree(part / MODULES, ignore_errors=True)  # a copy's, if any: the lock decides
        run(
            NPM_CI,
            cwd=part,
            env={"npm_config_cache": str(cache), "npm_config_update_notifier": "false"},
            timeout=NPM_TIMEOUT_S,
        )
    return len(parts)
