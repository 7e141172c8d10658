"""Where a boot's time goes, read from the installed disk's journal: our first-boot service per
phase (start-up and imports, each step, the report, the platform's start, the exit) and the
unit's own start-to-exit, plus the platform unit's start (its `wait-db`).

The runner logs `NAME: starting` as each phase begins (installer/firstboot/runner.py); systemd
logs the unit's `Starting`, `Finished` and, on a later boot, that it was skipped. Entries come
from the journal files on the disk (`read_journal`, root) or, for a log kept from an older run,
from the serial console where journald forwards the same lines (`entries_from_serial`). The
parsing and the table are pure; the boot test and `bench/boot.py` print them.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

UNIT = "clawdie-firstboot.service"
PLATFORM_UNIT = "clawdie.service"
OURS = "clawdie-firstboot"
_PHASE = re.compile(r"^([a-z][a-z -]*?): starting\b")
_SERIAL = re.compile(r"^\[\s*(\d+\.\d+)\] ([^\[:\s]+)(?:\[\d+\])?: (.*)$")


@dataclass(frozen=True)
class Entry:
    """One journal entry: seconds since the kernel started, who logged it, what, which boot."""

    seconds: float
    ident: str
    message: str
    boot: str = ""


@dataclass(frozen=True)
class Row:
    name: str
    seconds: float


def entries_from_journal_json(lines: Iterable[str]) -> list[Entry]:
    """Entries from `journalctl -o json` output (one JSON object a line), in journal order."""
    entries = []
    for line in lines:
        if not line.strip():
            continue
        doc = json.loads(line)
        message = doc.get("MESSAGE")
        if isinstance(message, list):  # not valid UTF-8: journalctl gives the bytes
            message = bytes(message).decode(errors="replace")
        entries.append(
            Entry(
                seconds=int(doc["__MONOTONIC_TIMESTAMP"]) / 1e6,
                ident=str(doc.get("SYSLOG_IDENTIFIER", "")),
                message=str(message or ""),
                boot=str(doc.get("_BOOT_ID", "")),
            )
        )
    return entries


def entries_from_serial(text: str, boot: str = "serial") -> list[Entry]:
    """Entries from a serial console log (`[   58.986524] systemd[1]: Starting ...`)."""
    entries = []
    for line in text.splitlines():
        found = _SERIAL.match(line.strip())
        if found:
            entries.append(Entry(float(found.group(1)), found.group(2), found.group(3), boot))
    return entries


def split_boots(entries: Sequence[Entry]) -> list[list[Entry]]:
    """The entries of each boot, boots in the order they first appear."""
    boots: dict[str, list[Entry]] = {}
    for entry in entries:
        boots.setdefault(entry.boot, []).append(entry)
    return list(boots.values())


def _first(entries: Sequence[Entry], ident: str, prefix: str, after: float = -1.0) -> Entry | None:
    return next(
        (
            e
            for e in entries
            if e.ident == ident and e.message.startswith(prefix) and e.seconds >= after
        ),
        None,
    )


def firstboot_rows(entries: Sequence[Entry]) -> list[Row]:
    """Our service's phases on one boot, then its start-to-exit; on a boot where the unit did
    not run (first boot already complete), one row saying so. Then the platform unit's start."""
    rows: list[Row] = []
    start = _first(entries, "systemd", f"Starting {UNIT}")
    skipped = next(
        (
            e
            for e in entries
            if e.ident == "systemd" and e.message.startswith(UNIT) and "skipped" in e.message
        ),
        None,
    )
    if start is None:
        rows.append(
            Row("first-boot service: did not start" + (" (condition)" if skipped else ""), 0.0)
        )
    else:
        end = _first(entries, "systemd", f"Finished {UNIT}", start.seconds) or _first(
            entries, "systemd", f"Failed to start {UNIT}", start.seconds
        )
        stop = end.seconds if end is not None else max(e.seconds for e in entries)
        ours = [e for e in entries if e.ident == OURS and start.seconds <= e.seconds <= stop]
        marks = [(e.seconds, m.group(1)) for e in ours if (m := _PHASE.match(e.message))]
        # "first boot: starting" opens the run: what follows it, before the first step, is
        # reading and checking the seed (a runner that logs "seed: starting" says so itself)
        if any(name == "seed" for _, name in marks):
            marks = [(t, name) for t, name in marks if name != "first boot"]
        phases = [(t, "seed" if name == "first boot" else name) for t, name in marks]
        began = phases[0][0] if phases else (ours[0].seconds if ours else stop)
        rows.append(Row("start-up and imports", began - start.seconds))
        last_ours = ours[-1].seconds if ours else stop
        for index, (at, name) in enumerate(phases):
            until = phases[index + 1][0] if index + 1 < len(phases) else last_ours
            rows.append(Row(name, until - at))
        rows.append(Row("exit", stop - last_ours))
        rows.append(Row("service, start to exit", stop - start.seconds))
    platform = _first(entries, "systemd", f"Starting {PLATFORM_UNIT}")
    if platform is not None:
        started = _first(entries, "systemd", f"Started {PLATFORM_UNIT}", platform.seconds)
        if started is not None:
            rows.append(Row("platform unit start (wait-db)", started.seconds - platform.seconds))
    return rows


