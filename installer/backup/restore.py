"""Restore a backup onto a fresh box (DESIGN §9): `restore_backup` is the one function the
installer's `INSTALL_MODE=restore` and first boot call; `clawdie-setup restore` calls it too.

Refused before anything on the box changes: the whole file is decrypted and read once first
(a wrong identity, a changed byte, a cut file, a part that does not match the manifest's size
and SHA-256, a newer format, installer or platform, a box that already holds an installation
or platform data). Nothing is written in clear outside its place: the second pass writes each
file where it belongs and feeds each dump straight into `pg_restore` (one transaction, killed
before its input ends when the dump does not match).

A flat list of named phases (`PHASES`) under one tracker, each with its fault point
(`before:restore-<phase>`, installer/faults.py).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psycopg
from pydantic import SecretStr

from installer import __version__, faults, redact
from installer.backup import contents, crypt
from installer.backup.make import RECORD_ACCOUNT, RECORD_ID, read_platform_version
from installer.backup.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST,
    Manifest,
    ManifestError,
    Part,
    chunk_name,
    parse_manifest,
    refusal,
)
from installer.backup.pgtools import Restorer
from installer.envfile import read_env_file
from installer.errors import InstallerError
from installer.firstboot.config import DbConfig
from installer.fsutil import ensure_dir, ensure_dir_at, write_atomic
from installer.paths import TargetPaths
from installer.tracker import PlannedStep, StepTracker

log = logging.getLogger("clawdie.restore")

PHASES = (
    PlannedStep("restore-verify", "reading the whole backup and checking every part", 1800.0),
    PlannedStep("restore-account", "making the service account", 60.0),
    PlannedStep("restore-files", "putting the box's files back", 600.0),
    PlannedStep("restore-databases", "restoring the databases", 3600.0),
    PlannedStep("restore-record", "keeping the fingerprint and the summary", 60.0),
)
MAX_BACKUP = 1 << 40
_NOTHING = "nothing on this box was changed"


class RestoreRefusedError(InstallerError):
    """The backup cannot be restored here; nothing on the box was changed."""

    nothing_changed = True  # what first boot tells apart from a restore cut part way


class _ShapeError(Exception):
    """The plaintext is not a backup archive (or was cut: the decrypter then says why)."""


@dataclass(frozen=True)
class RestoreConfig:
    root: Path
    db: DbConfig
    backup: Path
    identity: SecretStr
    name: str = ""  # the owner's file name, when `backup` is a copy under another (first boot)


@dataclass
class RestoreResult:
    manifest: Manifest
    lines: list[str] = field(default_factory=list)


# --- reading the archive --------------------------------------------------------------------


def _members(plain: IO[bytes]) -> Iterator[tuple[tarfile.TarInfo, IO[bytes]]]:
    try:
        with tarfile.open(fileobj=plain, mode="r|") as tar:
            for info in tar:
                if not info.isfile():
                    raise _ShapeError(f"member {info.name} is not a file")
                reader = tar.extractfile(info)
                if reader is None:
                    raise _ShapeError(f"member {info.name} has no data")
                yield info, reader
    except tarfile.TarError as err:
        raise _ShapeError(str(err)) from None


@dataclass
class _Seen:
    """What pass 1 read: each member's size and hash, the small records, the manifest."""

    members: list[tuple[str, int, str]] = field(default_factory=list)
    records: dict[str, bytes] = field(default_factory=dict)
    databases: dict[str, hashlib._Hash] = field(default_factory=dict)  # over all its pieces
    manifest: Manifest | None = None


def _read_all(plain: IO[bytes], seen: _Seen) -> None:
    for info, reader in _members(plain):
        if seen.manifest is not None:
            raise _ShapeError("a member follows the manifest")
        if info.name == MANIFEST_NAME:
            seen.manifest = _read_manifest(info, reader)
        else:
            _read_member(info, reader, seen)
    if seen.manifest is None:
        raise _ShapeError("the archive ends without its manifest")


def _read_manifest(info: tarfile.TarInfo, reader: IO[bytes]) -> Manifest:
    if info.size > MAX_MANIFEST:
        raise _ShapeError("the manifest is too large")
    try:
        return parse_manifest(reader.read())
    except ManifestError as err:
        raise RestoreRefusedError(
            f"the backup's manifest cannot be read: {err}; {_NOTHING}",
            "this file was not made by clawdie-setup backup",
        ) from None


