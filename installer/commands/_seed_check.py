"""A seed an operator hands to a command that writes it onto media (`seed image --from`,
`flash --seed`): read with the one seed reader and checked as `check` does. An invalid seed is
refused with `check`'s own words, unless `--incomplete` says the box's console is to ask."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from installer.errors import InstallerError


def add_incomplete_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """`--incomplete`: `what` (the seed's option) is written even though it fails `check`."""
    parser.add_argument(
        "--incomplete",
        action="store_true",
        help=f"put in a {what} file that does not pass check yet (the box's console asks for "
        "what is missing)",
    )


def read_checked_seed(path: Path, *, incomplete: bool, nothing_written: str) -> bytes:
    """The seed's bytes; its problems printed and an error raised when it does not pass
    `check` (and `incomplete` is not set). `nothing_written` ends the error's message."""
    from installer.seed.io import read_seed_bytes
    from installer.seed.messages import render_problem
    from installer.seed.resolve import check_seed_bytes

    data = read_seed_bytes(path)
    if incomplete:
        return data
    result = check_seed_bytes(data, name=path.name)
    if result.valid:
        return data
    for problem in result.problems:
        print(render_problem(problem, path.name), file=sys.stderr)
    raise InstallerError(
        f"{path.name}: {len(result.problems)} problem(s) to fix; {nothing_written}",
        "fix them (clawdie-setup check shows the same list), or add --incomplete when the box's "
        "console is to ask for what is missing",
    )
