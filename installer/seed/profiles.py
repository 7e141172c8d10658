"""The profile mapping (seed/profiles.toml) and resolution of model settings with provenance.

Pure: parsing takes text, resolution takes values; only `load_mapping` reads a file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from pydantic import SecretStr

from installer.errors import InstallerError

ROLES = ("primary", "fallback", "compaction")
ROLE_KEYS: dict[str, tuple[str, str]] = {
    "primary": ("PI_TUI_PROVIDER", "PI_TUI_MODEL"),
    "fallback": ("LLM_FALLBACK_PROVIDER", "LLM_FALLBACK_MODEL"),
    "compaction": ("AGENT_COMPACTION_PROVIDER", "AGENT_COMPACTION_MODEL"),
}
COOLDOWN_KEY = "LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS"
MODEL_KEYS = (*(k for pair in ROLE_KEYS.values() for k in pair), COOLDOWN_KEY)

SourceKind = Literal["line", "profile", "default", "derived", "wizard", "installed"]
SOURCE_KINDS: tuple[SourceKind, ...] = get_args(SourceKind)
# The kinds of source that mean the operator gave the value (rather than a default, a profile
# or a derivation): a setup.txt line, the console, or the installation that kept it.
GIVEN_KINDS: frozenset[SourceKind] = frozenset({"line", "wizard", "installed"})


@dataclass(frozen=True)
class Source:
    """Where a resolved value came from: a setup.txt line (`line`), a profile (its name and
    mapping version) or what it was derived from (`detail`), a default or the wizard.

    `describe` gives the words people read; `to_record`/`from_record` the data programs read
    (setup.resolved.json keeps both)."""

    kind: SourceKind
    detail: str = ""
    line: int | None = None
    profile: str | None = None
    mapping_version: int | None = None

    @property
    def given(self) -> bool:
        """The operator gave the value (not a default, a profile or a derivation)."""
        return self.kind in GIVEN_KINDS

    def to_record(self) -> dict[str, str | int]:
        """The source as data: its kind and, when it has them, its line, detail, profile and
        mapping version."""
        record: dict[str, str | int] = {"kind": self.kind}
        if self.line is not None:
            record["line"] = self.line
        if self.detail:
            record["detail"] = self.detail
        if self.profile is not None:
            record["profile"] = self.profile
        if self.mapping_version is not None:
            record["mapping_version"] = self.mapping_version
        return record

    @classmethod
    def from_record(cls, record: object) -> Source:
        """The source `to_record` wrote; ValueError for anything else."""
        if not isinstance(record, Mapping):
            raise ValueError("a source record is an object")
        kind, line, detail = record.get("kind"), record.get("line"), record.get("detail", "")
        profile, version = record.get("profile"), record.get("mapping_version")
        if kind not in SOURCE_KINDS:
            raise ValueError(f"unknown source kind {kind!r}")
        if line is not None and (not isinstance(line, int) or isinstance(line, bool)):
            raise ValueError("a source's line is a number")
        if not isinstance(detail, str) or not isinstance(profile, str | None):
            raise ValueError("a source's detail and profile are text")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise ValueError("a source's mapping version is a number")
        return cls(kind, detail, line, profile, version)

    def describe(self) -> str:
        """Human words: 'setup.txt line 7', 'profile balanced (mapping v1)', 'default', ..."""
        if self.kind == "line":
            return f"setup.txt line {self.line}"
        if self.kind == "profile":
            return f"profile {self.detail}"
        if self.kind == "derived":
            return f"derived from {self.detail}"
        if self.kind == "installed":
            return "kept from the installation"
        return self.kind


def _from_words(text: str) -> Source:
    """The source `Source.describe` worded as `text`; ValueError for other words. Only for the
    records first boot wrote before they kept their sources as data (0.1.0)."""
    if text.startswith("setup.txt line ") and text[15:].isdigit():
        return line_source(int(text[15:]))
    if text.startswith("profile "):
        detail = text[8:]
        name, _, rest = detail.partition(" (mapping v")
        version = rest[:-1] if rest.endswith(")") else ""
        if version.isdigit():
            return Source("profile", detail, profile=name, mapping_version=int(version))
        return Source("profile", detail)
    if text.startswith("derived from "):
        return Source("derived", text[13:])
    if text == "kept from the installation":
        return Source("installed")
    if text in ("default", "wizard"):
        return Source("default" if text == "default" else "wizard")
    raise ValueError(f"not the words of a source: {text!r}")


def recorded_source(entry: Mapping[str, object]) -> Source:
    """The source of one settings entry of setup.resolved.json: its record (`origin`), or, in a
    record written before sources were kept as data, its words. ValueError when it has
    neither."""
    if "origin" in entry:
        return Source.from_record(entry["origin"])
    return _from_words(str(entry.get("source", "")))


def line_source(line: int) -> Source:
    """The source of a value written on `line` of setup.txt."""
    return Source("line", line=line)


@dataclass(frozen=True)
class Setting:
    """One resolved setting as text, the form the platform receives. A secret's value is a
    `SecretStr`, so neither `repr` nor `str` (logs, tracebacks) ever shows it."""

    key: str
    value: str | SecretStr
    source: Source

    @property
    def secret(self) -> bool:
        return isinstance(self.value, SecretStr)

    def reveal(self) -> str:
        """The plain value, for where it is used (system.env), never for people or logs."""
        value = self.value
        return value.get_secret_value() if isinstance(value, SecretStr) else value


@dataclass(frozen=True)
class Provider:
    name: str
    key: str
    label: str


@dataclass(frozen=True)
class ModelChoice:
    provider: str
    model: str


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    primary: ModelChoice
    fallback: ModelChoice
    compaction: ModelChoice
    fallback_cooldown_seconds: int

    def choice(self, role: str) -> ModelChoice:
        choice: ModelChoice = getattr(self, role)
        return choice


@dataclass(frozen=True)
class ProfileMapping:
    version: int
    default_profile: str
    providers: Mapping[str, Provider]
    profiles: Mapping[str, Profile]


class MappingError(InstallerError):
    """seed/profiles.toml is broken: a packaging fault, not an operator mistake."""


def _choice(data: object, where: str) -> ModelChoice:
    if not isinstance(data, dict) or not {"provider", "model"} <= data.keys():
        raise MappingError(f"profiles.toml: {where} needs provider and model")
    return ModelChoice(str(data["provider"]), str(data["model"]))


def parse_mapping(text: str) -> ProfileMapping:
    """Parse and check profiles.toml text; raise MappingError naming what is wrong."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise MappingError(f"profiles.toml is not valid TOML: {err}") from None
    try:
        providers = {
            name: Provider(name, str(p["key"]), str(p.get("label", name)))
            for name, p in raw["providers"].items()
        }
        profiles = {
            name: Profile(
                name=name,
                summary=str(p.get("summary", "")),
                primary=_choice(p.get("primary"), f"profile {name} primary"),
                fallback=_choice(p.get("fallback"), f"profile {name} fallback"),
                compaction=_choice(p.get("compaction"), f"profile {name} compaction"),
                fallback_cooldown_seconds=int(p.get("fallback_cooldown_seconds", 60)),
            )
            for name, p in raw["profiles"].items()
        }
        mapping = ProfileMapping(
            int(raw["mapping_version"]), str(raw["default_profile"]), providers, profiles
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise MappingError(f"profiles.toml is missing or has a wrong entry: {err}") from None
    for problem in check_mapping(mapping):
        raise MappingError(f"profiles.toml: {problem}")
    return mapping


def check_mapping(mapping: ProfileMapping) -> list[str]:
    """The rules a shipped mapping must follow (the profile warnings must never fire on it)."""
    problems = []
    if mapping.default_profile not in mapping.profiles:
        problems.append(f"default_profile {mapping.default_profile!r} is not a profile")
    for profile in mapping.profiles.values():
        for role in ROLES:
            if profile.choice(role).provider not in mapping.providers:
                problems.append(f"profile {profile.name} {role}: unknown provider")
        problems.extend(
            f"profile {profile.name}: {w}"
            for w in fallback_warnings(profile.primary, profile.fallback)
        )
    return problems


def _mapping_path() -> Path:
    package = Path(__file__).resolve().parents[1]  # installer/
    packaged = package / "data" / "profiles.toml"
    return packaged if packaged.is_file() else package.parent / "seed" / "profiles.toml"


def load_mapping(path: Path | None = None) -> ProfileMapping:
    """Read the shipped mapping (inside the package when installed, seed/ in a checkout)."""
    target = path or _mapping_path()
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as err:
        raise MappingError(f"cannot read the profile mapping {target}: {err.strerror}") from None
    return parse_mapping(text)


def fallback_warnings(primary: ModelChoice, fallback: ModelChoice) -> list[str]:
    """Warnings for a fallback choice: a free tier, or the same model as the primary."""
    warnings = []
    if fallback.model.endswith(":free"):
        warnings.append(
            f"the fallback model {fallback.model} is a free tier: free models rate-limit "
            "silently and the assistant looks dead when it is used"
        )
    if fallback == primary:
        warnings.append(
            f"the fallback is the same as the primary ({primary.provider} {primary.model}); "
            "when the primary fails, the fallback fails too"
        )
    return warnings


@dataclass(frozen=True)
class ChosenModels:
    """The models of a profile after the explicit overrides: each role's choice, typed, and the
    same as settings, each with its source (a setup.txt line or the profile)."""

    roles: Mapping[str, ModelChoice]
    settings: tuple[Setting, ...]


def resolve_models(
    profile: Profile,
    overrides: Mapping[str, tuple[str, Source]],
    version: int,
) -> ChosenModels:
    """The model settings of `profile`, each replaced by an explicit line when given."""
    words = f"{profile.name} (mapping v{version})"
    from_profile = Source("profile", words, profile=profile.name, mapping_version=version)
    settings = []
    roles = {}
    for role in ROLES:
        provider_key, model_key = ROLE_KEYS[role]
        choice = profile.choice(role)
        provider, provider_source = overrides.get(provider_key, (choice.provider, from_profile))
        model, model_source = overrides.get(model_key, (choice.model, from_profile))
        settings += [Setting(provider_key, provider, provider_source)]
        settings += [Setting(model_key, model, model_source)]
        roles[role] = ModelChoice(provider, model)
    cooldown, source = overrides.get(
        COOLDOWN_KEY, (str(profile.fallback_cooldown_seconds), from_profile)
    )
    settings.append(Setting(COOLDOWN_KEY, cooldown, source))
    return ChosenModels(roles, tuple(settings))
