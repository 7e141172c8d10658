"""`clawdie-setup backup`: the box's own state, encrypted to the owner, in one file.

A flat list of steps on the one run skeleton (`STEPS`, installer/steps.py), each with its
fault point (`before:backup-<step>`, installer/faults.py). The archive is a tar stream,
encrypted as it is made: records, files, then each database as `pg_dump -Fc` streams it (all
the dumps run at once, installer/backup/pgtools.py), the manifest last (its sizes and hashes
are known only then).
Nothing of it is ever on the disk in clear.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import tarfile
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from installer import __version__
from installer.backup import contents, crypt
from installer.backup.manifest import (
    CHUNK,
    FORMAT_VERSION,
    MANIFEST_NAME,
    Manifest,
    Part,
    chunk_name,
    render_manifest,
)
from installer.backup.pgtools import READ_BLOCK, Dump, dumps_started
from installer.backup.rotation import backup_name, rotate
from installer.errors import InstallerError
from installer.fingerprint import read_installation_id, short_fingerprint
from installer.fsutil import fsync_dir
from installer.passwd import read_shadow_hash
from installer.paths import TargetPaths
from installer.steps import Step, StepRun, plan
from installer.tracker import StepTracker

log = logging.getLogger("clawdie.backup")

RECORD_ID = "records/installation-id"
RECORD_ACCOUNT = "records/account.json"


class BackupError(InstallerError):
    """The backup could not be made; an incomplete file was removed."""


@dataclass(frozen=True)
class BackupConfig:
    root: Path
    admin_conninfo: str
    recipients: tuple[str, ...]
    to: Path
    databases: tuple[str, ...] = ("system_ops", "system_brain", "system_skills")
    rotate: bool = True


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    manifest: Manifest
    removed: tuple[str, ...]

    def lines(self) -> list[str]:
        dbs = ", ".join(
            p.name.removeprefix("databases/") for p in self.manifest.of_kind("database")
        )
        files = sum(1 for p in self.manifest.parts if p.kind == "file")
        out = [
            f"Backup written: {self.path} ({self.size} bytes, encrypted to the owner's key(s))",
            f"Host {self.manifest.host}, fingerprint {self.manifest.fingerprint}, "
            f"{self.manifest.created}",
            f"Holds: databases {dbs}; {files} files (/etc/clawdie, platform data, SSH host "
            "keys, TLS pair, network files, adopt code hash, install record)",
        ]
        if self.removed:
            out.append(f"Rotation removed: {', '.join(self.removed)}")
        return out


def read_host(paths: TargetPaths) -> str:
    try:
        name = paths.hostname.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError):
        name = ""
    return name if re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", name) else "clawdie"


def read_platform_version(paths: TargetPaths) -> str:
    """The platform payload's version (platform.toml), `unknown` without one."""
    try:
        doc = tomllib.loads(paths.platform_manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, tomllib.TOMLDecodeError):
        return "unknown"
    return str(doc.get("version", "unknown"))


def service_account(paths: TargetPaths) -> str:
    from installer.envfile import read_env_file

    try:
        return read_env_file(paths.system_env).get("PLATFORM_DB_ROLE") or "clawdie"
    except OSError:
        return "clawdie"


class _Hashing:
    """Reads `size` bytes from a descriptor for tarfile, hashing them on the way."""

    def __init__(self, fd: int, size: int, path: str) -> None:
        self.fd, self.left, self.path = fd, size, path
        self.digest = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        want = self.left if n < 0 else min(n, self.left)
        data = os.read(self.fd, want) if want else b""
        if want and not data:
            raise BackupError(
                f"{self.path} shrank while it was read", "run the backup again when it is quiet"
            )
        self.left -= len(data)
        self.digest.update(data)
        return data


