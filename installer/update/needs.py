"""A release's Debian package needs: installed ones are met; missing ones must be fetched
before anything changes (`apt-get install --download-only`), then installed (from apt's cache,
or a file: source in place) with the platform still running. Offline, or a name apt does not
know: refused, with apt's own reason. In a sandbox root only its dpkg database is read (nothing
is installed there)."""

from __future__ import annotations

from collections.abc import Sequence

from installer.errors import CommandFailedError
from installer.paths import TargetPaths
from installer.run import run
from installer.update.signed import RefusedError

APT_TIMEOUT_S = 900.0
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}


def missing_packages(paths: TargetPaths, needs: Sequence[str]) -> list[str]:
    """The packages of `needs` not installed in the target."""
    if not needs:
        return []
    admin = [] if paths.is_live_system else [f"--admindir={paths.root / 'var/lib/dpkg'}"]
    result = run(
        ["dpkg-query", *admin, "--show", "--showformat=${Package} ${db:Status-Status}\n", *needs],
        check=False,
        timeout=60,
    )
    installed = set()
    for line in result.stdout.decode(errors="replace").splitlines():
        name, _, state = line.partition(" ")
        if state.strip() == "installed":
            installed.add(name.split(":")[0])
    return [n for n in needs if n not in installed]


def fetch_packages(paths: TargetPaths, missing: Sequence[str]) -> None:
    """Download what `missing` needs, or refuse (nothing installed yet)."""
    if not missing:
        return
    names = ", ".join(missing)
    if not paths.is_live_system:
        raise RefusedError(
            f"the release needs Debian packages this system does not have: {names}",
            "packages are only installed on the running system",
        )
    try:
        run(
            ["apt-get", "install", "--download-only", "--yes", "--no-install-recommends", *missing],
            env=APT_ENV,
            timeout=APT_TIMEOUT_S,
        )
    except CommandFailedError as err:
        raise RefusedError(
            f"the release needs Debian packages that cannot be fetched now: {names} "
            f"({err.stderr_tail or err.message})",
            "connect the box to the network (or `apt-get update` if apt does not know them), "
            "then apply the release again",
        ) from None


def install_packages(missing: Sequence[str]) -> None:
    """Install what fetch_packages downloaded. Not `--no-download`: a file: source's packages
    (a local mirror) are read in place, never copied to apt's cache, and that option refuses
    them (found on the existing host's test, tests/test_existing_host.py)."""
    if missing:
        run(
            ["apt-get", "install", "--yes", "--no-install-recommends", *missing],
            env=APT_ENV,
            timeout=APT_TIMEOUT_S,
        )
