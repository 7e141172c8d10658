"""One wording of a seed problem, in two forms, for check, the wizard, the summary, the
installer's console and the receipt; and library code never borrows a command's wording."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from installer.install.flow import render_problems
from installer.seed.messages import render_note, render_problem, render_problem_line
from installer.seed.reader import Note, Problem
from installer.seed.resolve import check_seed_bytes
from tests.helpers.seeds import seed

INSTALLER = Path(__file__).resolve().parents[1] / "installer"


@pytest.mark.parametrize(
    ("problem", "lines", "line"),
    [
        (
            Problem(3, "HOSTNAME", "a host name cannot contain '_'", "use '-' instead of '_'"),
            "setup.txt:3: HOSTNAME: a host name cannot contain '_'\n  hint: use '-' instead of '_'",
            "setup.txt:3: HOSTNAME: a host name cannot contain '_' — use '-' instead of '_'",
        ),
        (
            Problem(None, "TELEGRAM_ADMIN_ID", "required, but not set"),
            "setup.txt: TELEGRAM_ADMIN_ID: required, but not set",
            "setup.txt: TELEGRAM_ADMIN_ID: required, but not set",
        ),
        (
            Problem(7, None, "this line has no '='"),
            "setup.txt:7: this line has no '='",
            "setup.txt:7: this line has no '='",
        ),
    ],
)
def test_the_two_forms_of_one_wording(problem: Problem, lines: str, line: str) -> None:
    assert render_problem(problem, "setup.txt") == lines
    assert render_problem_line(problem, "setup.txt") == line


def test_notes_name_the_file_and_line() -> None:
    assert render_note(Note(4, "read as ada"), "setup.txt") == "setup.txt:4: read as ada"
    assert render_note(Note(None, "empty"), "setup.txt") == "setup.txt: empty"


def test_the_installer_lists_problems_as_the_one_line_form() -> None:
    check = check_seed_bytes(seed("HOSTNAME=my_box"), name="setup.txt")
    assert render_problems(check) == [render_problem_line(p, "setup.txt") for p in check.problems]
    assert any(" — " in line for line in render_problems(check))


def test_library_code_never_imports_a_command() -> None:
    offenders = []
    for path in INSTALLER.rglob("*.py"):
        if path.parent.name == "commands" or path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if any(n == "installer.commands" or n.startswith("installer.commands.") for n in names):
                offenders.append(str(path.relative_to(INSTALLER)))
    assert offenders == []
