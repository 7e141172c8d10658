"""A signed release: one file (a tar of the payload folder) and its detached minisign signature
(`FILE.minisig`, Ed25519, made with `minisign -S -m FILE`), verified with the publisher's public
key the image carries (`/etc/clawdie/release.pub`, minisign's `.pub` format).

The bundle is copied into root's own state first (O_NOFOLLOW, a regular file, bounded), and the
copy is what is verified and unpacked: nothing another account can write is read twice.
Unpacking takes regular files and folders only (no links, devices, absolute or `..` names).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
from pathlib import Path

from installer.errors import InstallerError, UsageError
from installer.fsutil import ensure_dir, fsync_dir, read_bytes_nofollow, write_atomic
from installer.paths import RELEASE_KEY_NAME
from installer.update.manifest import MANIFEST, Release, parse_manifest

SIGNATURE_SUFFIX = ".minisig"
BUNDLE_LIMIT = 4 << 30  # 4 GiB
SIGNATURE_LIMIT = 4096
MEMBER_LIMIT = 100_000


KEY_NAME = RELEASE_KEY_NAME  # in /etc/clawdie: the publisher's public key


class RefusedError(InstallerError):
    """A release that is not applied; nothing was changed."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(f"refused: {message}", hint)


def signature_path(bundle: Path) -> Path:
    return bundle.with_name(bundle.name + SIGNATURE_SUFFIX)


