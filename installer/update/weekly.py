"""The weekly report to the Telegram admin (DESIGN §9): one message saying how the box kept
itself, sent by `clawdie-setup upkeep --weekly-report` (clawdie-weekly-report.timer, Mondays
inside the update window).

- The status: `ok`, or `degraded: <reason>` when the login screen's upkeep lines hold a problem
  (a failed backup, a failed security update run, packages held back; installer.upkeep).
- Updates: when Debian's security fixes were last checked, how many were applied in 7 days,
  a reboot pending; or off (UPDATES=off).
- The platform: its release (name and version), and its update channel's last answer with its
  time (the channel by its host only), or that release checks are off or that there is no
  channel and how to give one; the last update's result when the channel did not say it.
- Backups: the last one, where and how large, or off and how to turn them on.

Never a secret: the bot token stays in system.env, a channel's address is shown by its host
only, and every line is one the login screen shows or could show. No answer, or no network: the
message waits in the Telegram queue (installer.online.telegram_queue) under one name, so an
unsent week is replaced by the next, never sent twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from installer.errors import InstallerError
from installer.fsutil import read_bytes_nofollow
from installer.online.telegram import SEND_SECONDS
from installer.online.telegram_queue import tell_admin
from installer.paths import TargetPaths
from installer.update.channel import channel_url
from installer.update.layout import Layout
from installer.update_channel import channel_host
from installer.upkeep import UpkeepSettings, now_text, read_settings, read_upkeep

NAME = "weekly-report"  # its file in the Telegram queue
HEAD = "Clawdie weekly report"
NO_CHANNEL = (
    "no update channel (an adopt seed with UPDATE_CHANNEL=https://… gives one; "
    "`clawdie-setup update FILE` applies a release by hand)"
)
_LINE_LIMIT = 4096


@dataclass(frozen=True)
class PlatformFacts:
    """The platform's release and its channel, as root's files say."""

    release: str | None  # "clawdie-reference 1.1.0"; None: no platform here
    channel: str | None  # the channel's host; None: no channel
    asked: str | None  # the channel's last answer: "<time> <line>"
    last_update: str | None  # the last update run's line (last.txt)


def _update_dir(paths: TargetPaths) -> Path:
    """The update runs' own state (installer.update.run.UpdateRun.directory)."""
    return paths.setup_state_dir / "update"


def _line(path: Path) -> str | None:
    try:
        text = read_bytes_nofollow(path, _LINE_LIMIT, trusted=True).decode("utf-8", "replace")
    except OSError:
        return None
    return " ".join(text.split()) or None


def _asked(record: str | None) -> str | None:
    """channel.txt's `<UTC stamp> <line>`, with the time as the box's other lines show it."""
    if record is None:
        return None
    stamp, _, line = record.partition(" ")
    try:
        moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return record
    return f"{now_text(moment)}: {line}"


def _release(paths: TargetPaths) -> str | None:
    layout = Layout(paths)
    try:
        version = layout.current()
        return f"{layout.release(version).name} {version}"
    except (InstallerError, OSError):
        return None


def _channel(paths: TargetPaths) -> str | None:
    try:
        url = channel_url(paths.config_dir, None)
    except InstallerError:
        return None
    return channel_host(url) if url else None


def read_platform(paths: TargetPaths) -> PlatformFacts:
    directory = _update_dir(paths)
    return PlatformFacts(
        release=_release(paths),
        channel=_channel(paths),
        asked=_asked(_line(directory / "channel.txt")),
        last_update=_line(directory / "last.txt"),
    )


def platform_line(facts: PlatformFacts, settings: UpkeepSettings) -> str:
    """The report's line about the platform's release and where new ones come from."""
    line = f"Platform: {facts.release or 'none installed'}"
    if not settings.updates:
        line += "; release checks off (UPDATES=off)"
    elif facts.channel is None:
        line += f"; {NO_CHANNEL}"
    elif facts.asked is None:
        line += f"; update channel {facts.channel}: not asked yet"
    else:
        line += f"; update channel {facts.channel} asked {facts.asked}"
    if facts.last_update and not (facts.asked and facts.asked.endswith(facts.last_update)):
        line += f"; last update: {facts.last_update}"
    return line


def read_host(paths: TargetPaths) -> str:
    return _line(paths.hostname) or "this box"


def render_weekly(
    host: str, lines: tuple[str, ...], problems: tuple[str, ...], platform: str
) -> str:
    """The message: the status with its reason, the updates, platform and backups lines, and
    what to fix."""
    status = f"degraded: {problems[0]}" if problems else "ok"
    updates, *rest = lines
    body = [f"{HEAD}, {host}: {status}", updates, platform, *rest]
    body += [f"To fix: {problem}" for problem in problems]
    return "\n".join(body) + "\n"


def read_weekly(paths: TargetPaths, now: datetime | None = None) -> str:
    """This week's message, from the box's own files."""
    upkeep = read_upkeep(paths, now)
    platform = platform_line(read_platform(paths), read_settings(paths))
    return render_weekly(read_host(paths), upkeep.lines, upkeep.problems, platform)


def send_weekly(paths: TargetPaths, api: str | None, *, total_seconds: float = SEND_SECONDS) -> str:
    """Send this week's message to the admin, or queue it; what became of it (never its text)."""
    return tell_admin(paths, api, NAME, read_weekly(paths), total_seconds=total_seconds)
