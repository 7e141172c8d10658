"""The files the upkeep lines read (apt's stamps and history, the backup's and the channel's
records), written with the age a test gives them: the status lines' and the weekly report's
tests."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

NOW = datetime.now(UTC)


def put(path: Path, text: str, age: timedelta | None = None) -> None:
    """`text` at `path`, its time `age` before NOW when given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if age is not None:
        stamp = (NOW - age).timestamp()
        os.utime(path, (stamp, stamp))
