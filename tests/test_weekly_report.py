"""The weekly Telegram report (DESIGN §9, issues 23 and 24): its words for a box that is fine,
one that is degraded and one with updates, channel and backups off, read from the files the
box's runs really write; sent to a Telegram stub on 127.0.0.1 (the admin's chat, no secret in
the text), queued when Telegram does not answer or there is no network and then delivered by
the existing retry, one queued week replaced by the next; and the command the timer runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from installer.cli import main
from installer.online.telegram_queue import Retrier
from installer.paths import TargetPaths
from installer.update.weekly import NAME, NO_CHANNEL, read_weekly, send_weekly
from installer.update_channel import install_channel
from installer.upkeep import (
    OFF_NO_RECIPIENT,
    BackupOutcome,
    UpkeepPaths,
    Written,
    now_text,
    record_backup,
)
from tests.helpers.provider_stub import SENT, Reply, provider_stub
from tests.helpers.sentinels import SENTINEL, TOKEN
from tests.helpers.upkeep_files import NOW, put

ADMIN = "123456789"
RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
HISTORY = """
Start-Date: {recent}
Commandline: /usr/bin/unattended-upgrade
Upgrade: libssl3:amd64 (3.0.11-1~deb12u1, 3.0.11-1~deb12u2), openssl:amd64 (3.0.11-1, 3.0.11-2)
End-Date: {recent}
"""
HELD = "Package: linux-image-amd64\nStatus: hold ok installed\nVersion: 6.1.0-26\n"


def box(tmp_path: Path, **values: str) -> TargetPaths:
    """A box after first boot: root's record of the resolution holding `values`, system.env
    with the bot and its admin, its host name, and the reference platform's release 1.1."""
    paths = TargetPaths(tmp_path / "root")
    settings = [{"key": k, "value": v} for k, v in values.items()]
    paths.config_dir.mkdir(parents=True)
    paths.resolved_json.write_text(json.dumps({"settings": settings}))
    paths.system_env.write_text(f'TELEGRAM_BOT_TOKEN="{TOKEN}"\nTELEGRAM_ADMIN_ID="{ADMIN}"\n')
    paths.system_env.chmod(0o600)
    paths.setup_state_dir.mkdir(parents=True, mode=0o700)
    paths.hostname.write_text("ada\n")
    release = paths.root / "opt/clawdie/releases/1.1"
    release.mkdir(parents=True)
    (release / "platform.toml").write_text(
        'name = "reference-platform"\nversion = "1.1"\nstart = ["bin/clawdie-platform"]\n'
    )
    (paths.root / "opt/clawdie/platform").symlink_to("releases/1.1")
    return paths


def checked_and_applied(paths: TargetPaths) -> None:
    up = UpkeepPaths(paths.root)
    put(up.apt_update_stamp, "", timedelta(hours=3))
    recent = (NOW - timedelta(days=1)).astimezone().strftime("%Y-%m-%d  %H:%M:%S")
    put(up.apt_history, HISTORY.format(recent=recent))


def channel_asked(paths: TargetPaths, line: str) -> str:
    """The box has a channel, and its last check left `line`; the time as the report shows it."""
    install_channel(
        paths.config_dir, "https://updates.example.org/clawdie/stable", "the image's default"
    )
    asked = NOW - timedelta(hours=2)
    stamp = asked.strftime("%Y-%m-%dT%H:%M:%SZ")
    put(paths.setup_state_dir / "update/channel.txt", f"{stamp} {line}\n")
    return now_text(asked.replace(microsecond=0))


def backed_up(paths: TargetPaths, ok: bool = True) -> str:
    when = now_text(NOW - timedelta(hours=1))
    written = (Written("BACKUP_DIR /srv/backup", "ada-2026-12-07.backup.age", 1_234_567),)
    failures = () if ok else ("the CLAWDIE-BACKUP stick /dev/sdb1: No space left on device",)
    outcome = BackupOutcome(when, "ok" if ok else "failed", written, failures)
    record_backup(paths, outcome)
    return when