INSTALLER = "clawdie-install"
INSTALL_DONE = "CLAWDIE-INSTALL-DONE"
_INSTALL_STEP = re.compile(r"^install: \[(\d+)/(\d+)\] (.+?) \(\d+:\d\d")


def install_rows(entries: Sequence[Entry], done_after_power_on: float | None = None) -> list[Row]:
    """Where an install's time went, from the installer stick's serial log: the live system's
    start (kernel to our first line), each of the installer's steps, the installer's own start
    to done; with the power-on time of the done marker, the firmware, boot menu and kernel
    loading before the kernel's clock starts, and power-on to done."""
    ours = [e for e in entries if e.ident == INSTALLER]
    done = next((e for e in ours if e.message == INSTALL_DONE), None)
    if not ours or done is None:
        return []
    rows = []
    if done_after_power_on is not None:
        rows.append(Row("firmware, boot menu, kernel loading", done_after_power_on - done.seconds))
    rows.append(Row("live system start (kernel to installer)", ours[0].seconds))
    steps = [(e.seconds, m.group(3)) for e in ours if (m := _INSTALL_STEP.match(e.message))]
    for index, (at, title) in enumerate(steps):
        until = steps[index + 1][0] if index + 1 < len(steps) else done.seconds
        rows.append(Row(f"  {title}", until - at))
    rows.append(Row("installer, start to done", done.seconds - ours[0].seconds))
    if done_after_power_on is not None:
        rows.append(Row("power-on to install done", done_after_power_on))
    return rows


def service_seconds(rows: Sequence[Row]) -> float:
    """The first-boot service's start-to-exit from its rows (0 when it did not run)."""
    return next((r.seconds for r in rows if r.name == "service, start to exit"), 0.0)


def render_table(title: str, rows: Sequence[Row], extra: Sequence[Row] = ()) -> str:
    """A plain text table: phase, seconds."""
    width = max(len(r.name) for r in [*rows, *extra, Row("phase", 0)])
    lines = [title, f"  {'phase':<{width}}  seconds"]
    lines += [f"  {r.name:<{width}}  {r.seconds:7.1f}" for r in [*rows, *extra]]
    return "\n".join(lines) + "\n"


def read_journal(disk: Path) -> list[Entry]:
    """Every entry of the journal on an installed (and shut down) disk image, oldest first.
    Needs root: the root partition is read through a read-only loop device with debugfs."""
    from tests.helpers.disk_image import root_filesystem

    with tempfile.TemporaryDirectory(prefix="journal-") as tmp, root_filesystem(disk) as device:
        subprocess.run(
            ["debugfs", "-R", f"rdump /var/log/journal {tmp}", device],
            capture_output=True,
            check=True,
        )
        journal_dirs = sorted(Path(tmp, "journal").glob("*"))
        if not journal_dirs:
            raise AssertionError(f"{disk.name} has no persistent journal (/var/log/journal)")
        proc = subprocess.run(
            ["journalctl", f"--directory={journal_dirs[0]}", "-o", "json", "--no-pager"],
            capture_output=True,
            text=True,
            check=True,
        )
    return entries_from_journal_json(proc.stdout.splitlines())