class _Sink:
    """The archive's output as tarfile writes to a file (every write straight through, a dump's
    blocks whole), not as a stream (which re-buffers each write in 10 KiB records): a pipe,
    whose position is what was written."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out, self.written = out, 0

    def write(self, data: bytes) -> int:
        self.out.write(data)
        self.written += len(data)
        return len(data)

    def tell(self) -> int:
        return self.written


def _member(tar: tarfile.TarFile, name: str, size: int, fileobj: Any) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())
    tar.addfile(info, fileobj)


def _records(paths: TargetPaths, tar: tarfile.TarFile, parts: list[Part]) -> None:
    records = {
        RECORD_ID: str(read_installation_id(paths)).encode(),
        RECORD_ACCOUNT: json.dumps(
            {
                "name": service_account(paths),
                "password_hash": read_shadow_hash(paths.shadow, service_account(paths)) or "",
            }
        ).encode(),
    }
    for name, data in records.items():
        _member(tar, name, len(data), io.BytesIO(data))
        parts.append(Part(name, "record", len(data), hashlib.sha256(data).hexdigest()))


def _files(
    paths: TargetPaths, entries: Sequence[contents.Entry], tar: tarfile.TarFile, parts: list[Part]
) -> None:
    users = contents.names_by_id(paths.passwd)
    groups = contents.names_by_id(contents.group_file(paths))
    for entry in entries:
        owner, group = users.get(entry.uid, "root"), groups.get(entry.gid, "root")
        base = Part(
            entry.path, entry.kind, path=entry.path, mode=entry.mode, owner=owner, group=group
        )
        if entry.kind == "dir":
            parts.append(base)
        elif entry.kind == "link":
            parts.append(
                Part(
                    entry.path,
                    "link",
                    path=entry.path,
                    target=entry.target,
                    owner=owner,
                    group=group,
                )
            )
        else:
            name = f"files/{entry.path}"
            with contents.open_file(paths.root, entry) as fd:
                size = os.fstat(fd).st_size
                reader = _Hashing(fd, size, entry.path)
                _member(tar, name, size, reader)
            parts.append(
                Part(
                    name,
                    "file",
                    size,
                    reader.digest.hexdigest(),
                    entry.path,
                    entry.mode,
                    owner,
                    group,
                )
            )


def _databases(dumps: dict[str, Dump], tar: tarfile.TarFile, parts: list[Part]) -> None:
    for database, dump in dumps.items():
        name = f"databases/{database}.dump"
        digest, size = hashlib.sha256(), 0
        for index, chunk in enumerate(dump.chunks(CHUNK), start=1):
            for block in chunk.parts:
                digest.update(block)
            size += chunk.size
            _member(tar, chunk_name(name, index), chunk.size, chunk)
        parts.append(Part(name, "database", size, digest.hexdigest()))


def write_archive(
    config: BackupConfig,
    paths: TargetPaths,
    entries: Sequence[contents.Entry],
    out: IO[bytes],
    head: Manifest,
) -> tuple[int, Manifest]:
    """The encrypted archive into `out`; returns its length and the manifest it holds."""
    recipients = crypt.parse_recipients(config.recipients)
    parts: list[Part] = []
    done: list[Manifest] = []

    def produce(sink: IO[bytes], dumps: dict[str, Dump]) -> None:
        archive = _Sink(sink)  # tarfile writing calls only write() and tell()
        with tarfile.TarFile(
            mode="w",
            fileobj=archive,  # type: ignore[arg-type]
            format=tarfile.PAX_FORMAT,
            copybufsize=READ_BLOCK,
        ) as tar:
            _records(paths, tar, parts)
            _files(paths, entries, tar, parts)
            _databases(dumps, tar, parts)
            manifest = Manifest(**{**head.__dict__, "parts": tuple(parts)})
            data = render_manifest(manifest)
            _member(tar, MANIFEST_NAME, len(data), io.BytesIO(data))
            done.append(manifest)

    with dumps_started(config.admin_conninfo, config.databases) as dumps:
        written = crypt.encrypt_stream(lambda sink: produce(sink, dumps), out, recipients)
    return written, done[0]


def _open_temp(directory: Path, name: str) -> tuple[int, str]:
    """A new temp file for `name` (0600); what a killed backup of the same name left goes."""
    temp = f".{name}.tmp-{os.getpid()}"
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for left in os.listdir(dir_fd):
            if left.startswith(f".{name}.tmp-"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(left, dir_fd=dir_fd)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(temp, flags, 0o600, dir_fd=dir_fd), temp
    finally:
        os.close(dir_fd)


def verify_written(path: Path, written: int, recipients: int) -> None:
    """The file as it is on the medium: age header, a stanza per recipient, the length."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, crypt.MAX_HEADER, 0)
    finally:
        os.close(fd)
    problem = crypt.check_header(head, size, written, recipients)
    if problem is not None:
        raise BackupError(
            f"the backup written to {path} is not right: {problem}",
            "the medium may be failing or full: try another one",
        )


