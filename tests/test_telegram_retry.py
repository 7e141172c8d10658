"""The Telegram retry: one HTTP client (retry policy, 429 honoured, bounded), and the sender of
queued messages against a stub Telegram on 127.0.0.1 with an injected wall clock: delivered and
removed, a refused token, a rate limit, a slow server, the backoff schedule, the give-up after a
day, a clock that was wrong when the message was queued, and the token that only system.env
holds."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from installer.online import httpclient
from installer.online.telegram import SendResult, send
from installer.online.telegram_queue import (
    GIVE_UP_AFTER_S,
    Retrier,
    queue_message,
    retry_delay,
)
from installer.paths import TargetPaths
from tests.helpers.provider_stub import Reply, provider_stub
from tests.helpers.sentinels import SENTINEL, TOKEN
from tests.helpers.units import unit_problems

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def target(tmp_path: Path, token: str = TOKEN) -> TargetPaths:
    """A target root as first boot leaves it: root's state dir, system.env with the token, and a
    synchronised clock."""
    paths = TargetPaths(tmp_path / "root")
    paths.setup_state_dir.mkdir(parents=True, mode=0o700)
    paths.config_dir.mkdir(parents=True)
    paths.system_env.write_text(f'TELEGRAM_BOT_TOKEN="{token}"\nTZ="UTC"\n')
    paths.system_env.chmod(0o600)
    paths.timesync_synchronized.parent.mkdir(parents=True)
    paths.timesync_synchronized.touch()
    return paths


def queued(paths: TargetPaths) -> dict[str, object]:
    doc: dict[str, object] = json.loads((paths.telegram_queue_dir / "first-boot.json").read_text())
    return doc


def enqueue(paths: TargetPaths, api: str, now: float = T0) -> None:
    queue_message(
        paths,
        "first-boot",
        api=api,
        chat_id="123456789",
        text="Clawdie first boot: degraded",
        reason="no network (no link: no network interface but loopback)",
        now=now,
    )


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def quick(token: str, chat_id: str, text: str, api: str) -> SendResult:
    """The sender with a short bound, for the slow-server test."""
    return send(token, chat_id, text, api=api, total_seconds=0.5)


# --- the one HTTP client ---------------------------------------------------------------------


def test_a_rate_limit_is_waited_out_within_the_bound() -> None:
    """429 with Telegram's retry_after: the pause asked for, then the next try succeeds."""
    pauses: list[float] = []
    with provider_stub() as stub:
        limited = {"ok": False, "error_code": 429, "parameters": {"retry_after": 3}}
        stub.script("/sendMessage", Reply(429, limited), Reply(200, {"ok": True}))
        answer = httpclient.request_with_retries(
            "POST",
            f"{stub.url}/bot{TOKEN}/sendMessage",
            what="telegram",
            json_body={"text": "hi"},
            total_seconds=60,
            sleep=pauses.append,
        )
    assert answer.code == 200
    assert pauses == [3.0]
    assert len(stub.seen) == 2


def test_provider_trouble_is_retried_with_backoff() -> None:
    pauses: list[float] = []
    with provider_stub() as stub:
        stub.script("/getMe", Reply(502, None), Reply(503, None), Reply(200, {"ok": True}))
        answer = httpclient.request_with_retries(
            "GET", f"{stub.url}/getMe", what="t", total_seconds=60, sleep=pauses.append
        )
    assert answer.code == 200
    assert pauses == [1.0, 2.0]


def test_a_refusal_is_not_retried() -> None:
    with provider_stub() as stub:
        stub.script("/sendMessage", Reply(401, {"ok": False, "description": "Unauthorized"}))
        answer = httpclient.request_with_retries(
            "POST", f"{stub.url}/sendMessage", what="t", json_body={}, total_seconds=60
        )
    assert answer.code == 401
    assert len(stub.seen) == 1


