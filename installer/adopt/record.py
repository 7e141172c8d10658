"""Adopt changes exactly what it lists: the installation's record (system.env and
setup.resolved.json) before and after an adopt run, key by key.

First boot's steps write the record whole from the values they are given; an adopt run gives
them the installation's values with the seed's applied keys in place, but some settings live
elsewhere on the box (the dashboard operator in the database, the authorized keys in the
service account's home) and the record's provenance ("setup.txt line 3") is not a value. So
after the steps, `keep_record` puts back every entry the seed did not change, byte for byte,
and `record_changes` lists what did change (before → after, a secret only as "changed") for the
receipt.

The record before the run is kept in the run's plan (0600, root's own) without a secret: the
settings' entries (secrets there are null) and a digest per system.env key, so a run finished
after a power cut still knows what the box held.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from installer.envfile import parse_env_file, render_env_file
from installer.fsutil import write_atomic
from installer.paths import TargetPaths

SSH_KEY = "SSH_AUTHORIZED_KEY"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class Record:
    """The record as adopt compares it: system.env's keys with a digest of each value (never
    the value), and setup.resolved.json's settings entries in their order."""

    env_digests: dict[str, str]
    entries: list[dict[str, Any]] = field(default_factory=list)

    def entry(self, key: str) -> dict[str, Any] | None:
        return next((e for e in self.entries if e.get("key") == key), None)

    def to_doc(self) -> dict[str, Any]:
        return {"env_sha256": self.env_digests, "entries": self.entries}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Record:
        return cls(dict(doc.get("env_sha256", {})), list(doc.get("entries", [])))


def read_record(paths: TargetPaths) -> Record:
    env = parse_env_file(paths.system_env.read_text(encoding="utf-8"))
    doc = json.loads(paths.resolved_json.read_text(encoding="utf-8"))
    return Record({k: _digest(v) for k, v in env.items()}, list(doc.get("settings", [])))


def _shown(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "not set"
    value = entry.get("value")
    return "not set" if value is None else str(value)


def keep_record(
    paths: TargetPaths, before: Record, applied: Iterable[str], ssh_keys: Iterable[str]
) -> None:
    """After the steps: every setting the run did not apply is put back as it was (its entry
    byte for byte, its system.env line with the value the entry names), and the record's
    authorized keys name every key the service account has (`ssh_keys`), not only the new one.
    Keys the steps derived anew from an applied one (a profile's models) stay as written."""
    applied = set(applied)
    env = parse_env_file(paths.system_env.read_text(encoding="utf-8"))
    doc = json.loads(paths.resolved_json.read_text(encoding="utf-8"))
    after = {str(e.get("key")): e for e in doc.get("settings", [])}
    kept: list[dict[str, Any]] = []
    for old in before.entries:
        key = str(old.get("key"))
        new = after.get(key)
        if key not in applied and (
            new is None
            or (new.get("value") == old.get("value") and new.get("secret") == old.get("secret"))
        ):
            kept.append(old)
            restore = new is None and not old.get("secret") and old.get("value") is not None
            if restore and key in before.env_digests and key not in env:
                env[key] = str(old["value"])
        else:
            kept.append(new if new is not None else old)
    known = {str(e.get("key")) for e in kept}
    kept += [e for k, e in after.items() if k not in known]
    keys = list(dict.fromkeys(line for line in ssh_keys if line.strip()))
    for entry in kept:
        if entry.get("key") == SSH_KEY and keys:
            entry["value"] = "\n".join(keys)
    doc["settings"] = kept
    stat = paths.system_env.stat()
    # as first boot writes it: root's file, readable by the service account's group (0640),
    # the version it replaces scrubbed
    write_atomic(
        paths.system_env,
        render_env_file(env),
        mode=0o640,
        uid=stat.st_uid,
        gid=stat.st_gid,
        scrub_old=True,
    )
    write_atomic(
        paths.resolved_json, json.dumps(doc, indent=2, ensure_ascii=False) + "\n", mode=0o644
    )


def record_changes(before: Record, after: Record) -> dict[str, str]:
    """Every key of the record whose system.env value or settings entry changed, with
    `before → after` (a secret, or a system.env key with no settings entry, as "changed")."""
    changes: dict[str, str] = {}
    keys = [
        *(str(e.get("key")) for e in before.entries),
        *(str(e.get("key")) for e in after.entries),
        *before.env_digests,
        *after.env_digests,
    ]
    for key in dict.fromkeys(keys):
        old, new = before.entry(key), after.entry(key)
        env_changed = before.env_digests.get(key) != after.env_digests.get(key)
        if not env_changed and json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True):
            continue
        secret = bool((old or new or {}).get("secret"))
        if key == SSH_KEY:
            counts = [
                len(_shown(e).splitlines()) if e and e.get("value") else 0 for e in (old, new)
            ]
            changes[key] = f"{counts[0]} key(s) → {counts[1]} key(s)"
        elif secret or (old is None and new is None):
            changes[key] = "changed (not shown)"
        elif _shown(old) == _shown(new):
            changes[key] = f"{_shown(new)}, recorded anew"
        else:
            changes[key] = f"{_shown(old)} → {_shown(new)}"
    return changes
