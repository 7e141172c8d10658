"""A box that lives for years (DESIGN §9): what it does by itself inside the update window, and
how that went, in one line each for the login screen and the summary.

- The settings (UPDATE_WINDOW, UPDATES, BACKUP_RECIPIENT, BACKUP_DIR) are read from root's own
  record of the resolution, /etc/clawdie/setup.resolved.json, only when no one but root can
  have written it (DESIGN §10: root trusts only root's files): never from a file the service
  account can write.
- Updates: apt's own stamps and logs say how Debian's security fixes went, each a plain file a
  test writes: the last successful package list refresh is the time of apt.systemd.daily's
  `/var/lib/apt/periodic/update-stamp` (touched only when `apt-get update` succeeded); what was
  applied is counted in `/var/log/apt/history.log`, whose entries name the command that made
  them (`Commandline: /usr/bin/unattended-upgrade`); a failed run is an `ERROR` line in
  unattended-upgrades' log after its last `Starting unattended upgrades script`; packages kept
  back are the `hold` ones of dpkg's status file and the ones that run reports as kept back; a
  fix that waits for a reboot leaves `/run/reboot-required`.
- Backups: `clawdie-setup backup --scheduled` records each run's outcome in a root-only file
  (`BackupOutcome`), read back here.

A failed backup, a failed update run or packages held back are problems: they make the box
`degraded`, with the reason. Pure reading and rendering, no command runs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from installer.fsutil import UnsafePathError, read_bytes_nofollow, write_atomic
from installer.paths import TargetPaths, in_root

DEFAULT_WINDOW = "04:00-05:00"
APPLIED_DAYS = 7  # "applied N": the fixes of the last week
STALE_CHECK = timedelta(hours=48)  # no successful check for this long: offline
BACKUP_LABEL = "CLAWDIE-BACKUP"
OFF_NO_RECIPIENT = "off: set BACKUP_RECIPIENT to turn backups on"
_MAX_LOG = 8 << 20
_UU = "unattended-upgrade"


@dataclass(frozen=True)
class UpkeepPaths:
    """The files of the box this module reads and writes, off a target root."""

    root: Path

    def at(self, path: str) -> Path:
        return in_root(self.root, path)

    @property
    def apt_update_stamp(self) -> Path:
        return self.at("/var/lib/apt/periodic/update-stamp")

    @property
    def apt_history(self) -> Path:
        return self.at("/var/log/apt/history.log")

    @property
    def uu_log(self) -> Path:
        return self.at("/var/log/unattended-upgrades/unattended-upgrades.log")

    @property
    def dpkg_status(self) -> Path:
        return self.at("/var/lib/dpkg/status")

    @property
    def reboot_required(self) -> Path:
        return self.at("/run/reboot-required")

    @property
    def backup_outcome(self) -> Path:
        """The last scheduled backup's outcome (root, 0600, in root's 0700 state directory)."""
        return TargetPaths(self.root).setup_state_dir / "backup-last.json"

    @property
    def backup_mount(self) -> Path:
        """Where a CLAWDIE-BACKUP stick is mounted while a backup is written (root, 0700)."""
        return TargetPaths(self.root).setup_state_dir / "backup-stick"


@dataclass(frozen=True)
class UpkeepSettings:
    """The box's setting of the four keys, as root's record holds them."""

    window: str = DEFAULT_WINDOW
    updates: bool = True
    recipients: tuple[str, ...] = ()
    backup_dir: str | None = None


def read_settings(paths: TargetPaths) -> UpkeepSettings:
    """The four keys from root's record (setup.resolved.json), trusted only when root alone can
    have written it; a missing or unreadable record: the defaults (no backup)."""
    try:
        doc = json.loads(read_bytes_nofollow(paths.resolved_json, trusted=True))
        values = {str(s["key"]): s.get("value") for s in doc["settings"] if isinstance(s, dict)}
    except (OSError, ValueError, KeyError, TypeError):
        return UpkeepSettings()
    recipients = values.get("BACKUP_RECIPIENT")
    directory = values.get("BACKUP_DIR")
    return UpkeepSettings(
        window=str(values.get("UPDATE_WINDOW") or DEFAULT_WINDOW),
        updates=values.get("UPDATES") != "off",
        recipients=tuple(str(recipients).split()) if recipients else (),
        backup_dir=str(directory) if directory else None,
    )


# --- backups -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    where: str  # "BACKUP_DIR /srv/backup" or "the CLAWDIE-BACKUP stick"
    name: str
    size: int


@dataclass(frozen=True)
class BackupOutcome:
    """One scheduled backup run: `ok`, `failed` (some or every place) or `off`."""

    time: str
    outcome: str
    written: tuple[Written, ...] = ()
    failures: tuple[str, ...] = ()  # "<where>: <reason>"
    note: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, data: bytes) -> BackupOutcome:
        doc = json.loads(data)
        return cls(
            time=str(doc["time"]),
            outcome=str(doc["outcome"]),
            written=tuple(
                Written(str(w["where"]), str(w["name"]), int(w["size"])) for w in doc["written"]
            ),
            failures=tuple(str(f) for f in doc["failures"]),
            note=str(doc.get("note", "")),
        )


def record_backup(paths: TargetPaths, outcome: BackupOutcome) -> None:
    """The outcome, where only root reads it."""
    write_atomic(UpkeepPaths(paths.root).backup_outcome, outcome.to_json(), mode=0o600)


def read_backup(paths: TargetPaths) -> BackupOutcome | None:
    try:
        data = read_bytes_nofollow(UpkeepPaths(paths.root).backup_outcome, trusted=True)
        return BackupOutcome.from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def now_text(moment: datetime | None = None) -> str:
    """A local time as the lines show it."""
    return (moment or datetime.now(UTC)).astimezone().strftime("%Y-%m-%d %H:%M")


def _size(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000  # type: ignore[assignment]
    return f"{size} bytes"  # pragma: no cover - the loop returns


def backup_line(settings: UpkeepSettings, last: BackupOutcome | None) -> tuple[str, str | None]:
    """The login screen's line about backups, and the problem it is (None: none)."""
    if not settings.recipients:
        return f"Backups: {OFF_NO_RECIPIENT}", None
    if last is None or last.outcome == "off":
        return f"Backups: none yet (daily in {settings.window})", None
    places = ", ".join(f"{w.where} ({_size(w.size)})" for w in last.written)
    if last.outcome == "ok":
        return f"Backups: last {last.time} to {places}", None
    reason = "; ".join(last.failures) or last.note or "unknown"
    line = f"Backups: FAILED {last.time}: {reason}"
    if places:
        line += f" (written to {places})"
    return line, f"the last backup failed: {reason}"


