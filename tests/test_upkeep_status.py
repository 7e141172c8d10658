"""How updates and backups went, on the login screen and in `clawdie-setup upkeep` (DESIGN §9):
read from the files apt, unattended-upgrades and dpkg really write (stamps, history.log, the
unattended-upgrades log, dpkg's status), each written here in their own format; a failed run or
packages held back make the box `degraded` with the reason; UPDATES=off says so."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

from installer.firstboot.steps.report import LoginScreen, refresh_login_screen, write_login_screen
from installer.paths import TargetPaths
from installer.qr import CHARACTERS
from installer.upkeep import (
    BackupOutcome,
    UpkeepPaths,
    Written,
    now_text,
    read_upkeep,
    record_backup,
)
from tests.helpers.backup import clawdie
from tests.helpers.upkeep_files import NOW, put

HISTORY = """
Start-Date: {recent}
Commandline: /usr/bin/unattended-upgrade
Upgrade: libssl3:amd64 (3.0.11-1~deb12u1, 3.0.11-1~deb12u2), openssl:amd64 (3.0.11-1, 3.0.11-2)
End-Date: {recent}

Start-Date: {recent}
Commandline: apt-get install htop
Install: htop:amd64 (3.2.2-2)
End-Date: {recent}

Start-Date: {old}
Commandline: /usr/bin/unattended-upgrade
Upgrade: tzdata:amd64 (2024a-0+deb12u1, 2025b-0+deb12u1)
End-Date: {old}
"""
UU_LOG = """\
2026-12-06 04:12:01,101 INFO Starting unattended upgrades script
2026-12-06 04:12:01,102 INFO Allowed origins are: origin=Debian,label=Debian-Security
2026-12-06 04:12:09,370 ERROR Installing the upgrades failed!
2026-12-07 04:21:11,145 INFO Starting unattended upgrades script
2026-12-07 04:21:11,146 INFO Allowed origins are: origin=Debian,label=Debian-Security
2026-12-07 04:21:13,717 INFO Packages that will be upgraded: libssl3 openssl
2026-12-07 04:21:25,001 INFO All upgrades installed
"""
FAILED_RUN = """\
2026-12-08 04:05:00,000 INFO Starting unattended upgrades script
2026-12-08 04:05:09,370 ERROR dpkg returned an error! See unattended-upgrades-dpkg.log
"""
DPKG_STATUS = """\
Package: openssl
Status: install ok installed
Version: 3.0.11-1~deb12u2

Package: linux-image-amd64
Status: hold ok installed
Version: 6.1.0-26
"""


def box(tmp_path: Path, **values: str) -> TargetPaths:
    """A root with root's record of the resolution holding `values`."""
    paths = TargetPaths(tmp_path / "root")
    settings = [{"key": k, "value": v} for k, v in values.items()]
    paths.resolved_json.parent.mkdir(parents=True)
    paths.resolved_json.write_text(json.dumps({"settings": settings}))
    paths.setup_state_dir.mkdir(parents=True, mode=0o700)
    return paths


def local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d  %H:%M:%S")


def checked_and_applied(paths: TargetPaths) -> None:
    up = UpkeepPaths(paths.root)
    put(up.apt_update_stamp, "", timedelta(hours=3))
    recent, old = local(NOW - timedelta(days=1)), local(NOW - timedelta(days=20))
    put(up.apt_history, HISTORY.format(recent=recent, old=old))
    put(up.uu_log, UU_LOG)


def test_the_last_check_what_it_applied_and_a_pending_reboot(tmp_path: Path) -> None:
    paths = box(tmp_path, UPDATE_WINDOW="23:30-00:30")
    checked_and_applied(paths)
    put(UpkeepPaths(paths.root).reboot_required, "*** System restart required ***\n")
    upkeep = read_upkeep(paths, NOW)
    checked = now_text(NOW - timedelta(hours=3))
    assert upkeep.lines[0] == (
        f"Updates: last checked {checked}, applied 2 in 7 days, reboot pending (at 23:30)"
    )
    assert upkeep.problems == ()  # the earlier run's error was mended by the last run


