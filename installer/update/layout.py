"""Where releases live: `/opt/clawdie/releases/<version>`, one folder each, and
`/opt/clawdie/platform`, a link to the one that runs (relative, so a sandbox root works too).
The platform unit starts `/opt/clawdie/platform/<start>`, through the link; a release whose
`start` differs from the image's gets it in a drop-in written with the link's switch.

An image made before releases had a folder at `/opt/clawdie/platform`: it becomes
`releases/<its version>` and the link, without a moment where the name points nowhere that a
later run cannot finish (the new link waits at `.platform.new`).
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from installer.errors import InstallerError
from installer.fsutil import ensure_dir, fsync_dir, remove_durably, symlink_atomic, write_atomic
from installer.paths import SERVICE_NAME, TargetPaths
from installer.update.manifest import Release, version_key
from installer.update.signed import read_release

PLATFORM = "/opt/clawdie/platform"


@dataclass(frozen=True)
class Layout:
    """The release folders and the link of a target."""

    paths: TargetPaths

    @property
    def base(self) -> Path:
        return self.paths.root / "opt" / SERVICE_NAME

    @property
    def link(self) -> Path:
        return self.base / "platform"

    @property
    def releases(self) -> Path:
        return self.base / "releases"

    @property
    def staging(self) -> Path:
        """A bundle being checked, unpacked, before it is one of the releases."""
        return self.base / ".incoming"

    @property
    def staging_copy(self) -> Path:
        """The bundle's own copy, being checked (root's: never read twice from where it was)."""
        return self.base / ".incoming.tar"

    @property
    def dropin(self) -> Path:
        return self.paths.root / f"etc/systemd/system/{SERVICE_NAME}.service.d/20-release.conf"

    def folder(self, version: str) -> Path:
        return self.releases / version

    def link_target(self, version: str) -> str:
        return f"releases/{version}"

    def ensure(self) -> None:
        """Releases and a link; an image's plain folder is moved into releases first."""
        pending = self.base / ".platform.new"
        if self.link.is_symlink():
            return
        if not self.link.exists() and pending.is_symlink():
            os.replace(pending, self.link)  # a cut conversion: finish it
            fsync_dir(self.base)
            return
        if not self.link.is_dir():
            raise InstallerError(
                f"{self.link} holds no platform",
                "the image or install-platform puts the platform payload there",
            )
        version = read_release(self.link).version
        ensure_dir(self.releases, 0o755)
        if self.folder(version).exists():
            raise InstallerError(
                f"{self.link} is a folder and {self.folder(version)} exists too",
                "remove the one that is not the running platform",
            )
        symlink_atomic(pending, self.link_target(version))
        os.replace(self.link, self.folder(version))
        fsync_dir(self.releases)
        os.replace(pending, self.link)
        fsync_dir(self.base)

    def current(self) -> str:
        """The version that runs: the link's target, or an image's plain folder's manifest."""
        if self.link.is_symlink():
            return Path(os.readlink(self.link)).name
        pending = self.base / ".platform.new"
        if not self.link.exists() and pending.is_symlink():
            return Path(os.readlink(pending)).name
        if not self.link.is_dir():
            raise InstallerError(
                f"{self.link} holds no platform: there is nothing to update",
                "the image or install-platform puts the platform there",
            )
        return read_release(self.link).version

    def release(self, version: str) -> Release:
        """The manifest of `version` (the running plain folder's before the conversion)."""
        folder = self.folder(version)
        if not folder.is_dir() and self.link.is_dir() and not self.link.is_symlink():
            return read_release(self.link)
        return read_release(folder)

    @property
    def unit(self) -> Path:
        return self.paths.root / f"etc/systemd/system/{SERVICE_NAME}.service"

    def unit_start(self) -> str | None:
        """The platform unit's own ExecStart (None: no unit here, as in a sandbox)."""
        try:
            text = self.unit.read_text(encoding="utf-8")
        except OSError:
            return None
        lines = [line for line in text.splitlines() if line.startswith("ExecStart=")]
        return lines[-1].removeprefix("ExecStart=") if lines else None

    def point_at(self, version: str, release: Release) -> bool:
        """The unit's start command and the link for `version`, the drop-in first (a cut between
        the two is put right by the run that follows). Returns whether the unit changed."""
        changed = False
        command = shlex.join([f"{PLATFORM}/{release.start[0]}", *release.start[1:]])
        base = self.unit_start()
        if base is not None and base != command:
            text = (
                "# Written by clawdie-setup update: the running release's start command.\n"
                f"[Service]\nExecStart=\nExecStart={command}\n"
            )
            ensure_dir(self.dropin.parent, 0o755)
            changed = write_atomic(self.dropin, text, mode=0o644)
        elif self.dropin.exists():
            changed = remove_durably(self.dropin)
        symlink_atomic(self.link, self.link_target(version))
        return changed

    def versions(self) -> list[str]:
        if not self.releases.is_dir():
            return []
        found = [p.name for p in self.releases.iterdir() if not p.name.startswith(".")]
        return sorted(found, key=version_key)

    def remove(self, version: str) -> None:
        folder = self.folder(version)
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)
            fsync_dir(self.releases)

    def prune(self, keep: set[str]) -> list[str]:
        """Every release but `keep` removed; returns the versions removed."""
        gone = [v for v in self.versions() if v not in keep]
        for version in gone:
            self.remove(version)
        return gone
