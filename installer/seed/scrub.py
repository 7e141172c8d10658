"""`SEED_SCRUB=yes`: after a successful install, the secrets on the stick are replaced by a
comment saying where and when they were used (DESIGN §3). Pure: bytes in, text out.

Every line that sets a secret key becomes `# KEY removed: used to install HOST on WHEN
(SEED_SCRUB=yes)`; a line the reader could not use (a key without '=', a misspelt key) may hold
a pasted secret too, so it goes the same way. Everything else (comments, names, the profile)
stays as it was, so the stick still shows what the box was set up with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from installer.seed.model import KNOWN_KEYS, SECRET_KEYS
from installer.seed.reader import decode_seed, parse_seed, split_lines


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