def test_a_wait_longer_than_the_bound_ends_at_once() -> None:
    with provider_stub() as stub:
        stub.script("/sendMessage", Reply(429, {"ok": False}, {"Retry-After": "3600"}))
        result = send(TOKEN, "1", "hi", api=stub.url, total_seconds=20)
    assert not result.sent
    assert result.retry_after == 3600.0
    assert result.reason == (
        "not sent within 20 s: Telegram asked to slow down (rate limit, retry after 3600 s)"
    )
    assert len(stub.seen) == 1


def test_a_server_that_never_answers_is_given_up_in_time() -> None:
    with provider_stub() as stub:
        stub.script("/sendMessage", Reply(hang=True))
        result = send(TOKEN, "1", "hi", api=stub.url, total_seconds=0.5)
    assert not result.sent
    assert result.reason.startswith("not sent within 0.5 s: Telegram no answer within")
    assert SENTINEL not in result.reason


def test_telegrams_description_is_shown_but_never_the_token() -> None:
    with provider_stub() as stub:
        said = {"ok": False, "description": f"Bad Request: chat not found for bot{TOKEN}"}
        stub.script("/sendMessage", Reply(400, said))
        result = send(TOKEN, "1", "hi", api=stub.url)
    assert result.refused
    assert result.reason.startswith(
        "Telegram refused the message (HTTP 400): Bad Request: chat not found for bot<redacted>;"
    )
    assert SENTINEL not in result.reason


# --- the queue and its sender ----------------------------------------------------------------


def test_the_schedule() -> None:
    assert [retry_delay(n) / 60 for n in range(8)] == [1, 2, 5, 10, 30, 60, 60, 60]


def test_queued_message_holds_no_token_and_is_root_only(tmp_path: Path) -> None:
    paths = target(tmp_path)
    enqueue(paths, "http://127.0.0.1:9")
    entry = paths.telegram_queue_dir / "first-boot.json"
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert stat.S_IMODE(entry.parent.stat().st_mode) == 0o700
    assert SENTINEL not in entry.read_text()
    doc = queued(paths)
    assert doc["queued_at"] == "2027-01-15T08:00:00Z"
    assert doc["next_attempt_at"] == "2027-01-15T08:01:00Z"
    assert doc["gives_up_at"] == "2027-01-16T08:00:00Z"
    assert doc["token"] == "TELEGRAM_BOT_TOKEN in /etc/clawdie/system.env"


def test_delivered_is_removed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    paths = target(tmp_path)
    with provider_stub() as stub:
        enqueue(paths, stub.url)
        caplog.set_level(logging.INFO, "clawdie")
        outcomes = Retrier(paths, now=Clock(T0 + 61)).run()
    assert outcomes == ["first-boot: delivered, 1 min after it was queued"]
    assert not (paths.telegram_queue_dir / "first-boot.json").exists()
    ((seen),) = stub.seen
    assert seen.path == f"/bot{TOKEN}/sendMessage"
    assert seen.body == {
        "chat_id": "123456789",
        "text": "(Sent late: written 2027-01-15T08:00:00Z, when it could not be sent: no network "
        "(no link: no network interface but loopback))\n\nClawdie first boot: degraded",
    }
    assert "delivered" in caplog.text
    assert SENTINEL not in caplog.text


def test_not_due_yet_sends_nothing(tmp_path: Path) -> None:
    paths = target(tmp_path)
    with provider_stub() as stub:
        enqueue(paths, stub.url)
        outcomes = Retrier(paths, now=Clock(T0 + 30)).run()
    assert outcomes == ["first-boot: next try at 2027-01-15T08:01:00Z"]
    assert stub.seen == []


