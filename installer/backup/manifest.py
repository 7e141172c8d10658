"""The manifest inside every backup: what it holds, written and read by one pair
(`render_manifest` / `parse_manifest`), and the checks a restore makes against it. Pure.

Each part is one file, link or directory of the box (by its path under the root, with its mode
and owner by name: a new box's accounts have other ids), one database dump, or one record the
backup keeps (the installation's fingerprint, the service account). Files and records are one
archive member each; a database is cut into members of at most `CHUNK` bytes (so the dump
streams into the archive), `databases/NAME.dump.part-000001`, … in order: joined, they are
`pg_dump -Fc`'s output.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
MAX_MANIFEST = 4 << 20
CHUNK = 16 << 20
KINDS = ("file", "link", "dir", "database", "record")


class ManifestError(ValueError):
    """The manifest is not one this installer wrote (or can read)."""


@dataclass(frozen=True)
class Part:
    """One thing a backup holds. `name` is its archive member (a database's: the prefix of its
    members); `path` is where it goes under the root (files, links, directories)."""

    name: str
    kind: str
    size: int = 0
    sha256: str = ""
    path: str = ""
    mode: int = 0
    owner: str = "root"
    group: str = "root"
    target: str = ""  # a link's target

    def members(self) -> int:
        """How many archive members hold this part."""
        if self.kind in ("link", "dir"):
            return 0
        if self.kind == "database":
            return max(1, -(-self.size // CHUNK))
        return 1


def chunk_name(database_part: str, index: int) -> str:
    return f"{database_part}.part-{index:06d}"


@dataclass(frozen=True)
class Manifest:
    format: int
    installer: str
    platform: str
    host: str
    fingerprint: str
    created: str  # UTC, ISO 8601
    parts: tuple[Part, ...] = field(default_factory=tuple)

    def part(self, name: str) -> Part | None:
        return next((p for p in self.parts if p.name == name), None)

    def of_kind(self, kind: str) -> list[Part]:
        return [p for p in self.parts if p.kind == kind]


def render_manifest(manifest: Manifest) -> bytes:
    doc = asdict(manifest)
    doc["parts"] = [
        {k: v for k, v in asdict(p).items() if v not in ("", 0) or k in ("size", "name")}
        for p in manifest.parts
    ]
    return (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode()


_SAFE_PATH = re.compile(r"^[A-Za-z0-9._@+-]+(/[A-Za-z0-9._@+-]+)*$")


def check_path(path: str) -> str:
    """A part's path: relative, no `.` or `..` component, no odd characters."""
    if not _SAFE_PATH.fullmatch(path) or any(c in (".", "..") for c in path.split("/")):
        raise ManifestError(f"a part names the path {path!r}, which is not one a backup writes")
    return path


def _part(item: Any) -> Part:
    if not isinstance(item, dict):
        raise ManifestError("a part is not an object")
    try:
        part = Part(
            name=str(item["name"]),
            kind=str(item["kind"]),
            size=int(item.get("size", 0)),
            sha256=str(item.get("sha256", "")),
            path=str(item.get("path", "")),
            mode=int(item.get("mode", 0)),
            owner=str(item.get("owner", "root")),
            group=str(item.get("group", "root")),
            target=str(item.get("target", "")),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ManifestError(f"a part is incomplete ({err})") from None
    if part.kind not in KINDS:
        raise ManifestError(f"a part of unknown kind {part.kind!r}")
    if part.size < 0 or not 0 <= part.mode <= 0o7777:
        raise ManifestError(f"part {part.name}: size or mode out of range")
    if part.kind in ("file", "link", "dir"):
        check_path(part.path)
    return part


def parse_manifest(data: bytes) -> Manifest:
    """The manifest as `render_manifest` wrote it; ManifestError for anything else."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ManifestError("the manifest is not JSON") from None
    if not isinstance(doc, dict):
        raise ManifestError("the manifest is not an object")
    try:
        fmt = int(doc["format"])
    except (KeyError, TypeError, ValueError):
        raise ManifestError("the manifest has no format version") from None
    if fmt > FORMAT_VERSION:  # read what we can say, then refuse on the version
        return Manifest(fmt, str(doc.get("installer", "?")), "", "", "", "")
    try:
        parts = tuple(_part(item) for item in doc["parts"])
        manifest = Manifest(
            format=fmt,
            installer=str(doc["installer"]),
            platform=str(doc["platform"]),
            host=str(doc["host"]),
            fingerprint=str(doc["fingerprint"]),
            created=str(doc["created"]),
            parts=parts,
        )
    except (KeyError, TypeError):
        raise ManifestError("the manifest lacks a field") from None
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        raise ManifestError("the manifest names a part twice")
    return manifest


def version_tuple(version: str) -> tuple[int, ...] | None:
    """`1.2.3` -> (1, 2, 3); None for a version that is not dotted numbers (`unknown`)."""
    found = re.match(r"^(\d+(?:\.\d+)*)", version.strip())
    return tuple(int(n) for n in found.group(1).split(".")) if found else None


def newer(theirs: str, ours: str) -> bool:
    a, b = version_tuple(theirs), version_tuple(ours)
    return a is not None and b is not None and a > b


def refusal(manifest: Manifest, installer: str, platform: str) -> str | None:
    """Why this installer must not restore `manifest`'s backup (a newer format, installer or
    platform than its own), or None."""
    if manifest.format > FORMAT_VERSION:
        return (
            f"the backup's format is version {manifest.format}; this installer reads up to "
            f"version {FORMAT_VERSION} (it was made by installer {manifest.installer})"
        )
    if newer(manifest.installer, installer):
        return (
            f"the backup was made by installer {manifest.installer}, newer than this one "
            f"({installer})"
        )
    if newer(manifest.platform, platform):
        return f"the backup holds platform {manifest.platform}, newer than this box's ({platform})"
    return None