def _read_member(info: tarfile.TarInfo, reader: IO[bytes], seen: _Seen) -> None:
    """One part's digest (and a database's running digest over its pieces; a record's bytes)."""
    digest = hashlib.sha256()
    keep = info.name.startswith("records/") and info.size <= 1 << 16
    whole = None
    if info.name.startswith("databases/") and ".part-" in info.name:
        whole = seen.databases.setdefault(info.name.rsplit(".part-", 1)[0], hashlib.sha256())
    data = []
    while chunk := reader.read(1 << 20):
        digest.update(chunk)
        if whole is not None:
            whole.update(chunk)
        if keep:
            data.append(chunk)
    if keep:
        seen.records[info.name] = b"".join(data)
    seen.members.append((info.name, info.size, digest.hexdigest()))


def _mismatch(part: str, why: str) -> RestoreRefusedError:
    return RestoreRefusedError(
        f"the backup's part {part} {why}; {_NOTHING}",
        "the file was changed after it was written: use another copy of the backup",
    )


def check_parts(paths: TargetPaths, seen: _Seen) -> Manifest:
    """Every member is a part of the manifest, in its place, of its size and SHA-256."""
    manifest = seen.manifest
    assert manifest is not None  # noqa: S101 (_read_all made sure)
    members = {name: (size, digest) for name, size, digest in seen.members}
    order = [name for name, _, _ in seen.members]
    expected: list[str] = []
    for part in manifest.parts:
        if part.kind in ("file", "link", "dir") and not contents.allowed(paths, part.path):
            raise _mismatch(part.name, f"names {part.path}, which a backup never writes")
        if part.kind in ("file", "record"):
            expected.append(part.name)
            got = members.get(part.name)
            if got is None:
                raise _mismatch(part.name, "is missing")
            if got != (part.size, part.sha256):
                raise _mismatch(part.name, "does not match its size and SHA-256 in the manifest")
        elif part.kind == "database":
            expected += _check_database(part, members, order, seen)
    extra = set(members) - set(expected)
    if extra:
        raise _mismatch(sorted(extra)[0], "is not in the manifest")
    return manifest


def _check_database(
    part: Part, members: dict[str, tuple[int, str]], order: list[str], seen: _Seen
) -> list[str]:
    """A database's pieces: all there, in order, their whole of the manifest's size and hash."""
    names = [chunk_name(part.name, i) for i in range(1, part.members() + 1)]
    if any(n not in members for n in names):
        raise _mismatch(part.name, "is missing a piece")
    size = sum(members[n][0] for n in names)
    whole = seen.databases.get(part.name)
    if size != part.size or whole is None or whole.hexdigest() != part.sha256:
        raise _mismatch(part.name, "does not match its size and SHA-256 in the manifest")
    at = [order.index(n) for n in names]
    if at != list(range(at[0], at[0] + len(at))):
        raise _mismatch(part.name, "has its pieces out of order")
    return names


# --- the box --------------------------------------------------------------------------------


def check_box(paths: TargetPaths, config: RestoreConfig, manifest: Manifest) -> None:
    """The box is fresh: no completed first boot, no platform settings, no platform data."""
    if paths.complete_stamp.is_file() or paths.system_env.exists():
        raise RestoreRefusedError(
            f"{paths.root} already holds an installation (first boot ran there); {_NOTHING}",
            "restore onto a fresh install (INSTALL_MODE=restore), or run "
            "`clawdie-setup factory-reset` on this box first",
        )
    from installer.firstboot.db.ready import wait_for_db

    wait_for_db(config.db.admin_conninfo, timeout_ms=config.db.readiness_timeout_ms, log=log)
    for part in manifest.of_kind("database"):
        name = part.name.removeprefix("databases/").removesuffix(".dump")
        if _has_tables(config.db.admin_conninfo, name):
            raise RestoreRefusedError(
                f"the database {name} on this box already holds tables; {_NOTHING}",
                "restore onto a fresh install, or run `clawdie-setup factory-reset` first",
            )


def _has_tables(admin: str, database: str) -> bool:
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    if row is None:
        return False
    from psycopg.conninfo import make_conninfo

    with psycopg.connect(make_conninfo(admin, dbname=database)) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', "
            "'information_schema') AND n.nspname NOT LIKE 'pg_toast%' LIMIT 1"
        ).fetchone()
    return found is not None


def _owner(paths: TargetPaths, part: Part, notes: list[str]) -> tuple[int, int]:
    users = contents.ids_by_name(paths.passwd)
    groups = contents.ids_by_name(contents.group_file(paths))
    uid, gid = users.get(part.owner), groups.get(part.group)
    if uid is None or gid is None:
        notes.append(f"{part.path}: owner {part.owner}:{part.group} unknown here, kept by root")
    return uid or 0, gid or 0


