"""A release's manifest, `platform.toml`, read into a frozen `Release` (pure: text in, data out).

name = "reference-platform"
version = "2"                       # numbers separated by dots; newer is larger
start = ["bin/clawdie-platform"]    # relative to the release folder
port = 3000                         # optional: the dashboard's port
needs = ["python3", "postgresql-client"]    # optional: Debian packages it runs on
migrate = ["bin/migrate"]           # optional: run once, as the service account, platform stopped
migrate_timeout_s = 600             # optional
[ready]                             # optional for the image's first release, required in a bundle
command = ["bin/clawdie-platform-ready"]    # exit 0 once the platform serves
timeout_s = 60
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

from installer.errors import InstallerError

MANIFEST = "platform.toml"
DEFAULT_MIGRATE_TIMEOUT_S = 600.0
DEFAULT_READY_TIMEOUT_S = 120.0
_VERSION = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,9}){0,5}$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]{1,62}$")  # Debian policy's package names


class ManifestError(InstallerError):
    """A platform.toml that cannot be a release."""


@dataclass(frozen=True)
class Release:
    """What a release says of itself."""

    name: str
    version: str
    start: tuple[str, ...]
    needs: tuple[str, ...] = ()
    migrate: tuple[str, ...] = ()
    migrate_timeout_s: float = DEFAULT_MIGRATE_TIMEOUT_S
    ready: tuple[str, ...] = ()
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S


def is_version(text: str) -> bool:
    """Numbers separated by dots (at most six), as a release's `version` is."""
    return bool(_VERSION.match(text))


def version_key(version: str) -> tuple[int, ...]:
    """`2.10` sorts after `2.9`; trailing zeros do not count (`2` == `2.0`)."""
    parts = [int(p) for p in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _command(where: str, key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(s, str) and s for s in value):
        raise ManifestError(f'{where}: {key} must be a list of strings, e.g. ["bin/run"]')
    program = str(value[0])
    if program.startswith("/") or ".." in program.split("/"):
        raise ManifestError(
            f"{where}: {key} must name a program inside the release folder, not {program}"
        )
    return tuple(str(s) for s in value)


def _seconds(where: str, key: str, value: object, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86400:
        raise ManifestError(f"{where}: {key} must be a number of seconds between 1 and 86400")
    return float(value)


def parse_manifest(text: str, where: str = MANIFEST, *, need_ready: bool = False) -> Release:
    """The release `text` describes; every problem is a `ManifestError` naming `where`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ManifestError(f"{where} is not valid TOML: {err}") from None
    name, version = data.get("name"), data.get("version")
    if not isinstance(name, str) or not name.strip():
        raise ManifestError(f"{where}: name is missing", 'e.g. name = "reference-platform"')
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ManifestError(
            f'{where}: version must be numbers separated by dots, as a string (e.g. "2.1")'
        )
    needs = data.get("needs", [])
    if not isinstance(needs, list) or not all(
        isinstance(n, str) and _PACKAGE.match(n) for n in needs
    ):
        raise ManifestError(f"{where}: needs must be a list of Debian package names")
    ready = data.get("ready", {})
    if not isinstance(ready, dict):
        raise ManifestError(f"{where}: ready must be a table ([ready] with command, timeout_s)")
    migrate = data.get("migrate")
    release = Release(
        name=name.strip(),
        version=version,
        start=_command(where, "start", data.get("start")),
        needs=tuple(needs),
        migrate=() if migrate is None else _command(where, "migrate", migrate),
        migrate_timeout_s=_seconds(
            where, "migrate_timeout_s", data.get("migrate_timeout_s"), DEFAULT_MIGRATE_TIMEOUT_S
        ),
        ready=() if "command" not in ready else _command(where, "ready.command", ready["command"]),
        ready_timeout_s=_seconds(
            where, "ready.timeout_s", ready.get("timeout_s"), DEFAULT_READY_TIMEOUT_S
        ),
    )
    if need_ready and not release.ready:
        raise ManifestError(
            f"{where}: a release needs a readiness check ([ready] command = [...])",
            "the update waits for it before it keeps the release, and rolls back without it",
        )
    return release
