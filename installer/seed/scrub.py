"""`SEED_SCRUB=yes`: after a successful install, the secrets on the stick are replaced by a
comment saying where and when they were used (DESIGN §3). Pure: bytes in, text out.

Every line that sets a secret key becomes `# KEY removed: used to install HOST on WHEN
(SEED_SCRUB=yes)`; a line the reader could not use (a key without '=', a misspelt key) may hold
a pasted secret too, so it goes the same way. Everything else (comments, names, the profile)
stays as it was, so the stick still shows what the box was set up with.

On the stick the scrub is written in place (`render_scrubbed_in_place`): the file keeps its
length and every byte outside the removed lines, each removed line becomes a comment of its own
length (the note as far as it fits, then spaces), in the file's own encoding. So the stick's
FAT never changes, and a power cut during the write, which stops it at a sector, leaves every line
of the operator where it was: each removed line either still as it was, or already a comment
(its first bytes are written first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from installer.errors import InstallerError
from installer.seed.model import KNOWN_KEYS, SECRET_KEYS
from installer.seed.reader import BOMS, decode_seed, parse_seed, split_lines


@dataclass(frozen=True)
class Scrubbed:
    """The new setup.txt text and what was removed (keys and line numbers, never values)."""

    text: str = field(repr=False)  # secrets are gone, but the rest is still the operator's
    removed: tuple[str, ...]


def secret_keys() -> frozenset[str]:
    return SECRET_KEYS


def render_scrubbed_seed(data: bytes, *, host: str, when: str) -> Scrubbed:
    """`data` (a setup.txt) with every secret line replaced by a note of its use."""
    text, _, _ = decode_seed(data)
    lines, _ = split_lines(text)
    parsed = parse_seed(data, KNOWN_KEYS)
    secrets = secret_keys()
    note = f"used to install {host} on {when} (SEED_SCRUB=yes)"
    out = list(lines)
    removed: list[str] = []
    for entry in parsed.entries:
        if entry.key in secrets and entry.value:
            out[entry.line - 1] = f"# {entry.key} removed: {note}"
            removed.append(entry.key)
    for problem in parsed.problems:
        if problem.line is not None and not out[problem.line - 1].startswith("# "):
            out[problem.line - 1] = f"# line {problem.line} removed (it was not a setting): {note}"
            removed.append(f"line {problem.line}")
    match = re.search(r"\r\n|\r|\n", text)
    eol = match.group(0) if match else "\n"
    return Scrubbed(eol.join(out) + eol, tuple(removed))


@dataclass(frozen=True)
class ScrubbedInPlace:
    """The new setup.txt bytes (the same length as the old ones) and what was removed."""

    data: bytes = field(repr=False)
    removed: tuple[str, ...]


_BOMS = tuple(bom for bom, _, _ in BOMS)
_UNIT = {"utf-16-le": 2, "utf-16-be": 2, "utf-32-le": 4, "utf-32-be": 4}


def render_fitted_note(choices: list[str], width: int) -> str:
    """The first of `choices` that fits `width` characters (the last one cut), padded with
    spaces to exactly `width` (pure)."""
    fitting = next((c for c in choices if len(c) <= width), choices[-1][:width])
    return fitting.ljust(width)


def render_scrubbed_in_place(data: bytes, *, host: str, when: str) -> ScrubbedInPlace:
    """`data` with every secret line (and every line that was not a setting) replaced by a
    comment of the same length in bytes; every other byte as it was (pure). Raises
    InstallerError when the file cannot be kept at its length (it then is not rewritten)."""
    text, codec, _ = decode_seed(data)
    bom = next((b for b in _BOMS if data.startswith(b)), b"")
    pieces = re.split(r"(\r\n|\r|\n)", text)  # lines at even places, their ends between
    parsed = parse_seed(data, KNOWN_KEYS)
    secrets = secret_keys()
    note = f"used to install {host} on {when}"
    choices: dict[int, list[str]] = {}
    removed: list[str] = []
    for entry in parsed.entries:
        if entry.key in secrets and entry.value:
            key = entry.key
            choices[entry.line] = [
                f"# {key} removed: {note} (SEED_SCRUB=yes)",
                f"# {key} removed: {note}",
                f"# {key} removed (SEED_SCRUB=yes)",
                f"# {key} removed",
                f"#{key}",
            ]
            removed.append(key)
    for problem in parsed.problems:
        if problem.line is not None and problem.line not in choices:
            line = problem.line
            if pieces[2 * (line - 1)].lstrip().startswith("#"):
                continue
            choices[line] = [
                f"# line {line} removed (it was not a setting): {note} (SEED_SCRUB=yes)",
                f"# line {line} removed (it was not a setting)",
                f"# line {line} removed",
                "#",
            ]
            removed.append(f"line {line}")
    unit = _UNIT.get(codec, 1)
    for line, options in choices.items():
        old = pieces[2 * (line - 1)]
        pieces[2 * (line - 1)] = render_fitted_note(options, len(old.encode(codec)) // unit)
    out = bom + "".join(pieces).encode(codec)
    if len(out) != len(data):
        raise InstallerError(
            f"the scrubbed setup.txt would be {len(out)} bytes, not {len(data)}: not rewritten",
            "delete setup.txt on the stick, or reformat it",
        )
    return ScrubbedInPlace(out, tuple(removed))
