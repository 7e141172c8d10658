"""First-boot stamps: one file per finished step, written only after the step's effects are
durable. A stamp also keeps the step's record (what it created or skipped; never a secret), so a
run resumed after a power cut can still report everything."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from installer.fsutil import ensure_dir, write_atomic

COMPLETE = "complete"
# A record fact: what a step found left to fix (lines), which makes first boot `degraded`.
TO_FIX = "to_fix"


@dataclass(frozen=True)
class StepRecord:
    """What a step did, in words for the summary."""

    created: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    facts: dict[str, str] = field(default_factory=dict)  # e.g. dashboard state, for the report


class Stamps:
    """The stamp directory of a target (`/var/lib/clawdie-setup/firstboot`, root only)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _file(self, step: str) -> Path:
        return self.directory / f"{step}.done"

    def done(self, step: str) -> bool:
        return self._file(step).is_file()

    def record(self, step: str) -> StepRecord | None:
        try:
            raw = json.loads(self._file(step).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return StepRecord(
            tuple(raw.get("created", ())),
            tuple(raw.get("skipped", ())),
            tuple(raw.get("notes", ())),
            dict(raw.get("facts", {})),
        )

    def mark(self, step: str, record: StepRecord) -> None:
        ensure_dir(self.directory, 0o700)
        doc = {
            "step": step,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "created": list(record.created),
            "skipped": list(record.skipped),
            "notes": list(record.notes),
            "facts": record.facts,
        }
        write_atomic(self._file(step), json.dumps(doc, indent=2) + "\n", mode=0o600)

    def finished_at(self, step: str) -> str | None:
        try:
            return str(json.loads(self._file(step).read_text())["finished_at"])
        except (OSError, ValueError, KeyError):
            return None
