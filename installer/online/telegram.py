"""Messages to the admin on Telegram: best effort, bounded in time, never fatal.

One request path for everything that talks to a provider (installer.online.httpclient): no
answer or a busy Telegram (429, 5xx) is tried again within the time given, a 429's
`retry_after` is honoured. The bot token is part of the API URL, so no URL or exception text
that could hold it is ever logged or returned; failures are reported as a short reason. A
message that cannot be sent for want of a network is queued (installer.online.telegram_queue)
and sent later by the retry timer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from installer.online.httpclient import (
    NoAnswer,
    clean_reason,
    describe_busy,
    request_with_retries,
)

log = logging.getLogger("clawdie.telegram")
DEFAULT_API = "https://api.telegram.org"
MAX_TEXT = 4000  # Telegram's limit is 4096 characters
SEND_SECONDS = 20.0


@dataclass(frozen=True)
class SendResult:
    """What became of a message: sent, or why not; `refused` when Telegram said no (a token it
    does not know, an admin who never wrote to the bot), `retry_after` when it asked to wait."""

    sent: bool
    reason: str
    refused: bool = False
    retry_after: float | None = None


def send(
    token: str,
    chat_id: str,
    text: str,
    *,
    api: str = DEFAULT_API,
    total_seconds: float = SEND_SECONDS,
) -> SendResult:
    """Send `text` to `chat_id` within `total_seconds` (tries again on no answer or a busy
    Telegram)."""
    try:
        answer = request_with_retries(
            "POST",
            f"{api.rstrip('/')}/bot{token}/sendMessage",
            what="telegram",
            json_body={"chat_id": chat_id, "text": text[:MAX_TEXT]},
            total_seconds=total_seconds,
        )
    except NoAnswer as err:
        return SendResult(False, f"not sent within {total_seconds:g} s: Telegram {err}")
    busy = describe_busy("Telegram", answer)
    if busy:
        return SendResult(
            False, f"not sent within {total_seconds:g} s: {busy}", retry_after=answer.retry_after
        )
    body = answer.body or {}
    if answer.code == 200 and body.get("ok") is True:
        return SendResult(True, "sent")
    said = body.get("description")
    words = f": {clean_reason(said, token)}" if said else ""
    if answer.code in (400, 401, 403, 404):
        return SendResult(
            False,
            f"Telegram refused the message (HTTP {answer.code}){words}; check the bot token and "
            "that the admin has sent /start to the bot",
            refused=True,
        )
    return SendResult(False, f"Telegram did not accept the message (HTTP {answer.code}){words}")


def send_message(
    token: str,
    chat_id: str,
    text: str,
    *,
    api: str = DEFAULT_API,
    total_seconds: float = SEND_SECONDS,
) -> tuple[bool, str]:
    """`send`, as (sent, reason-if-not)."""
    result = send(token, chat_id, text, api=api, total_seconds=total_seconds)
    return result.sent, result.reason
