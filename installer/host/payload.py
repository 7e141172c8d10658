"""The platform payload on an existing host, made ready before anything is installed: what it is
(a folder, or the publisher's signed release file), its Node parts' modules, and the Debian
packages its runtime needs (platform.toml `needs`).

The modules: a release file carries them, built by its publisher from the lock file
(iso/release.py) and checked here against it, so the host runs exactly what the image runs,
offline, with nothing fetched from npm's registry at install time and no npm on the host. A
folder (the checkout's reference payload has only the lock file) gets them built here with
`npm ci` from its lock, in a copy (the folder itself is not written), when npm is on this
machine and the registry answers; otherwise it is refused, saying how to get them.

The packages: every missing one is downloaded first (`apt-get install --download-only`); one
that cannot be (offline, a name apt does not know) refuses the install with apt's reason while
nothing is installed yet. They are installed with the rest, from apt's cache.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from installer.errors import InstallerError
from installer.paths import TargetPaths
from installer.run import run
from installer.update import needs, nodeparts
from installer.update.manifest import MANIFEST, Release, parse_manifest
from installer.update.signed import KEY_NAME, copy_bundle, read_signature, unpack, verify

log = logging.getLogger("clawdie.host")

APT_TIMEOUT_S = 900.0
NPM_CACHE = "var/cache/clawdie-setup/npm"
NOTHING = "nothing was installed"


class PayloadError(InstallerError):
    """The payload cannot be made ready; nothing was installed."""


@dataclass(frozen=True)
class Payload:
    """The folder install_payload copies, its manifest, and how it came (the summary's words)."""

    folder: Path
    release: Release
    how: str


def prepare(paths: TargetPaths, given: Path, key: bytes | None, work: Path) -> Payload:
    """`given` (a folder or a release file) as a folder whose Node parts have their locked
    modules; `work` is an empty folder of this run's for the copies."""
    if given.is_file():
        return _from_release(paths, given, key, work)
    release = read_manifest(given)
    problems = nodeparts.check_modules(given)
    if not problems:
        return Payload(given, release, "")
    return _built_here(paths, given, release, problems, work)


def read_manifest(folder: Path) -> Release:
    manifest = folder / MANIFEST
    try:
        text = manifest.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PayloadError(
            f"cannot read {manifest}: {err}",
            "give --platform the platform payload folder (it holds platform.toml) or the "
            "publisher's release file",
        ) from None
    return parse_manifest(text, str(manifest))


def _from_release(paths: TargetPaths, bundle: Path, key: bytes | None, work: Path) -> Payload:
    """The publisher's release file, verified with `key` (else the host's own release key)."""
    if key is None:
        try:
            key = (paths.config_dir / KEY_NAME).read_bytes()
        except OSError:
            raise PayloadError(
                f"{bundle} is a release file, and it is checked with its publisher's key",
                f"give the key with --release-key FILE.pub; {NOTHING}",
            ) from None
    copy = copy_bundle(bundle, work / "release.tar")
    verify(copy, read_signature(bundle), key)
    release = unpack(copy, work / "release")
    copy.unlink()
    problems = nodeparts.check_modules(work / "release")
    if problems:
        raise PayloadError(
            "the release cannot run offline: " + "; ".join(problems),
            f"its publisher makes releases with their Node modules (iso/release.py); {NOTHING}",
        )
    return Payload(work / "release", release, f"from {bundle.name}, signature checked")


def _built_here(
    paths: TargetPaths, folder: Path, release: Release, problems: list[str], work: Path
) -> Payload:
    """A folder's Node parts built with npm from their locks, in a copy under `work`."""
    if shutil.which("npm") is None:
        raise PayloadError(
            "the payload is not ready to run: " + "; ".join(problems) + ", and npm is not on "
            "this machine to build them",
            "give the publisher's release file, which carries them (--platform FILE.tar "
            "--release-key FILE.pub), or install npm (`apt-get install npm`) and run "
            f"install-platform again with the network; {NOTHING}",
        )
    copy = work / "payload"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(nodeparts.MODULES))
    try:
        built = nodeparts.build_modules(copy, paths.root / NPM_CACHE)
    except InstallerError as err:
        raise PayloadError(
            f"building the payload's Node modules with npm failed: {err.message}",
            "npm needs the registry (registry.npmjs.org) to build them from the lock file: "
            "connect this machine, or give the publisher's release file (--platform FILE.tar "
            f"--release-key FILE.pub), which carries them; {NOTHING}",
        ) from None
    problems = nodeparts.check_modules(copy)
    if problems:
        raise PayloadError("npm built modules that are not the locked ones: " + "; ".join(problems))
    return Payload(copy, release, f"Node modules of {built} part(s) built with npm from the lock")


# --- the Debian packages it needs -----------------------------------------------------------


def in_target(paths: TargetPaths, argv: list[str]) -> list[str]:
    """`argv` as run on the target: as it is on the running host, through chroot otherwise."""
    return argv if paths.is_live_system else ["chroot", str(paths.root), *argv]


def apt_update(paths: TargetPaths) -> str:
    """`apt-get update`; returns why it failed ("" when it did not). A failure is only logged:
    the lists and packages already on the host may be enough."""
    try:
        result = run(
            in_target(paths, ["apt-get", "update", "-qq"]),
            env=needs.APT_ENV,
            check=False,
            timeout=APT_TIMEOUT_S,
        )
        why = f"exit {result.returncode}" if result.returncode else ""
    except InstallerError as err:  # timed out, or chroot missing
        why = err.message
    if why:
        log.warning("apt-get update failed (%s); using the lists already here", why)
    return why


def missing_needs(paths: TargetPaths, release: Release, *, skip: Sequence[str] = ()) -> list[str]:
    """The packages of the payload's `needs` the host lacks (less `skip`)."""
    return [n for n in needs.missing_packages(paths, release.needs) if n not in skip]


def fetch_needs(paths: TargetPaths, missing: Sequence[str]) -> None:
    """Download `missing` into apt's cache, or refuse with apt's reason (nothing installed)."""
    if not missing:
        return
    why = apt_update(paths)
    argv = ["apt-get", "install", "--download-only", "-y", "-qq", "--no-install-recommends"]
    try:
        run(in_target(paths, [*argv, *missing]), env=needs.APT_ENV, timeout=APT_TIMEOUT_S)
    except InstallerError as err:
        reason = getattr(err, "stderr_tail", "") or err.message
        raise PayloadError(
            f"the platform needs Debian packages that cannot be fetched now: "
            f"{', '.join(missing)} ({reason})"
            + (f"; apt-get update failed too ({why})" if why else ""),
            "connect the host to the network or fix its apt sources (or install them yourself: "
            f"`apt-get install {' '.join(missing)}`), then run install-platform again; {NOTHING}",
        ) from None


def install_needs(paths: TargetPaths, missing: Sequence[str]) -> None:
    """Install `missing`, which fetch_needs downloaded (not `--no-download`: a file: source's
    packages are read in place, never copied to apt's cache, and that option refuses them)."""
    if not missing:
        return
    argv = ["apt-get", "install", "-y", "-qq", "--no-install-recommends"]
    try:
        run(in_target(paths, [*argv, *missing]), env=needs.APT_ENV, timeout=APT_TIMEOUT_S)
    except InstallerError as err:
        raise PayloadError(
            f"installing the Debian packages the platform needs failed: {err.message}",
            f"fix apt (`apt-get install {' '.join(missing)}`), then run install-platform again",
        ) from None
