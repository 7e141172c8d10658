"""Step: the update window and updates on or off (DESIGN §9), as UPDATE_WINDOW and UPDATES say.

- apt-daily-upgrade.timer (unattended-upgrades, Debian-Security only: the image's
  52clawdie-security-only) fires at the window's start, delayed at random within its first
  three quarters (`RandomizedDelaySec`), Persistent: a box that was off catches up at boot;
- a fix that needs a reboot reboots at the window's start (`Automatic-Reboot-Time`;
  unattended-upgrades reboots only when `/run/reboot-required` says so), in 53clawdie-window,
  read after the image's 52 file;
- clawdie-backup.timer (`clawdie-setup backup --scheduled`) fires daily inside the window too,
  and so does clawdie-update-check.timer (`clawdie-setup update --channel`);
- clawdie-weekly-report.timer (`clawdie-setup upkeep --weekly-report`: one Telegram message to
  the admin saying how the week went) fires on Mondays when the others' random delays are over
  (three quarters into the window), after them when they still run (its unit's `After=`);
- UPDATE_CHANNEL, when setup.txt gives it, replaces the image's channel in
  /etc/clawdie/update-channel (`off`: removes it); not given, the box keeps the one it has;
- UPDATES=off: apt.systemd.daily refreshes and applies nothing (`APT::Periodic` 0, read at
  each run, so it holds at once), and both apt timers and the channel's are masked (from the
  next boot on). The weekly report is not: a box without updates still says how its backups go.

The same writer runs again in an adopt run: a changed window or UPDATES=on again replaces all
of it (the masks go). A changed unit asks for `systemctl daemon-reload` like the platform's
drop-in (`UNITS_CHANGED`).
"""

from __future__ import annotations

from pathlib import Path

from installer.firstboot.context import UNITS_CHANGED, StepContext, log
from installer.fsutil import remove_durably, symlink_atomic, write_atomic
from installer.paths import TargetPaths, in_root
from installer.seed.maint_rules import window_length, window_minutes
from installer.stamps import StepRecord
from installer.steps import Step
from installer.update_channel import OFF, apply_seed_channel, channel_host

NAME = "upkeep"
LABEL = "update window, updates, daily backup"
DEADLINE_S = 30.0

APT_TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")
UPDATE_TIMERS = (*APT_TIMERS, "clawdie-update-check.timer")
UPGRADE_DROPIN = "/etc/systemd/system/apt-daily-upgrade.timer.d/clawdie-window.conf"
BACKUP_DROPIN = "/etc/systemd/system/clawdie-backup.timer.d/clawdie-window.conf"
CHANNEL_DROPIN = "/etc/systemd/system/clawdie-update-check.timer.d/clawdie-window.conf"
WEEKLY_DROPIN = "/etc/systemd/system/clawdie-weekly-report.timer.d/clawdie-window.conf"
WEEKLY_DAY = "Mon"
APT_WINDOW = "/etc/apt/apt.conf.d/53clawdie-window"
_MARKER = "the update window's units changed\n"


def window_start(window: str) -> str:
    return window.split("-")[0]


def window_delay_min(window: str) -> int:
    """The timers' random delay: the first three quarters of the window (45 of 60 minutes),
    leaving the last quarter for the run itself."""
    start, end = window_minutes(window)
    return window_length(start, end) * 3 // 4


def render_timer_dropin(window: str, what: str) -> str:
    """A timer's drop-in: daily at the window's start, at random within it, Persistent."""
    return (
        f"# Clawdie (DESIGN §9): {what} inside UPDATE_WINDOW={window} (local time).\n"
        "# Written by first boot (and adopt) from setup.txt: change UPDATE_WINDOW, not this file.\n"
        "[Timer]\n"
        "OnCalendar=\n"
        f"OnCalendar=*-*-* {window_start(window)}\n"
        f"RandomizedDelaySec={window_delay_min(window)}min\n"
        "Persistent=true\n"
    )


def weekly_time(window: str) -> str:
    """When the weekly report goes: three quarters into the window (the daily timers' random
    delays are over by then), local time."""
    start, _ = window_minutes(window)
    moment = (start + window_delay_min(window)) % (24 * 60)
    return f"{moment // 60:02d}:{moment % 60:02d}"


