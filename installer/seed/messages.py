"""How a seed problem or note is worded, the same for `check`, the wizard, the first-boot summary,
the disk installer's console and the receipt on the stick. Pure; never a value, only the line,
the key, the message and the hint.

Two forms of one wording: `render_problem` over two lines (a terminal, the wizard) and
`render_problem_line` on one (lists in a report or a receipt).
"""

from __future__ import annotations

from installer.seed.reader import Note, Problem


def render_where(name: str, line: int | None) -> str:
    """`setup.txt:7`, or just `setup.txt` for the whole file."""
    return f"{name}:{line}" if line is not None else name


def render_problem_head(problem: Problem, name: str) -> str:
    """`setup.txt:7: KEY: message`."""
    key = f" {problem.key}:" if problem.key else ""
    return f"{render_where(name, problem.line)}:{key} {problem.message}"


def with_hint(text: str, hint: str | None) -> str:
    """`text`, and the hint on an indented second line."""
    return text + (f"\n  hint: {hint}" if hint else "")


def render_problem(problem: Problem, name: str) -> str:
    """`setup.txt:7: KEY: message` and `  hint: …` below it."""
    return with_hint(render_problem_head(problem, name), problem.hint)


def render_problem_line(problem: Problem, name: str) -> str:
    """`setup.txt:7: KEY: message — hint` on one line."""
    head = render_problem_head(problem, name)
    return f"{head} — {problem.hint}" if problem.hint else head


def render_note(note: Note, name: str) -> str:
    """A warning or a repair: `setup.txt:7: message`."""
    return f"{render_where(name, note.line)}: {note.message}"
