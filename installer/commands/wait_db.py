"""`clawdie-setup wait-db`: block until PostgreSQL answers queries, for the platform unit's
`ExecStartPre`. Exit 0 ready, 3 not ready by the deadline, 1 waiting cannot help (wrong password,
missing role or database), 2 usage (no connection string)."""

from __future__ import annotations

import argparse

from installer.commands._db_options import add_connection_arguments, conninfo_from_args

HELP = "wait until PostgreSQL really accepts queries (for the platform unit's ExecStartPre)"
KEY = "DATABASE_URL"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_arguments(parser, key=KEY)
    parser.add_argument(
        "--timeout-ms",
        type=int,
        metavar="N",
        help="total wait bound (default: $HOST_DB_READINESS_TIMEOUT_MS, else 60000)",
    )


def run(args: argparse.Namespace) -> int:
    from installer.firstboot.db import ready  # psycopg: only for the commands that talk to it

    ready.wait_for_db(conninfo_from_args(args, key=KEY), timeout_ms=args.timeout_ms)
    return 0
