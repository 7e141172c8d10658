"""Credential preflight against stub Telegram and OpenRouter servers on 127.0.0.1: valid,
refused (the provider's reason, never the key), rate-limited, provider trouble, a server that
never answers or drips its answer (bounded), nobody listening, and offline."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from pydantic import SecretStr

from installer.online.preflight import (
    CredentialCheck,
    check_openrouter,
    check_telegram,
    run_preflight,
)
from installer.seed.resolve import check_seed_bytes
from tests.helpers.seeds import ADMIN, seed
from tests.helpers.sentinels import OPENROUTER, SENTINEL, TOKEN


@dataclass
class Reply:
    """What the stub answers: a status and a body, or it hangs, or it drips forever."""

    code: int = 200
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    mode: str = "answer"  # answer | hang | drip


class _Stub(BaseHTTPRequestHandler):
    reply: ClassVar[Reply] = Reply()
    seen: ClassVar[list[tuple[str, str | None]]] = []
    release: ClassVar[threading.Event] = threading.Event()

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        reply = type(self).reply
        if reply.mode == "hang":
            type(self).release.wait(30)
            return
        data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        self.send_response(reply.code)
        self.send_header("Content-Type", "application/json")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(1 << 20 if reply.mode == "drip" else len(data)))
        self.end_headers()
        if reply.mode == "drip":
            while not type(self).release.wait(0.05):
                self.wfile.write(b" ")
                self.wfile.flush()
            return
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up (the point of the hang and drip tests) is no error here."""


class Stub:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.url = f"http://127.0.0.1:{server.server_port}"

    def answer(self, code: int, body: object, **headers: str) -> None:
        _Stub.reply = Reply(code, body, headers)

    def hang(self) -> None:
        _Stub.reply = Reply(mode="hang")

    def drip(self) -> None:
        _Stub.reply = Reply(mode="drip")

    @property
    def seen(self) -> list[tuple[str, str | None]]:
        return _Stub.seen


