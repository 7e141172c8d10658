"""Telegram messages that could not be sent yet, and their sender (DESIGN §7: the report is sent
when the network comes, retried with backoff, bounded).

First boot queues its report when it cannot send it (no network, no answer, or a refusal the
operator can fix: an admin who has not sent /start to the bot yet): one JSON file per message in
root's `/var/lib/clawdie-setup/telegram-queue` (0700, files 0600), never the bot token. The
`clawdie-telegram-retry.timer` runs `clawdie-setup telegram-retry` every minute while the queue
is not empty (the service's condition), across reboots; the command sends what is due:

- the schedule after first boot's own try: 1, 2, 5, 10, 30 minutes, then every hour
  (`retry_delay`); a Telegram that asks to wait longer (429 `retry_after`) is waited for;
- delivered: the file is removed;
- a day after it was queued (`GIVE_UP_AFTER_S`) it is given up: moved to
  `telegram-given-up/` with when and why, and the journal says so;
- a message that holds a secret (first boot's report and `adopt-code --new` carry the adopt
  code, DESIGN §10) is kept only while it waits: its file goes when it is sent, and a given-up
  copy keeps a note instead of its text;
- a message queued while the clock was not synchronised is timed from the first run that sees
  a synchronised clock (an NTP jump of years must not give it up at once).

Root reads the queue and system.env only through `O_NOFOLLOW` descriptors (installer.fsutil).
Every time is the wall clock given as `now` (tests inject it).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from installer import redact
from installer.envfile import parse_env_file
from installer.errors import InstallerError
from installer.fsutil import (
    ensure_dir,
    open_dir,
    read_bytes_at,
    read_bytes_nofollow,
    remove_durably,
    write_atomic,
    write_atomic_at,
)
from installer.online.netcheck import network_problem
from installer.online.telegram import MAX_TEXT, SEND_SECONDS, SendResult, send
from installer.paths import TargetPaths

log = logging.getLogger("clawdie.telegram")

FORMAT = "clawdie-telegram-queue/1"
BACKOFF_S = (60.0, 120.0, 300.0, 600.0, 1800.0)
HOURLY_S = 3600.0
GIVE_UP_AFTER_S = 24 * 3600.0
RETRY_WINDOW = "for up to 24 h"
TOKEN_KEY = "TELEGRAM_BOT_TOKEN"  # noqa: S105 - the name of the setting, not a value
TOKEN_PLACE = f"{TOKEN_KEY} in /etc/clawdie/system.env"
MAX_ENTRY = 64 * 1024
ADMIN_KEY = "TELEGRAM_ADMIN_ID"
NOT_KEPT_NOTE = (
    "(not kept: the message held the adopt code; make a new one with "
    "`clawdie-setup adopt-code --new` as root on the box)"
)

Sender = Callable[[str, str, str, str], SendResult]  # token, chat id, text, api


def retry_delay(retries: int) -> float:
    """The pause after `retries` retries (first boot's own try not counted): 1, 2, 5, 10, 30
    minutes, then hourly."""
    return BACKOFF_S[retries] if retries < len(BACKOFF_S) else HOURLY_S


def render_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class QueuedMessage:
    """One queued message as its file holds it."""

    name: str
    api: str
    chat_id: str
    text: str
    queued_at: float
    reason: str
    retries: int = 0
    next_attempt_at: float = 0.0
    last_error: str = ""
    clock_synchronized: bool = True
    holds_secret: bool = False

    def to_json(self) -> str:
        doc = {
            "format": FORMAT,
            "api": self.api,
            "chat_id": self.chat_id,
            "text": self.text[:MAX_TEXT],
            "queued_at": render_time(self.queued_at),
            "reason": self.reason,
            "retries": self.retries,
            "next_attempt_at": render_time(self.next_attempt_at),
            "last_error": self.last_error,
            "clock_synchronized": self.clock_synchronized,
            "gives_up_at": render_time(self.queued_at + GIVE_UP_AFTER_S),
            "token": TOKEN_PLACE,
            "holds_secret": self.holds_secret,
        }
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def parse_entry(name: str, data: bytes) -> QueuedMessage | None:
    """A queue file's message, or None when it is not one of ours."""
    try:
        doc: Any = json.loads(data)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return None
    queued_at = parse_time(doc.get("queued_at"))
    fields = (doc.get("api"), doc.get("chat_id"), doc.get("text"))
    if queued_at is None or not all(isinstance(f, str) and f for f in fields):
        return None
    retries = doc.get("retries", 0)
    return QueuedMessage(
        name=name,
        api=str(doc["api"]),
        chat_id=str(doc["chat_id"]),
        text=str(doc["text"]),
        queued_at=queued_at,
        reason=str(doc.get("reason", "")),
        retries=retries if isinstance(retries, int) and retries >= 0 else 0,
        next_attempt_at=parse_time(doc.get("next_attempt_at")) or queued_at + BACKOFF_S[0],
        last_error=str(doc.get("last_error", "")),
        clock_synchronized=doc.get("clock_synchronized", True) is not False,
        holds_secret=doc.get("holds_secret", False) is True,
    )


def late_text(message: QueuedMessage) -> str:
    """The message as the admin gets it from the queue: when it was written, and why late."""
    note = (
        f"(Sent late: written {render_time(message.queued_at)}, when it could not be sent: "
        f"{message.reason})\n\n"
    )
    return (note + message.text)[:MAX_TEXT]


def queue_message(
    paths: TargetPaths,
    name: str,
    *,
    api: str,
    chat_id: str,
    text: str,
    reason: str,
    now: float | None = None,
    holds_secret: bool = False,
) -> str:
    """Keep a message that could not be sent (root only, 0600) for the retry timer; returns
    where, as a path on the target. The token is not kept here: it is in system.env.
    `holds_secret`: the text is not kept once the message is given up."""
    queued_at = time.time() if now is None else now
    message = QueuedMessage(
        name=name,
        api=api,
        chat_id=chat_id,
        text=text,
        queued_at=queued_at,
        reason=reason,
        next_attempt_at=queued_at + retry_delay(0),
        last_error=reason,
        clock_synchronized=paths.timesync_synchronized.exists(),
        holds_secret=holds_secret,
    )
    ensure_dir(paths.telegram_queue_dir, 0o700, 0, 0)
    target = paths.telegram_queue_dir / f"{name}.json"
    write_atomic(target, message.to_json(), mode=0o600)
    return f"/{target.relative_to(paths.root)}"


def forget_queued(paths: TargetPaths, name: str) -> bool:
    """Remove a queued message (it was sent after all); whether there was one."""
    return remove_durably(paths.telegram_queue_dir / f"{name}.json")


def _read_system_env_value(paths: TargetPaths, key: str, what: str) -> str:
    """`key` from the installed system's config: root's file, read without following a link
    and only when root owns it (nothing the platform can write decides who is told)."""
    try:
        data = read_bytes_nofollow(paths.system_env, MAX_ENTRY, trusted=True)
    except OSError as err:
        raise InstallerError(
            f"cannot read {what} from {paths.system_env}: {err.strerror or err}",
            "first boot writes it; see `journalctl -u clawdie-firstboot`",
        ) from None
    value = parse_env_file(data.decode("utf-8", errors="replace")).get(key, "")
    if not value:
        raise InstallerError(
            f"{paths.system_env} has no {key}", "first boot writes it: run it again"
        )
    return value


def read_bot_token(paths: TargetPaths) -> str:
    """The bot token from the installed system's config (never from the queue)."""
    token = _read_system_env_value(paths, TOKEN_KEY, "the bot token")
    redact.register(token)
    return token


def read_admin_id(paths: TargetPaths) -> str:
    """The Telegram admin's id from the installed system's config."""
    return _read_system_env_value(paths, ADMIN_KEY, "the Telegram admin")


def tell_admin(
    paths: TargetPaths,
    api: str | None,
    name: str,
    text: str,
    *,
    holds_secret: bool = False,
    total_seconds: float = SEND_SECONDS,
) -> str:
    """Send `text` to the box's Telegram admin (bot and admin as system.env has them) within
    `total_seconds`, or queue it as `name` for the retry timer (a message queued under that
    name before is replaced); returns what became of it (never the text)."""
    if api is None:
        return "no Telegram in this run"
    try:
        token, admin = read_bot_token(paths), read_admin_id(paths)
    except InstallerError as err:
        return f"not sent: {err.message}"
    problem = network_problem(api, paths)
    if problem is None:
        result = send(token, admin, text, api=api, total_seconds=total_seconds)
        if result.sent:
            forget_queued(paths, name)  # an older one of the same name is out of date
            return "sent"
        reason = result.reason
    else:
        reason = f"no network ({problem})"
    where = queue_message(
        paths, name, api=api, chat_id=admin, text=text, reason=reason, holds_secret=holds_secret
    )
    return f"not sent: {reason}; queued in {where}, will retry {RETRY_WINDOW}"


def _default_sender(token: str, chat_id: str, text: str, api: str) -> SendResult:
    return send(token, chat_id, text, api=api)


@dataclass(frozen=True)
class Retrier:
    """One run of the sender over the queue: the target, the wall clock, how to send, and how
    to tell whether there is a network (tests give a stub on loopback, which needs none)."""

    paths: TargetPaths
    now: Callable[[], float] = time.time
    sender: Sender = _default_sender

    def run(self) -> list[str]:
        """Send every message that is due; return what became of each (also logged)."""
        queue = self.paths.telegram_queue_dir
        if not queue.is_dir():
            return []
        outcomes: list[str] = []
        token: str | None = None
        with open_dir(queue) as dir_fd:
            for entry in sorted(os.listdir(dir_fd)):
                if entry.startswith(".") or not entry.endswith(".json"):
                    continue
                name = entry.removesuffix(".json")
                try:
                    message = parse_entry(name, read_bytes_at(dir_fd, entry, MAX_ENTRY))
                except OSError as err:
                    outcomes.append(self._say(f"{name}: unreadable ({err.strerror or err})"))
                    continue
                if message is None:
                    outcomes.append(self._give_up_raw(dir_fd, entry, "not a queued message"))
                    continue
                if token is None:
                    try:
                        token = read_bot_token(self.paths)
                    except InstallerError as err:
                        outcomes.append(self._say(f"{name}: not sent: {err.message}"))
                        continue
                outcomes.append(self._one(dir_fd, message, token))
        return outcomes

    def _say(self, text: str, level: int = logging.INFO) -> str:
        log.log(level, "telegram retry: %s", text)
        return text

    def _one(self, dir_fd: int, message: QueuedMessage, token: str) -> str:
        now = self.now()
        if not message.clock_synchronized and self.paths.timesync_synchronized.exists():
            message = replace(message, queued_at=now, next_attempt_at=now, clock_synchronized=True)
            self._say(f"{message.name}: the clock is synchronised now; timed from now")
        if now >= message.queued_at + GIVE_UP_AFTER_S:
            return self._give_up(dir_fd, message, now)
        # a clock set back leaves a pause longer than any on the schedule: due now
        if now < message.next_attempt_at <= now + HOURLY_S:
            return f"{message.name}: next try at {render_time(message.next_attempt_at)}"
        problem = network_problem(message.api, self.paths)
        if problem is not None:
            result = SendResult(False, f"no network ({problem})")
        else:
            result = self.sender(token, message.chat_id, late_text(message), message.api)
        if result.sent:
            os.unlink(f"{message.name}.json", dir_fd=dir_fd)
            os.fsync(dir_fd)
            late = (now - message.queued_at) / 60
            return self._say(f"{message.name}: delivered, {late:.0f} min after it was queued")
        delay = retry_delay(message.retries + 1)
        if result.retry_after is not None:
            delay = max(delay, result.retry_after)
        updated = replace(
            message,
            retries=message.retries + 1,
            next_attempt_at=now + delay,
            last_error=result.reason,
        )
        write_atomic_at(dir_fd, f"{message.name}.json", updated.to_json(), mode=0o600)
        return self._say(
            f"{message.name}: not sent ({result.reason}); next try at "
            f"{render_time(updated.next_attempt_at)}",
            logging.WARNING if result.refused else logging.INFO,
        )

    def _give_up(self, dir_fd: int, message: QueuedMessage, now: float) -> str:
        why = (
            f"not delivered within 24 h of {render_time(message.queued_at)} "
            f"({message.retries} retries; last: {message.last_error or message.reason})"
        )
        doc = json.loads(message.to_json())
        doc.update(given_up_at=render_time(now), given_up=why)
        if message.holds_secret:
            doc["text"] = NOT_KEPT_NOTE
        kept = self.paths.telegram_given_up_dir
        ensure_dir(kept, 0o700, 0, 0)
        write_atomic(
            kept / f"{message.name}.json",
            json.dumps(doc, indent=2, ensure_ascii=False) + "\n",
            mode=0o600,
        )
        os.unlink(f"{message.name}.json", dir_fd=dir_fd)
        os.fsync(dir_fd)
        shown = f"/{kept.relative_to(self.paths.root)}/{message.name}.json"
        return self._say(f"{message.name}: gave up: {why}; kept in {shown}", logging.WARNING)

    def _give_up_raw(self, dir_fd: int, entry: str, why: str) -> str:
        """A file in the queue that is not a message of ours: out of the way, with a word."""
        kept = self.paths.telegram_given_up_dir
        ensure_dir(kept, 0o700, 0, 0)
        data = read_bytes_at(dir_fd, entry, MAX_ENTRY)
        write_atomic(kept / entry, data, mode=0o600)
        os.unlink(entry, dir_fd=dir_fd)
        os.fsync(dir_fd)
        return self._say(f"{entry}: gave up: {why}", logging.WARNING)
