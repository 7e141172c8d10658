"""The seed copy the installer leaves on the target holds no password in clear (issue 27): each
password is in the form first boot needs, on its own line, in the seed's own encoding; the copy
reads as the operator's seed does (same settings' sources, warnings and notes), and an
operator's seed still refuses those forms where a password belongs."""

from __future__ import annotations

import codecs

import pytest

from installer.commands.check import render_text
from installer.seed.hashes import derive_psk, verify_better_auth_password
from installer.seed.resolve import apply_answers, check_seed_bytes
from installer.seed.sealed import seal
from tests.helpers.firstboot import libcrypt
from tests.helpers.seeds import valid
from tests.helpers.sentinels import OPERATOR_PASSWORD, USER_PASSWORD, WIFI_PASSWORD

SSID = "Zoë's Wi-Fi"
LINES = (
    "# my box",
    "OPERATOR_EMAIL=ops@example.com",
    f'OPERATOR_PASSWORD="{OPERATOR_PASSWORD}"',
    f"CLAWDIE_USER_PASSWORD={USER_PASSWORD}",
    f"WIFI_SSID={SSID}",
    f"export WIFI_PASSWORD={WIFI_PASSWORD}",
    "WIFI_COUNTRY=DE",
)


@pytest.mark.parametrize(
    ("eol", "encoding", "bom"),
    [
        ("\n", "utf-8", b""),
        ("\r\n", "utf-16-le", codecs.BOM_UTF16_LE),
        ("\r", "cp1252", b""),
    ],
    ids=["utf-8", "utf-16-crlf", "cp1252-cr"],
)
def test_the_copy_holds_the_derived_forms_and_reads_as_the_seed_does(
    eol: str, encoding: str, bom: bytes
) -> None:
    data = valid(*LINES, eol=eol, encoding=encoding, bom=bom)
    original = check_seed_bytes(data)
    assert original.valid, original.problems
    sealed, answers = seal(data, {}, original)
    assert answers == {}
    assert sealed.startswith(bom)
    text = sealed[len(bom) :].decode(encoding)
    for secret in (OPERATOR_PASSWORD, USER_PASSWORD, WIFI_PASSWORD):
        assert secret not in text
    lines = text.split(eol)
    assert len(lines) == len(data[len(bom) :].decode(encoding).split(eol))
    assert lines[:5] == valid(*LINES[:2]).decode().split("\n")[:5]  # the other lines as they were
    operator, fallback, wifi = lines[5].split("=", 1), lines[6].split("=", 1), lines[8]
    assert operator[0] == "OPERATOR_PASSWORD"
    assert operator[1].startswith('"')  # the quotes stay: the reader's note on them too
    operator_hash = operator[1].strip('"')
    assert verify_better_auth_password(OPERATOR_PASSWORD, operator_hash)
    assert fallback[0] == "CLAWDIE_USER_PASSWORD"
    assert libcrypt(USER_PASSWORD, fallback[1]) == fallback[1]
    assert wifi == f"export WIFI_PASSWORD={derive_psk(WIFI_PASSWORD, SSID)}"

    copy = check_seed_bytes(sealed, sealed=True)
    assert copy.valid, copy.problems
    # what the summary and the receipt say is the operator's seed's: sources, warnings (the
    # plaintext password one included, by its line), notes on the file
    assert [(s.key, s.source) for s in copy.settings] == [
        (s.key, s.source) for s in original.settings
    ]
    assert copy.warnings == original.warnings
    assert copy.repairs == original.repairs
    assert any("a plaintext password is on the stick" in w.message for w in copy.warnings)
    resolved = copy.require_resolved()
    assert resolved.accounts.operator is not None
    assert resolved.accounts.operator.password.get_secret_value() == operator_hash
    assert seal(sealed, {}, copy)[0] == sealed  # sealing the copy again changes nothing


def test_an_operator_seed_refuses_the_derived_forms_the_copy_takes() -> None:
    data = valid(*LINES)
    sealed, _ = seal(data, {}, check_seed_bytes(data))
    pasted = check_seed_bytes(sealed)  # the same bytes, as an operator's setup.txt
    refused = {p.key: p.message for p in pasted.problems}
    assert refused == {
        "OPERATOR_PASSWORD": "this looks like a password hash, not a password",
        "CLAWDIE_USER_PASSWORD": "this looks like a password hash, not a password",
    }
    # the explanation of an operator's plaintext seed is what it always was
    explained = render_text(check_seed_bytes(data), [], explain=True)
    assert "OPERATOR_PASSWORD" in explained
    assert OPERATOR_PASSWORD not in explained


def test_the_console_answers_are_stored_as_derived_forms_too() -> None:
    data = valid("OPERATOR_EMAIL=ops@example.com", "OPERATOR_PASSWORD=short")
    check = check_seed_bytes(data)
    assert [p.key for p in check.problems] == ["OPERATOR_PASSWORD"]
    answered = apply_answers(check, {"OPERATOR_PASSWORD": OPERATOR_PASSWORD})
    sealed, answers = seal(data, {"OPERATOR_PASSWORD": OPERATOR_PASSWORD}, answered)
    assert b"short" not in sealed
    assert verify_better_auth_password(OPERATOR_PASSWORD, answers["OPERATOR_PASSWORD"])
    stored = apply_answers(check_seed_bytes(sealed, sealed=True), answers, sealed=True)
    assert stored.valid, stored.problems
    assert [s.source for s in stored.settings] == [s.source for s in answered.settings]
