"""Put answers back into setup.txt text, keeping every comment and untouched line. Pure.

Used by `clawdie-setup wizard` to write a completed setup.txt. For each answered key:
its own line is replaced in place (also a misspelt key line that the reader says meant it);
otherwise a commented-out template line (`#KEY=`) is uncommented; otherwise the line is
appended. Further lines for the same key (duplicates, a key split over lines) are removed, as
is any private key block (it must never stay on a stick). Lines the reader could not use and no
answer replaces are commented out, so the result passes `clawdie-setup check`. Change notes
name lines and keys only, never a value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from installer.errors import InstallerError
from installer.seed.model import FIELD_NAMES, KNOWN_KEYS
from installer.seed.reader import Entry, Problem, decode_seed, parse_seed, split_lines

# Characters the reader treats as quotes at a value's edge (it removes one matching pair).
_EDGE_QUOTES = "\"'\u201c\u201d\u201e\u201f\u2018\u2019\u201a\u201b"
_PRIVATE_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_PRIVATE_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")


@dataclass(frozen=True)
class SeedUpdate:
    """The new file text and what changed, line by line (no values). `repr` leaves the text out:
    it holds every secret of the seed."""

    text: str = field(repr=False)
    changes: tuple[str, ...]


def render_value(value: str) -> str:
    """`value` as the text after `KEY=` that the reader reads back as exactly `value`."""
    if "\n" in value or "\r" in value:
        raise InstallerError("a value cannot span lines", "type it on one line")
    if value and (value[0] in _EDGE_QUOTES or value[-1] in _EDGE_QUOTES or value != value.strip()):
        return f'"{value}"'
    return value


def render_seed_with_answers(data: bytes, answers: Mapping[str, str]) -> SeedUpdate:
    """The seed `data` with `answers` (key -> value, "" = unset) written in.

    Raises InstallerError if a value would not read back as given (nothing is written then).
    """
    text, encoding, _ = decode_seed(data)
    lines, _ = split_lines(text)
    parsed = parse_seed(data, KNOWN_KEYS)
    out: list[str | None] = list(lines)  # None = removed
    changes: list[tuple[int, str]] = []  # (line for ordering, note)
    if encoding != "utf-8":
        changes.append((0, f"the file is now UTF-8 (it was {encoding})"))

    owners = _line_owners(parsed.entries, parsed.problems)
    for first, last in _private_key_blocks(lines):
        for n in range(first, last + 1):
            out[n - 1] = None
        changes.append((first, f"lines {first}-{last} removed: a private key never belongs here"))

    appended: list[str] = []
    for key in sorted(answers, key=_model_order):
        value = answers[key]
        line_text = f"{key}={render_value(value)}"
        own = sorted(n for n, k in owners.items() if k == key)
        if own:
            out[own[0] - 1] = line_text
            changes.append((own[0], f"line {own[0]}: {key} {_done(value)}"))
            for extra in own[1:]:
                if out[extra - 1] is not None:
                    out[extra - 1] = None
                    changes.append((extra, f"line {extra} removed: another {key} line"))
            continue
        template = _template_line(lines, key)
        if template is not None and out[template - 1] is not None:
            out[template - 1] = line_text
            changes.append((template, f"line {template}: {key} {_done(value)}"))
        elif value:
            appended.append(line_text)
            changes.append((len(lines) + 1, f"{key} added at the end"))

    for n in sorted({p.line for p in parsed.problems if p.line is not None}):
        if owners.get(n) not in answers and out[n - 1] is not None:
            out[n - 1] = "#" + lines[n - 1]
            changes.append((n, f"line {n} commented out: it is not a setting the reader can use"))

    eol = _line_end(text)
    kept = [line for line in out if line is not None] + appended
    new_text = eol.join(kept) + eol
    _check_reads_back(new_text, answers)
    return SeedUpdate(new_text, tuple(note for _, note in sorted(changes)))


def _done(value: str) -> str:
    return "set" if value else "left unset"


def _model_order(key: str) -> int:
    order = list(FIELD_NAMES)
    return order.index(key) if key in FIELD_NAMES else len(order)


def _line_owners(entries: Iterable[Entry], problems: Iterable[Problem]) -> dict[int, str]:
    """Line number -> the known key the line is about (its own key, or the one it misspells)."""
    owners = {entry.line: entry.key for entry in entries}
    for problem in problems:
        if problem.line is None:
            continue
        key = problem.key if problem.key in KNOWN_KEYS else problem.suggests
        if key:
            owners.setdefault(problem.line, key)
    return owners


def _private_key_blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line numbers of each private key block, as the reader skips them."""
    blocks: list[tuple[int, int]] = []
    start: int | None = None
    for number, line in enumerate(lines, start=1):
        if start is None and _PRIVATE_BEGIN.search(line):
            start = number
        if start is not None and _PRIVATE_END.search(line):
            blocks.append((start, number))
            start = None
    if start is not None:
        blocks.append((start, len(lines)))
    return blocks


def _template_line(lines: list[str], key: str) -> int | None:
    """The first commented-out `#KEY=` line (as in setup.txt.example)."""
    pattern = re.compile(rf"[ \t]*#[ \t]*{key}[ \t]*=", re.IGNORECASE)
    return next((n for n, line in enumerate(lines, start=1) if pattern.match(line)), None)


def _line_end(text: str) -> str:
    match = re.search(r"\r\n|\r|\n", text)
    return match.group(0) if match else "\n"


def _check_reads_back(text: str, answers: Mapping[str, str]) -> None:
    parsed = parse_seed(text.encode("utf-8"), KNOWN_KEYS)
    for key, value in answers.items():
        entry = parsed.entry(key)
        if (entry.value if entry else "") != value:
            raise InstallerError(
                f"{key} would not read back as typed from the written file; nothing was written",
                "write this value into setup.txt with an editor",
            )
