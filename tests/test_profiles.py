"""The shipped profile mapping and the resolution of model settings."""

from __future__ import annotations

import pytest

from installer.seed.model import KNOWN_KEYS
from installer.seed.profiles import (
    MappingError,
    ModelChoice,
    check_mapping,
    fallback_warnings,
    line_source,
    load_mapping,
    parse_mapping,
    resolve_models,
)

DESIGN_TABLE = {
    "economy": ("deepseek/deepseek-chat", "openai/gpt-4o-mini", "openai/gpt-4o-mini"),
    "balanced": ("openai/o3", "anthropic/claude-sonnet-4", "openai/gpt-4o-mini"),
    "quality": ("anthropic/claude-opus-4", "openai/o3", "anthropic/claude-sonnet-4"),
}


def test_shipped_mapping_matches_the_design() -> None:
    mapping = load_mapping()
    assert mapping.version >= 1
    assert mapping.default_profile == "balanced"
    for name, (primary, fallback, compaction) in DESIGN_TABLE.items():
        profile = mapping.profiles[name]
        assert (profile.primary.model, profile.fallback.model, profile.compaction.model) == (
            primary,
            fallback,
            compaction,
        )
        assert {profile.primary.provider, profile.fallback.provider} == {"openrouter"}


def test_shipped_mapping_follows_its_rules() -> None:
    assert check_mapping(load_mapping()) == []


def test_every_provider_key_is_a_setup_key() -> None:
    for provider in load_mapping().providers.values():
        assert provider.key in KNOWN_KEYS


@pytest.mark.parametrize(
    ("primary", "fallback", "count"),
    [
        (ModelChoice("openrouter", "a/b"), ModelChoice("openrouter", "c/d"), 0),
        (ModelChoice("openrouter", "a/b"), ModelChoice("openrouter", "c/d:free"), 1),
        (ModelChoice("openrouter", "a/b"), ModelChoice("openrouter", "a/b"), 1),
        (ModelChoice("openrouter", "a/b:free"), ModelChoice("openrouter", "a/b:free"), 2),
        (ModelChoice("zai", "a/b"), ModelChoice("openrouter", "a/b"), 0),
    ],
)
def test_fallback_warnings(primary: ModelChoice, fallback: ModelChoice, count: int) -> None:
    assert len(fallback_warnings(primary, fallback)) == count


def test_overrides_replace_one_by_one_with_their_source() -> None:
    mapping = load_mapping()
    line = line_source(9)
    chosen = resolve_models(
        mapping.profiles["quality"], {"LLM_FALLBACK_MODEL": ("x/y", line)}, mapping.version
    )
    by_key = {s.key: s for s in chosen.settings}
    assert chosen.roles["fallback"].model == "x/y"
    assert chosen.roles["primary"] == mapping.profiles["quality"].primary
    assert by_key["LLM_FALLBACK_MODEL"].value == "x/y"
    assert by_key["LLM_FALLBACK_MODEL"].source.describe() == "setup.txt line 9"
    assert by_key["PI_TUI_MODEL"].source.describe() == "profile quality (mapping v1)"


BROKEN = [
    ("not toml [", "not valid TOML"),
    ("mapping_version = 1\n", "missing"),
    (
        'mapping_version = 1\ndefault_profile = "x"\n[providers.openrouter]\nkey = "K"\n'
        '[profiles.x]\nprimary = {provider = "openrouter", model = "a"}\n'
        'fallback = {provider = "openrouter", model = "b:free"}\n'
        'compaction = {provider = "openrouter", model = "c"}\n',
        "free tier",
    ),
    (
        'mapping_version = 1\ndefault_profile = "x"\n[providers.openrouter]\nkey = "K"\n'
        '[profiles.x]\nprimary = {provider = "nobody", model = "a"}\n'
        'fallback = {provider = "openrouter", model = "b"}\n'
        'compaction = {provider = "openrouter", model = "c"}\n',
        "unknown provider",
    ),
]


@pytest.mark.parametrize(("text", "words"), BROKEN)
def test_broken_mapping_is_refused_clearly(text: str, words: str) -> None:
    with pytest.raises(MappingError, match=words):
        parse_mapping(text)
