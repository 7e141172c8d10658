"""Which backups a directory keeps: the newest of each of the last 7 days that have one, and
the newest of each of the last 4 ISO weeks (pure `keep`; `rotate` acts). Only files named as
this box's backups are ever touched."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from installer.fsutil import fsync_dir

DAILY = 7
WEEKLY = 4
SUFFIX = ".backup.age"


def backup_name(host: str, day: date) -> str:
    """The file name says the host and the date, nothing else."""
    return f"{host}-{day.isoformat()}{SUFFIX}"


def parse_name(name: str, host: str) -> date | None:
    found = re.fullmatch(re.escape(host) + r"-(\d{4}-\d{2}-\d{2})" + re.escape(SUFFIX), name)
    if found is None:
        return None
    try:
        return date.fromisoformat(found.group(1))
    except ValueError:
        return None


def keep(days: Iterable[date], daily: int = DAILY, weekly: int = WEEKLY) -> set[date]:
    """The days whose backup stays: the `daily` newest, and the newest of each of the `weekly`
    newest ISO weeks."""
    ordered = sorted(set(days), reverse=True)
    kept = set(ordered[:daily])
    weeks: dict[tuple[int, int], date] = {}
    for day in ordered:
        weeks.setdefault(day.isocalendar()[:2], day)
    kept.update(sorted(weeks.values(), reverse=True)[:weekly])
    return kept


def rotate(directory: Path, host: str) -> list[str]:
    """Remove this host's backups `keep` does not keep; returns their names."""
    found = {}
    for name in os.listdir(directory):
        day = parse_name(name, host)
        if day is not None and (directory / name).is_file():
            found[day] = name
    kept = keep(found)
    removed = sorted(found[d] for d in found if d not in kept)
    for name in removed:
        (directory / name).unlink()
    if removed:
        fsync_dir(directory)
    return removed
