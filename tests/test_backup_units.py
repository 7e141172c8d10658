"""The pure parts of backups (issue 24): which backups rotation keeps, the manifest written and
read by one pair, the version refusals, the after-write check of the age header, and the
manifest's hashes refusing a part that does not match (an archive made here, really encrypted)."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from datetime import date, timedelta
from pathlib import Path
from typing import IO

import pyrage  # type: ignore[import-untyped]
import pytest
from pydantic import SecretStr

from installer.backup import crypt
from installer.backup.make import RECORD_ACCOUNT, RECORD_ID
from installer.backup.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    Part,
    check_path,
    parse_manifest,
    refusal,
    render_manifest,
)
from installer.backup.restore import RestoreConfig, RestoreRefusedError, verify_backup
from installer.backup.rotation import backup_name, keep, parse_name, rotate
from installer.dev.sandbox import make_sandbox_root
from installer.firstboot.config import DbConfig

MONDAY = date(2026, 11, 30)


def days(n: int, every: int = 1) -> list[date]:
    return [MONDAY - timedelta(days=i * every) for i in range(n)]


@pytest.mark.parametrize(
    ("have", "kept"),
    [
        ([], set()),
        (days(3), set(days(3))),
        (days(7), set(days(7))),
        # 30 daily backups: the 7 newest, plus the newest of the 3 weeks before (Sundays)
        (days(30), {*days(7), MONDAY - timedelta(days=8), MONDAY - timedelta(days=15)}),
        # weekly only: the 7 newest are kept whatever their spacing
        (days(10, every=7), set(days(7, every=7))),
    ],
)
def test_rotation_keeps_7_daily_and_4_weekly(have: list[date], kept: set[date]) -> None:
    assert keep(have) == kept


def test_rotation_removes_only_this_hosts_backups(tmp_path: Path) -> None:
    for day in days(12):
        (tmp_path / backup_name("ada", day)).write_bytes(b"x")
    (tmp_path / backup_name("other", MONDAY - timedelta(days=40))).write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("mine")
    removed = rotate(tmp_path, "ada")
    assert removed == sorted(backup_name("ada", d) for d in set(days(12)) - keep(days(12)))
    assert (tmp_path / "notes.txt").exists()
    assert (tmp_path / backup_name("other", MONDAY - timedelta(days=40))).exists()
    assert parse_name(backup_name("ada", MONDAY), "ada") == MONDAY
    assert parse_name(backup_name("ada", MONDAY), "ad") is None


def manifest(**changes: object) -> Manifest:
    base = Manifest(1, "0.1.0", "1.0.0", "ada", "0123abcd", "2026-12-07T08:00:00Z", ())
    return Manifest(**{**base.__dict__, **changes})


def test_the_manifest_is_read_as_it_was_written() -> None:
    parts = (
        Part("files/etc/clawdie/system.env", "file", 10, "a" * 64, "etc/clawdie/system.env", 0o640),
        Part("databases/system_ops.dump", "database", 40 << 20, "b" * 64),
        Part("var/lib/clawdie/x", "link", path="var/lib/clawdie/x", target="y", owner="clawdie"),
    )
    written = manifest(parts=parts)
    assert parse_manifest(render_manifest(written)) == written
    assert parts[1].members() == 3


@pytest.mark.parametrize(
    "path", ["../etc/shadow", "etc/../shadow", "/etc/shadow", "etc//x", "etc/x\n", ""]
)
def test_a_manifest_path_outside_the_kept_places_is_refused(path: str) -> None:
    with pytest.raises(ManifestError):
        check_path(path)


@pytest.mark.parametrize(
    ("given", "words"),
    [
        (manifest(), None),
        (manifest(installer="0.0.9", platform="0.9"), None),
        (manifest(format=2), "format is version 2"),
        (manifest(installer="0.2.0"), "made by installer 0.2.0, newer than this one"),
        (manifest(platform="1.1.0"), "platform 1.1.0, newer than this box's"),
        (manifest(platform="unknown"), None),
    ],
)
def test_a_newer_backup_is_refused(given: Manifest, words: str | None) -> None:
    why = refusal(given, "0.1.0", "1.0.0")
    assert (why is None) if words is None else (why is not None and words in why)


def test_the_written_file_is_checked_without_decrypting() -> None:
    one, two = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    data = pyrage.encrypt(b"x" * 1000, [one.to_public(), two.to_public()])
    assert crypt.check_header(data[:4096], len(data), len(data), 2) is None
    assert "2 recipient(s), not 1" in str(crypt.check_header(data, len(data), len(data), 1))
    assert "bytes" in str(crypt.check_header(data, len(data) - 1, len(data), 2))
    assert "age header" in str(crypt.check_header(b"x" + data, len(data), len(data), 2))


def archive(members: dict[str, bytes], parts: tuple[Part, ...], recipient: str) -> bytes:
    def produce(sink: IO[bytes]) -> None:
        with tarfile.open(fileobj=sink, mode="w|") as tar:
            for name, data in [
                *members.items(),
                (MANIFEST_NAME, render_manifest(manifest(parts=parts))),
            ]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

    out = io.BytesIO()
    crypt.encrypt_stream(produce, out, crypt.parse_recipients([recipient]))
    return out.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("tamper", ["none", "content", "extra", "missing", "path"])
def test_every_part_must_match_the_manifest(tmp_path: Path, tamper: str) -> None:
    identity = pyrage.x25519.Identity.generate()
    records = {RECORD_ID: b"8f0a5e2c-4b1d-4e7f-9a3c-6b2d1e0f4a5b", RECORD_ACCOUNT: b"{}"}
    env = b"KEY=value\n"
    members = {**records, "files/etc/clawdie/system.env": env}
    path = "etc/clawdie/system.env"
    parts = (
        *(Part(n, "record", len(d), sha(d)) for n, d in records.items()),
        Part("files/" + path, "file", len(env), sha(env), path, 0o640),
    )
    if tamper == "content":
        members["files/etc/clawdie/system.env"] = b"KEY=valuf\n"
    elif tamper == "extra":
        members["files/etc/passwd"] = b"evil"
    elif tamper == "missing":
        del members[RECORD_ACCOUNT]
    elif tamper == "path":
        parts = (*parts, Part("files/etc/shadow", "file", 1, sha(b"x"), "etc/shadow", 0o600))
        members["files/etc/shadow"] = b"x"
    backup = tmp_path / "x.backup.age"
    backup.write_bytes(archive(members, parts, str(identity.to_public())))
    root = make_sandbox_root(tmp_path / "root")
    config = RestoreConfig(root, DbConfig(), backup, SecretStr(str(identity)))
    with backup.open("rb") as source:
        if tamper == "none":
            found, kept, digest = verify_backup(
                config, source, crypt.parse_identities(config.identity)
            )
            assert found.host == "ada"
            assert kept[RECORD_ACCOUNT] == b"{}"
            assert re.fullmatch(r"[0-9a-f]{64}", digest)  # which backup a restore is of
            return
        with pytest.raises(RestoreRefusedError) as refused:
            verify_backup(config, source, crypt.parse_identities(config.identity))
    assert "nothing on this box was changed" in refused.value.message


def test_keys_that_are_not_age_keys_are_worded_errors() -> None:
    with pytest.raises(crypt.BackupKeyError, match="not an age public key"):
        crypt.parse_recipients(["ssh-ed25519 AAAA"])
    with pytest.raises(crypt.BackupKeyError, match="no recipient"):
        crypt.parse_recipients(["# only a comment"])
    secret = "AGE-SECRET-KEY-1NOTAKEY"
    with pytest.raises(crypt.BackupKeyError) as err:
        crypt.parse_identities(SecretStr(secret))
    assert secret not in str(err.value)
