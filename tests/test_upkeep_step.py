"""First boot applies UPDATE_WINDOW and UPDATES (DESIGN §9, installer/firstboot/steps/upkeep.py):
the upgrade timer and the backup timer fire inside the window (systemd reads the calendar), a
reboot a fix needs waits for the window's start (apt reads the configuration after the image's
own), UPDATES=off stops the refresh and the upgrade, and the same writer (adopt) turns them on
again. The weekly report's timer fires on Mondays inside the window, after the daily timers'
random delays, and is not masked by UPDATES=off. setup.txt's UPDATE_CHANNEL replaces the image's
channel, `off` removes it, and not set leaves it: what the channel check then reads."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from installer.firstboot.config import FirstbootConfig
from installer.firstboot.context import StepContext
from installer.firstboot.steps import upkeep
from installer.firstboot.steps.upkeep import (
    APT_WINDOW,
    BACKUP_DROPIN,
    CHANNEL_DROPIN,
    UPGRADE_DROPIN,
    WEEKLY_DROPIN,
    render_timer_dropin,
    render_weekly_dropin,
    write_upkeep,
)
from installer.paths import TargetPaths, in_root
from installer.seed.maint_rules import window_length, window_minutes
from installer.seed.resolve import check_seed_bytes
from installer.update.channel import channel_url
from installer.update_channel import CHANNEL_FILE, install_channel
from tests.helpers.apt_repo import DEBIANS, apt_config, unit
from tests.helpers.image import REPO
from tests.helpers.seeds import valid
from tests.helpers.units import unit_problems

OVERLAY = REPO / "iso/overlay/etc"
CLAWDIE_SETUP = "/usr/local/bin/clawdie-setup"  # installed on the box only

ANALYZE = shutil.which("systemd-analyze")


def next_elapse(calendar: str, after: str) -> datetime:
    """When systemd would fire `calendar` next after the local time `after` (the test machine's
    zone: the window is the box's local time)."""
    done = subprocess.run(
        [ANALYZE or "systemd-analyze", "calendar", "--base-time", after, calendar],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    line = next(x for x in done.stdout.splitlines() if "Next elapse:" in x)
    stamp = line.split("Next elapse:", 1)[1].strip()
    return datetime.strptime(" ".join(stamp.split()[1:3]), "%Y-%m-%d %H:%M:%S")


def timer(root: Path, path: str) -> tuple[str, int, str]:
    section = unit(in_root(root, path))["Timer"]
    delay = section["RandomizedDelaySec"]
    assert delay.endswith("min")
    return section["OnCalendar"].splitlines()[-1], int(delay[:-3]), section["Persistent"]


def apt_of(root: Path, tmp_path: Path) -> dict[str, list[str]]:
    """apt's view: Debian's file, the image's files, then ours."""
    parts = tmp_path / "apt.conf.d"
    parts.mkdir(exist_ok=True)
    (parts / "50unattended-upgrades").write_text(DEBIANS)
    for path in (OVERLAY / "apt/apt.conf.d").iterdir():
        shutil.copy(path, parts / path.name)
    shutil.copy(in_root(root, APT_WINDOW), parts / Path(APT_WINDOW).name)
    return apt_config(parts)


@pytest.mark.parametrize(
    ("window", "start", "delay", "base", "fires"),
    [
        ("04:00-05:00", "04:00", 45, "2026-12-07 12:00:00", "2026-12-08 04:00:00"),
        ("01:15-02:45", "01:15", 67, "2026-12-07 01:20:00", "2026-12-08 01:15:00"),
        ("23:30-00:30", "23:30", 45, "2026-12-07 22:00:00", "2026-12-07 23:30:00"),
        ("22:00-02:00", "22:00", 180, "2026-12-07 23:00:00", "2026-12-08 22:00:00"),
    ],
    ids=["default", "custom", "overnight", "long-overnight"],
)
def test_the_timers_fire_inside_the_window_and_a_reboot_waits_for_its_start(
    tmp_path: Path, window: str, start: str, delay: int, base: str, fires: str
) -> None:
    root = tmp_path / "root"
    changed, units = write_upkeep(root, window, updates=True)
    assert units
    assert set(changed) == {
        UPGRADE_DROPIN,
        BACKUP_DROPIN,
        CHANNEL_DROPIN,
        WEEKLY_DROPIN,
        APT_WINDOW,
    }
    for path in (UPGRADE_DROPIN, BACKUP_DROPIN, CHANNEL_DROPIN):
        calendar, random, persistent = timer(root, path)
        assert calendar == f"*-*-* {start}"
        assert random == delay  # the first three quarters of the window: it ends inside it
        assert persistent == "true"
        if ANALYZE:
            assert next_elapse(calendar, base) == datetime.fromisoformat(fires)
    if shutil.which("apt-config"):
        config = apt_of(root, tmp_path)
        assert config["Unattended-Upgrade::Automatic-Reboot"] == ["true"]
        assert config["Unattended-Upgrade::Automatic-Reboot-Time"][-1] == start
        assert config["APT::Periodic::Unattended-Upgrade"][-1] == "1"
    for timer_name in ("apt-daily.timer", "apt-daily-upgrade.timer", "clawdie-update-check.timer"):
        assert not in_root(root, f"/etc/systemd/system/{timer_name}").exists()
    # the same window again: nothing to write, no reload
    paths = TargetPaths(root)
    paths.units_reload_marker.unlink()
    assert write_upkeep(root, window, updates=True) == ([], False)


@pytest.mark.parametrize(
    ("window", "at", "base", "fires"),
    [
        # 2026-12-07 is a Monday
        ("04:00-05:00", "04:45", "2026-12-07 12:00:00", "2026-12-14 04:45:00"),
        ("01:15-02:45", "02:22", "2026-12-07 01:20:00", "2026-12-07 02:22:00"),
        ("23:30-00:30", "00:15", "2026-12-09 22:00:00", "2026-12-14 00:15:00"),
        ("22:00-02:00", "01:00", "2026-12-06 23:00:00", "2026-12-07 01:00:00"),
    ],
    ids=["default", "custom", "overnight", "long-overnight"],
)
def test_the_weekly_report_fires_on_mondays_inside_the_window_after_the_daily_runs(
    tmp_path: Path, window: str, at: str, base: str, fires: str
) -> None:
    root = tmp_path / "root"
    write_upkeep(root, window, updates=True)
    section = unit(in_root(root, WEEKLY_DROPIN))["Timer"]
    calendar = section["OnCalendar"].splitlines()[-1]
    assert calendar == f"Mon *-*-* {at}"
    assert section["Persistent"] == "true"
    assert "RandomizedDelaySec" not in section
    start, end = window_minutes(window)
    _, delay, _ = timer(root, BACKUP_DROPIN)
    hours, minutes = (int(x) for x in at.split(":"))
    into = window_length(start, hours * 60 + minutes)
    assert delay <= into < window_length(start, end)  # inside, after every daily timer fired
    if ANALYZE:
        fired = next_elapse(calendar, base)
        assert fired == datetime.fromisoformat(fires)
        assert fired.weekday() == 0


def test_updates_off_stops_the_refresh_and_the_upgrade_and_on_brings_them_back(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    write_upkeep(root, "04:00-05:00", updates=True)
    TargetPaths(root).units_reload_marker.unlink()
    changed, units = write_upkeep(root, "04:00-05:00", updates=False)
    assert units
    for name in ("apt-daily.timer", "apt-daily-upgrade.timer", "clawdie-update-check.timer"):
        mask = in_root(root, f"/etc/systemd/system/{name}")
        assert mask.is_symlink()
        assert str(mask.readlink()) == "/dev/null"
        assert f"/etc/systemd/system/{name} (masked)" in changed
    if shutil.which("apt-config"):
        config = apt_of(root, tmp_path)
        assert config["APT::Periodic::Unattended-Upgrade"][-1] == "0"
        assert config["APT::Periodic::Update-Package-Lists"][-1] == "0"
    # the backup still runs in the window, and reports weekly: UPDATES is about updates
    assert timer(root, BACKUP_DROPIN)[0] == "*-*-* 04:00"
    assert not in_root(root, "/etc/systemd/system/clawdie-weekly-report.timer").exists()
    assert in_root(root, WEEKLY_DROPIN).is_file()

    TargetPaths(root).units_reload_marker.unlink()
    changed, units = write_upkeep(root, "04:00-05:00", updates=True)
    assert units
    assert "/etc/systemd/system/apt-daily.timer (unmasked)" in changed
    assert not in_root(root, "/etc/systemd/system/apt-daily-upgrade.timer").exists()
    if shutil.which("apt-config"):
        assert apt_of(root, tmp_path)["APT::Periodic::Unattended-Upgrade"][-1] == "1"


def test_the_image_ships_the_default_windows_timers() -> None:
    """The image's drop-ins are what first boot writes for the default window (no reload)."""
    root = OVERLAY.parent
    written = in_root(root, UPGRADE_DROPIN).read_text()
    assert written == render_timer_dropin("04:00-05:00", "Debian's security fixes are applied")
    written = in_root(root, BACKUP_DROPIN).read_text()
    assert written == render_timer_dropin("04:00-05:00", "the daily backup runs")
    written = in_root(root, CHANNEL_DROPIN).read_text()
    assert written == render_timer_dropin("04:00-05:00", "the update channel is asked")
    assert in_root(root, WEEKLY_DROPIN).read_text() == render_weekly_dropin("04:00-05:00")


@pytest.mark.skipif(ANALYZE is None, reason="no systemd-analyze")
def test_systemd_reads_the_backup_and_update_check_timers_and_services() -> None:
    unit_dir = OVERLAY / "systemd/system"
    for timer in (
        "clawdie-backup.timer",
        "clawdie-update-check.timer",
        "clawdie-weekly-report.timer",
    ):
        problems = unit_problems(unit_dir / timer, timer.removesuffix(".timer"), CLAWDIE_SETUP)
        assert problems == [], problems
    service = (unit_dir / "clawdie-backup.service").read_text()
    assert "ExecStart=/usr/local/bin/clawdie-setup backup --scheduled\n" in service
    assert "WantedBy=timers.target" in (unit_dir / "clawdie-backup.timer").read_text()
    check = (unit_dir / "clawdie-update-check.service").read_text()
    assert "ExecStart=/usr/local/bin/clawdie-setup update --channel\n" in check
    assert "ConditionPathExists=/etc/clawdie/update-channel\n" in check
    weekly = (unit_dir / "clawdie-weekly-report.service").read_text()
    assert "ExecStart=/usr/local/bin/clawdie-setup upkeep --weekly-report\n" in weekly
    # after the window's own runs when they still run, and on the default window's Monday
    assert "After=apt-daily-upgrade.service clawdie-backup.service" in weekly
    assert "OnCalendar=Mon *-*-* 04:45\n" in (unit_dir / "clawdie-weekly-report.timer").read_text()
    build = (OVERLAY.parents[1] / "build.py").read_text()
    assert '"clawdie-backup.timer",' in build
    assert '"clawdie-update-check.timer",' in build
    assert '"clawdie-weekly-report.timer",' in build


IMAGE_CHANNEL = "https://releases.example.com/clawdie"


def step_with(root: Path, *lines: str) -> dict[str, str]:
    """The upkeep step run for a seed with `lines` on a box whose image has a channel; the
    step's facts."""
    check = check_seed_bytes(valid(*lines))
    assert check.valid, check.problems
    paths = TargetPaths(root)
    if not paths.config_dir.exists():
        install_channel(paths.config_dir, IMAGE_CHANNEL, "the image's default")
    context = StepContext(FirstbootConfig(root=root), paths, check.require_resolved())
    return dict(upkeep.apply(context).facts)


@pytest.mark.parametrize(
    ("line", "asked", "words"),
    [
        (None, IMAGE_CHANNEL, "as the box has it"),
        (
            "UPDATE_CHANNEL=https://updates.example.org/mine/",
            "https://updates.example.org/mine",
            "updates.example.org",
        ),
        ("UPDATE_CHANNEL=OFF", None, "off"),
    ],
    ids=["not set: the image's", "set: replaces it", "off: none"],
)
def test_the_seeds_update_channel_is_the_one_the_box_asks(
    tmp_path: Path, line: str | None, asked: str | None, words: str
) -> None:
    root = tmp_path / "root"
    facts = step_with(root, *([line] if line else []))
    assert facts["update_channel"] == words
    config = TargetPaths(root).config_dir
    assert channel_url(config, None) == asked
    if line and asked:
        written = (config / CHANNEL_FILE).read_text()
        assert written == f"# The update channel (setup.txt UPDATE_CHANNEL)\n{asked}\n"
        assert (config / CHANNEL_FILE).stat().st_mode & 0o777 == 0o644
    # the same seed again (an adopt with it): nothing changes
    before = sorted(p.name for p in config.iterdir())
    step_with(root, *([line] if line else []))
    assert sorted(p.name for p in config.iterdir()) == before
    assert channel_url(config, None) == asked


def test_an_adopt_that_gives_a_channel_again_brings_it_back_after_off(tmp_path: Path) -> None:
    root = tmp_path / "root"
    step_with(root, "UPDATE_CHANNEL=off")
    config = TargetPaths(root).config_dir
    assert not (config / CHANNEL_FILE).exists()
    step_with(root, f"UPDATE_CHANNEL={IMAGE_CHANNEL}")
    assert channel_url(config, None) == IMAGE_CHANNEL
