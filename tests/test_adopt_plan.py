"""The adopt plan, pure: each kind of key against an installation, as a table."""

from __future__ import annotations

import pytest

from installer.adopt.plan import (
    Installation,
    InstalledSetting,
    plan_key,
    wifi_key_problem,
)
from installer.firstboot.steps.accounts import render_authorized_keys
from installer.seed.hashes import derive_psk
from installer.seed.profiles import line_source
from installer.seed.resolve import Given
from tests.helpers.seeds import ED25519, RSA_2048

HOME_PSK = derive_psk("home password", "Home")  # what the box keeps for its Wi-Fi

BOX = Installation(
    fingerprint="3f2a9c01",
    settings={
        "HOSTNAME": InstalledSetting("HOSTNAME", "ada", False, False),
        "PROFILE": InstalledSetting("PROFILE", "balanced", False, False),
        "TIMEZONE": InstalledSetting("TIMEZONE", "UTC", False, False),
        "TELEGRAM_BOT_TOKEN": InstalledSetting("TELEGRAM_BOT_TOKEN", "1:old", True, True),
        "TELEGRAM_ADMIN_ID": InstalledSetting("TELEGRAM_ADMIN_ID", "123", True, False),
        "SERVICE_ACCOUNT": InstalledSetting("SERVICE_ACCOUNT", "clawdie", False, False),
        "WIFI_SSID": InstalledSetting("WIFI_SSID", "Home", True, False),
        "WIFI_PASSWORD": InstalledSetting("WIFI_PASSWORD", HOME_PSK, True, True),
        "NET_ADDRESS": InstalledSetting("NET_ADDRESS", "10.0.0.5/24", True, False),
    },
    ssh_keys=(f"{ED25519}",),
    operator_email="ops@example.com",
)

CASES = [
    # (key, new value, allow identity change, outcome, words in the reason)
    ("PROFILE", "economy", False, "applied", "was balanced"),
    ("PROFILE", "balanced", False, "kept", "already balanced"),
    ("TIMEZONE", "Europe/Berlin", False, "applied", "was UTC"),
    ("PI_TUI_MODEL", "a/b", False, "applied", "filled"),
    ("HOSTNAME", "bob", False, "refused", "ALLOW_IDENTITY_CHANGE=yes"),
    ("HOSTNAME", "bob", True, "applied", "was ada; ALLOW_IDENTITY_CHANGE=yes"),
    ("TELEGRAM_BOT_TOKEN", "1:new", False, "refused", "was a secret (not shown)"),
    ("TELEGRAM_BOT_TOKEN", "1:old", False, "kept", "already a secret (not shown)"),
    ("TELEGRAM_ADMIN_ID", "456", False, "refused", "the box's Telegram admin is different"),
    ("SERVICE_ACCOUNT", "helper", True, "refused", "never renamed"),
    ("SSH_AUTHORIZED_KEY", ED25519.replace("demo@laptop", "other"), False, "kept", "already"),
    ("SSH_AUTHORIZED_KEY", RSA_2048, False, "applied", "the 1 key(s) already there stay"),
    ("OPERATOR_EMAIL", "OPS@example.com", False, "kept", "already ops@example.com"),
    ("OPERATOR_EMAIL", "new@example.com", False, "refused", "change it in the dashboard"),
    ("CLAWDIE_USER_PASSWORD", "a long password", False, "applied", "no fallback password"),
    ("SEED_SCRUB", "yes", False, "kept", "an instruction for this run"),
    ("WIFI_SSID", "Office", False, "applied", "was Home"),
    ("WIFI_PASSWORD", "home password", False, "kept", "already this password's"),
    ("WIFI_PASSWORD", HOME_PSK.upper(), False, "kept", "already this password's"),
    ("WIFI_PASSWORD", "new password", False, "applied", "was a secret (not shown)"),
    ("WIFI_COUNTRY", "DE", False, "applied", "filled"),
    ("NET_ADDRESS", "10.0.0.6/24", False, "applied", "was 10.0.0.5/24"),
    ("NET_DNS", "9.9.9.9", False, "applied", "filled"),
]


@pytest.mark.parametrize(("key", "new", "allow", "outcome", "words"), CASES)
def test_each_kind_of_key(key: str, new: str, allow: bool, outcome: str, words: str) -> None:
    result = plan_key(key, new, BOX, allow)
    assert (result.outcome, words in result.reason) == (outcome, True), result.reason
    assert "1:old" not in result.reason
    assert "1:new" not in result.reason
    assert HOME_PSK not in result.reason
    if key == "WIFI_PASSWORD":
        assert new not in result.reason


# (the seed's Wi-Fi lines, the line of the problem or None when the seed is fine)
WIFI_SEEDS: list[tuple[dict[str, str], int | None]] = [
    ({}, None),  # the Wi-Fi lines left out: the box's key fills WIFI_PASSWORD
    ({"WIFI_SSID": "Home"}, None),  # the same network
    ({"WIFI_COUNTRY": "FR"}, None),  # the key does not depend on the country
    ({"WIFI_SSID": "Office"}, 3),  # another network, no password: the key joins no other
    ({"WIFI_SSID": "home"}, 3),  # a network's name is its bytes
    ({"WIFI_SSID": "Office", "WIFI_PASSWORD": "office password"}, None),
]


@pytest.mark.parametrize(("lines", "line"), WIFI_SEEDS)
def test_the_box_wifi_key_stands_for_its_own_network_only(
    lines: dict[str, str], line: int | None
) -> None:
    given = {key: Given(value, line_source(n)) for n, (key, value) in enumerate(lines.items(), 3)}
    problem = wifi_key_problem(BOX, given)
    assert (problem.line if problem else None) == line
    if problem is not None:
        assert problem.key == "WIFI_SSID"
        assert "WIFI_PASSWORD=" in (problem.hint or "")
        assert HOME_PSK not in problem.message + (problem.hint or "")
    no_wifi = Installation("3f2a9c01", {})  # a box without Wi-Fi: the model's own rules
    assert wifi_key_problem(no_wifi, given) is None


def test_a_key_is_added_never_put_in_another_ones_place() -> None:
    assert render_authorized_keys("", ED25519) == f"{ED25519}\n"
    assert render_authorized_keys(f"{ED25519}\n", RSA_2048) == f"{ED25519}\n{RSA_2048}\n"
    again = render_authorized_keys(f"{ED25519}\n{RSA_2048}\n", ED25519.replace("demo", "x"))
    assert again == f"{ED25519}\n{RSA_2048}\n"
