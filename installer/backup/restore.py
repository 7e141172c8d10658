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

A restore cut part way (a power cut, a kill) is taken up by the next run of the same backup:
its progress is kept in root's state (`restore-started` with the manifest's digest before the
first change, `restore-database-NAME` once a database's transaction committed, `restore-done`
at the end). Files and links are put back again (each written whole, then renamed: a second
time changes nothing); a database restored is left as it is; one cut inside its pg_restore
(nothing committed, but made) is dropped and restored again. Each database has its fault
points: `before:restore-database-NAME`, `mid:restore-database-NAME` (part of its dump fed),
`effects:restore-database-NAME` (committed, not yet recorded).
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
from installer.fsutil import ensure_dir, ensure_dir_at, remove_at, write_atomic
from installer.paths import TargetPaths
from installer.stamps import Stamps, StepRecord
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
STARTED = "restore-started"  # the first change is next; its facts name the backup
DONE = "restore-done"  # its record: the result's lines
BACKUP_FACT = "backup"  # the manifest's SHA-256: which backup a restore under way is of


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
    # A restore this run's caller finished but had not recorded so (first boot, cut after the
    # restore and before its stamp; the platform has not started): its result, not a refusal.
    done_is_result: bool = False


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
    manifest_sha256: str = ""


def _read_all(plain: IO[bytes], seen: _Seen) -> None:
    for info, reader in _members(plain):
        if seen.manifest is not None:
            raise _ShapeError("a member follows the manifest")
        if info.name == MANIFEST_NAME:
            seen.manifest, seen.manifest_sha256 = _read_manifest(info, reader)
        else:
            _read_member(info, reader, seen)
    if seen.manifest is None:
        raise _ShapeError("the archive ends without its manifest")


def _read_manifest(info: tarfile.TarInfo, reader: IO[bytes]) -> tuple[Manifest, str]:
    if info.size > MAX_MANIFEST:
        raise _ShapeError("the manifest is too large")
    data = reader.read()
    try:
        return parse_manifest(data), hashlib.sha256(data).hexdigest()
    except ManifestError as err:
        raise RestoreRefusedError(
            f"the backup's manifest cannot be read: {err}; {_NOTHING}",
            "this file was not made by clawdie-setup backup",
        ) from None


def _read_member(info: tarfile.TarInfo, reader: IO[bytes], seen: _Seen) -> None:
    """One part's digest, or a piece of a database into its running digest (the manifest
    holds the whole's, so each byte is hashed once); a record's bytes."""
    keep = info.name.startswith("records/") and info.size <= 1 << 16
    piece = info.name.startswith("databases/") and ".part-" in info.name
    if piece:
        digest = seen.databases.setdefault(info.name.rsplit(".part-", 1)[0], hashlib.sha256())
    else:
        digest = hashlib.sha256()
    data = []
    while chunk := reader.read(1 << 20):
        digest.update(chunk)
        if keep:
            data.append(chunk)
    if keep:
        seen.records[info.name] = b"".join(data)
    seen.members.append((info.name, info.size, "" if piece else digest.hexdigest()))


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


def check_box(
    paths: TargetPaths, config: RestoreConfig, manifest: Manifest, resuming: bool = False
) -> None:
    """The box is fresh: no completed first boot, no platform settings, no platform data; or
    (`resuming`) what it holds is a restore of this backup cut part way."""
    if paths.complete_stamp.is_file() or (paths.system_env.exists() and not resuming):
        raise RestoreRefusedError(
            f"{paths.root} already holds an installation (first boot ran there); {_NOTHING}",
            "restore onto a fresh install (INSTALL_MODE=restore), or run "
            "`clawdie-setup factory-reset` on this box first",
        )
    from installer.firstboot.db.ready import wait_for_db

    wait_for_db(config.db.admin_conninfo, timeout_ms=config.db.readiness_timeout_ms, log=log)
    if resuming:
        return
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


def _drop_database(admin: str, database: str) -> None:
    """A database a cut restore made and did not finish (nothing of its dump committed)."""
    from psycopg import sql

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


def _clear_temps(parent: int, name: str) -> None:
    """The temp files of `name` a cut run left (`.NAME.tmp-PID`), overwritten and removed."""
    for entry in os.listdir(parent):
        if entry.startswith(f".{name}.tmp-"):
            remove_at(parent, entry)


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
            _clear_temps(parent, name)
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
        _clear_temps(parent, name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temp, flags, 0o600, dir_fd=parent)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, part.mode)
            digest = hashlib.sha256()
            point = f"mid-write:{name}"  # the temp file begun, not renamed
            while chunk := reader.read(1 << 20):
                digest.update(chunk)
                os.write(fd, chunk)
                faults.fault_point(point)
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
) -> tuple[Manifest, dict[str, bytes], str]:
    """Pass 1: the whole file decrypted and checked against its manifest; nothing written.
    Returns the manifest, the records and the manifest's SHA-256 (which backup this is)."""
    paths = TargetPaths(config.root)
    seen = _Seen()
    _pass(source, identities, lambda plain: _read_all(plain, seen))
    manifest = check_parts(paths, seen)
    why = refusal(manifest, __version__, read_platform_version(paths))
    if why is not None:
        raise RestoreRefusedError(
            f"{why}; {_NOTHING}", "restore with an installer stick at least as new as the backup"
        )
    return manifest, seen.records, seen.manifest_sha256


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