def test_a_refused_token_keeps_trying_on_the_schedule(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An admin who has not sent /start yet, a token fixed in system.env: either can change, so
    a refusal waits for the next try like any failure, and says so in the journal."""
    paths = target(tmp_path)
    with provider_stub() as stub:
        stub.script("/sendMessage", Reply(401, {"ok": False, "description": "Unauthorized"}))
        enqueue(paths, stub.url)
        caplog.set_level(logging.INFO, "clawdie")
        (outcome,) = Retrier(paths, now=Clock(T0 + 60)).run()
    assert outcome.startswith("first-boot: not sent (Telegram refused the message (HTTP 401)")
    doc = queued(paths)
    assert doc["retries"] == 1
    assert doc["next_attempt_at"] == "2027-01-15T08:03:00Z"  # 60 s + the 2 min pause
    assert str(doc["last_error"]).startswith("Telegram refused the message (HTTP 401)")
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    assert SENTINEL not in caplog.text + json.dumps(doc)


def test_a_rate_limit_moves_the_next_try(tmp_path: Path) -> None:
    paths = target(tmp_path)
    with provider_stub() as stub:
        limited = {"ok": False, "error_code": 429, "parameters": {"retry_after": 7200}}
        stub.script("/sendMessage", Reply(429, limited))
        enqueue(paths, stub.url)
        Retrier(paths, now=Clock(T0 + 60)).run()
    assert queued(paths)["next_attempt_at"] == "2027-01-15T10:01:00Z"  # 2 h, not 2 min
    assert len(stub.seen) == 1


def test_a_slow_server_is_bounded(tmp_path: Path) -> None:
    paths = target(tmp_path)
    with provider_stub() as stub:
        stub.script("/sendMessage", Reply(hang=True))
        enqueue(paths, stub.url)
        (outcome,) = Retrier(paths, now=Clock(T0 + 60), sender=quick).run()
    assert "not sent (not sent within 0.5 s: Telegram no answer" in outcome
    assert queued(paths)["retries"] == 1


def test_the_backoff_schedule_over_a_day(tmp_path: Path) -> None:
    """Telegram down all day: a try at each due time (1, 2, 5, 10, 30 min, then hourly), none
    between, and a give-up at 24 h."""
    paths = target(tmp_path)
    clock = Clock(T0)
    tries: list[float] = []
    with provider_stub() as stub:
        stub.script("/sendMessage", Reply(502, None))
        enqueue(paths, stub.url)

        def down(token: str, chat_id: str, text: str, api: str) -> SendResult:  # noqa: ARG001
            tries.append(clock.now)
            return SendResult(False, "Telegram had trouble answering (HTTP 502)")

        retrier = Retrier(paths, now=clock, sender=down)
        while clock.now < T0 + GIVE_UP_AFTER_S + 120:
            clock.now += 30
            retrier.run()
    minutes = [round((t - T0) / 60, 1) for t in tries]
    assert minutes[:7] == [1.0, 3.0, 8.0, 18.0, 48.0, 108.0, 168.0]
    assert len(minutes) == 5 + (24 * 60 - 48) // 60  # 48 min, then hourly below 24 h
    assert max(minutes) < 24 * 60
    assert not (paths.telegram_queue_dir / "first-boot.json").exists()


def test_gives_up_after_a_day_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    paths = target(tmp_path)
    with provider_stub() as stub:
        enqueue(paths, stub.url)
        caplog.set_level(logging.INFO, "clawdie")
        (outcome,) = Retrier(paths, now=Clock(T0 + GIVE_UP_AFTER_S)).run()
    assert stub.seen == []
    assert outcome.startswith(
        "first-boot: gave up: not delivered within 24 h of 2027-01-15T08:00:00Z (0 retries; "
        "last: no network (no link: no network interface but loopback)); kept in "
        "/var/lib/clawdie-setup/telegram-given-up/first-boot.json"
    )
    assert not (paths.telegram_queue_dir / "first-boot.json").exists()
    kept = json.loads((paths.telegram_given_up_dir / "first-boot.json").read_text())
    assert kept["given_up_at"] == "2027-01-16T08:00:00Z"
    assert "gave up" in caplog.text
    assert stat.S_IMODE(paths.telegram_given_up_dir.stat().st_mode) == 0o700


def test_a_clock_that_was_wrong_when_queued_is_not_a_day_old(tmp_path: Path) -> None:
    """Queued with an unsynchronised clock (it said 2000), sent when NTP has set it years
    later: timed from then, not given up at once."""
    paths = target(tmp_path)
    paths.timesync_synchronized.unlink()
    with provider_stub() as stub:
        enqueue(paths, stub.url, now=946_684_800.0)  # 2000-01-01
        assert queued(paths)["clock_synchronized"] is False
        paths.timesync_synchronized.touch()
        (outcome,) = Retrier(paths, now=Clock(T0)).run()
    assert outcome == "first-boot: delivered, 0 min after it was queued"
    assert len(stub.seen) == 1


def test_no_network_is_a_try_that_waits_for_the_next(tmp_path: Path) -> None:
    """A named API with no route in the target: no request, the reason recorded."""
    paths = target(tmp_path)
    enqueue(paths, "https://api.telegram.invalid")
    (outcome,) = Retrier(paths, now=Clock(T0 + 60)).run()
    assert outcome.startswith("first-boot: not sent (no network (no route: no default route))")
    assert queued(paths)["retries"] == 1


def test_the_token_comes_only_from_system_env_never_through_a_link(tmp_path: Path) -> None:
    paths = target(tmp_path)
    elsewhere = tmp_path / "planted.env"
    elsewhere.write_text('TELEGRAM_BOT_TOKEN="1:planted"\n')
    paths.system_env.unlink()
    paths.system_env.symlink_to(elsewhere)
    with provider_stub() as stub:
        enqueue(paths, stub.url)
        (outcome,) = Retrier(paths, now=Clock(T0 + 60)).run()
    assert outcome.startswith("first-boot: not sent: cannot read the bot token from")
    assert stub.seen == []
    assert queued(paths)["retries"] == 0


def test_a_linked_queue_entry_is_not_followed(tmp_path: Path) -> None:
    paths = target(tmp_path)
    with provider_stub() as stub:
        enqueue(paths, stub.url)
        entry = paths.telegram_queue_dir / "first-boot.json"
        moved = tmp_path / "real.json"
        entry.rename(moved)
        entry.symlink_to(moved)
        (outcome,) = Retrier(paths, now=Clock(T0 + 60)).run()
    assert outcome.startswith("first-boot: unreadable")
    assert stub.seen == []


def test_the_command_sends_what_is_due(tmp_path: Path) -> None:
    paths = target(tmp_path)
    with provider_stub() as stub:
        enqueue(paths, stub.url, now=0.0)  # long ago: due, and (clock not synced then) rebased
        doc = queued(paths)
        doc["clock_synchronized"] = False
        (paths.telegram_queue_dir / "first-boot.json").write_text(json.dumps(doc))
        result = subprocess.run(
            [sys.executable, "-m", "installer.cli", "telegram-retry", "--root", str(paths.root)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ},
            check=False,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert "first-boot: delivered" in result.stderr
    assert SENTINEL not in result.stderr + result.stdout
    assert len(stub.seen) == 1


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_reads_the_retry_timer_and_service() -> None:
    """The units as the image ships them parse (our binary is not installed here: that line
    aside); the timer starts the service every minute and survives reboots (enabled)."""
    unit_dir = ROOT / "iso/overlay/etc/systemd/system"
    problems = unit_problems(
        unit_dir / "clawdie-telegram-retry.timer", "telegram-retry", "/usr/local/bin/clawdie-setup"
    )
    assert problems == [], problems
    timer = (unit_dir / "clawdie-telegram-retry.timer").read_text()
    assert "OnCalendar=minutely" in timer
    assert "WantedBy=timers.target" in timer
    service = (unit_dir / "clawdie-telegram-retry.service").read_text()
    assert "ConditionDirectoryNotEmpty=/var/lib/clawdie-setup/telegram-queue" in service
    assert "ExecStart=/usr/local/bin/clawdie-setup telegram-retry\n" in service
    build = (ROOT / "iso/build.py").read_text()
    assert '"clawdie-telegram-retry.timer",' in build  # enabled with the other units
