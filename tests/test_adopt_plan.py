"""The adopt plan, pure: each kind of key against an installation, as a table."""

from __future__ import annotations

import pytest

from installer.firstboot.adopt_plan import Installation, InstalledSetting, plan_key
from installer.firstboot.steps.accounts import render_authorized_keys
from tests.seeds import ED25519, RSA_2048

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


def test_a_key_is_added_never_put_in_another_ones_place() -> None:
    assert render_authorized_keys("", ED25519) == f"{ED25519}\n"
    assert render_authorized_keys(f"{ED25519}\n", RSA_2048) == f"{ED25519}\n{RSA_2048}\n"
    again = render_authorized_keys(f"{ED25519}\n{RSA_2048}\n", ED25519.replace("demo", "x"))
    assert again == f"{ED25519}\n{RSA_2048}\n"
