"""The model's field rules, its single-field seam for the wizard, and what errors may carry."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from installer.setup_model import (
    SetupModel,
    derive_hostname,
    field_specs,
    problems_of,
    validate_field,
)
from tests.seeds import ADMIN, ED25519, OPENROUTER, SENTINEL, TOKEN

GOOD = [
    ("TELEGRAM_BOT_TOKEN", TOKEN),
    ("TELEGRAM_ADMIN_ID", ADMIN),
    ("OPENROUTER_API_KEY", OPENROUTER),
    ("ASSISTANT_NAME", "日本語のアシスタント"),
    ("ASSISTANT_NAME", "x" * 32),
    ("PROFILE", "ECONOMY"),
    ("TIMEZONE", "America/Argentina/Buenos_Aires"),
    ("TIMEZONE", "UTC"),
    ("HOSTNAME", "a"),
    ("HOSTNAME", "a" * 63),
    ("HOSTNAME", "box-1"),
    ("LOCALE", "C.UTF-8"),
    ("LOCALE", "sr_RS.utf8@latin"),
    ("KEYMAP", "de-latin1-nodeadkeys"),
    ("OPERATOR_EMAIL", "Ops@Example.org"),
    ("OPERATOR_PASSWORD", "twelve chars"),
    ("SSH_AUTHORIZED_KEY", ED25519),
    ("SSH_AUTHORIZED_KEY", ED25519.rsplit(" ", 1)[0]),
    ("SERVICE_ACCOUNT", "assistant"),
    ("AGENT_DOMAIN", "ada.example.org"),
    ("PI_TUI_PROVIDER", "Anthropic"),
    ("PI_TUI_MODEL", "anthropic/claude-3.7-sonnet:thinking"),
    ("LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS", "0"),
    ("ANTHROPIC_API_KEY", "sk-ant-api03-abcdefghijklmnop"),
    ("INSTALL_MODE", "Adopt"),
    ("TARGET_DISK", "/dev/disk/by-id/ata-Samsung_SSD_860-abc"),
    ("ERASE_TARGET_DISK", "no"),
]

BAD = [
    ("TELEGRAM_BOT_TOKEN", "12345", "not a Telegram bot token"),
    ("TELEGRAM_BOT_TOKEN", "123:" + "a" * 34 + "!", "characters a bot token never has"),
    ("TELEGRAM_BOT_TOKEN", "123: abc", "contains a space"),
    ("TELEGRAM_ADMIN_ID", "0", "out of range"),
    ("TELEGRAM_ADMIN_ID", "12a", "digits only"),
    ("TELEGRAM_ADMIN_ID", "１２３", "digits only"),
    ("OPENROUTER_API_KEY", "sk-or-short", "too short"),
    ("OPENROUTER_API_KEY", "hello world key", "contains a space"),
    ("OPENROUTER_API_KEY", "or-0123456789012345678901", "not a OpenRouter key"),
    ("HOSTNAME", "-box", "does not start or end with '-'"),
    ("HOSTNAME", "box.example.com", "without dots"),
    ("HOSTNAME", "12345", "only digits"),
    ("HOSTNAME", "localhost", "reserved"),
    ("HOSTNAME", "wpad", "reserved"),
    ("HOSTNAME", "über", "only a-z"),
    ("TIMEZONE", "Europe/Berln", "did you mean"),
    ("LOCALE", "english", "not a locale name"),
    ("KEYMAP", "Deutsch (Schweiz)", "not a keyboard layout"),
    ("OPERATOR_EMAIL", "ops@localhost", "not an e-mail"),
    ("OPERATOR_PASSWORD", "x" * 129, "longer than 128"),
    ("OPERATOR_PASSWORD", "a" * 32 + ":" + "b" * 128, "looks like a password hash"),
    ("SSH_AUTHORIZED_KEY", "ssh-dss AAAAB3NzaC1kc3MAAACBAP", "not an OpenSSH public key"),
    ("SSH_AUTHORIZED_KEY", "ssh-ed25519 !!!notbase64", "not valid base64"),
    (
        "SSH_AUTHORIZED_KEY",
        "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIBm1Q6Xq2H3rXk0mWbX9cP0nB7y7bqvRZ4m7bYVJ3p9E",
        "damaged",
    ),
    ("SERVICE_ACCOUNT", "Clawdie", "not a valid user name"),
    ("SERVICE_ACCOUNT", "systemd-foo", "system account"),
    ("SERVICE_ACCOUNT", "postgres", "system account"),
    ("PI_TUI_PROVIDER", "ollama", "unknown provider"),
    ("PI_TUI_MODEL", "a model with spaces", "not a model id"),
    ("LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS", "-5", "whole number"),
    ("LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS", "86401", "whole number"),
    ("ANTHROPIC_API_KEY", "sk-abcdefghijklmnopqrstuvwxyz", "not a Anthropic key"),
    ("INSTALL_MODE", "upgrade", "unknown install mode"),
    ("TARGET_DISK", "/dev/../etc/passwd", "not a disk name"),
    ("ERASE_TARGET_DISK", "true", "yes or no"),
]


@pytest.mark.parametrize(("key", "value"), GOOD)
def test_good_values_pass_their_rule(key: str, value: str) -> None:
    assert validate_field(key, value) is None


@pytest.mark.parametrize(("key", "value", "words"), BAD)
def test_bad_values_get_the_rule_message(key: str, value: str, words: str) -> None:
    problem = validate_field(key, value)
    assert problem is not None
    assert words in f"{problem.message} {problem.hint}"
    if any(s.key == key and s.secret for s in field_specs()):
        assert value not in problem.message + problem.hint


def test_validation_errors_carry_no_input() -> None:
    data = {
        "TELEGRAM_BOT_TOKEN": SENTINEL,
        "OPENROUTER_API_KEY": SENTINEL,
        "OPERATOR_PASSWORD": "x" + SENTINEL + ":",
        "TELEGRAM_ADMIN_ID": SENTINEL,
    }
    with pytest.raises(ValidationError) as info:
        SetupModel.model_validate(data)
    err = info.value
    assert SENTINEL not in str(err)
    assert SENTINEL not in repr(err.errors())
    assert SENTINEL not in repr(problems_of(err))


def test_model_is_frozen_and_secrets_are_secretstr() -> None:
    model = SetupModel.model_validate(
        {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_ADMIN_ID": ADMIN, "OPENROUTER_API_KEY": OPENROUTER}
    )
    assert isinstance(model.telegram_bot_token, SecretStr)
    assert TOKEN not in repr(model)
    assert model.secret("TELEGRAM_BOT_TOKEN") == TOKEN
    with pytest.raises(ValidationError):
        model.hostname = "x"  # type: ignore[misc]


def test_unknown_fields_are_forbidden() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        SetupModel.model_validate(
            {
                "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_ADMIN_ID": ADMIN,
                "OPENROUTER_API_KEY": OPENROUTER,
                "NOPE": "1",
            }
        )


def test_field_specs_have_tiers_docs_and_secrecy() -> None:
    specs = {s.key: s for s in field_specs()}
    assert {k for k, s in specs.items() if s.tier == "required"} == {
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_ADMIN_ID",
        "OPENROUTER_API_KEY",
    }
    assert specs["ASSISTANT_NAME"].tier == "recommended"
    assert specs["PROFILE"].tier == "prefilled"
    assert {k for k, s in specs.items() if s.secret} == {
        "OPENROUTER_API_KEY",
        "TELEGRAM_BOT_TOKEN",
        "OPERATOR_PASSWORD",
        "CLAWDIE_USER_PASSWORD",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "ZAI_API_KEY",
        "DEEPSEEK_API_KEY",
    }
    assert all(s.doc for s in specs.values())


@pytest.mark.parametrize(
    ("name", "host"),
    [
        ("Ada", "ada"),
        ("Zoë's Helper", "zoe-s-helper"),
        ("  Spaces   everywhere ", "spaces-everywhere"),
        ("Straße", "strasse"),
        ("Ελένη", "eleni"),
        ("日本", "riben"),
        ("🤖", "robot"),
        ("---", "clawdie"),
        ("System", "clawdie"),
        ("12345", "clawdie"),
        ("x" * 32 + "-" + "y" * 40, "x" * 32 + "-" + "y" * 30),
    ],
)
def test_derive_hostname(name: str, host: str) -> None:
    assert derive_hostname(name) == host
