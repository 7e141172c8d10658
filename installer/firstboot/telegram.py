"""The result message to the admin on Telegram: best effort, bounded in time, never fatal.

The bot token is part of the API URL, so no URL or exception text that could hold it is ever
logged or returned; failures are reported as a short reason. A message that cannot be sent for
want of a network is queued in root's state directory (`queue_message`), without the token.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request

from installer.fsutil import ensure_dir, remove_durably, write_atomic
from installer.paths import TargetPaths

log = logging.getLogger("clawdie.telegram")
DEFAULT_API = "https://api.telegram.org"
MAX_TEXT = 4000  # Telegram's limit is 4096 characters


class _Transient(Exception):
    """A failure worth another try (network down, server error)."""


def send_message(
    token: str, chat_id: str, text: str, *, api: str = DEFAULT_API, total_seconds: float = 20.0
) -> tuple[bool, str]:
    """Send `text` to `chat_id`; return (sent, reason-if-not). Retries within `total_seconds`."""
    from tenacity import RetryError, retry, retry_if_exception_type, stop_after_delay, wait_fixed

    payload = json.dumps({"chat_id": chat_id, "text": text[:MAX_TEXT]}).encode()
    request = urllib.request.Request(  # noqa: S310 - the scheme comes from our own setting
        f"{api.rstrip('/')}/bot{token}/sendMessage",
        data=payload,
        headers={"Content-Type": "application/json"},
        method="POST",
    )

    @retry(
        stop=stop_after_delay(total_seconds),
        wait=wait_fixed(2),
        retry=retry_if_exception_type(_Transient),
    )
    def attempt() -> None:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                if json.loads(response.read() or b"{}").get("ok") is not True:
                    raise PermissionError("Telegram did not accept the message")
        except urllib.error.HTTPError as err:
            if err.code in (401, 403, 404):
                raise PermissionError(
                    f"Telegram refused the message (HTTP {err.code}): check the bot token and "
                    "that the admin has sent /start to the bot"
                ) from None
            log.info("telegram: HTTP %s, trying again", err.code)
            raise _Transient(f"HTTP {err.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", None) or type(err).__name__
            log.info("telegram: network not reachable (%s), trying again", reason)
            raise _Transient(f"network not reachable ({reason})") from None

    try:
        attempt()
    except PermissionError as err:
        return False, str(err)
    except RetryError as err:
        last = err.last_attempt.exception()
        return False, f"not sent within {total_seconds:.0f} s: {last}"
    return True, "sent"


def queue_message(
    paths: TargetPaths, name: str, *, api: str, chat_id: str, text: str, reason: str
) -> str:
    """Keep a message that could not be sent (root only, 0600) for a later sender; returns where,
    as a path on the target. The token is not kept here: it is TELEGRAM_BOT_TOKEN in system.env."""
    ensure_dir(paths.telegram_queue_dir, 0o700, 0, 0)
    target = paths.telegram_queue_dir / f"{name}.json"
    doc = {
        "format": "clawdie-telegram-queue/1",
        "api": api,
        "chat_id": chat_id,
        "text": text[:MAX_TEXT],
        "queued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "reason": reason,
        "token": "TELEGRAM_BOT_TOKEN in /etc/clawdie/system.env",
    }
    write_atomic(target, json.dumps(doc, indent=2, ensure_ascii=False) + "\n", mode=0o600)
    return f"/{target.relative_to(paths.root)}"


def forget_queued(paths: TargetPaths, name: str) -> bool:
    """Remove a queued message (it was sent after all); whether there was one."""
    return remove_durably(paths.telegram_queue_dir / f"{name}.json")
