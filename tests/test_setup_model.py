"""The model's field rules, its single-field seam for the wizard, and what errors may carry."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr, ValidationError

from installer.seed.model import SetupModel, field_specs, problems_of, validate_field
from installer.seed.rules import derive_hostname, is_stable_disk_name, shows_something
from tests.helpers.gen_locales import MODULE, SUPPORTED, debian_release, render_module, utf8_names
from tests.helpers.seeds import ADMIN, ECDSA_256, ED25519, OPENROUTER, RSA_1024, RSA_2048, TOKEN
from tests.helpers.sentinels import SENTINEL


def ssh_line(key_type: str, *fields: bytes) -> str:
    """An OpenSSH public key line whose blob holds the type, then `fields`, length-prefixed."""
    blob = b"".join(len(f).to_bytes(4, "big") + f for f in (key_type.encode(), *fields))
    return f"{key_type} {base64.b64encode(blob).decode()}"


RSA_E = b"\x01\x00\x01"
P256_POINT = b"\x04" + bytes(range(64))

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
    ("LOCALE", "ca_ES.UTF-8@valencia"),
    ("LOCALE", "eo.UTF-8"),
    ("LOCALE", "en_us.utf-8"),
    ("KEYMAP", "de-latin1-nodeadkeys"),
    ("OPERATOR_EMAIL", "Ops@Example.org"),
    ("OPERATOR_PASSWORD", "twelve chars"),
    ("SSH_AUTHORIZED_KEY", ED25519),
    ("SSH_AUTHORIZED_KEY", ED25519.rsplit(" ", 1)[0]),
    ("SSH_AUTHORIZED_KEY", RSA_2048),
    ("SSH_AUTHORIZED_KEY", ECDSA_256),
    ("SSH_AUTHORIZED_KEY", ssh_line("sk-ssh-ed25519@openssh.com", bytes(32), b"ssh:")),
    (
        "SSH_AUTHORIZED_KEY",
        ssh_line("sk-ecdsa-sha2-nistp256@openssh.com", b"nistp256", P256_POINT, b"ssh:"),
    ),
    ("SSH_AUTHORIZED_KEY", ED25519 + " Zoë's laptop"),
    ("SERVICE_ACCOUNT", "assistant"),
    ("AGENT_DOMAIN", "ada.example.org"),
    ("AGENT_DOMAIN", "ada.local"),
    ("AGENT_DOMAIN", "box.localdomain"),
    ("AGENT_DOMAIN", "localhost-fan.example.org"),
    ("ASSISTANT_NAME", "مساعد"),  # a right-to-left script needs no direction controls
    ("ASSISTANT_NAME", "👩\u200d💻 Helper"),  # a joiner inside an emoji sequence stays
    ("ASSISTANT_NAME", "Ada\u3164Lovelace"),  # a filler between letters is not empty-looking
    ("PI_TUI_PROVIDER", "Anthropic"),
    ("PI_TUI_MODEL", "anthropic/claude-3.7-sonnet:thinking"),
    ("LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS", "0"),
    ("ANTHROPIC_API_KEY", "sk-ant-api03-abcdefghijklmnop"),
    ("INSTALL_MODE", "Adopt"),
    ("TARGET_DISK", "/dev/disk/by-id/ata-Samsung_SSD_860-abc"),
    ("TARGET_DISK", "/dev/disk/by-id/usb-SanDisk_Cruzer_4C53-0:0"),
    ("TARGET_DISK", "serial:S3Z1NB0K123456X"),
    ("TARGET_DISK", "serial:WD-WCC4N1.2_3:4"),
    ("TARGET_DISK", "nvme0n1"),
    ("SEED_SCRUB", "Yes"),
    ("ERASE_TARGET_DISK", "no"),
    ("INSTALL_FINGERPRINT", "3f2a9c01"),
    ("INSTALL_FINGERPRINT", "3F2A-9C01"),
    ("INSTALL_FINGERPRINT", "3f2a9c01-5b7e-4d2a-8c11-0f9e8d7c6b5a"),
    ("ADOPT_CODE", "K7QD-M4XP-R9TW-3HNE"),
    ("ADOPT_CODE", "k7qd m4xp r9tw 3hne"),
    ("ALLOW_IDENTITY_CHANGE", "YES"),
]

BAD = [
    ("TELEGRAM_BOT_TOKEN", "12345", "not a Telegram bot token"),
    ("TELEGRAM_BOT_TOKEN", "123:" + "a" * 34 + "!", "characters a bot token never has"),
    ("TELEGRAM_BOT_TOKEN", "123: abc", "contains a space"),
    ("TELEGRAM_ADMIN_ID", "0", "out of range"),
    ("TELEGRAM_ADMIN_ID", "12a", "digits only"),
    ("TELEGRAM_ADMIN_ID", "１２３", "use the digits 0-9"),
    ("TELEGRAM_ADMIN_ID", "١٢٣", "use the digits 0-9"),
    ("TELEGRAM_ADMIN_ID", "²", "use the digits 0-9"),
    ("TELEGRAM_ADMIN_ID", "9" * 5000, "out of range"),
    ("TELEGRAM_BOT_TOKEN", "١٢٣:" + "a" * 35, "not a Telegram bot token"),
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
    ("LOCALE", "en_XX.UTF-8", "en_XX.UTF-8 is not a locale Debian can generate"),
    ("LOCALE", "en_UK", "Debian has en for AG, AU, BW, CA, DK, GB,"),
    ("LOCALE", "de_US.UTF-8", "write e.g. de_DE.UTF-8"),
    ("LOCALE", "xx_YY", "write it like en_US.UTF-8"),
    ("LOCALE", "de", "write e.g. de_DE.UTF-8"),
    ("LOCALE", "en_USS", "not a locale name"),
    ("LOCALE", "enn_GB", "did you mean en_GB.UTF-8?"),
    ("LOCALE", "eo_XX", "did you mean eo.UTF-8?"),
    ("LOCALE", "sr_RS@cyrillic", "write e.g. sr_RS.UTF-8"),
    ("LOCALE", "en_XX", "write e.g. en_US.UTF-8"),
    ("KEYMAP", "Deutsch (Schweiz)", "not a keyboard layout"),
    ("OPERATOR_EMAIL", "ops@localhost", "not an e-mail"),
    ("OPERATOR_PASSWORD", "x" * 129, "longer than 128"),
    ("OPERATOR_PASSWORD", "a" * 32 + ":" + "b" * 128, "looks like a password hash"),
    ("SSH_AUTHORIZED_KEY", "ssh-dss AAAAB3NzaC1kc3MAAACBAP", "not an OpenSSH public key"),
    ("SSH_AUTHORIZED_KEY", RSA_1024, "this RSA key has 1024 bits; at least 2048"),
    (
        "SSH_AUTHORIZED_KEY",
        ssh_line("ssh-rsa", RSA_E, b"\x00" + ((1 << 16400) | 1).to_bytes(2051, "big")),
        "OpenSSH refuses more than 16384",
    ),
    ("SSH_AUTHORIZED_KEY", ssh_line("ssh-rsa", b"\x02", bytes([0x80]) * 256), "damaged"),
    ("SSH_AUTHORIZED_KEY", ssh_line("ssh-rsa", RSA_E), "damaged"),
    ("SSH_AUTHORIZED_KEY", ssh_line("ssh-ed25519", bytes(32), b"extra"), "damaged"),
    ("SSH_AUTHORIZED_KEY", ssh_line("ecdsa-sha2-nistp384", b"nistp256", P256_POINT), "damaged"),
    (
        "SSH_AUTHORIZED_KEY",
        ssh_line("ecdsa-sha2-nistp256", b"nistp256", b"\x02" + bytes(32)),
        "damaged",
    ),
    ("SSH_AUTHORIZED_KEY", ssh_line("sk-ssh-ed25519@openssh.com", bytes(32)), "damaged"),
    ("SSH_AUTHORIZED_KEY", ED25519 + " evil\u202egnp.exe", "direction control (U+202E)"),
    ("ASSISTANT_NAME", "Helper\u202egnp.exe", "right-to-left override"),
    ("ASSISTANT_NAME", "\u2067Ada\u2069", "direction control (U+2067, U+2069)"),
    ("ASSISTANT_NAME", "Ada\u200f", "direction control"),
    ("ASSISTANT_NAME", "\u061cAda", "direction control"),
    ("ASSISTANT_NAME", "\u3164", "looks empty"),
    ("ASSISTANT_NAME", "\u115f\u1160", "looks empty"),
    ("ASSISTANT_NAME", "\u200b\u3164\u2060", "looks empty"),
    ("ASSISTANT_NAME", "\u3164 \u2800", "looks empty"),
    ("ASSISTANT_NAME", "\u0301\u0301", "looks empty"),
    ("ASSISTANT_NAME", "\u2003\u00ad", "looks empty"),
    ("OPERATOR_EMAIL", "ops\u202e@example.org", "direction control"),
    ("OPERATOR_EMAIL", "o\u200bps@example.org", "invisible characters (U+200B)"),
    ("AGENT_DOMAIN", "localhost", "reserved"),
    ("AGENT_DOMAIN", "box.localhost", "reserved"),
    ("AGENT_DOMAIN", "localhost.localdomain", "reserved"),
    ("AGENT_DOMAIN", "localdomain", "reserved"),
    ("AGENT_DOMAIN", "local", "reserved"),
    ("AGENT_DOMAIN", "invalid", "reserved"),
    ("AGENT_DOMAIN", "ada.invalid", "reserved"),
    ("AGENT_DOMAIN", "system", "reserved"),
    ("AGENT_DOMAIN", "ip6-allnodes", "reserved"),
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
    ("LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS", "²", "use the digits 0-9"),
    ("LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS", "١٢٣", "use the digits 0-9"),
    ("LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS", "１２３", "use the digits 0-9"),
    ("LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS", "9" * 5000, "whole number"),
    ("ANTHROPIC_API_KEY", "sk-abcdefghijklmnopqrstuvwxyz", "not a Anthropic key"),
    ("INSTALL_MODE", "upgrade", "unknown install mode"),
    ("TARGET_DISK", "/dev/../etc/passwd", "not a disk name"),
    ("TARGET_DISK", "serial:", "not a disk serial number"),
    ("TARGET_DISK", "serial:S3Z1 NB0K", "not a disk serial number"),
    ("TARGET_DISK", "serial:" + "X" * 65, "not a disk serial number"),
    ("TARGET_DISK", "/dev/disk/by-id/", "one entry of that folder"),
    ("TARGET_DISK", "/dev/disk/by-id/a/b", "one entry of that folder"),
    ("SEED_SCRUB", "true", "yes or no"),
    ("ERASE_TARGET_DISK", "true", "yes or no"),
    ("INSTALL_FINGERPRINT", "3f2a9c0", "not an installation fingerprint"),
    ("INSTALL_FINGERPRINT", "3f2a9c0g", "not an installation fingerprint"),
    ("INSTALL_FINGERPRINT", "3f2a 9c01", "not an installation fingerprint"),
    ("ADOPT_CODE", "K7QD-M4XP-R9TW", "not an adopt code"),
    ("ADOPT_CODE", "K7QD-M4XP-R9TW-3HN0", "not an adopt code"),  # 0 is not in the alphabet
    ("ALLOW_IDENTITY_CHANGE", "true", "yes or no"),
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


@pytest.mark.parametrize(
    "value",
    ["²", "١٢٣", "１２３", "9" * 5000, "1²", "½"],
)
@pytest.mark.parametrize("key", ["TELEGRAM_ADMIN_ID", "LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS"])
def test_numbers_never_reach_pythons_own_int_message(key: str, value: str) -> None:
    problem = validate_field(key, value)
    assert problem is not None
    assert "invalid literal" not in problem.message
    assert "Value error" not in problem.message
    assert "limit" not in problem.message


@pytest.mark.parametrize(
    ("text", "shows"),
    [("Ada", True), ("\u3164", False), ("\u200d", False), (" \u00a0", False), ("·", True)],
)
def test_shows_something(text: str, shows: bool) -> None:
    assert shows_something(text) is shows


@pytest.mark.parametrize(
    ("value", "stable"),
    [
        ("serial:S3Z1", True),
        ("/dev/disk/by-id/ata-X", True),
        ("/dev/sda", False),
        ("/dev/disk/by-path/pci-0000:00:1f.2-ata-1", False),
    ],
)
def test_stable_disk_names(value: str, stable: bool) -> None:
    assert is_stable_disk_name(value) is stable


def test_target_disk_forms_are_returned_as_given_or_made_a_dev_path() -> None:
    def resolved(value: str) -> str | None:
        model = SetupModel.model_validate(
            {
                "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_ADMIN_ID": ADMIN,
                "OPENROUTER_API_KEY": OPENROUTER,
                "TARGET_DISK": value,
            }
        )
        return model.target_disk

    assert resolved("serial:S3Z1nb0K-12") == "serial:S3Z1nb0K-12"
    assert resolved("SERIAL:S3Z1nb0K-12") == "serial:S3Z1nb0K-12"
    assert resolved("/dev/disk/by-id/ata-X_1") == "/dev/disk/by-id/ata-X_1"
    assert resolved("sda") == "/dev/sda"
    assert resolved("/dev/nvme0n1") == "/dev/nvme0n1"


@pytest.mark.skipif(not SUPPORTED.is_file(), reason="no /usr/share/i18n/SUPPORTED here")
def test_shipped_locales_match_this_debian() -> None:
    """Regenerate with `python -m tests.helpers.gen_locales` when this fails on the image's
    release."""
    expected = render_module(utf8_names(SUPPORTED.read_text()), debian_release())
    assert MODULE.read_text() == expected


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
        "WIFI_PASSWORD",
        "ADOPT_CODE",
        "BACKUP_IDENTITY",
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
