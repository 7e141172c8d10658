"""The secrets this process knows, and the one place text is cleaned of them before it is shown.

Every secret a run learns (the seed's keys, tokens and passwords, the generated database
password) is registered here as soon as it is read; `redact` replaces each occurrence in text
meant for people, and `RedactingFilter` does the same for every log record, tracebacks included.
The steps never rely on it: it is the net under the rule that no message carries a secret.
"""

from __future__ import annotations

import logging

MARK = "<redacted>"
# Shorter values are not secrets worth masking everywhere (and would mangle ordinary text).
MIN_SECRET_LENGTH = 6

_known: set[str] = set()


def register(*values: str | None) -> None:
    """Remember `values` as secrets for the rest of this process."""
    for value in values:
        if value and len(value) >= MIN_SECRET_LENGTH:
            _known.add(value)


def registered() -> tuple[str, ...]:
    """Every secret known (to check a written file for them; never to show)."""
    return tuple(_known)


def forget_all() -> None:
    """Tests: start from nothing."""
    _known.clear()


def redact(text: str) -> str:
    """`text` with every registered secret replaced by a marker (longest first)."""
    for secret in sorted(_known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MARK)
    return text


class RedactingFilter(logging.Filter):
    """Cleans each record's message and traceback of registered secrets before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _known:
            return True
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def add_filter(handler: logging.Handler) -> logging.Handler:
    """`handler` with the redacting filter (idempotent)."""
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())
    return handler
