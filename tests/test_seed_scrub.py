"""SEED_SCRUB=yes: the secrets on the stick are replaced by a note of where and when they were
used; everything else stays."""

from __future__ import annotations

from installer.seed.resolve import check_seed_bytes
from installer.seed.scrub import render_scrubbed_seed
from tests.helpers.seeds import ED25519, seed
from tests.helpers.sentinels import OPENROUTER, SENTINEL, TOKEN


def test_every_secret_line_is_replaced_by_a_note() -> None:
    data = seed(
        "# my box",
        f"TELEGRAM_BOT_TOKEN={TOKEN}",
        "TELEGRAM_ADMIN_ID=123456789",
        f"OPENROUTER_API_KEY={OPENROUTER}",
        "ASSISTANT_NAME=Ada",
        f"OPERATOR_PASSWORD=pass {SENTINEL} word",
        f"CLAWDIE_USER_PASSWORD Typo{SENTINEL}=x",
        f"SSH_AUTHORIZED_KEY={ED25519}",
        "PROFILE=economy",
        eol="\r\n",
    )
    result = render_scrubbed_seed(data, host="ada", when="2026-12-01 10:00 UTC")
    assert SENTINEL not in result.text
    lines = result.text.split("\r\n")
    assert lines[0] == "# my box"
    assert lines[1] == (
        "# TELEGRAM_BOT_TOKEN removed: used to install ada on 2026-12-01 10:00 UTC (SEED_SCRUB=yes)"
    )
    assert lines[2] == "TELEGRAM_ADMIN_ID=123456789"
    assert lines[3].startswith("# OPENROUTER_API_KEY removed: used to install ada")
    assert lines[4] == "ASSISTANT_NAME=Ada"
    assert lines[5].startswith("# OPERATOR_PASSWORD removed")
    assert lines[6].startswith("# line 7 removed (it was not a setting)")
    assert lines[7] == f"SSH_AUTHORIZED_KEY={ED25519}"  # a public key is not a secret
    assert lines[8] == "PROFILE=economy"
    assert result.removed == (
        "TELEGRAM_BOT_TOKEN",
        "OPENROUTER_API_KEY",
        "OPERATOR_PASSWORD",
        "line 7",
    )
    # the scrubbed stick can no longer install a box: the required secrets are gone
    check = check_seed_bytes(result.text.encode())
    assert {p.key for p in check.problems} >= {"TELEGRAM_BOT_TOKEN", "OPENROUTER_API_KEY"}


def test_a_seed_without_secrets_is_unchanged() -> None:
    data = seed("ASSISTANT_NAME=Ada", "TELEGRAM_ADMIN_ID=1")
    result = render_scrubbed_seed(data, host="ada", when="now")
    assert result.text.encode() == data
    assert result.removed == ()
