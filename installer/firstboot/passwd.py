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


def read_account(passwd: Path, name: str) -> Account | None:
    """The entry for `name` in a passwd file, or None."""
    if not passwd.exists():
        return None
    for line in passwd.read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] == name:
            return Account(name, int(fields[2]), int(fields[3]), fields[5])
    return None


def read_shadow_hash(shadow: Path, name: str) -> str | None:
    """The password field of `name` in a shadow file, or None."""
    if not shadow.exists():
        return None
    for line in shadow.read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 2 and fields[0] == name:
            return fields[1]
    return None


def read_group_id(group: Path, name: str) -> int | None:
    """The id of group `name` in a group file, or None."""
    if not group.exists():
        return None
    for line in group.read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name:
            return int(fields[2])
    return None