# --- the words -------------------------------------------------------------------------------


def test_a_box_that_is_fine(tmp_path: Path) -> None:
    paths = box(tmp_path, UPDATE_WINDOW="04:00-05:00", BACKUP_RECIPIENT=RECIPIENT)
    checked_and_applied(paths)
    put(UpkeepPaths(paths.root).reboot_required, "*** System restart required ***\n")
    asked = channel_asked(paths, "up to date: the channel offers 1.1, this box runs 1.1")
    when = backed_up(paths)
    checked = now_text(NOW - timedelta(hours=3))
    assert read_weekly(paths, NOW) == (
        "Clawdie weekly report, ada: ok\n"
        f"Updates: last checked {checked}, applied 2 in 7 days, reboot pending (at 04:00)\n"
        "Platform: reference-platform 1.1; update channel updates.example.org asked "
        f"{asked}: up to date: the channel offers 1.1, this box runs 1.1\n"
        f"Backups: last {when} to BACKUP_DIR /srv/backup (1.2 MB)\n"
    )


def test_a_degraded_box_says_why_first_and_what_to_fix(tmp_path: Path) -> None:
    paths = box(tmp_path, BACKUP_RECIPIENT=RECIPIENT)
    checked_and_applied(paths)
    put(UpkeepPaths(paths.root).dpkg_status, HELD)
    channel_asked(paths, "applied: reference-platform 1.1 (kept 1.0 for rollback)")
    put(paths.setup_state_dir / "update/last.txt", "rolled back: the release was not ready\n")
    when = backed_up(paths, ok=False)
    text = read_weekly(paths, NOW)
    lines = text.splitlines()
    reason = "the CLAWDIE-BACKUP stick /dev/sdb1: No space left on device"
    assert lines[0] == (
        "Clawdie weekly report, ada: degraded: packages held back from security updates: "
        "linux-image-amd64"
    )
    assert lines[1].endswith(", 1 held back")
    # the channel applied 1.1; a later run (a file, a stick) rolled back: both are said
    assert "update channel updates.example.org asked" in lines[2]
    assert lines[2].endswith("; last update: rolled back: the release was not ready")
    assert lines[3] == (
        f"Backups: FAILED {when}: {reason} (written to BACKUP_DIR /srv/backup (1.2 MB))"
    )
    assert lines[4:] == [
        "To fix: packages held back from security updates: linux-image-amd64",
        f"To fix: the last backup failed: {reason}",
    ]


def test_updates_channel_and_backups_off_say_so_and_how_to_turn_them_on(tmp_path: Path) -> None:
    paths = box(tmp_path, UPDATES="off")
    checked_and_applied(paths)
    assert read_weekly(paths, NOW) == (
        "Clawdie weekly report, ada: ok\n"
        "Updates: off (UPDATES=off)\n"
        "Platform: reference-platform 1.1; release checks off (UPDATES=off)\n"
        f"Backups: {OFF_NO_RECIPIENT}\n"
    )
    on = box(tmp_path / "on")
    assert read_weekly(on, NOW).splitlines()[2] == f"Platform: reference-platform 1.1; {NO_CHANNEL}"
    install_channel(on.config_dir, "https://updates.example.org", "setup.txt UPDATE_CHANNEL")
    assert read_weekly(on, NOW).splitlines()[2] == (
        "Platform: reference-platform 1.1; update channel updates.example.org: not asked yet"
    )


def test_a_backup_with_nowhere_to_go_names_the_reason(tmp_path: Path) -> None:
    paths = box(tmp_path, BACKUP_RECIPIENT=RECIPIENT)
    note = "nowhere to write: no CLAWDIE-BACKUP stick plugged in and no BACKUP_DIR"
    record_backup(paths, BackupOutcome(now_text(NOW), "skipped", note=note))
    assert read_weekly(paths, NOW).splitlines()[-1] == f"To fix: the last backup failed: {note}"


