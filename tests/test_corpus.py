"""The corpus: setup.txt inputs real operators produce, each with its exact expected outcome.

A case lists the exact problems as (line, key); the values the reader and resolver must produce;
and the repair notes / warnings (line, words) that must be reported.
"""

from __future__ import annotations

import pytest

from installer.errors import SeedUnreadableError
from installer.seed.resolve import apply_answers, check_seed_bytes, keys_to_ask
from tests.helpers.corpus import CASES, Case
from tests.helpers.seeds import (
    PASSWORD,
    REQUIRED,
    RSA_1024,
    TOKEN,
    seed,
    valid,
)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_case(case: Case) -> None:
    result = check_seed_bytes(case.data)
    assert {(p.line, p.key) for p in result.problems} == case.problems
    assert result.valid == (not case.problems)
    resolved = {s.key: s.reveal() for s in result.settings}  # as the platform receives them
    for key, value in case.values.items():
        assert resolved.get(key) == value, key
    for key, value in case.given.items():
        assert result.given[key].value == value, key
    for key in case.absent:
        assert key not in result.given
    for line, words in case.repairs:
        assert any(n.line == line and words in n.message for n in result.repairs), (
            line,
            words,
            result.repairs,
        )
    for line, words in case.warnings:
        assert any(n.line == line and words in n.message for n in result.warnings), (
            line,
            words,
            result.warnings,
        )
    for line, words in case.hints:
        assert any(p.line == line and words in (p.hint or "") for p in result.problems), (
            line,
            words,
            result.problems,
        )
    reported = repr((result.problems, result.warnings, result.repairs)).lower()
    for text in case.hidden:
        assert text.lower() not in reported


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"A" * (64 * 1024 + 1), "at most 64 KiB"),
        (bytes(range(256)) * 8, "not a text file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64, "NUL bytes"),
        ("TELEGRAM_BOT_TOKEN=x\n".encode("utf-16-le"), "NUL bytes"),
        (b"\x7fELF\x02\x01\x01" + bytes(range(1, 32)) * 20, "control characters"),
    ],
    ids=["huge", "binary", "png", "utf16-without-bom", "elf"],
)
def test_unreadable_inputs(data: bytes, words: str) -> None:
    with pytest.raises(SeedUnreadableError, match=words):
        check_seed_bytes(data)


def test_duplicate_message_names_both_lines() -> None:
    result = check_seed_bytes(valid("ASSISTANT_NAME=Ada", "ASSISTANT_NAME=Bob"))
    (problem,) = result.problems
    assert problem.line == 5
    assert "first on line 4" in problem.message


def test_unknown_key_says_did_you_mean() -> None:
    result = check_seed_bytes(seed(f"TELEGRAM_BOT_TOKN={TOKEN}", *REQUIRED[1:]))
    (problem,) = result.problems
    assert problem.hint == "did you mean TELEGRAM_BOT_TOKEN?"


def test_a_line_missing_its_equals_asks_the_key_it_meant() -> None:
    """The wizard asks the key a mistyped line meant, and its answer replaces that line."""
    result = check_seed_bytes(
        valid("OPERATOR_EMAIL=me@example.com", "OPERATOR_PASSWORD Zq9frag=rest")
    )
    (problem,) = result.problems
    assert (problem.key, problem.suggests) == (None, "OPERATOR_PASSWORD")
    assert keys_to_ask(result) == ["OPERATOR_PASSWORD"]
    answered = apply_answers(result, {"OPERATOR_PASSWORD": PASSWORD})
    assert answered.valid, answered.problems


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("ASSISTANT_NAME=Helper\u202egnp.exe", "right-to-left override or other direction"),
        ("ASSISTANT_NAME=\u3164", "the name looks empty"),
        (f"SSH_AUTHORIZED_KEY={RSA_1024}", "this RSA key has 1024 bits; at least 2048"),
        ("AGENT_DOMAIN=localhost", "'localhost' is a reserved name"),
        ("LOCALE=en_XX.UTF-8", "en_XX.UTF-8 is not a locale Debian can generate"),
        ("LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS=\u00b2", "digits other than 0-9"),
    ],
)
def test_validator_gap_messages(line: str, words: str) -> None:
    (problem,) = check_seed_bytes(valid(line)).problems
    assert words in problem.message


def test_stable_disk_names_get_no_erase_warning() -> None:
    for disk in ("serial:S3Z1NB0K123456X", "/dev/disk/by-id/nvme-eui.0025385b71b0"):
        result = check_seed_bytes(valid(f"TARGET_DISK={disk}", "ERASE_TARGET_DISK=yes"))
        assert result.valid
        assert not [n for n in result.warnings if "TARGET_DISK" in n.message]


def test_erase_without_a_disk_hints_at_a_serial() -> None:
    (problem,) = check_seed_bytes(valid("ERASE_TARGET_DISK=yes")).problems
    assert problem.hint == "name the disk to erase, e.g. TARGET_DISK=serial:…"


def test_private_key_problem_is_loud_and_hides_the_key() -> None:
    body = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"
    result = check_seed_bytes(
        valid(
            "SSH_AUTHORIZED_KEY=-----BEGIN OPENSSH PRIVATE KEY-----",
            body,
            "-----END OPENSSH PRIVATE KEY-----",
        )
    )
    (problem,) = result.problems
    assert "PRIVATE key" in problem.message
    assert body not in repr(result.problems)


@pytest.mark.parametrize(
    "data",
    [
        valid("#TIMEZONE=Europe/Paris", "TIMEZONE=Europe/Berlin"),
        valid("TIMEZONE=Europe/Berlin", "#TIMEZONE=Europe/Paris"),
        valid("#TIMEZONE=", "#  HOSTNAME =", "# With ERASE_TARGET_DISK=yes it is erased"),
        valid("#NOT_A_KEY=value", "# Time zone, e.g. Europe/Berlin"),
    ],
)
def test_a_filled_comment_line_warns_only_when_its_key_is_unset(data: bytes) -> None:
    result = check_seed_bytes(data)
    assert result.valid
    assert not [w for w in result.warnings if "is a comment" in w.message], result.warnings


def test_a_key_needed_by_another_names_that_keys_line() -> None:
    result = check_seed_bytes(valid("ASSISTANT_NAME=Ada", "WIFI_PASSWORD=correct horse"))
    messages = {p.key: p.message for p in result.problems}
    assert messages["WIFI_SSID"] == "required because WIFI_PASSWORD is set (line 5)"
    assert messages["WIFI_COUNTRY"] == "required because WIFI_PASSWORD is set (line 5)"
    operator = check_seed_bytes(valid("OPERATOR_EMAIL=ada@example.org"))
    assert [p.message for p in operator.problems] == [
        "required because OPERATOR_EMAIL is set (line 4)"
    ]
