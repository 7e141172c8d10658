"""Seed -> checked, resolved settings with provenance. The one path `check`, first boot and the
wizard share: read the bytes, validate with the model, resolve defaults, derivations and the
profile, and collect every problem, warning and repair. Pure: `installer.seed.io` reads files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import SecretStr, ValidationError

from installer.errors import InstallerError
from installer.seed import profiles
from installer.seed.model import (
    DECLARATIONS,
    DERIVED_KEYS_CONTEXT,
    FIELD_NAMES,
    KNOWN_KEYS,
    FieldProblem,
    SetupModel,
    keys_where,
    ordered_keys_where,
    problems_of,
)
from installer.seed.profiles import Setting, Source, line_source
from installer.seed.reader import (
    SEED_NAME,
    Note,
    Problem,
    SeedText,
    parse_seed,
)
from installer.seed.resolved import ResolvedSeed, as_setting_text, resolve_seed
from installer.seed.rules import (
    DEFAULT_ASSISTANT_NAME,
    DEFAULT_HOSTNAME,
    default_mapping,
    derive_hostname,
    is_stable_disk_name,
)

# The login passwords: a plaintext one on the stick is warned about.
PLAINTEXT_PASSWORD_KEYS = ordered_keys_where(lambda s: s.login_password)
# The keys whose value the installer's own seed copy holds as a hash (`seed.sealed`).
SEALED_KEYS = frozenset(PLAINTEXT_PASSWORD_KEYS)
# Secrets of which not even a prefix is shown.
FULLY_HIDDEN_KEYS = keys_where(lambda s: s.hidden)
# Normalised values worth a repair note when they differ from what was typed (an upper-case
# country, a prefix for a netmask, one spelling of an address, ...).
_NOTE_NORMALISED = keys_where(lambda s: s.note_normalised)
# Used only by an adopt run.
_ADOPT_ONLY = ordered_keys_where(lambda s: s.adopt_mode is not None)


@dataclass(frozen=True)
class Given:
    """A value for a key and where it came from (a setup.txt line or the wizard). `repr` leaves
    the value out: it may be a secret."""

    value: str = field(repr=False)
    source: Source


@dataclass(frozen=True)
class SeedCheck:
    """Everything known about one seed: problems, warnings, repairs and, when valid, the
    resolved seed (`resolved`)."""

    name: str
    problems: tuple[Problem, ...]
    warnings: tuple[Note, ...]
    repairs: tuple[Note, ...]
    model: SetupModel | None
    resolved: ResolvedSeed | None
    mapping_version: int
    encoding: str = "utf-8"
    given: Mapping[str, Given] = field(default_factory=dict, repr=False)
    # keys read from the installer's own copy, where a password may be its hash
    derived_keys: frozenset[str] = frozenset()
    # an adopt seed checked by itself: the box it is for fills in what it leaves out, so it
    # has no resolution of its own (`check_adopt_seed_bytes`)
    adopt_only: bool = False
    # a restore seed (`check_restore_seed_bytes`): the backup brings the settings, so it has no
    # resolution either; `backup_name` is the backup it restores (when it was found)
    restore_only: bool = False
    backup_name: str | None = None

    @property
    def valid(self) -> bool:
        return not self.problems and (
            self.resolved is not None or self.adopt_only or self.restore_only
        )

    @property
    def settings(self) -> tuple[Setting, ...]:
        """The resolution as text with provenance, in a stable order; () unless valid."""
        return self.resolved.settings if self.resolved is not None else ()

    def require_resolved(self) -> ResolvedSeed:
        """The resolved seed of a check known to be valid."""
        if self.resolved is None:
            raise ValueError(f"{self.name} is not valid: it has no resolution")
        return self.resolved


def seed_mode(data: bytes) -> str:
    """INSTALL_MODE as the seed writes it (`fresh` when absent or unreadable)."""
    try:
        entry = parse_seed(data, KNOWN_KEYS).entry("INSTALL_MODE")
    except InstallerError:
        return "fresh"
    return entry.value.strip().lower() if entry is not None and entry.value else "fresh"


def given_from_seed(text: SeedText) -> dict[str, Given]:
    """The set (non-empty) values of a read seed, each with its line."""
    return {e.key: Given(e.value, line_source(e.line)) for e in text.entries if e.value}


def check_seed_bytes(data: bytes, name: str = SEED_NAME, *, sealed: bool = False) -> SeedCheck:
    """Read, validate and resolve setup.txt bytes. Raises SeedUnreadableError for non-text.

    `sealed`: the bytes are the installer's own seed copy, whose passwords may be their hashes
    (an operator's seed never is: there a hash is refused)."""
    text = parse_seed(data, KNOWN_KEYS)
    listed = {e.key: e.line for e in text.entries}
    empty = [] if data.strip() else [Note(None, f"{name} is empty: was it saved?")]
    given = given_from_seed(text)
    return check_values(
        given,
        name=name,
        reader_problems=text.problems,
        repairs=text.repairs,
        encoding=text.encoding,
        listed_lines=listed,
        extra_warnings=[*empty, *text.warnings],
        commented_lines=dict(text.commented),
        derived_keys=SEALED_KEYS & given.keys() if sealed else frozenset(),
    )


def _each_line_checked(data: bytes) -> tuple[SeedText, dict[str, Given], list[Problem]]:
    """A seed that is checked line by line (adopt, reset, restore: the box or the backup fills
    in the rest): the reader's problems plus each set line's own rule."""
    from installer.seed.model import validate_field

    text = parse_seed(data, KNOWN_KEYS)
    given = given_from_seed(text)
    problems = list(text.problems)
    for key, value in given.items():
        problem = validate_field(key, value.value)
        if problem is not None:
            problems.append(Problem(value.source.line, key, problem.message, problem.hint or None))
    return text, given, problems


# What every adopt seed needs, with where to find it.
_ADOPT_NEEDS = {
    key: spec.missing_hint for key, spec in DECLARATIONS.items() if spec.adopt_mode == "needed"
}


def check_adopt_seed_bytes(data: bytes, name: str = SEED_NAME) -> SeedCheck:
    """An `INSTALL_MODE=adopt` (or `reset`: the same gate) seed checked as one, by itself (the
    offline `check`): each line it sets passes its own rule; it names the box
    (INSTALL_FINGERPRINT) and proves it is the owner's (ADOPT_CODE); keys that come in pairs
    come together. Nothing else is required: the box fills in what the seed leaves out (the
    adopt run checks the two together)."""
    text, given, problems = _each_line_checked(data)
    problems.extend(
        Problem(None, key, f"required because INSTALL_MODE={seed_mode(data)}", hint)
        for key, hint in _ADOPT_NEEDS.items()
        if key not in given
    )
    for have, need in (
        ("OPERATOR_EMAIL", "OPERATOR_PASSWORD"),
        ("OPERATOR_PASSWORD", "OPERATOR_EMAIL"),
    ):
        if have in given and need not in given:
            problems.append(
                Problem(
                    given[have].source.line,
                    need,
                    f"required because {have} is set",
                    "adopt sets the dashboard's operator only when it has none: set both",
                )
            )
    if "TENANT_ID" in given:
        problems.append(
            Problem(
                given["TENANT_ID"].source.line,
                "TENANT_ID",
                "additional tenants are not set up by adopt",
                "remove this line",
            )
        )
    return SeedCheck(
        name=name,
        problems=tuple(sorted(problems, key=_problem_order)),
        warnings=(),
        repairs=tuple(text.repairs),
        model=None,
        resolved=None,
        mapping_version=default_mapping().version,
        encoding=text.encoding,
        given=given,
        adopt_only=True,
    )


# What a restore seed may set besides the restore's own keys: how the installer installs (the
# disk, the stick). Any other line is the backup's to say: it has no effect.
_RESTORE_INSTALL_KEYS = ("INSTALL_MODE", "TARGET_DISK", "ERASE_TARGET_DISK", "SEED_SCRUB")
_RESTORE_KEYS = ordered_keys_where(lambda s: s.restore_mode is not None)


def check_restore_seed_bytes(
    data: bytes, name: str = SEED_NAME, beside: Sequence[str] | None = None
) -> SeedCheck:
    """An `INSTALL_MODE=restore` seed: each line passes its own rule, BACKUP_IDENTITY is set,
    and the backup is found next to the seed (`beside`: the names of the regular files in the
    seed's folder; None when that is not known here, e.g. the installer's stored copy). Lines
    the backup decides (the bot, the names, the passwords) are warned about: they have no
    effect."""
    text, given, problems = _each_line_checked(data)
    problems.extend(
        Problem(None, key, "required because INSTALL_MODE=restore", DECLARATIONS[key].missing_hint)
        for key in _RESTORE_KEYS
        if DECLARATIONS[key].restore_mode == "needed" and key not in given
    )
    backup, missing = find_backup(given, beside)
    if missing is not None:
        problems.append(missing)
    warnings = [
        Note(
            value.source.line,
            f"{key}: a restore takes this from the backup; the line has no effect",
        )
        for key, value in given.items()
        if key not in _RESTORE_KEYS and key not in _RESTORE_INSTALL_KEYS
    ]
    return SeedCheck(
        name=name,
        problems=tuple(sorted(problems, key=_problem_order)),
        warnings=tuple(warnings),
        repairs=tuple(text.repairs),
        model=None,
        resolved=None,
        mapping_version=default_mapping().version,
        encoding=text.encoding,
        given=given,
        restore_only=True,
        backup_name=backup,
    )


def find_backup(
    given: Mapping[str, Given], beside: Sequence[str] | None
) -> tuple[str | None, Problem | None]:
    """The backup a restore seed means: BACKUP_FILE, else the one `*.backup.age` file next to
    the seed. A problem when it is not there, or when there are several and none is named."""
    from installer.seed.rules import BACKUP_SUFFIX, check_backup_file

    named = given.get("BACKUP_FILE")
    hint = DECLARATIONS["BACKUP_FILE"].missing_hint
    if named is not None:
        try:
            wanted = check_backup_file(named.value)
        except ValueError:
            return None, None  # its own rule reports it
        if beside is not None and wanted not in beside:
            line = named.source.line
            return None, Problem(line, "BACKUP_FILE", "no such file next to setup.txt", hint)
        return wanted, None
    if beside is None:
        return None, None
    found = sorted(n for n in beside if n.lower().endswith(BACKUP_SUFFIX))
    if len(found) == 1:
        return found[0], None
    why = (
        f"no {BACKUP_SUFFIX} file next to setup.txt"
        if not found
        else f"{len(found)} {BACKUP_SUFFIX} files next to setup.txt and none named"
    )
    return None, Problem(None, "BACKUP_FILE", f"required: {why}", hint)


def check_values(
    given: Mapping[str, Given],
    *,
    name: str = SEED_NAME,
    reader_problems: Sequence[Problem] = (),
    repairs: Sequence[Note] = (),
    encoding: str = "utf-8",
    listed_lines: Mapping[str, int] | None = None,
    extra_warnings: Sequence[Note] = (),
    commented_lines: Mapping[str, int] | None = None,
    derived_keys: frozenset[str] = frozenset(),
) -> SeedCheck:
    """Validate `given` values with the model and resolve them. Problems the reader already
    reported for a key are not reported again by the model. A problem names the line it comes
    from: a key needed because of another key's line names that line, and a missing key that
    is filled in on a comment line (`commented_lines`) is reported on that line.
    `derived_keys` may hold a password as the hash the installer derived (its own copy)."""
    commented = commented_lines or {}
    lines = dict(listed_lines or {})
    lines.update({k: g.source.line for k, g in given.items() if g.source.line is not None})
    problems = list(reader_problems)
    repair_notes = list(repairs)
    already = {p.key for p in reader_problems if p.key} | {
        p.suggests for p in reader_problems if p.suggests
    }
    mapping = default_mapping()
    model: SetupModel | None = None
    try:
        model = SetupModel.model_validate(
            {k: g.value for k, g in given.items()},
            context={DERIVED_KEYS_CONTEXT: derived_keys},
        )
    except ValidationError as err:
        for p in problems_of(err):
            # A key the reader already refused is absent here; don't also call it "not set".
            if p.key not in already or p.key in given:
                problems.append(_located(p, lines, commented))
    resolved: ResolvedSeed | None = None
    warnings = list(extra_warnings)
    if model is not None:
        resolved = resolve_seed(model, {k: g.source for k, g in given.items()})
        warnings.extend(_warnings(model, given, resolved))
        repair_notes.extend(_normalisation_notes(model, given))
    if problems:
        model, resolved = None, None
    return SeedCheck(
        name=name,
        problems=tuple(sorted(problems, key=_problem_order)),
        warnings=tuple(warnings),
        repairs=tuple(sorted(repair_notes, key=lambda n: n.line or 0)),
        model=model,
        resolved=resolved,
        mapping_version=mapping.version,
        encoding=encoding,
        given=dict(given),
        derived_keys=derived_keys,
    )


def _located(p: FieldProblem, lines: Mapping[str, int], commented: Mapping[str, int]) -> Problem:
    """A model problem as the operator reads it: on its key's line, with the line of the key
    that makes it needed."""
    message, hint = p.message, p.hint or None
    if p.because and p.because in lines:
        message = f"{message} (line {lines[p.because]})"
    line = lines.get(p.key or "")
    if line is None and p.key is not None and p.key in commented:
        line = commented[p.key]
        hint = f"line {line} is a comment: remove the '#' at its start to use {p.key}"
    return Problem(line, p.key, message, hint)


def _problem_order(p: Problem) -> tuple[int, int, str]:
    return (0 if p.line is not None else 1, p.line or 0, p.key or "")


def _plain(model: SetupModel, key: str) -> str | None:
    value = getattr(model, FIELD_NAMES[key])
    if value is None:
        return None
    text = as_setting_text(value)
    return text.get_secret_value() if isinstance(text, SecretStr) else text


def _line_of(given: Mapping[str, Given], key: str) -> int | None:
    g = given.get(key)
    return g.source.line if g else None


def _warnings(model: SetupModel, given: Mapping[str, Given], resolved: ResolvedSeed) -> list[Note]:
    notes: list[Note] = []
    after = (
        "SEED_SCRUB=yes replaces it after a successful install"
        if model.seed_scrub
        else "after the last install, reformat the stick or delete setup.txt (or set "
        "SEED_SCRUB=yes)"
    )
    for key in PLAINTEXT_PASSWORD_KEYS:
        if key in given and given[key].source.kind == "line":
            notes.append(
                Note(_line_of(given, key), f"{key}: a plaintext password is on the stick; {after}")
            )
    if model.erase_target_disk and model.target_disk and not is_stable_disk_name(model.target_disk):
        notes.append(
            Note(
                _line_of(given, "TARGET_DISK"),
                "TARGET_DISK: a kernel name like /dev/sda can be another disk on another "
                "machine; the installer will not erase it unattended: use "
                "TARGET_DISK=/dev/disk/by-id/… or serial:… (the installer's console lists them)",
            )
        )
    if model.install_mode != "adopt":
        notes.extend(
            Note(
                _line_of(given, key),
                f"{key}: only used with INSTALL_MODE=adopt; this seed installs fresh, so the "
                "line has no effect",
            )
            for key in _ADOPT_ONLY
            if key in given
        )
    notes.extend(
        Note(
            _line_of(given, key),
            f"{key}: only used with INSTALL_MODE=restore; this seed does not restore, so the "
            "line has no effect",
        )
        for key in _RESTORE_KEYS
        if key in given
    )
    if "CLAWDIE_USER_PASSWORD" in given:
        notes.append(
            Note(
                _line_of(given, "CLAWDIE_USER_PASSWORD"),
                "CLAWDIE_USER_PASSWORD turns on password login over SSH; an SSH key "
                "(SSH_AUTHORIZED_KEY) is safer",
            )
        )
    if "ASSISTANT_NAME" not in given:
        notes.append(
            Note(
                None,
                f"ASSISTANT_NAME is not set: the assistant will be called {DEFAULT_ASSISTANT_NAME}",
            )
        )
    elif (
        "HOSTNAME" not in given and derive_hostname(model.assistant_name or "") == DEFAULT_HOSTNAME
    ):
        notes.append(
            Note(
                _line_of(given, "ASSISTANT_NAME"),
                f"HOSTNAME: ASSISTANT_NAME gives no usable host name; using {DEFAULT_HOSTNAME} "
                "(set HOSTNAME= to choose one)",
            )
        )
    models = resolved.models
    line = _line_of(given, "LLM_FALLBACK_MODEL") or _line_of(given, "PI_TUI_MODEL")
    notes.extend(
        Note(line, f"LLM_FALLBACK_MODEL: {w}")
        for w in profiles.fallback_warnings(models.primary, models.fallback)
    )
    used = set(models.providers)
    for provider in default_mapping().providers.values():
        if provider.key in given and provider.name not in used:
            notes.append(
                Note(
                    _line_of(given, provider.key),
                    f"{provider.key}: no model setting uses {provider.label}; the key is not "
                    "used and will not be stored",
                )
            )
    return notes


def _normalisation_notes(model: SetupModel, given: Mapping[str, Given]) -> list[Note]:
    notes = []
    for key in sorted(_NOTE_NORMALISED & given.keys()):
        value = _plain(model, key)
        if value is not None and value != given[key].value:
            notes.append(Note(_line_of(given, key), f"{key}: read as {value}"))
    return notes


def mask(setting: Setting) -> str:
    """A setting's value for people and logs: secrets show at most their first 4 characters."""
    if not isinstance(setting.value, SecretStr):
        return setting.value
    return mask_secret(setting.key, setting.value)


def mask_secret(key: str, secret: SecretStr) -> str:
    """A secret for people and logs: at most its first 4 characters, none of a password."""
    value = secret.get_secret_value()
    if key in FULLY_HIDDEN_KEYS or len(value) < 16:
        return "(set, hidden)"
    return f"{value[:4]}… (hidden, {len(value)} characters)"


def shorten(text: str, width: int, ellipsis: str = "…") -> str:
    """`text` cut in the middle to at most `width` characters (long values in a table)."""
    if len(text) <= width:
        return text
    head = (width - len(ellipsis)) // 2
    return f"{text[:head]}{ellipsis}{text[len(text) - (width - len(ellipsis) - head) :]}"


# --- the seam for whoever answers what the seed lacks (the console wizard) -------------------


# Asked too when the seed was not filled in (no file, or the template as it comes, which sets
# only `TEMPLATE_PREFILLED`): the assistant's name, where the box is, and how it gets online; a
# box that only has Wi-Fi would otherwise end offline.
ASKED_WITHOUT_A_SEED = ordered_keys_where(lambda s: s.asked_unfilled)
# setup.txt.example's filled lines: the keys of the `prefilled` tier
TEMPLATE_PREFILLED = keys_where(lambda s: s.tier == "prefilled")


def keys_to_ask(check: SeedCheck) -> list[str]:
    """The setup keys the operator must supply or correct, in model order.

    A key with a problem is asked; so is a known key an unknown (typo'd) key probably meant.
    Problems not tied to a key (a junk line) cannot be answered and are not asked. A seed that
    was not filled in gets the basics (`ASKED_WITHOUT_A_SEED`) asked as well.
    """
    wanted = {p.key for p in check.problems if p.key in KNOWN_KEYS}
    wanted |= {p.suggests for p in check.problems if p.suggests and p.suggests not in check.given}
    if set(check.given) <= TEMPLATE_PREFILLED:
        wanted |= set(ASKED_WITHOUT_A_SEED)
    return [key for key in FIELD_NAMES if key in wanted]


def apply_answers(
    check: SeedCheck, answers: Mapping[str, str], *, sealed: bool = False
) -> SeedCheck:
    """Re-validate a seed with the operator's answers (provenance "wizard") in place of its
    problem keys. Lines the reader could not use and no answer replaces become warnings.
    `sealed`: the answers as the installer stored them (a password may be its hash)."""
    given = {k: g for k, g in check.given.items() if k not in answers}
    given.update({k: Given(v, Source("wizard")) for k, v in answers.items() if v})
    asked = set(answers)
    leftovers = [
        Note(p.line, f"ignored: {p.key + ': ' if p.key else ''}{p.message}")
        for p in check.problems
        if p.line is not None
        and p.key not in asked
        and p.suggests not in asked
        and p.key not in KNOWN_KEYS
    ]
    return check_values(
        given,
        name=check.name,
        repairs=check.repairs,
        encoding=check.encoding,
        extra_warnings=leftovers,
        derived_keys=(check.derived_keys - answers.keys())
        | (SEALED_KEYS & answers.keys() if sealed else frozenset()),
    )


def seed_key_states(check: SeedCheck) -> list[tuple[str, str]]:
    """Each setup.txt key and what became of it: `applied (setup.txt line N)`, `applied
    (answered on the console)`, `defaulted (...)` or `not given`. Never a value."""
    from installer.seed.model import field_specs

    settings = {s.key: s.source for s in check.settings}
    states = []
    for spec in field_specs():
        given, source = check.given.get(spec.key), settings.get(spec.key)
        if source is not None and source.kind == "wizard":
            state = "applied (answered on the console)"
        elif given is not None:
            state = f"applied ({given.source.describe()})"
        elif source is not None:
            state = f"defaulted ({source.describe()})"
        else:
            state = "not given"
        states.append((spec.key, state))
    return states