@pytest.fixture
def stub() -> Iterator[Stub]:
    _Stub.seen = []
    _Stub.release = threading.Event()
    _Stub.reply = Reply()
    server = _Server(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Stub(server)
    finally:
        _Stub.release.set()
        server.shutdown()
        server.server_close()


def shows_no_secret(check: CredentialCheck) -> None:
    for text in (repr(check), str(check), check.line()):
        assert SENTINEL not in text


ME = {"ok": True, "result": {"id": 7012345678, "is_bot": True, "username": "zoe_helper_bot"}}


def test_telegram_valid_gives_the_bots_name(stub: Stub) -> None:
    stub.answer(200, ME)
    check = check_telegram(SecretStr(TOKEN), line=1, api=stub.url)
    assert (check.status, check.detail) == ("valid", "@zoe_helper_bot")
    assert check.fact("bot_username") == "@zoe_helper_bot"
    assert check.next_step is None
    assert stub.seen == [(f"/bot{TOKEN}/getMe", None)]
    shows_no_secret(check)


def test_telegram_refused_gives_the_reason_and_the_line(stub: Stub) -> None:
    stub.answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    check = check_telegram(SecretStr(TOKEN), line=7, api=stub.url)
    assert check.status == "refused"
    assert check.detail == "Telegram said: Unauthorized"
    assert check.next_step is not None
    assert "create a new one with @BotFather" in check.next_step
    assert "line 7 of setup.txt" in check.next_step
    shows_no_secret(check)


def test_a_provider_that_echoes_the_key_does_not_make_us_show_it(stub: Stub) -> None:
    stub.answer(404, {"ok": False, "description": f"Not Found: bot{TOKEN}\n\x1b[31m"})
    check = check_telegram(SecretStr(TOKEN), api=stub.url)
    assert check.status == "refused"
    assert check.detail.startswith("Telegram said: Not Found: bot<redacted>")
    assert "\x1b" not in check.detail
    assert "a TELEGRAM_BOT_TOKEN= line" in (check.next_step or "")
    shows_no_secret(check)


def test_a_rate_limit_is_not_a_verdict(stub: Stub) -> None:
    stub.answer(429, {"ok": False, "description": "Too Many Requests"}, **{"Retry-After": "30"})
    check = check_telegram(SecretStr(TOKEN), api=stub.url)
    assert (check.status, check.detail) == (
        "not checked",
        "Telegram asked to slow down (rate limit, retry after 30 s)",
    )


def test_provider_trouble_is_not_a_verdict(stub: Stub) -> None:
    stub.answer(502, b"<html>Bad Gateway</html>")
    check = check_openrouter(SecretStr(OPENROUTER), api=stub.url)
    assert (check.status, check.detail) == (
        "not checked",
        "OpenRouter had trouble answering (HTTP 502)",
    )


def test_an_answer_that_is_not_json_is_not_a_verdict(stub: Stub) -> None:
    stub.answer(200, b"<html>captive portal</html>")
    check = check_telegram(SecretStr(TOKEN), api=stub.url)
    assert check.status == "not checked"
    assert "unexpected answer" in check.detail


def test_openrouter_valid_gives_the_credit_limit(stub: Stub) -> None:
    stub.answer(200, {"data": {"label": "sk-or-v1-abc...", "limit": 10, "usage": 1.5}})
    check = check_openrouter(SecretStr(OPENROUTER), line=3, api=stub.url)
    assert (check.status, check.detail) == ("valid", "credit limit 10.00, 1.50 used")
    assert check.fact("credit_limit") == "10.00"
    assert stub.seen == [("/key", f"Bearer {OPENROUTER}")]
    shows_no_secret(check)


def test_openrouter_without_a_limit(stub: Stub) -> None:
    stub.answer(200, {"data": {"limit": None, "usage": 0, "is_free_tier": True}})
    check = check_openrouter(SecretStr(OPENROUTER), api=stub.url)
    assert (check.status, check.detail) == ("valid", "no credit limit, 0.00 used, free tier")
    assert check.fact("credit_limit") == "none"


def test_openrouter_refused_key(stub: Stub) -> None:
    stub.answer(401, {"error": {"message": "User not found.", "code": 401}})
    check = check_openrouter(SecretStr(OPENROUTER), line=3, api=stub.url)
    assert check.status == "refused"
    assert check.detail == "OpenRouter said: User not found."
    assert "create a new key at openrouter.ai" in (check.next_step or "")
    assert "line 3 of setup.txt" in (check.next_step or "")
    shows_no_secret(check)


def test_openrouter_out_of_credit(stub: Stub) -> None:
    stub.answer(402, {"error": {"message": "Insufficient credits", "code": 402}})
    check = check_openrouter(SecretStr(OPENROUTER), api=stub.url)
    assert check.status == "refused"
    assert check.next_step == "add credits at openrouter.ai (Settings, Credits)"


def test_a_server_that_never_answers_is_given_up(stub: Stub) -> None:
    stub.hang()
    check = check_telegram(SecretStr(TOKEN), api=stub.url, timeout=0.3)
    assert (check.status, check.detail) == ("not checked", "Telegram no answer within 0.3 s")


def test_a_server_that_drips_its_answer_is_given_up(stub: Stub) -> None:
    stub.drip()
    check = check_openrouter(SecretStr(OPENROUTER), api=stub.url, timeout=0.3)
    assert check.status == "not checked"
    assert "no answer within 0.3 s" in check.detail


def test_nobody_listening_is_not_a_verdict() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again at once: nobody listens there
    check = check_telegram(SecretStr(TOKEN), api=f"http://127.0.0.1:{port}")
    assert check.status == "not checked"
    assert check.detail == "Telegram not reachable (Connection refused)"
    shows_no_secret(check)


SEED = seed(
    f"TELEGRAM_BOT_TOKEN={TOKEN}", f"TELEGRAM_ADMIN_ID={ADMIN}", f"OPENROUTER_API_KEY={OPENROUTER}"
)


def test_preflight_of_a_seed_names_its_lines(stub: Stub) -> None:
    stub.answer(401, {"ok": False, "description": "Unauthorized", "error": {"message": "No"}})
    result = run_preflight(
        check_seed_bytes(SEED).require_resolved(), telegram_api=stub.url, openrouter_api=stub.url
    )
    assert [(c.credential, c.status) for c in result.checks] == [
        ("Telegram bot token", "refused"),
        ("OpenRouter key", "refused"),
    ]
    assert result.refused == result.checks
    assert not result.all_valid
    assert "line 1 of setup.txt" in (result.checks[0].next_step or "")
    assert "line 3 of setup.txt" in (result.checks[1].next_step or "")


def test_preflight_offline_asks_nobody(stub: Stub) -> None:
    result = run_preflight(
        check_seed_bytes(SEED).require_resolved(),
        offline={stub.url: "no link: no network interface but loopback"},
        telegram_api=stub.url,
        openrouter_api=stub.url,
    )
    assert [(c.status, c.detail) for c in result.checks] == [
        ("not checked", "offline: no link: no network interface but loopback"),
        ("not checked", "offline: no link: no network interface but loopback"),
    ]
    assert [c.report_line() for c in result.checks] == [
        "Telegram bot: not checked (offline: no link: no network interface but loopback)",
        "OpenRouter key: not checked (offline: no link: no network interface but loopback)",
    ]
    assert stub.seen == []


def test_report_lines_say_valid_refused_and_the_line(stub: Stub) -> None:
    """The summary's words: the bot's name, the credit limit, a refusal with its next step."""
    stub.answer(200, ME)
    assert check_telegram(SecretStr(TOKEN), api=stub.url).report_line() == (
        "Telegram bot: @zoe_helper_bot (valid)"
    )
    stub.answer(200, {"data": {"limit": 25, "usage": 0}})
    assert check_openrouter(SecretStr(OPENROUTER), api=stub.url).report_line() == (
        "OpenRouter key: valid (credit limit 25.00, 0.00 used)"
    )
    stub.answer(401, {"ok": False, "description": "Unauthorized"})
    refused = check_telegram(SecretStr(TOKEN), line=4, api=stub.url)
    assert refused.report_line() == (
        "Telegram bot: refused: Telegram said: Unauthorized; next step: the bot token was "
        "refused by Telegram: create a new one with @BotFather (/newbot or /token) and put it "
        "on line 4 of setup.txt"
    )
    assert SENTINEL not in refused.report_line()


def test_no_api_base_leaves_that_credential_out(stub: Stub) -> None:
    stub.answer(200, ME)
    result = run_preflight(
        check_seed_bytes(SEED).require_resolved(), telegram_api=stub.url, openrouter_api=None
    )
    assert [c.credential for c in result.checks] == ["Telegram bot token"]


def test_preflight_skips_openrouter_when_no_setting_uses_it(stub: Stub) -> None:
    stub.answer(200, ME)
    no_openrouter = seed(
        f"TELEGRAM_BOT_TOKEN={TOKEN}",
        f"TELEGRAM_ADMIN_ID={ADMIN}",
        *(
            f"{role}_PROVIDER=zai\n{role}_MODEL=glm-4.6"
            for role in ("PI_TUI", "LLM_FALLBACK", "AGENT_COMPACTION")
        ),
        "ZAI_API_KEY=zai-key-0123456789abcdef",
    )
    result = run_preflight(
        check_seed_bytes(no_openrouter).require_resolved(),
        telegram_api=stub.url,
        openrouter_api=stub.url,
    )
    assert [(c.credential, c.status) for c in result.checks] == [("Telegram bot token", "valid")]
    assert result.all_valid
    assert [path for path, _ in stub.seen] == [f"/bot{TOKEN}/getMe"]


def test_every_check_ends_even_when_both_servers_hang(stub: Stub) -> None:
    """Bounded: a preflight against hanging servers returns, both not checked."""
    stub.hang()
    result = run_preflight(
        check_seed_bytes(SEED).require_resolved(),
        telegram_api=stub.url,
        openrouter_api=stub.url,
        timeout=0.2,
    )
    assert [c.detail for c in result.checks] == [
        "Telegram no answer within 0.2 s",
        "OpenRouter no answer within 0.2 s",
    ]
