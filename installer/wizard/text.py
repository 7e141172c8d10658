"""Text for the Linux console: its fonts lack most symbols beyond Latin-1. Pure."""

from __future__ import annotations

_ASCII_FOR = {
    "\u2026": "...",  # ellipsis
    "\u2192": "->",
    "\u2190": "<-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2022": "*",
    "\u00a0": " ",
}
_TABLE = str.maketrans(_ASCII_FOR)


def console_safe(text: str) -> str:
    """Our own wording with the few typographic symbols it uses spelt in ASCII.

    Only for text the installer writes (explanations, messages, masks); what the operator typed
    is shown as typed.
    """
    return text.translate(_TABLE)


def format_seconds(seconds: float) -> str:
    """4:05 for 245 seconds (never negative)."""
    whole = max(0, int(seconds + 0.999))
    return f"{whole // 60}:{whole % 60:02d}"
