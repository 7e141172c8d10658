"""The review screen's text: the resolved result, secrets masked. Pure (no textual)."""

from __future__ import annotations

from installer.seed.messages import render_note
from installer.seed.model import FIELD_NAMES
from installer.seed.profiles import Setting, Source
from installer.seed.resolve import SeedCheck, mask, shorten
from installer.wizard.text import console_safe

KEY_WIDTH = 25
VALUE_WIDTH = 28


def short_source(source: Source) -> str:
    """Where a value came from, in a few words: 'line 7', 'wizard', 'from ASSISTANT_NAME'."""
    if source.kind == "line":
        return f"line {source.line}"
    if source.kind == "derived":
        return f"from {source.detail}"
    if source.kind == "profile":
        return f"profile {source.detail.split(' ')[0]}"
    return source.kind


def is_shown(setting: Setting) -> bool:
    """What the review shows: the setup keys set (on a line or here) or made from them (the
    host name from the assistant's name); defaults, the profile's model lines and internals
    (the provider list, the mapping's version) are `check --explain`'s to show."""
    return setting.key in FIELD_NAMES and setting.source.kind in ("line", "wizard", "derived")


def review_lines(result: SeedCheck, width: int = 78) -> list[str]:
    """One line per setup key the operator set or that follows from them (key, masked value,
    source), how many more values the profile gives, then the warnings."""
    lines = []
    chosen = [s for s in result.settings if is_shown(s)]
    for setting in chosen:
        key = setting.key
        if len(key) > KEY_WIDTH:  # a long key gets a line of its own
            lines.append(key)
            key = ""
        source = shorten(short_source(setting.source), width - KEY_WIDTH - VALUE_WIDTH - 4, "...")
        room = width - KEY_WIDTH - len(source) - 4
        value = shorten(console_safe(mask(setting)), room, "...")
        lines.append(f"{key:<{KEY_WIDTH}}  {value:<{VALUE_WIDTH}}  {source}".rstrip())
    others = len(result.settings) - len(chosen)
    if others:
        lines.append("")
        lines.append(f"and {others} defaults and profile values (check --explain lists them)")
    if result.warnings:
        lines.append("")
        for note in result.warnings:
            lines.append(console_safe(f"warning: {render_note(note, result.name)}"))
    return lines