# --- updates -----------------------------------------------------------------------------------


@dataclass
class UpdateState:
    checked: datetime | None = None
    applied: int = 0
    reboot_pending: bool = False
    failure: str | None = None
    held: list[str] = field(default_factory=list)


def _text(path: Path) -> str:
    try:
        return read_bytes_nofollow(path, _MAX_LOG).decode("utf-8", "replace")
    except (OSError, UnsafePathError):
        return ""


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(os.stat(path, follow_symlinks=False).st_mtime, UTC)
    except OSError:
        return None


def applied_since(history: str, since: datetime) -> int:
    """Packages unattended-upgrades upgraded or installed (history.log) after `since`."""
    count = 0
    for entry in re.split(r"\n\s*\n", history):
        fields = dict(
            (m.group(1), m.group(2)) for m in re.finditer(r"^([A-Za-z-]+): (.*)$", entry, re.M)
        )
        if _UU not in fields.get("Commandline", ""):
            continue
        try:
            start = datetime.strptime(fields.get("Start-Date", ""), "%Y-%m-%d  %H:%M:%S")
        except ValueError:
            continue
        if start.astimezone(UTC) < since:
            continue
        for kind in ("Upgrade", "Install"):
            count += len(re.findall(r"\([^)]*\)", fields.get(kind, "")))
    return count


def last_run_problems(log: str) -> tuple[str | None, list[str]]:
    """The last unattended-upgrades run's first error and the packages it kept back."""
    starts = [m.end() for m in re.finditer(r"Starting unattended upgrades script", log)]
    run = log[starts[-1] :] if starts else ""
    failure = None
    kept: list[str] = []
    for line in run.splitlines():
        if failure is None and re.search(r"\bERROR\b", line):
            failure = line.split("ERROR", 1)[1].strip()[:160] or "an error"
        found = re.search(r"Packages that are kept back: (.*)$", line)
        if found:
            kept += found.group(1).split()
    return failure, kept


def held_packages(status: str) -> list[str]:
    """The packages dpkg holds (`apt-mark hold`): never upgraded, security fixes included."""
    held = []
    for entry in re.split(r"\n\s*\n", status):
        name = re.search(r"^Package: (\S+)$", entry, re.M)
        state = re.search(r"^Status: (\S+)", entry, re.M)
        if name and state and state.group(1) == "hold":
            held.append(name.group(1))
    return held


def read_updates(paths: TargetPaths, now: datetime | None = None) -> UpdateState:
    up = UpkeepPaths(paths.root)
    moment = now or datetime.now(UTC)
    failure, kept = last_run_problems(_text(up.uu_log))
    return UpdateState(
        checked=_mtime(up.apt_update_stamp),
        applied=applied_since(_text(up.apt_history), moment - timedelta(days=APPLIED_DAYS)),
        reboot_pending=up.reboot_required.exists(),
        failure=failure,
        held=sorted({*held_packages(_text(up.dpkg_status)), *kept}),
    )


def updates_line(
    settings: UpkeepSettings, state: UpdateState, now: datetime | None = None
) -> tuple[str, list[str]]:
    """The login screen's line about updates, and the problems it holds."""
    if not settings.updates:
        return "Updates: off (UPDATES=off)", []
    moment = now or datetime.now(UTC)
    problems = []
    if state.checked is None:
        line = "Updates: not checked (offline, or before the first window)"
    elif moment - state.checked > STALE_CHECK:
        line = f"Updates: not checked since {now_text(state.checked)} (offline)"
    else:
        line = f"Updates: last checked {now_text(state.checked)}"
    line += f", applied {state.applied} in {APPLIED_DAYS} days"
    if state.reboot_pending:
        line += f", reboot pending (at {settings.window.split('-')[0]})"
    if state.failure:
        line += ", last run FAILED"
        problems.append(f"the last security update run failed: {state.failure}")
    if state.held:
        line += f", {len(state.held)} held back"
        problems.append(f"packages held back from security updates: {', '.join(state.held)}")
    return line, problems


@dataclass(frozen=True)
class Upkeep:
    lines: tuple[str, ...]
    problems: tuple[str, ...]


def read_upkeep(paths: TargetPaths, now: datetime | None = None) -> Upkeep:
    """The two lines (updates, backups) and the problems that make the box degraded."""
    settings = read_settings(paths)
    updates, problems = updates_line(settings, read_updates(paths, now), now)
    backups, problem = backup_line(settings, read_backup(paths))
    return Upkeep((updates, backups), (*problems, *([problem] if problem else [])))


def degrade(status: str, problems: Sequence[str]) -> str:
    """The box's status word with the upkeep's problems: `ok` becomes `degraded: <reason>`."""
    if not problems or not status.startswith("ok"):
        return status
    return f"degraded: {problems[0]}"