def copy_bundle(bundle: Path, copy: Path) -> Path:
    """`bundle` copied to `copy` (in root's own folder), read without following a link;
    returns the copy."""
    try:
        fd = os.open(bundle, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise RefusedError(
            f"cannot read the release {bundle}: {err.strerror}",
            "give the release file itself (not a link to it)",
        ) from None
    with os.fdopen(fd, "rb") as source:
        status = os.fstat(source.fileno())
        if not stat.S_ISREG(status.st_mode) or status.st_size > BUNDLE_LIMIT:
            raise RefusedError(f"{bundle} is not a regular file of at most 4 GiB")
        ensure_dir(copy.parent, 0o755)
        with open(copy, "wb") as target:
            os.fchmod(target.fileno(), 0o600)
            shutil.copyfileobj(source, target, 1 << 20)
            target.flush()
            os.fsync(target.fileno())
    fsync_dir(copy.parent)
    return copy


def read_signature(bundle: Path) -> bytes:
    sig = signature_path(bundle)
    try:
        return read_bytes_nofollow(sig, SIGNATURE_LIMIT)
    except FileNotFoundError:
        raise RefusedError(
            f"no signature next to the release: {sig} is missing",
            "a release comes as two files, FILE and FILE.minisig, made by its publisher",
        ) from None
    except OSError as err:
        raise RefusedError(f"cannot read the signature {sig}: {err.strerror}") from None


def verify(copy: Path, signature: bytes, public_key: bytes) -> str:
    """Raise `RefusedError` unless `signature` (minisign format) is `public_key`'s over the
    file `copy`; returns the signature's trusted comment."""
    import minisign

    try:
        key = minisign.PublicKey.from_bytes(public_key.strip())
    except minisign.Error as err:
        raise InstallerError(
            f"the image's release key cannot be read: {err}",
            "the image build writes it from --release-key (minisign's .pub format)",
        ) from None
    try:
        sig = minisign.Signature.from_bytes(signature.strip())
    except minisign.Error as err:
        raise RefusedError(f"the signature file is not a minisign signature: {err}") from None
    try:
        with open(copy, "rb") as handle:
            key.verify(handle, sig)
    except minisign.VerifyError as err:
        why = (
            "signed by another key than this box trusts"
            if "identifier" in str(err)
            else "the signature does not match the file (changed or damaged)"
        )
        raise RefusedError(
            f"the release's signature is not valid: {why}",
            "use the release file and signature exactly as the publisher made them",
        ) from None
    return str(sig.trusted_comment)


def _safe_members(archive: tarfile.TarFile, limit: int) -> list[tarfile.TarInfo]:
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in archive:
        name = member.name.removeprefix("./")
        if name in ("", "."):
            continue
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
            raise RefusedError(
                f"the release holds {member.name!r}, which is not a plain file or folder inside it"
            )
        total += member.size
        if len(members) >= MEMBER_LIMIT or total > limit:
            raise RefusedError("the release unpacks to more than its limit")
        member.name = name
        members.append(member)
    return members


# tarfile's extraction filters came with Python 3.11.4; Debian 12's python3 is 3.11.2, which has
# none (extract() refuses the argument). `_safe_members` makes the checks that matter here in
# either case: plain files and folders only, inside the release, within the bound.
_HAS_FILTERS = hasattr(tarfile, "data_filter")


def _extract(archive: tarfile.TarFile, member: tarfile.TarInfo, into: Path) -> None:
    if _HAS_FILTERS:
        archive.extract(member, into, set_attrs=True, filter="data")
    else:  # Python < 3.11.4, as on the box
        archive.extract(member, into, set_attrs=True)


def unpack(copy: Path, into: Path) -> Release:
    """`copy` unpacked into the new folder `into` (made here, removed first if a cut run left
    one); returns its manifest. Regular files keep only their execute bit."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(into)
    into.mkdir(mode=0o755, parents=True)
    try:
        with tarfile.open(copy, "r:*") as archive:
            members = _safe_members(archive, BUNDLE_LIMIT * 4)
            for member in members:
                member.mode = 0o755 if member.isdir() or member.mode & 0o100 else 0o644
                member.uid = member.gid = 0
                _extract(archive, member, into)
    except (tarfile.TarError, EOFError) as err:
        raise RefusedError(f"the release is not a readable tar archive: {err}") from None
    for path in [*into.rglob("*"), into]:
        if path.is_dir():
            fsync_dir(path)
        else:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    return read_release(into, need_ready=True)


def pack(folder: Path, out: Path) -> int:
    """`folder` as a release file `out` (a tar its `unpack` takes: plain files and folders only,
    sorted, owned by root, no times of the build in it); returns how many files it holds. A link
    is refused with its name: a release carries what it needs as files."""
    members = sorted(folder.rglob("*"))
    for path in members:
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise InstallerError(
                f"{path} is not a plain file or folder; a release holds only those",
                "replace the link with what it points to (npm ci --no-bin-links makes none)",
            )
    files = 0
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as archive:
        for path in members:
            info = archive.gettarinfo(path, path.relative_to(folder).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            info.mode = 0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644
            if path.is_dir():
                archive.addfile(info)
                continue
            with open(path, "rb") as handle:
                archive.addfile(info, handle)
            files += 1
    return files


def read_release(folder: Path, *, need_ready: bool = False) -> Release:
    """The manifest of the release in `folder`."""
    manifest = folder / MANIFEST
    try:
        text = read_bytes_nofollow(manifest, 256 << 10).decode("utf-8")
    except FileNotFoundError:
        raise RefusedError(f"the release has no {MANIFEST} at its top") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RefusedError(f"cannot read the release's {MANIFEST}: {err}") from None
    return parse_manifest(text, MANIFEST, need_ready=need_ready)


def read_public_key(path: Path, option: str = "--release-key") -> bytes:
    """The publisher's public key (minisign's `.pub`: a comment line, then the key), checked
    before a box takes it: releases are verified with it. A secret key is refused."""
    import minisign

    try:
        data = read_bytes_nofollow(path.absolute(), 4096)
        minisign.PublicKey.from_bytes(data.strip())
    except (OSError, minisign.Error) as err:
        raise UsageError(
            f"{option} {path}: not a minisign public key ({err})",
            "give the .pub file `minisign -G` made (never the secret key)",
        ) from None
    return data.strip() + b"\n"


def install_public_key(config_dir: Path, key: bytes) -> bool:
    """The publisher's key in root's /etc/clawdie; False when it was there already. The folder
    is made when missing; an existing one keeps its mode and owner (first boot's 0750)."""
    if not config_dir.is_dir():
        ensure_dir(config_dir, 0o755)
    return write_atomic(config_dir / KEY_NAME, key, mode=0o644)