# --- sending ---------------------------------------------------------------------------------


def queued(paths: TargetPaths) -> dict[str, object]:
    doc: dict[str, object] = json.loads(
        (paths.telegram_queue_dir / f"{NAME}.json").read_text(encoding="utf-8")
    )
    return doc


def test_sent_to_the_admin_with_no_secret_in_it(tmp_path: Path) -> None:
    paths = box(tmp_path, BACKUP_RECIPIENT=RECIPIENT)
    backed_up(paths)
    with provider_stub() as stub:
        assert send_weekly(paths, stub.url) == "sent"
    [seen] = [s for s in stub.seen if s.path.endswith("/sendMessage")]
    assert seen.body is not None
    assert seen.body["chat_id"] == ADMIN
    text = str(seen.body["text"])
    assert text == read_weekly(paths)
    assert SENTINEL not in text
    assert TOKEN not in text
    assert not (paths.telegram_queue_dir / f"{NAME}.json").exists()


def test_no_answer_queues_it_and_the_retry_delivers_it_later(tmp_path: Path) -> None:
    paths = box(tmp_path)
    paths.timesync_synchronized.parent.mkdir(parents=True)
    paths.timesync_synchronized.touch()
    with provider_stub() as stub:
        stub.script("/sendMessage", Reply(hang=True), Reply(200, SENT))
        told = send_weekly(paths, stub.url, total_seconds=0.5)
        stub.release.set()
        assert told.startswith("not sent: not sent within 0.5 s: Telegram no answer")
        assert f"queued in /var/lib/clawdie-setup/telegram-queue/{NAME}.json" in told
        entry = queued(paths)
        assert entry["text"] == read_weekly(paths)
        assert entry["chat_id"] == ADMIN
        raw = (paths.telegram_queue_dir / f"{NAME}.json").read_text(encoding="utf-8")
        assert SENTINEL not in raw  # the token stays in system.env
        # the retry timer's run once it is due (a minute later): delivered, late, and gone
        due = float(datetime.now(UTC).timestamp()) + 120
        outcomes = Retrier(paths, now=lambda: due).run()
    assert len(outcomes) == 1
    assert "delivered" in outcomes[0], outcomes
    texts = stub.sent_texts()
    assert texts[-1].startswith("(Sent late: written ")
    assert texts[-1].endswith(read_weekly(paths))
    assert not (paths.telegram_queue_dir / f"{NAME}.json").exists()


def test_offline_it_is_queued_at_once_and_a_newer_week_replaces_it(tmp_path: Path) -> None:
    """A sandbox root has no route: no network, so nothing is tried and the message waits."""
    paths = box(tmp_path)
    told = send_weekly(paths, "https://api.telegram.org")
    assert told.startswith("not sent: no network (no route")
    first = queued(paths)
    paths.hostname.write_text("bea\n")
    send_weekly(paths, "https://api.telegram.org")
    assert sorted(p.name for p in paths.telegram_queue_dir.iterdir()) == [f"{NAME}.json"]
    assert str(queued(paths)["text"]).startswith("Clawdie weekly report, bea: ")
    assert first["text"] != queued(paths)["text"]
    # sent after all: the week still waiting in the queue goes with it
    with provider_stub() as stub:
        assert send_weekly(paths, stub.url) == "sent"
    assert not (paths.telegram_queue_dir / f"{NAME}.json").exists()


def test_the_timers_command_prints_what_became_of_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = box(tmp_path)
    root = str(paths.root)
    with provider_stub() as stub:
        code = main(["upkeep", "--root", root, "--weekly-report", "--telegram-api", stub.url])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[-1] == "weekly report to the Telegram admin: sent"
    assert stub.sent_texts() == [read_weekly(paths)]
    # in a sandbox root without --telegram-api: no Telegram at all
    assert main(["upkeep", "--root", root, "--weekly-report"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "weekly report to the Telegram admin: no Telegram in this run"
    )
