"""The typed resolved seed: every setup.txt field reaches it (or is declared passed through to
the platform, or refused), its values are typed, and no part of it shows a secret."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import SecretStr

from installer.seed.model import KNOWN_KEYS
from installer.seed.profiles import ModelChoice, Source, line_source
from installer.seed.resolve import check_seed_bytes
from installer.seed.resolved import PASSED_THROUGH, REFUSED, Network, ResolvedSeed
from tests.helpers.corpus import OWNER_KEY, OWNER_KEY_2
from tests.helpers.seeds import ADMIN, ED25519, OPENROUTER, PASSWORD, TOKEN, seed
from tests.helpers.sentinels import SENTINEL

BASE = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_ADMIN_ID": ADMIN, "OPENROUTER_API_KEY": OPENROUTER}
OTHER_KEY = "sk-" + "z" * 30
WIFI_NEEDS = ("WIFI_SSID=HomeNet", "WIFI_PASSWORD=long enough", "WIFI_COUNTRY=DE")


@dataclasses.dataclass(frozen=True)
class Case:
    """Two valid values of `key` (with the lines they need): the resolution must tell them
    apart."""

    key: str
    one: str
    other: str
    needs: tuple[str, ...] = ()


CASES = [
    Case("OPENROUTER_API_KEY", OPENROUTER, "sk-or-v1-" + "9" * 40),
    Case("TELEGRAM_BOT_TOKEN", TOKEN, "42:" + "b" * 35),
    Case("TELEGRAM_ADMIN_ID", ADMIN, "42"),
    Case("ASSISTANT_NAME", "Ada", "Bob"),
    Case("PROFILE", "economy", "quality"),
    Case("TIMEZONE", "UTC", "Europe/Berlin"),
    Case("HOSTNAME", "ada", "bob"),
    Case("LOCALE", "de_DE.UTF-8", "fr_FR.UTF-8"),
    Case("KEYMAP", "de", "fr"),
    Case("OPERATOR_EMAIL", "a@example.org", "b@example.org", (f"OPERATOR_PASSWORD={PASSWORD}",)),
    Case("OPERATOR_PASSWORD", PASSWORD, f"{PASSWORD} 2", ("OPERATOR_EMAIL=a@example.org",)),
    Case("SSH_AUTHORIZED_KEY", ED25519, ED25519.replace("demo@laptop", "other@laptop")),
    Case("CLAWDIE_USER_PASSWORD", PASSWORD, f"{PASSWORD} 2"),
    Case("SERVICE_ACCOUNT", "ana", "bea"),
    Case("AGENT_DOMAIN", "a.example.org", "b.example.org"),
    Case(
        "PI_TUI_PROVIDER", "openrouter", "openai", ("PI_TUI_MODEL=m", f"OPENAI_API_KEY={OTHER_KEY}")
    ),
    Case("PI_TUI_MODEL", "a/one", "a/two"),
    Case(
        "LLM_FALLBACK_PROVIDER",
        "openrouter",
        "openai",
        ("LLM_FALLBACK_MODEL=m", f"OPENAI_API_KEY={OTHER_KEY}"),
    ),
    Case("LLM_FALLBACK_MODEL", "a/one", "a/two"),
    Case(
        "AGENT_COMPACTION_PROVIDER",
        "openrouter",
        "openai",
        ("AGENT_COMPACTION_MODEL=m", f"OPENAI_API_KEY={OTHER_KEY}"),
    ),
    Case("AGENT_COMPACTION_MODEL", "a/one", "a/two"),
    Case("LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS", "30", "90"),
    Case(
        "OPENAI_API_KEY", OTHER_KEY, "sk-" + "y" * 30, ("PI_TUI_PROVIDER=openai", "PI_TUI_MODEL=m")
    ),
    Case(
        "ANTHROPIC_API_KEY",
        "sk-ant-" + "a" * 30,
        "sk-ant-" + "b" * 30,
        ("PI_TUI_PROVIDER=anthropic", "PI_TUI_MODEL=m"),
    ),
    Case("ZAI_API_KEY", "z" * 30, "y" * 30, ("PI_TUI_PROVIDER=zai", "PI_TUI_MODEL=m")),
    Case(
        "DEEPSEEK_API_KEY",
        OTHER_KEY,
        "sk-" + "y" * 30,
        ("PI_TUI_PROVIDER=deepseek", "PI_TUI_MODEL=m"),
    ),
    Case("INSTALL_MODE", "fresh", "adopt", ("INSTALL_FINGERPRINT=3f2a9c01",)),
    Case("INSTALL_FINGERPRINT", "3f2a9c01", "0badcafe", ("INSTALL_MODE=adopt",)),
    Case(
        "ADOPT_CODE",
        "K7QD-M4XP-R9TW-3HNE",
        "A2B3-C4D5-E6F7-G8H9",
        ("INSTALL_MODE=adopt", "INSTALL_FINGERPRINT=3f2a9c01"),
    ),
    Case(
        "ALLOW_IDENTITY_CHANGE", "no", "yes", ("INSTALL_MODE=adopt", "INSTALL_FINGERPRINT=3f2a9c01")
    ),
    Case("TARGET_DISK", "serial:A1", "serial:B2"),
    Case("ERASE_TARGET_DISK", "no", "yes", ("TARGET_DISK=serial:A1",)),
    Case("SEED_SCRUB", "no", "yes"),
    Case("WIFI_SSID", "HomeNet", "Café", WIFI_NEEDS[1:]),
    Case("WIFI_PASSWORD", "long enough", "other passphrase", (WIFI_NEEDS[0], WIFI_NEEDS[2])),
    Case("WIFI_COUNTRY", "DE", "US", WIFI_NEEDS[:2]),
    Case("NET_ADDRESS", "192.168.1.50/24", "192.168.1.51/24", ("NET_GATEWAY=192.168.1.1",)),
    Case("NET_GATEWAY", "192.168.1.1", "192.168.1.254", ("NET_ADDRESS=192.168.1.50/24",)),
    Case("NET_DNS", "1.1.1.1", "9.9.9.9 1.1.1.1"),
    Case("UPDATE_WINDOW", "04:00-05:00", "23:30-00:30"),
    Case("UPDATES", "on", "off"),
    Case("UPDATE_CHANNEL", "https://updates.example.org/clawdie", "off"),
    Case("BACKUP_RECIPIENT", OWNER_KEY, OWNER_KEY_2),
    Case("BACKUP_DIR", "/srv/backup", "/mnt/disk/backup"),
]


def resolve(case: Case, value: str) -> ResolvedSeed:
    lines = {**BASE, **dict(line.split("=", 1) for line in case.needs), case.key: value}
    check = check_seed_bytes(seed(*(f"{k}={v}" for k, v in lines.items())))
    assert check.valid, check.problems
    return check.require_resolved()


def typed_part(resolved: ResolvedSeed) -> ResolvedSeed:
    """The typed attributes alone, without the settings (the text the platform receives)."""
    return dataclasses.replace(resolved, settings=())


def test_every_field_of_the_model_has_a_case_or_is_refused() -> None:
    """A new setup.txt field needs a case here: the typed attribute that holds it, or its place
    in PASSED_THROUGH."""
    assert {c.key for c in CASES} == KNOWN_KEYS - REFUSED
    assert PASSED_THROUGH <= KNOWN_KEYS


@pytest.mark.parametrize("case", CASES, ids=[c.key for c in CASES])
def test_every_field_reaches_the_typed_object_or_is_passed_through(case: Case) -> None:
    one, other = resolve(case, case.one), resolve(case, case.other)
    text_one = {s.key: s.reveal() for s in one.settings}
    text_other = {s.key: s.reveal() for s in other.settings}
    assert text_one[case.key] != text_other[case.key]  # the platform gets the value either way
    if case.key in PASSED_THROUGH:
        assert typed_part(one) == typed_part(other), f"{case.key} is typed: not passed through"
    else:
        assert typed_part(one) != typed_part(other), f"{case.key} does not reach the typed seed"


def test_values_are_typed_and_keep_their_source() -> None:
    check = check_seed_bytes(
        seed(
            *(f"{k}={v}" for k, v in BASE.items()),
            "ASSISTANT_NAME=Zoë",
            "ERASE_TARGET_DISK=yes",
            "TARGET_DISK=serial:A1",
            "PI_TUI_PROVIDER=openai",
            "PI_TUI_MODEL=gpt-x",
            f"OPENAI_API_KEY={OTHER_KEY}",
        )
    )
    resolved = check.require_resolved()
    assert resolved.telegram.admin_id == int(ADMIN)
    assert resolved.install.erase_target_disk is True
    assert resolved.install.seed_scrub is False
    assert resolved.host.hostname == "zoe"
    assert resolved.models.primary == ModelChoice("openai", "gpt-x")
    assert resolved.models.providers == ("openai", "openrouter")
    assert isinstance(resolved.telegram.bot_token, SecretStr)
    assert all(isinstance(k.value, SecretStr) for k in resolved.models.keys)
    assert resolved.source("ASSISTANT_NAME") == line_source(4)
    assert resolved.source("HOSTNAME") == Source("derived", "ASSISTANT_NAME")
    assert resolved.source("TIMEZONE") == Source("default")
    assert resolved.source("TELEGRAM_ADMIN_ID") == Source("line", line=2)
    assert resolved.source("OPERATOR_EMAIL") is None


def test_no_part_of_the_resolved_seed_shows_a_secret() -> None:
    secret = f"{PASSWORD} {SENTINEL}"
    check = check_seed_bytes(
        seed(
            f"TELEGRAM_BOT_TOKEN={TOKEN}",
            f"TELEGRAM_ADMIN_ID={ADMIN}",
            f"OPENROUTER_API_KEY=sk-or-v1-{SENTINEL}",
            f"OPERATOR_PASSWORD={secret}",
            "OPERATOR_EMAIL=a@example.org",
            f"CLAWDIE_USER_PASSWORD={secret}",
            "WIFI_SSID=HomeNet",
            f"WIFI_PASSWORD=wifi {SENTINEL}",
            "WIFI_COUNTRY=DE",
        )
    )
    parts: list[object] = [check.require_resolved()]
    shown = []
    while parts:
        part = parts.pop()
        shown += [repr(part), str(part)]
        if dataclasses.is_dataclass(part) and not isinstance(part, type):
            parts += [getattr(part, f.name) for f in dataclasses.fields(part)]
        elif isinstance(part, tuple):
            parts += list(part)
    assert len(shown) > 40
    assert not [text for text in shown if SENTINEL in text]


def test_the_network_part_is_typed() -> None:
    check = check_seed_bytes(
        seed(
            *(f"{k}={v}" for k, v in BASE.items()),
            "WIFI_SSID=Café",
            "WIFI_PASSWORD=long enough",
            "WIFI_COUNTRY=fr",
            "NET_ADDRESS=10.1.2.3/255.255.0.0",
            "NET_GATEWAY=10.1.0.1",
            "NET_DNS=9.9.9.9,1.1.1.1",
        )
    )
    network = check.require_resolved().network
    assert network.wifi is not None
    assert (network.wifi.ssid, network.wifi.country) == ("Café", "FR")
    assert isinstance(network.wifi.password, SecretStr)
    assert network.static is not None
    assert (network.static.address, network.static.gateway) == ("10.1.2.3/16", "10.1.0.1")
    assert network.dns == ("9.9.9.9", "1.1.1.1")


def test_without_network_lines_every_link_uses_dhcp() -> None:
    network = check_seed_bytes(seed(*(f"{k}={v}" for k, v in BASE.items()))).require_resolved()
    assert network.network == Network(wifi=None, static=None, dns=())