def render_weekly_dropin(window: str) -> str:
    """The weekly report's drop-in: Mondays, three quarters into the window, Persistent (a box
    that was off on Monday reports when it boots)."""
    return (
        f"# Clawdie (DESIGN §9): the weekly Telegram report goes inside UPDATE_WINDOW={window}.\n"
        "# Written by first boot (and adopt) from setup.txt: change UPDATE_WINDOW, not this file.\n"
        "[Timer]\n"
        "OnCalendar=\n"
        f"OnCalendar={WEEKLY_DAY} *-*-* {weekly_time(window)}\n"
        "Persistent=true\n"
    )


def render_apt_window(window: str, updates: bool) -> str:
    """apt's settings that follow UPDATE_WINDOW and UPDATES (read after 52clawdie-security-only)."""
    head = (
        f"// Clawdie (DESIGN §9): UPDATE_WINDOW={window}, UPDATES={'on' if updates else 'off'}."
        "\n// Written by first boot (and adopt) from setup.txt: change those keys, not this file.\n"
    )
    if not updates:
        return head + (
            "// UPDATES=off: nothing is refreshed nor applied by itself.\n"
            'APT::Periodic::Update-Package-Lists "0";\n'
            'APT::Periodic::Unattended-Upgrade "0";\n'
        )
    return head + (
        "// A fix that needs a reboot (the kernel, libc, OpenSSL) reboots at the window's start.\n"
        'Unattended-Upgrade::Automatic-Reboot "true";\n'
        f'Unattended-Upgrade::Automatic-Reboot-Time "{window_start(window)}";\n'
    )


def _files(window: str) -> dict[str, str]:
    return {
        UPGRADE_DROPIN: render_timer_dropin(window, "Debian's security fixes are applied"),
        BACKUP_DROPIN: render_timer_dropin(window, "the daily backup runs"),
        CHANNEL_DROPIN: render_timer_dropin(window, "the update channel is asked"),
        WEEKLY_DROPIN: render_weekly_dropin(window),
    }


def write_upkeep(root: Path, window: str, updates: bool) -> tuple[list[str], bool]:
    """Every file of the window and of UPDATES; returns the files changed and whether a unit
    did (systemd must reload)."""
    paths = TargetPaths(root)
    changed: list[str] = []
    units_now = _files(window)
    masks = {f"/etc/systemd/system/{timer}": not updates for timer in UPDATE_TIMERS}
    unit_changes = [p for p, text in units_now.items() if _read(in_root(root, p)) != text]
    unit_changes += [p for p, masked in masks.items() if _is_mask(in_root(root, p)) != masked]
    if unit_changes:
        # durable before a unit changes: a power cut cannot lose the reload (platform_env too)
        write_atomic(paths.units_reload_marker, _MARKER, mode=0o600)
    for path, text in units_now.items():
        if write_atomic(in_root(root, path), text, mode=0o644):
            changed.append(path)
    for path, masked in masks.items():
        target = in_root(root, path)
        if masked and symlink_atomic(target, "/dev/null"):
            changed.append(f"{path} (masked)")
        elif not masked and _is_mask(target) and remove_durably(target):
            changed.append(f"{path} (unmasked)")
    if write_atomic(in_root(root, APT_WINDOW), render_apt_window(window, updates), mode=0o644):
        changed.append(APT_WINDOW)
    # a run a power cut stopped after the marker: its reload is still due
    return changed, bool(unit_changes) or _read(paths.units_reload_marker) == _MARKER


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _is_mask(path: Path) -> bool:
    return path.is_symlink() and str(path.readlink()) == "/dev/null"


def apply(ctx: StepContext) -> StepRecord:
    upkeep = ctx.seed.maintenance
    changed, units = write_upkeep(ctx.paths.root, upkeep.update_window, upkeep.updates)
    channel = apply_seed_channel(ctx.paths.config_dir, upkeep.update_channel)
    if channel is not None:
        changed.append(channel)
    state = "on" if upkeep.updates else "off"
    log.info("update window %s, updates %s: %s", upkeep.update_window, state, changed or "as was")
    return StepRecord(
        created=tuple(changed),
        facts={
            "update_window": upkeep.update_window,
            "updates": state,
            "update_channel": channel_words(upkeep.update_channel),
            UNITS_CHANGED: "yes" if units else "no",
        },
    )


def channel_words(value: str | None) -> str:
    """The channel setup.txt asked for, without the address's path (it may name a customer)."""
    if value is None:
        return "as the box has it"
    return OFF if value == OFF else channel_host(value)


STEP = Step(NAME, LABEL, DEADLINE_S, apply)