def _database_name(part_name: str) -> str:
    return part_name.removeprefix("databases/").removesuffix(".dump")


def database_stamp(database: str) -> str:
    return f"restore-database-{database}"


class _Applier:
    """Pass 2: each member where it belongs, each dump into pg_restore (a database a cut run
    restored is passed over; one it made and did not finish is dropped and made again)."""

    def __init__(
        self, paths: TargetPaths, config: RestoreConfig, manifest: Manifest, track: StepTracker
    ) -> None:
        self.paths, self.config, self.manifest, self.track = paths, config, manifest, track
        self.progress = Stamps(paths.restore_progress_dir)
        self.notes: list[str] = []
        self.files = 0
        self.databases: list[str] = []
        self._started = False
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
        fed = 0
        while chunk := reader.read(1 << 20):
            self._digest.update(chunk)
            if self._restorer is not None:  # None: restored by an earlier run
                self._restorer.feed(chunk)
                fed += len(chunk)
        if fed:
            faults.fault_point(f"mid:{database_stamp(_database_name(prefix))}")

    def _start_database(self, prefix: str) -> None:
        if not self._started:
            self._started = True
            faults.fault_point("before:restore-databases")
            self.track.begin("restore-databases")
        part = self.manifest.part(prefix)
        assert part is not None  # noqa: S101 (check_parts made sure)
        self._part, self._digest = part, hashlib.sha256()
        database = _database_name(prefix)
        if self.progress.done(database_stamp(database)):
            log.info("restore: database %s restored by an earlier run", database)
            return
        faults.fault_point(f"before:{database_stamp(database)}")
        self._restorer = self._make_database(database)

    def _make_database(self, database: str) -> Restorer:
        """The database (dropped first when an earlier run made it), its role, its pg_restore."""
        from installer.firstboot.db.bootstrap import bootstrap_platform

        env = read_env_file(self.paths.system_env)
        role, password = (
            env.get("PLATFORM_DB_ROLE") or "clawdie",
            env.get("PLATFORM_DB_PASSWORD", ""),
        )
        redact.register(password)
        admin = self.config.db.admin_conninfo
        _drop_database(admin, database)  # check_box: none held tables before this restore
        bootstrap_platform(admin, role=role, password=password, databases=[database], log=log)
        return Restorer(admin, database)

    def _end_database(self) -> None:
        if self._part is None:
            return
        part, restorer = self._part, self._restorer
        self._part = self._restorer = None
        if self._digest.hexdigest() != part.sha256:
            if restorer is not None:
                restorer.abort()
            raise _mismatch(part.name, "changed between the check and the restore")
        database = _database_name(part.name)
        if restorer is not None:
            restorer.finish()
            faults.fault_point(f"effects:{database_stamp(database)}")
            self.progress.mark(database_stamp(database), StepRecord())
        self.databases.append(database)


def _under_way(progress: Stamps, backup: str, done_is_result: bool) -> tuple[bool, list[str]]:
    """Whether a restore of this backup was cut part way here (to be taken up), and when it
    finished and `done_is_result`, the lines it ended with."""
    started = progress.record(STARTED)
    if started is None or started.facts.get(BACKUP_FACT) != backup:
        return False, []
    done = progress.record(DONE)
    if done is None:
        return True, []
    return False, list(done.created) if done_is_result else []


def restore_backup(config: RestoreConfig, tracker: StepTracker | None = None) -> RestoreResult:
    """Restore `config.backup` onto the fresh box at `config.root` with the owner's identity;
    a restore of the same backup cut part way there is taken up. Raises RestoreRefusedError
    (nothing changed) or another InstallerError (a failure part way: the next run takes it up,
    or `factory-reset`, then the restore once more)."""
    paths = TargetPaths(config.root)
    track = tracker or StepTracker(
        "Clawdie restore", PHASES, "run the restore again: it goes on where it stopped"
    )
    identities = crypt.parse_identities(config.identity)
    progress = Stamps(paths.restore_progress_dir)

    faults.fault_point("before:restore-verify")
    track.begin("restore-verify")
    with _open_backup(config.backup) as source:
        manifest, records, backup = verify_backup(config, source, identities)
        resuming, finished = _under_way(progress, backup, config.done_is_result)
        if finished:
            log.info("restore: finished by an earlier run")
            return RestoreResult(manifest, finished)
        check_box(paths, config, manifest, resuming)
        if resuming:
            log.info("restore: taking up the restore an earlier run began")
        else:
            ensure_dir(paths.setup_state_dir, 0o700, 0, 0)
            progress.mark(STARTED, StepRecord(facts={BACKUP_FACT: backup}))

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
    faults.fault_point(f"before:{DONE}")
    progress.mark(DONE, StepRecord(created=tuple(result.lines)))
    return result
