"""The network fields of setup.txt (DESIGN §3, §7): each value rule, the rules between them, the
shipped country list, the secrecy of the Wi-Fi password, and when the wizard asks for Wi-Fi."""

from __future__ import annotations

import pytest

from installer.seed.countries import CODES
from installer.seed.model import validate_field
from installer.seed.net_rules import is_raw_psk
from installer.seed.resolve import check_seed_bytes, keys_to_ask, mask
from installer.seed.scrub import render_scrubbed_seed
from tests.helpers.gen_countries import (
    ISO_3166,
    MODULE,
    alpha_2_codes,
    iso_codes_version,
    render_module,
)
from tests.helpers.network_cases import BAD, GOOD, NOT_AN_ADDRESS_HERE
from tests.helpers.seeds import valid
from tests.helpers.sentinels import SENTINEL, WIFI_PASSWORD


@pytest.mark.parametrize(("key", "value", "words", "fix"), NOT_AN_ADDRESS_HERE)
def test_addresses_that_cannot_work_there_are_refused_with_their_class(
    key: str, value: str, words: str, fix: str
) -> None:
    problem = validate_field(key, value)
    assert problem is not None
    assert words in problem.message
    assert problem.hint is not None
    assert fix in problem.hint


def test_a_refused_address_names_its_line() -> None:
    """Through the whole seed check: the line and key of the bad value, and nothing written."""
    result = check_seed_bytes(
        valid("NET_ADDRESS=2001:db8::5%evil/64", "NET_GATEWAY=2001:db8::1", "NET_DNS=::1")
    )
    assert [(p.line, p.key) for p in result.problems] == [(4, "NET_ADDRESS"), (6, "NET_DNS")]


@pytest.mark.parametrize(("key", "value"), GOOD)
def test_good_values_pass_their_rule(key: str, value: str) -> None:
    assert validate_field(key, value) is None


@pytest.mark.parametrize(("key", "value", "words"), BAD)
def test_bad_values_get_the_rule_message(key: str, value: str, words: str) -> None:
    problem = validate_field(key, value)
    assert problem is not None
    assert words in problem.message
    assert problem.hint  # every network problem says how to fix it


@pytest.mark.parametrize(
    ("address", "gateway", "words"),
    [
        ("192.168.1.50/24", "192.168.2.1", "is not inside the network 192.168.1.0/24"),
        ("192.168.1.50/32", "192.168.1.1", "is not inside the network 192.168.1.50/32"),
        ("192.168.1.50/24", "192.168.1.50", "the box's own address"),
        ("192.168.1.50/24", "192.168.1.255", "network's own or broadcast address"),
        ("192.168.1.50/24", "fe80::1", "IPv6 address but NET_ADDRESS is IPv4"),
        ("2001:db8::50/64", "2001:db9::1", "is not inside the network 2001:db8::/64"),
        ("192.168.1.50/24", "::ffff:192.168.1.1", "IPv4 address written in IPv6 form"),
    ],
)
def test_the_gateway_must_fit_the_address(address: str, gateway: str, words: str) -> None:
    result = check_seed_bytes(valid(f"NET_ADDRESS={address}", f"NET_GATEWAY={gateway}"))
    (problem,) = result.problems
    assert (problem.line, problem.key) == (5, "NET_GATEWAY")
    assert words in problem.message


def test_a_gateway_problem_waits_for_a_valid_address() -> None:
    """A broken NET_ADDRESS is reported once, on its own line, not again on the gateway's."""
    result = check_seed_bytes(valid("NET_ADDRESS=192.168.1.50", "NET_GATEWAY=192.168.2.1"))
    assert [(p.line, p.key) for p in result.problems] == [(4, "NET_ADDRESS")]


@pytest.mark.parametrize(
    ("lines", "missing"),
    [
        (("WIFI_SSID=HomeNet",), {"WIFI_PASSWORD", "WIFI_COUNTRY"}),
        (("WIFI_COUNTRY=DE",), {"WIFI_SSID", "WIFI_PASSWORD"}),
        (("WIFI_SSID=HomeNet", f"WIFI_PASSWORD={WIFI_PASSWORD}"), {"WIFI_COUNTRY"}),
        (("NET_GATEWAY=192.168.1.1",), {"NET_ADDRESS"}),
        (("NET_ADDRESS=192.168.1.50/24",), {"NET_GATEWAY"}),
    ],
)
def test_keys_that_come_together(lines: tuple[str, ...], missing: set[str]) -> None:
    result = check_seed_bytes(valid(*lines))
    assert {p.key for p in result.problems} == missing
    assert all("required because" in p.message and p.hint for p in result.problems)


def test_the_wizard_asks_for_wifi_only_when_a_wifi_line_is_there() -> None:
    """The wizard asks what the seed lacks or got wrong: no Wi-Fi line, no Wi-Fi question; one
    Wi-Fi line, the other two (and a wrong one again)."""
    assert not [k for k in keys_to_ask(check_seed_bytes(valid("TIMEZONE=Nowhere"))) if "WIFI" in k]
    asked = keys_to_ask(check_seed_bytes(valid("WIFI_SSID=HomeNet", "WIFI_COUNTRY=UK")))
    assert asked == ["WIFI_PASSWORD", "WIFI_COUNTRY"]


def test_the_wifi_password_is_shown_nowhere() -> None:
    result = check_seed_bytes(
        valid("WIFI_SSID=HomeNet", f"WIFI_PASSWORD={WIFI_PASSWORD}", "WIFI_COUNTRY=DE")
    )
    (setting,) = [s for s in result.settings if s.key == "WIFI_PASSWORD"]
    assert setting.secret
    assert mask(setting) == "(set, hidden)"  # a password shows not even its first characters
    assert SENTINEL not in repr(result)
    wrong = check_seed_bytes(valid("WIFI_SSID=HomeNet", f"WIFI_PASSWORD={WIFI_PASSWORD}é"))
    assert SENTINEL not in repr((wrong.problems, wrong.warnings, wrong.repairs))


def test_seed_scrub_removes_the_wifi_password() -> None:
    data = valid("WIFI_SSID=HomeNet", f"WIFI_PASSWORD={WIFI_PASSWORD}", "WIFI_COUNTRY=DE")
    scrubbed = render_scrubbed_seed(data, host="ada", when="2026-12-01 10:00 UTC")
    assert SENTINEL not in scrubbed.text
    assert "WIFI_PASSWORD" in scrubbed.removed
    assert "WIFI_SSID=HomeNet" in scrubbed.text.splitlines()


def test_raw_psk_is_told_apart_from_a_passphrase() -> None:
    assert is_raw_psk("ab" * 32)
    assert not is_raw_psk("ab" * 31)
    assert not is_raw_psk("xy" * 32)


def test_the_country_list_holds_what_people_use_and_nothing_else() -> None:
    assert {"DE", "US", "GB", "FR", "JP", "CN", "IN", "BR", "GR"} <= CODES
    assert not {"UK", "EL", "EU", "00", "XX"} & CODES
    assert len(CODES) == 249


@pytest.mark.skipif(not ISO_3166.is_file(), reason="no iso-codes package here")
def test_shipped_countries_match_this_debian() -> None:
    """Regenerate with `python -m tests.helpers.gen_countries` when this fails on the image's
    release."""
    expected = render_module(alpha_2_codes(ISO_3166.read_text()), iso_codes_version())
    assert MODULE.read_text() == expected