@dataclass
class Making:
    """One backup's steps' context: what each step learns, in the order it learns it."""

    config: BackupConfig
    paths: TargetPaths
    moment: datetime
    recipients: int
    entries: Sequence[contents.Entry] = ()
    head: Manifest | None = None
    name: str = ""
    temp: str | None = None  # the file being written, until it is verified and renamed
    written: int = 0
    manifest: Manifest | None = None
    removed: tuple[str, ...] = ()

    def read(self) -> None:
        paths = self.paths
        self.entries = contents.collect(paths)
        host = read_host(paths)
        installation = read_installation_id(paths)
        self.head = Manifest(
            format=FORMAT_VERSION,
            installer=__version__,
            platform=read_platform_version(paths),
            host=host,
            fingerprint=short_fingerprint(installation),
            created=self.moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )

    def write(self) -> None:
        config, head = self.config, self.require_head()
        config.to.mkdir(parents=True, exist_ok=True)
        self.name = backup_name(head.host, self.moment.date())
        fd, self.temp = _open_temp(config.to, self.name)
        with os.fdopen(fd, "wb", buffering=1 << 20) as out:
            self.written, self.manifest = write_archive(config, self.paths, self.entries, out, head)
            out.flush()
            os.fsync(out.fileno())

    def verify(self) -> None:
        to, temp = self.config.to, self.temp
        assert temp is not None  # noqa: S101 (written before)
        verify_written(to / temp, self.written, self.recipients)
        os.replace(to / temp, to / self.name)
        self.temp = None
        fsync_dir(to)

    def rotate(self) -> None:
        config = self.config
        self.removed = tuple(rotate(config.to, self.require_head().host) if config.rotate else ())

    def require_head(self) -> Manifest:
        assert self.head is not None  # noqa: S101 (read first)
        return self.head

    def failed(self, _err: InstallerError | None = None) -> None:
        """The one place a failed backup is handled: its incomplete file is removed."""
        if self.temp is not None:
            (self.config.to / self.temp).unlink(missing_ok=True)
            self.temp = None


STEPS: tuple[Step[Making], ...] = (
    Step("backup-read", "finding what the box holds", 60.0, Making.read, stamped=False),
    Step(
        "backup-write",
        "dumping the databases into the encrypted backup",
        3600.0,
        Making.write,
        stamped=False,
    ),
    Step("backup-verify", "checking the written backup", 60.0, Making.verify, stamped=False),
    Step(
        "backup-rotate",
        "removing old backups (7 daily, 4 weekly)",
        60.0,
        Making.rotate,
        stamped=False,
    ),
)
PHASES = tuple(plan(STEPS))


def make_backup(
    config: BackupConfig, tracker: StepTracker | None = None, now: datetime | None = None
) -> BackupResult:
    """One backup of the box at `config.root` into the directory `config.to`."""
    paths = TargetPaths(config.root)
    track = tracker or StepTracker("Clawdie backup", PHASES, "run the backup again")
    if not paths.complete_stamp.is_file():
        raise BackupError(
            f"there is no installation at {paths.root} to back up: first boot has not completed",
            "a backup is of an installed box",
        )
    recipients = crypt.parse_recipients(config.recipients)
    making = Making(config, paths, now or datetime.now(UTC), len(recipients))
    steps = StepRun(STEPS, tracker=track, log=None, as_raised=True)
    try:
        steps.run(making, making.failed)
    except KeyboardInterrupt:  # interrupted: no incomplete file is left either
        making.failed()
        raise
    assert making.manifest is not None  # noqa: S101 (written)
    log.info("backup: %s (%d bytes)", config.to / making.name, making.written)
    return BackupResult(config.to / making.name, making.written, making.manifest, making.removed)
