"""Credential preflight (DESIGN §7): whether the keys the seed gave are accepted by their
providers, asked once each, bounded in time, never fatal.

- Telegram: `getMe` with the bot token; valid gives the bot's @username.
- OpenRouter: `GET /api/v1/key` with the key as a Bearer token; valid gives the credit limit.

Each result is `valid`, `refused` (the provider said no: its reason, and the operator's next step
naming the setup.txt line) or `not checked` (no answer: offline, unreachable, rate-limited, the
provider's own trouble, or no answer within the time allowed). A refused credential is for the
report to call `degraded`; nothing here raises for a provider's answer or a network failure.

No text here ever holds a key: the token is part of Telegram's URL, so no URL or exception text
is used; a provider's reason is cut short, stripped of control characters, and of the key
itself should the provider echo it. The API bases are parameters for the tests' loopback stubs
(and the boot test's); setup.txt cannot set them.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import SecretStr

from installer import redact
from installer.seed.resolved import ResolvedSeed

TELEGRAM_API = "https://api.telegram.org"
OPENROUTER_API = "https://openrouter.ai/api/v1"
DEFAULT_TIMEOUT_S = 10.0
MAX_BODY = 64 * 1024
MAX_REASON = 200

Status = Literal["valid", "refused", "not checked"]


@dataclass(frozen=True)
class CredentialCheck:
    """One credential's preflight: what it is, its status, what the provider told us (the
    bot's @name, the credit limit, the reason for a refusal or why it was not checked) and, when
    refused, the operator's next step."""

    credential: str
    status: Status
    detail: str
    next_step: str | None = None
    facts: tuple[tuple[str, str], ...] = ()  # e.g. ("bot_username", "@my_bot")

    def fact(self, name: str) -> str | None:
        return dict(self.facts).get(name)

    def line(self) -> str:
        """The result in one line for a summary or receipt."""
        text = f"{self.credential}: {self.status}"
        text += f" ({self.detail})" if self.detail else ""
        return f"{text}; {self.next_step}" if self.next_step else text


@dataclass(frozen=True)
class Preflight:
    checks: tuple[CredentialCheck, ...]

    @property
    def refused(self) -> tuple[CredentialCheck, ...]:
        return tuple(c for c in self.checks if c.status == "refused")

    @property
    def all_valid(self) -> bool:
        return all(c.status == "valid" for c in self.checks)


@dataclass(frozen=True)
class _Answer:
    """An HTTP answer: status code and the JSON body (None when it was not JSON)."""

    code: int
    body: dict[str, Any] | None
    retry_after: str | None = None


class _NoAnswer(Exception):
    """No HTTP answer at all; the message says why, without any URL."""


def _clean(text: object, secret: str) -> str:
    """A provider's words for people: one line, printable, short, and never the key."""
    words = str(text).replace(secret, "<redacted>") if secret else str(text)
    words = redact.redact(words)
    words = "".join(c if c.isprintable() else " " for c in words).strip()
    return words if len(words) <= MAX_REASON else words[: MAX_REASON - 1] + "…"