def test_updates_off_says_so(tmp_path: Path) -> None:
    paths = box(tmp_path, UPDATES="off")
    checked_and_applied(paths)
    assert read_upkeep(paths, NOW).lines[0] == "Updates: off (UPDATES=off)"


def test_never_checked_or_not_for_two_days_is_offline(tmp_path: Path) -> None:
    paths = box(tmp_path)
    assert read_upkeep(paths, NOW).lines[0].startswith("Updates: not checked (offline")
    put(UpkeepPaths(paths.root).apt_update_stamp, "", timedelta(days=3))
    since = now_text(NOW - timedelta(days=3))
    assert (
        read_upkeep(paths, NOW).lines[0].startswith(f"Updates: not checked since {since} (offline)")
    )


def test_a_failed_run_and_held_packages_are_problems(tmp_path: Path) -> None:
    paths = box(tmp_path)
    checked_and_applied(paths)
    up = UpkeepPaths(paths.root)
    put(up.uu_log, UU_LOG + FAILED_RUN)
    put(up.dpkg_status, DPKG_STATUS)
    upkeep = read_upkeep(paths, NOW)
    assert upkeep.lines[0].endswith(", last run FAILED, 1 held back")
    assert upkeep.problems == (
        "the last security update run failed: dpkg returned an error! See "
        "unattended-upgrades-dpkg.log",
        "packages held back from security updates: linux-image-amd64",
    )


def test_the_backup_line_off_none_yet_last_and_failed(tmp_path: Path) -> None:
    paths = box(tmp_path)
    assert read_upkeep(paths).lines[1] == ("Backups: off: set BACKUP_RECIPIENT to turn backups on")
    paths = box(tmp_path / "with", BACKUP_RECIPIENT="age1xyz", UPDATE_WINDOW="01:00-02:00")
    assert read_upkeep(paths).lines[1] == "Backups: none yet (daily in 01:00-02:00)"
    written = Written("BACKUP_DIR /srv/backup", "zoe-2026-12-07.backup.age", 12_345_678)
    record_backup(paths, BackupOutcome("2026-12-07 04:20", "ok", (written,)))
    assert read_upkeep(paths).lines[1] == (
        "Backups: last 2026-12-07 04:20 to BACKUP_DIR /srv/backup (12.3 MB)"
    )
    failure = "the CLAWDIE-BACKUP stick /dev/sdb1: No space left on device"
    record_backup(paths, BackupOutcome("2026-12-08 04:20", "failed", (written,), (failure,)))
    upkeep = read_upkeep(paths)
    assert upkeep.lines[1].startswith(f"Backups: FAILED 2026-12-08 04:20: {failure} (written to")
    assert upkeep.problems == (f"the last backup failed: {failure}",)


def screen_words(paths: TargetPaths) -> str:
    text = paths.issue_file.read_text()
    blocks = re.escape("".join(sorted(CHARACTERS)))
    return " ".join(re.sub(f"[{blocks}]", " ", text).split())


def test_the_login_screen_is_drawn_again_with_the_lines_and_degraded(tmp_path: Path) -> None:
    paths = box(tmp_path)
    assert not refresh_login_screen(paths)  # first boot has not drawn it: nothing to redraw
    screen = LoginScreen(
        "Host zoe, assistant Zoë", True, "the assistant is set up", "started", "ok", None
    )
    write_login_screen(paths, screen)
    words = screen_words(paths)
    assert "Clawdie first boot: ok - the assistant is set up" in words
    assert "Updates: not checked (offline, or before the first window)" in words
    assert "Backups: off: set BACKUP_RECIPIENT to turn backups on" in words

    put(UpkeepPaths(paths.root).dpkg_status, DPKG_STATUS)
    result = clawdie("upkeep", "--root", str(paths.root))
    assert result.returncode == 0, result.stderr
    assert "To fix: packages held back from security updates: linux-image-amd64" in result.stdout
    words = screen_words(paths)
    assert (
        "Clawdie first boot: degraded: packages held back from security updates: "
        "linux-image-amd64" in words
    )
