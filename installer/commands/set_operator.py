"""`set-operator EMAIL` (also `clawdie-setup set-operator EMAIL`): create the dashboard operator
when there is none. Interactive only: the password is read twice from the terminal with echo
off, checked with the same rules as setup.txt, and only its Better Auth hash is stored. First
set only: with an operator in place it refuses (rotation belongs to the dashboard).

Exit 0 created, 1 refused (an operator exists, passwords kept failing) or a database failure,
2 usage (no terminal, bad e-mail, no connection string), 3 database not ready.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from installer.commands._db_options import (
    add_connection_arguments,
    conninfo_from_args,
    dashboard_url_from_args,
)
from installer.errors import InstallerError, UsageError
from installer.seed.rules import MIN_PASSWORD, SeedValueError, check_email, check_password

HELP = "create the dashboard operator (interactive; first set only)"
KEY = "DATABASE_URL"  # system_ops, where the dashboard's auth tables live
TRIES = 3


class NoTerminalError(UsageError):
    """The password must come from a person at a terminal, never from a pipe or a file."""


class OperatorExistsError(InstallerError):
    """First set only."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("email", help="the operator's e-mail address (the dashboard login)")
    parser.add_argument("--name", default="Operator", help="display name (default: Operator)")
    add_connection_arguments(parser, key=KEY)
    parser.add_argument(
        "--timeout-ms",
        type=int,
        default=10_000,
        metavar="N",
        help="how long to wait for PostgreSQL (default 10000)",
    )


def read_new_password(email: str) -> str:
    """Ask twice with echo off until a valid, matching password, at most TRIES times."""
    for _ in range(TRIES):
        try:
            first = getpass.getpass(f"Password for {email} (at least {MIN_PASSWORD} characters): ")
            password = check_password(first)
        except SeedValueError as err:
            print(f"  {err.message}" + (f" ({err.hint})" if err.hint else ""), file=sys.stderr)
            continue
        except EOFError:
            raise UsageError("no password given") from None
        try:
            again = getpass.getpass("Repeat the password: ")
        except EOFError:
            raise UsageError("no password given") from None
        if check_password_quietly(again) == password:
            return password
        print("  the passwords do not match; again", file=sys.stderr)
    raise InstallerError(f"no valid password after {TRIES} tries; nothing was changed")


def check_password_quietly(value: str) -> str | None:
    try:
        return check_password(value)
    except SeedValueError:
        return None


def run(args: argparse.Namespace) -> int:
    if not sys.stdin.isatty():
        raise NoTerminalError(
            "set-operator is interactive and standard input is not a terminal",
            "run it in a terminal (console or ssh -t); the password is never read from a pipe",
        )
    try:
        email = check_email(args.email.strip())
    except SeedValueError as err:
        raise UsageError(f"{args.email!r}: {err.message}", err.hint) from None
    conninfo = conninfo_from_args(args, key=KEY)

    from installer.firstboot.db import auth, ready  # psycopg: only when talking to the database

    ready.wait_for_db(conninfo, timeout_ms=args.timeout_ms)
    exists = OperatorExistsError(
        "a dashboard operator already exists; nothing was changed",
        "change the operator's password in the dashboard (set-operator only sets the first one)",
    )
    if auth.operator_exists(conninfo):
        raise exists
    password = read_new_password(email)
    if not auth.create_operator(conninfo, email, password, args.name, timeout_ms=args.timeout_ms):
        raise exists
    url = dashboard_url_from_args(args)
    where = f" at {url}" if url else ""
    print(f"dashboard operator {email} created; sign in to the dashboard{where} with it")
    return 0