@contextlib.contextmanager
def _parent(paths: TargetPaths, path: str) -> Iterator[int]:
    """The directory that holds `path`, made (root's, 0755) where missing, never through a
    link."""
    fd = os.open(paths.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in path.split("/")[:-1]:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=fd)
            try:
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise RestoreRefusedError(
                        f"{path}: a link or a file where a directory belongs on this box",
                        "restore onto a fresh install",
                    ) from None
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _make_dirs(paths: TargetPaths, manifest: Manifest, notes: list[str]) -> None:
    for part in sorted(manifest.of_kind("dir"), key=lambda p: p.path.count("/")):
        uid, gid = _owner(paths, part, notes)
        with _parent(paths, part.path) as parent:
            os.close(ensure_dir_at(parent, part.path.rsplit("/", 1)[-1], part.mode, uid, gid))


def _make_links(paths: TargetPaths, manifest: Manifest) -> None:
    for part in manifest.of_kind("link"):
        name = part.path.rsplit("/", 1)[-1]
        with _parent(paths, part.path) as parent:
            temp = f".{name}.tmp-{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=parent)
            os.symlink(part.target, temp, dir_fd=parent)
            os.replace(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
            os.fsync(parent)


def _write_file(paths: TargetPaths, part: Part, reader: IO[bytes], notes: list[str]) -> None:
    """The file in its place: a temp file of its final mode and owner, its bytes checked
    against the manifest, then renamed over the name."""
    uid, gid = _owner(paths, part, notes)
    name = part.path.rsplit("/", 1)[-1]
    with _parent(paths, part.path) as parent:
        temp = f".{name}.tmp-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=parent)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temp, flags, 0o600, dir_fd=parent)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, part.mode)
            digest = hashlib.sha256()
            while chunk := reader.read(1 << 20):
                digest.update(chunk)
                os.write(fd, chunk)
            if digest.hexdigest() != part.sha256:
                raise _mismatch(part.name, "changed between the check and the restore")
            os.fsync(fd)
        except BaseException:
            os.unlink(temp, dir_fd=parent)
            raise
        finally:
            os.close(fd)
        os.replace(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
        os.fsync(parent)


# --- the run --------------------------------------------------------------------------------


def _open_backup(path: Path) -> IO[bytes]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise RestoreRefusedError(
            f"cannot open the backup {path}: {err.strerror}; {_NOTHING}",
            "give the path of the .backup.age file (a regular file, not a link)",
        ) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BACKUP:
        os.close(fd)
        raise RestoreRefusedError(
            f"{path} is not a regular file of a backup's size; {_NOTHING}",
            "give the path of the .backup.age file",
        )
    return os.fdopen(fd, "rb", buffering=1 << 20)


def _pass(
    source: IO[bytes], identities: list[object], consume: Callable[[IO[bytes]], None]
) -> None:
    source.seek(0)
    try:
        crypt.decrypt_stream(source, identities, consume)
    except crypt.DecryptRefusedError as err:
        raise RestoreRefusedError(err.message, err.hint) from None
    except _ShapeError as err:
        raise RestoreRefusedError(
            f"the backup opened but is not a Clawdie backup ({err}); {_NOTHING}",
            "give a file made by clawdie-setup backup",
        ) from None


def verify_backup(
    config: RestoreConfig, source: IO[bytes], identities: list[object]
) -> tuple[Manifest, dict[str, bytes]]:
    """Pass 1: the whole file decrypted and checked against its manifest; nothing written."""
    paths = TargetPaths(config.root)
    seen = _Seen()
    _pass(source, identities, lambda plain: _read_all(plain, seen))
    manifest = check_parts(paths, seen)
    why = refusal(manifest, __version__, read_platform_version(paths))
    if why is not None:
        raise RestoreRefusedError(
            f"{why}; {_NOTHING}", "restore with an installer stick at least as new as the backup"
        )
    return manifest, seen.records


def _account(paths: TargetPaths, records: dict[str, bytes]) -> tuple[str, str]:
    from installer.firstboot.steps.accounts import (
        ensure_home,
        ensure_password,
        ensure_service_account,
    )

    doc = json.loads(records[RECORD_ACCOUNT])
    name, password_hash = str(doc["name"]), str(doc.get("password_hash", ""))
    redact.register(password_hash)
    account, _ = ensure_service_account(paths, name)
    ensure_home(paths, account)
    if password_hash.startswith("$6$"):
        ensure_password(paths, name, password_hash)
        return name, f"service account {name} (its fallback password as before)"
    return name, f"service account {name}"


class _Applier:
    """Pass 2: each member where it belongs, each dump into pg_restore."""

    def __init__(
        self, paths: TargetPaths, config: RestoreConfig, manifest: Manifest, track: StepTracker
    ) -> None:
        self.paths, self.config, self.manifest, self.track = paths, config, manifest, track
        self.notes: list[str] = []
        self.files = 0
        self.databases: list[str] = []
        self._restorer: Restorer | None = None
        self._part: Part | None = None
        self._digest = hashlib.sha256()

    def __call__(self, plain: IO[bytes]) -> None:
        try:
            for info, reader in _members(plain):
                part = self.manifest.part(info.name)
                if info.name == MANIFEST_NAME or info.name.startswith("records/"):
                    continue
                if part is not None and part.kind == "file":
                    self._end_database()
                    _write_file(self.paths, part, reader, self.notes)
                    self.files += 1
                    continue
                self._database_chunk(info.name, reader)
            self._end_database()
        except BaseException:
            if self._restorer is not None:
                self._restorer.abort()
            raise

    def _database_chunk(self, name: str, reader: IO[bytes]) -> None:
        prefix = name.rsplit(".part-", 1)[0]
        if self._part is None or self._part.name != prefix:
            self._end_database()
            self._start_database(prefix)
        assert self._restorer is not None  # noqa: S101 (started above)
        while chunk := reader.read(1 << 20):
            self._digest.update(chunk)
            self._restorer.feed(chunk)

    def _start_database(self, prefix: str) -> None:
        from installer.firstboot.db.bootstrap import bootstrap_platform

        if not self.databases:
            faults.fault_point("before:restore-databases")
            self.track.begin("restore-databases")
        part = self.manifest.part(prefix)
        assert part is not None  # noqa: S101 (check_parts made sure)
        env = read_env_file(self.paths.system_env)
        role, password = (
            env.get("PLATFORM_DB_ROLE") or "clawdie",
            env.get("PLATFORM_DB_PASSWORD", ""),
        )
        redact.register(password)
        database = prefix.removeprefix("databases/").removesuffix(".dump")
        bootstrap_platform(
            self.config.db.admin_conninfo,
            role=role,
            password=password,
            databases=[database],
            log=log,
        )
        self._part, self._digest = part, hashlib.sha256()
        self._restorer = Restorer(self.config.db.admin_conninfo, database)

    def _end_database(self) -> None:
        if self._part is None or self._restorer is None:
            return
        part, restorer = self._part, self._restorer
        self._part = self._restorer = None
        if self._digest.hexdigest() != part.sha256:
            restorer.abort()
            raise _mismatch(part.name, "changed between the check and the restore")
        restorer.finish()
        self.databases.append(part.name.removeprefix("databases/").removesuffix(".dump"))


def restore_backup(config: RestoreConfig, tracker: StepTracker | None = None) -> RestoreResult:
    """Restore `config.backup` onto the fresh box at `config.root` with the owner's identity.
    Raises RestoreRefusedError (nothing changed) or another InstallerError (a failure part way:
    a fresh install again, or `factory-reset`, then the restore once more)."""
    paths = TargetPaths(config.root)
    track = tracker or StepTracker(
        "Clawdie restore", PHASES, "restore again onto a fresh install (or after factory-reset)"
    )
    identities = crypt.parse_identities(config.identity)

    faults.fault_point("before:restore-verify")
    track.begin("restore-verify")
    with _open_backup(config.backup) as source:
        manifest, records = verify_backup(config, source, identities)
        check_box(paths, config, manifest)

        faults.fault_point("before:restore-account")
        track.begin("restore-account")
        _, account_line = _account(paths, records)

        faults.fault_point("before:restore-files")
        track.begin("restore-files")
        notes: list[str] = []
        _make_dirs(paths, manifest, notes)
        applier = _Applier(paths, config, manifest, track)
        _pass(source, identities, applier)
        _make_links(paths, manifest)

    faults.fault_point("before:restore-record")
    track.begin("restore-record")
    ensure_dir(paths.setup_state_dir, 0o700, 0, 0)
    write_atomic(paths.fingerprint_record, records[RECORD_ID].decode() + "\n", mode=0o600)
    result = RestoreResult(manifest)
    result.lines = [
        f"Restored from {config.name or config.backup.name}: host {manifest.host}, fingerprint "
        f"{manifest.fingerprint}, made {manifest.created} by installer {manifest.installer} "
        f"(platform {manifest.platform})",
        f"Files: {applier.files} (/etc/clawdie, platform data, SSH host keys, TLS pair, "
        "network and Wi-Fi files, adopt code hash, install record)",
        f"Databases: {', '.join(applier.databases)} (every row, by pg_restore)",
        f"Accounts: {account_line}",
        f"Installation fingerprint: {manifest.fingerprint} (kept as a record; this box has "
        "its own machine id)",
        *[f"Note: {n}" for n in [*notes, *applier.notes]],
    ]
    write_atomic(paths.restore_summary, "\n".join(result.lines) + "\n", mode=0o600)
    return result
