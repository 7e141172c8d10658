"""Readers of the target's account files: an entry of /etc/passwd, a password field of
/etc/shadow, a group's id in /etc/group. Read-only; the accounts step changes them with Debian's
own tools."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str


def _entry(path: Path, name: str, fields: int) -> list[str] | None:
    """The `:`-separated fields of `name`'s line in an account file (at least `fields` of
    them), or None."""
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        found = line.split(":")
        if len(found) >= fields and found[0] == name:
            return found
    return None


def read_account(passwd: Path, name: str) -> Account | None:
    """The entry for `name` in a passwd file, or None."""
    found = _entry(passwd, name, 7)
    return None if found is None else Account(name, int(found[2]), int(found[3]), found[5])


def read_shadow_hash(shadow: Path, name: str) -> str | None:
    """The password field of `name` in a shadow file, or None."""
    found = _entry(shadow, name, 2)
    return None if found is None else found[1]


def read_group_id(group: Path, name: str) -> int | None:
    """The id of group `name` in a group file, or None."""
    found = _entry(group, name, 3)
    return None if found is None else int(found[2])