def _read_body(response: Any, deadline: float) -> bytes:
    """At most MAX_BODY bytes, stopping at the deadline (a server that drips stays bounded)."""
    # read1: whatever one receive brings (read(n) would wait for all n bytes of a dripping body)
    read = getattr(response, "read1", None) or response.read
    chunks: list[bytes] = []
    size = 0
    while size < MAX_BODY:
        if time.monotonic() > deadline:
            raise TimeoutError("the answer did not finish in time")
        chunk = read(min(8192, MAX_BODY - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(data or b"null")
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _get(url: str, headers: dict[str, str], timeout: float) -> _Answer:
    """GET `url` within `timeout` seconds in all; an HTTP error status is an answer too."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers=headers, method="GET")  # noqa: S310 - our base
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return _Answer(response.status, _parse(_read_body(response, deadline)))
    except urllib.error.HTTPError as err:
        try:
            body = _parse(_read_body(err, deadline))
        except (OSError, TimeoutError):
            body = None
        return _Answer(err.code, body, err.headers.get("Retry-After") if err.headers else None)
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, TimeoutError):
            raise _NoAnswer(f"no answer within {timeout:g} s") from None
        raise _NoAnswer(f"not reachable ({_describe_os_error(reason)})") from None
    except TimeoutError:
        raise _NoAnswer(f"no answer within {timeout:g} s") from None
    except OSError as err:
        raise _NoAnswer(f"not reachable ({_describe_os_error(err)})") from None


def _describe_os_error(err: object) -> str:
    if isinstance(err, socket.gaierror):
        return "name not resolved: no DNS"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return type(err).__name__ if isinstance(err, BaseException) else str(err)


def _not_checked(credential: str, why: str) -> CredentialCheck:
    return CredentialCheck(credential, "not checked", why)


def _line_hint(line: int | None, key: str) -> str:
    return f"line {line}" if line is not None else f"a {key}= line"


def _busy(provider: str, answer: _Answer) -> str | None:
    """Why an answer is no verdict on the credential (rate limit, provider trouble), or None."""
    if answer.code == 429:
        wait = f", retry after {answer.retry_after} s" if answer.retry_after else ""
        return f"{provider} asked to slow down (rate limit{wait})"
    if answer.code >= 500:
        return f"{provider} had trouble answering (HTTP {answer.code})"
    return None


TELEGRAM = "Telegram bot token"
OPENROUTER = "OpenRouter key"


def check_telegram(
    token: SecretStr,
    *,
    line: int | None = None,
    api: str = TELEGRAM_API,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> CredentialCheck:
    """Telegram's `getMe` for the bot token: valid with the bot's @username, or refused, or not
    checked. `line` is the token's setup.txt line, for the next step."""
    secret = token.get_secret_value()
    try:
        answer = _get(f"{api.rstrip('/')}/bot{secret}/getMe", {}, timeout)
    except _NoAnswer as err:
        return _not_checked(TELEGRAM, f"Telegram {err}")
    busy = _busy("Telegram", answer)
    if busy:
        return _not_checked(TELEGRAM, busy)
    body = answer.body or {}
    result = body.get("result")
    if answer.code == 200 and body.get("ok") is True and isinstance(result, dict):
        username = result.get("username")
        if isinstance(username, str) and username:
            name = f"@{_clean(username, secret)}"
            return CredentialCheck(TELEGRAM, "valid", name, facts=(("bot_username", name),))
        return _not_checked(TELEGRAM, "Telegram's answer had no bot name")
    if answer.code in (400, 401, 403, 404):
        reason = _clean(body.get("description") or f"HTTP {answer.code}", secret)
        return CredentialCheck(
            TELEGRAM,
            "refused",
            f"Telegram said: {reason}",
            "the bot token was refused by Telegram: create a new one with @BotFather (/newbot "
            f"or /token) and put it on {_line_hint(line, 'TELEGRAM_BOT_TOKEN')} of setup.txt",
        )
    return _not_checked(TELEGRAM, f"Telegram gave an unexpected answer (HTTP {answer.code})")


def _money(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return f"{value:.2f}"


def check_openrouter(
    key: SecretStr,
    *,
    line: int | None = None,
    api: str = OPENROUTER_API,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> CredentialCheck:
    """OpenRouter's key information: valid with the credit limit (if any), or refused, or not
    checked. `line` is the key's setup.txt line, for the next step."""
    secret = key.get_secret_value()
    try:
        answer = _get(f"{api.rstrip('/')}/key", {"Authorization": f"Bearer {secret}"}, timeout)
    except _NoAnswer as err:
        return _not_checked(OPENROUTER, f"OpenRouter {err}")
    busy = _busy("OpenRouter", answer)
    if busy:
        return _not_checked(OPENROUTER, busy)
    body = answer.body or {}
    data = body.get("data")
    if answer.code == 200 and isinstance(data, dict):
        limit, usage = _money(data.get("limit")), _money(data.get("usage"))
        used = f", {usage} used" if usage is not None else ""
        detail = f"credit limit {limit}{used}" if limit is not None else f"no credit limit{used}"
        facts = (("credit_limit", limit or "none"),)
        if data.get("is_free_tier") is True:
            detail += ", free tier"
        return CredentialCheck(OPENROUTER, "valid", detail, facts=facts)
    if answer.code in (400, 401, 402, 403):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        reason = _clean(message or f"HTTP {answer.code}", secret)
        step = (
            "add credits at openrouter.ai (Settings, Credits)"
            if answer.code == 402
            else "the OpenRouter key was refused: create a new key at openrouter.ai (Settings, "
            f"Keys) and put it on {_line_hint(line, 'OPENROUTER_API_KEY')} of setup.txt"
        )
        return CredentialCheck(OPENROUTER, "refused", f"OpenRouter said: {reason}", step)
    return _not_checked(OPENROUTER, f"OpenRouter gave an unexpected answer (HTTP {answer.code})")


def run_preflight(
    seed: ResolvedSeed,
    *,
    online: bool = True,
    telegram_api: str = TELEGRAM_API,
    openrouter_api: str = OPENROUTER_API,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Preflight:
    """Check the seed's Telegram token and, when a model setting uses OpenRouter, its key.
    `online=False` (the network check found no route) reports both as not checked at once."""
    telegram_line = _source_line(seed, "TELEGRAM_BOT_TOKEN")
    openrouter = next((k for k in seed.models.keys if k.provider == "openrouter"), None)
    if not online:
        offline = "offline: no network"
        checks = [_not_checked(TELEGRAM, offline)]
        if openrouter is not None:
            checks.append(_not_checked(OPENROUTER, offline))
        return Preflight(tuple(checks))
    checks = [
        check_telegram(
            seed.telegram.bot_token, line=telegram_line, api=telegram_api, timeout=timeout
        )
    ]
    if openrouter is not None:
        checks.append(
            check_openrouter(
                openrouter.value,
                line=_source_line(seed, openrouter.setup_key),
                api=openrouter_api,
                timeout=timeout,
            )
        )
    return Preflight(tuple(checks))


def _source_line(seed: ResolvedSeed, key: str) -> int | None:
    source = seed.source(key)
    return source.line if source is not None and source.kind == "line" else None
