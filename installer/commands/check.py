"""`clawdie-setup check FILE [--explain] [--json]`: the offline validator.

The exact reader and model the appliance uses; runs on any OS (nothing Linux-only imported).
Exit 0 valid (warnings allowed), 1 invalid, 2 unreadable or not found.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from installer.seed.io import files_beside, read_seed_path
from installer.seed.messages import render_note, render_problem
from installer.seed.profiles import Setting
from installer.seed.reader import Note
from installer.seed.resolve import (
    SeedCheck,
    check_adopt_seed_bytes,
    check_restore_seed_bytes,
    check_seed_bytes,
    mask,
    mask_secret,
    seed_mode,
    shorten,
)
from installer.status import Status

HELP = "check a setup.txt offline: every problem at once, with line numbers"
JSON_FORMAT = "clawdie-setup-check/1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="setup.txt, or the folder (stick) holding it")
    parser.add_argument(
        "--explain", action="store_true", help="show every resolved value and where it came from"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON document instead")


def run(args: argparse.Namespace) -> int:
    name, data, file_warnings = read_seed_path(args.file)
    mode = seed_mode(data)
    if mode in ("adopt", "reset"):  # changes an installed box: only its own lines are needed
        result = check_adopt_seed_bytes(data, name=name)
    elif mode == "restore":  # the backup brings the settings; it must be next to the seed
        result = check_restore_seed_bytes(data, name=name, beside=files_beside(args.file))
    else:
        result = check_seed_bytes(data, name=name)
    notes = [Note(None, w) for w in file_warnings]
    if args.json:
        import json  # only for --json: keep it off the plain check's cold start

        print(json.dumps(render_json(result, notes), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render_text(result, notes, explain=args.explain))
    return 0 if result.valid else 1


def render_text(result: SeedCheck, file_notes: list[Note], *, explain: bool) -> str:
    """The human report: problems, then warnings, then (on request) how lines were read and
    every value. How a line was read (a BOM, CRLF, quotes: normal for a file saved on Windows or
    a Mac) is a note, not a repair: the file is not changed."""
    name = result.name
    out = [render_problem(p, name) for p in result.problems]
    out += [f"warning: {render_note(n, name)}" for n in (*file_notes, *result.warnings)]
    if explain:
        out += [f"note: {render_note(n, name)}" for n in result.repairs]
    if explain and result.settings:
        out.append(f"\nresolved values (profile mapping v{result.mapping_version}):")
        rows = [(s.key, shorten(mask(s), 40), s.source.describe()) for s in result.settings]
        key_width = max(len(r[0]) for r in rows)
        value_width = max(len(r[1]) for r in rows)
        out += [f"  {k:<{key_width}}  {v:<{value_width}}  [{src}]" for k, v, src in rows]
    elif explain and result.adopt_only:
        out.append("\nan adopt seed: the box keeps every setting it leaves out; it sets:")
        out += [f"  {key}={value}" for key, value in adopt_lines(result)]
    elif explain and result.restore_only:
        out.append("\na restore seed: the backup brings every setting; it sets:")
        out += [f"  {key}={value}" for key, value in adopt_lines(result)]
    elif explain:
        out.append("\nno resolved values: fix the problems above first")
    if result.valid and result.adopt_only:
        out.append(f"{name}: valid adopt seed (the box it names fills in the rest)")
    elif result.valid and result.restore_only:
        out.append(f"{name}: valid restore seed (restores {result.backup_name or 'the backup'})")
    elif result.valid:
        out.append(
            f"{name}: valid" + (f" ({len(result.warnings)} warning(s))" if result.warnings else "")
        )
    else:
        out.append(f"{name}: {len(result.problems)} problem(s) to fix")
    return "\n".join(out) + "\n"


def adopt_lines(result: SeedCheck) -> list[tuple[str, str]]:
    """An adopt seed's lines as typed, secrets masked."""
    from pydantic import SecretStr

    from installer.seed.model import SECRET_KEYS

    return [
        (key, mask_secret(key, SecretStr(g.value)) if key in SECRET_KEYS else g.value)
        for key, g in result.given.items()
    ]


def _setting_json(s: Setting) -> dict[str, Any]:
    source: dict[str, Any] = {"kind": s.source.kind, "text": s.source.describe()}
    if s.source.line is not None:
        source["line"] = s.source.line
    elif s.source.detail:
        source["from"] = s.source.detail
    return {"key": s.key, "value": mask(s), "secret": s.secret, "source": source}


def render_json(result: SeedCheck, file_notes: list[Note]) -> dict[str, Any]:
    """The stable JSON document (format `clawdie-setup-check/1`)."""

    def note(n: Note) -> dict[str, Any]:
        return {"line": n.line, "message": n.message}

    return {
        "format": JSON_FORMAT,
        "file": result.name,
        "valid": result.valid,
        "status": str(Status.OK if result.valid else Status.FAILED),
        "encoding": result.encoding,
        "problems": [
            {"line": p.line, "key": p.key, "message": p.message, "hint": p.hint}
            for p in result.problems
        ],
        "warnings": [note(n) for n in (*file_notes, *result.warnings)],
        "repairs": [note(n) for n in result.repairs],
        "mapping_version": result.mapping_version,
        "settings": [_setting_json(s) for s in result.settings],
    }
