"""The platform's databases kept and put back: `pg_dump -Fc` of each `system_*` database into
root's state before the migration, and, on the way back, each database dropped and made again
from its dump (`pg_restore --create`), so what the platform sees is exactly what it had.

The admin connection is the one first boot uses (root mapped to `postgres` over the socket): no
password on a command line. Dumps are written under a temporary name and renamed once durable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from installer.fsutil import ensure_dir, fsync_dir
from installer.run import run

DUMP_TIMEOUT_S = 3600.0
SUFFIX = ".dump"


def _program(bindir: Path | None, name: str) -> str:
    return str(bindir / name) if bindir is not None else name


def _conninfo(admin: str, database: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(admin, dbname=database)


def existing_databases(admin: str, names: Sequence[str]) -> list[str]:
    """Which of `names` exist (in that order)."""
    import psycopg

    with psycopg.connect(admin, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)", (list(names),)
        ).fetchall()
    found = {r[0] for r in rows}
    return [n for n in names if n in found]


def dump_path(into: Path, database: str) -> Path:
    return into / f"{database}{SUFFIX}"


def dump_databases(admin: str, names: Sequence[str], into: Path, bindir: Path | None) -> list[str]:
    """Each existing database of `names` dumped to `into/<name>.dump`; returns those dumped."""
    ensure_dir(into, 0o700)
    dumped = []
    for database in existing_databases(admin, names):
        final = dump_path(into, database)
        temp = final.with_name(f".{final.name}.tmp")
        run(
            [
                _program(bindir, "pg_dump"),
                "--format=custom",
                "--no-password",
                f"--file={temp}",
                f"--dbname={_conninfo(admin, database)}",
            ],
            timeout=DUMP_TIMEOUT_S,
        )
        fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(temp, 0o600)
        os.replace(temp, final)
        dumped.append(database)
    fsync_dir(into)
    return dumped


def restore_databases(admin: str, names: Sequence[str], into: Path, bindir: Path | None) -> None:
    """Each of `names` dropped (connections ended) and made again from `into/<name>.dump`."""
    import psycopg
    from psycopg import sql

    for database in names:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
        run(
            [
                _program(bindir, "pg_restore"),
                "--create",
                "--exit-on-error",
                "--no-password",
                f"--dbname={_conninfo(admin, 'postgres')}",
                str(dump_path(into, database)),
            ],
            timeout=DUMP_TIMEOUT_S,
        )
