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
itself should the provider echo it (installer.online.httpclient, the one HTTP client). The
API bases are parameters for the tests' loopback stubs (and the boot test's); setup.txt cannot
set them. First boot runs it through installer.online.checks, after the network check and
the clock wait, and the report shows `report_line()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from installer.online.httpclient import NoAnswer, clean_reason, describe_busy, request
from installer.seed.resolved import ResolvedSeed

TELEGRAM_API = "https://api.telegram.org"
OPENROUTER_API = "https://openrouter.ai/api/v1"
DEFAULT_TIMEOUT_S = 10.0

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

    def report_line(self) -> str:
        """The result as the summary and the receipt show it: `Telegram bot: @name (valid)`,
        `OpenRouter key: valid (credit limit 10.00)`, `...: refused: <the provider's reason>;
        next step: ...`, `...: not checked (offline: no link)`."""
        label = LABELS.get(self.credential, self.credential)
        if self.status == "valid" and self.fact("bot_username"):
            return f"{label}: {self.fact('bot_username')} (valid)"
        if self.status == "refused":
            step = f"; next step: {self.next_step}" if self.next_step else ""
            return f"{label}: refused: {self.detail}{step}"
        return f"{label}: {self.status}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class Preflight:
    checks: tuple[CredentialCheck, ...]

    @property
    def refused(self) -> tuple[CredentialCheck, ...]:
        return tuple(c for c in self.checks if c.status == "refused")

    @property
    def all_valid(self) -> bool:
        return all(c.status == "valid" for c in self.checks)


def _not_checked(credential: str, why: str) -> CredentialCheck:
    return CredentialCheck(credential, "not checked", why)


def _line_hint(line: int | None, key: str) -> str:
    return f"line {line}" if line is not None else f"a {key}= line"


TELEGRAM = "Telegram bot token"
OPENROUTER = "OpenRouter key"
LABELS = {TELEGRAM: "Telegram bot", OPENROUTER: "OpenRouter key"}


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
        answer = request("GET", f"{api.rstrip('/')}/bot{secret}/getMe", timeout=timeout)
    except NoAnswer as err:
        return _not_checked(TELEGRAM, f"Telegram {err}")
    busy = describe_busy("Telegram", answer)
    if busy:
        return _not_checked(TELEGRAM, busy)
    body = answer.body or {}
    result = body.get("result")
    if answer.code == 200 and body.get("ok") is True and isinstance(result, dict):
        username = result.get("username")
        if isinstance(username, str) and username:
            name = f"@{clean_reason(username, secret)}"
            return CredentialCheck(TELEGRAM, "valid", name, facts=(("bot_username", name),))
        return _not_checked(TELEGRAM, "Telegram's answer had no bot name")
    if answer.code in (400, 401, 403, 404):
        reason = clean_reason(body.get("description") or f"HTTP {answer.code}", secret)
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
        answer = request(
            "GET",
            f"{api.rstrip('/')}/key",
            headers={"Authorization": f"Bearer {secret}"},
            timeout=timeout,
        )
    except NoAnswer as err:
        return _not_checked(OPENROUTER, f"OpenRouter {err}")
    busy = describe_busy("OpenRouter", answer)
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
        reason = clean_reason(message or f"HTTP {answer.code}", secret)
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
    offline: Mapping[str, str | None] | None = None,
    telegram_api: str | None = TELEGRAM_API,
    openrouter_api: str | None = OPENROUTER_API,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Preflight:
    """Check the seed's Telegram token and, when a model setting uses OpenRouter, its key.
    `offline` maps an API base to why it cannot be reached now (the network check): that
    credential is not checked, and nobody is asked. An API base of None (no Telegram for this
    run, a sandbox with no provider given) leaves that credential out."""
    offline = offline or {}
    openrouter = next((k for k in seed.models.keys if k.provider == "openrouter"), None)
    checks = []
    if telegram_api is not None:
        why = offline.get(telegram_api)
        checks.append(
            _not_checked(TELEGRAM, f"offline: {why}")
            if why
            else check_telegram(
                seed.telegram.bot_token,
                line=_source_line(seed, "TELEGRAM_BOT_TOKEN"),
                api=telegram_api,
                timeout=timeout,
            )
        )
    if openrouter is not None and openrouter_api is not None:
        why = offline.get(openrouter_api)
        checks.append(
            _not_checked(OPENROUTER, f"offline: {why}")
            if why
            else check_openrouter(
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
