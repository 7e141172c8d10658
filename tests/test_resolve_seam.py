"""The seam between a seed with problems and the operator's answers (used by the wizard)."""

from __future__ import annotations

from installer.seed.profiles import Source, line_source
from installer.seed.resolve import apply_answers, check_seed_bytes, keys_to_ask
from tests.helpers.seeds import OPENROUTER, TOKEN, seed


def test_keys_to_ask_are_the_problem_keys_and_typo_targets_in_model_order() -> None:
    check = check_seed_bytes(
        seed("TELEGRAM_BOT_TOKN=x", "TELEGRAM_ADMIN_ID=@bob", "junk line", "HOSTNAME=my_box")
    )
    assert keys_to_ask(check) == [
        "OPENROUTER_API_KEY",
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_ADMIN_ID",
        "HOSTNAME",
    ]


def test_answers_complete_the_seed_with_wizard_provenance() -> None:
    check = check_seed_bytes(seed("TELEGRAM_ADMIN_ID=42", "ASSISTANT_NAME=Ada", "junk line"))
    done = apply_answers(check, {"TELEGRAM_BOT_TOKEN": TOKEN, "OPENROUTER_API_KEY": OPENROUTER})
    assert done.valid
    resolved = done.require_resolved()
    assert resolved.source("TELEGRAM_BOT_TOKEN") == Source("wizard")
    assert resolved.source("TELEGRAM_ADMIN_ID") == line_source(1)
    assert resolved.telegram.bot_token.get_secret_value() == TOKEN
    assert any(w.line == 3 and w.message.startswith("ignored:") for w in done.warnings)


def test_a_wrong_answer_is_a_problem_again() -> None:
    check = check_seed_bytes(seed("TELEGRAM_ADMIN_ID=42"))
    again = apply_answers(check, {"TELEGRAM_BOT_TOKEN": "nope", "OPENROUTER_API_KEY": OPENROUTER})
    assert [(p.key, p.line) for p in again.problems] == [("TELEGRAM_BOT_TOKEN", None)]
