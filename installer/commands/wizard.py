"""`clawdie-setup wizard [FILE] [--output PATH]`: complete a setup.txt on a laptop's terminal.

Starts from FILE (or the template setup.txt.example), asks only for what is missing or wrong,
and writes the completed file back: comments and untouched lines stay as they were. The file is
replaced atomically (temp file 0600, fsync, rename, fsync of the folder), so a pulled stick
holds the old file or the new one, never half of one. Exit 0 written (or already valid),
1 cancelled, 2 unreadable input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import installer
from installer.errors import InstallerError, UsageError
from installer.seed.answers import render_seed_with_answers
from installer.seed.io import read_seed_bytes, write_seed_file
from installer.seed.reader import SEED_NAME, choose_seed_name
from installer.seed.resolve import SeedCheck, apply_answers, check_seed_bytes

HELP = "fill in a setup.txt on this terminal: asks only for what is missing or wrong"
TEMPLATE_NAME = "setup.txt.example"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        type=Path,
        nargs="?",
        help="setup.txt to complete, or the folder (stick) holding it; default: a new one",
    )
    parser.add_argument(
        "-o", "--output", type=Path, help="write here instead of FILE (default: FILE)"
    )


def template_path() -> Path:
    """setup.txt.example at the top of the source tree the installer runs from."""
    path = Path(installer.__file__).resolve().parent.parent / TEMPLATE_NAME
    if not path.is_file():
        raise UsageError(
            f"the template {TEMPLATE_NAME} is not where the installer expects it ({path})",
            "give the setup.txt to complete: clawdie-setup wizard FILE",
        )
    return path


def choose_paths(file: Path | None, output: Path | None) -> tuple[Path, Path]:
    """(where to read, where to write) for the command line `wizard [FILE] [--output PATH]`."""
    if file is None:
        target = output or Path(SEED_NAME)
        if output is None and target.exists():
            raise UsageError(
                f"{target} already exists here",
                f"to complete it run: clawdie-setup wizard {target}; or give --output",
            )
        return template_path(), target
    if file.is_dir():
        chosen, warnings = choose_seed_name(p.name for p in file.iterdir())
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        target = file / (chosen or SEED_NAME)
        return (target if chosen else template_path()), output or target
    if not file.exists():
        print(f"{file} does not exist yet: starting from the template", file=sys.stderr)
        return template_path(), output or file
    return file, output or file


def run(args: argparse.Namespace) -> int:
    source, output = choose_paths(args.file, args.output)
    data = read_seed_bytes(source)
    check = check_seed_bytes(data, name=source.name)
    if check.valid:
        print(f"{source} is already valid: nothing to ask, nothing written")
        return 0
    if not sys.stdin.isatty():
        raise UsageError("the wizard needs a terminal", "run it in a terminal window")
    from installer.wizard import ask

    outcome = ask(check)
    if outcome.status != "done":
        print("cancelled: nothing was written", file=sys.stderr)
        return 1
    answers = outcome.answers
    finished = apply_answers(check, answers)
    update = render_seed_with_answers(data, answers)
    _must_pass_check(update.text, finished)
    write_seed_file(output, update.text)
    for change in update.changes:
        print(f"  {change}")
    print(f"wrote {output}")
    print(
        f"warning: {output} now holds secrets (API key, bot token): keep the stick safe, and "
        "after the last install reformat it or delete the file"
    )
    return 0


def _must_pass_check(text: str, finished: SeedCheck) -> None:
    written = check_seed_bytes(text.encode("utf-8"))
    if not (finished.valid and written.valid):
        problems = "; ".join(p.message for p in (*finished.problems, *written.problems))
        raise InstallerError(
            f"the completed file would not pass the check ({problems}); nothing was written",
            "run clawdie-setup check on the file and fix it in an editor",
        )
