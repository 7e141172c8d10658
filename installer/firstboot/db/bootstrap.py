"""PostgreSQL bootstrap: the platform role and its `system_*` databases (DESIGN §4, step 7).

Idempotent: each object is checked before it is created or changed. The role's password goes to
the server as a SCRAM verifier computed client-side, never in clear.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
import unicodedata
from collections.abc import Sequence

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import TupleRow

from installer.firstboot.db.ready import readiness_timeout_ms, retry_io, wait_for_db
from installer.firstboot.platform_db import DATABASES

log = logging.getLogger("clawdie.db")


def _remaining_ms(deadline: float) -> int:
    return max(0, int((deadline - time.monotonic()) * 1000))


def scram_matches(stored: str | None, password: str) -> bool:
    """Whether a `SCRAM-SHA-256$iter:salt$StoredKey:ServerKey` verifier is for `password`.

    Passwords are NFKC-normalised (SASLprep's normalisation; identical for ASCII). A false
    "no" only costs an unnecessary `ALTER ROLE`.
    """
    if not stored or not stored.startswith("SCRAM-SHA-256$"):
        return False
    try:
        params, keys = stored[len("SCRAM-SHA-256$") :].split("$", 1)
        iterations, salt_b64 = params.split(":", 1)
        stored_key_b64, server_key_b64 = keys.split(":", 1)
        salt = base64.b64decode(salt_b64)
        salted = hashlib.pbkdf2_hmac(
            "sha256", unicodedata.normalize("NFKC", password).encode(), salt, int(iterations)
        )
    except (ValueError, TypeError):
        return False
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    return hmac.compare_digest(
        base64.b64encode(stored_key).decode(), stored_key_b64
    ) and hmac.compare_digest(base64.b64encode(server_key).decode(), server_key_b64)


def _scram_verifier(conn: psycopg.Connection[TupleRow], role: str, password: str) -> str:
    """The SCRAM verifier libpq computes client-side: the server never sees the password."""
    raw = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    return raw.decode()


def _ensure_role(
    conn: psycopg.Connection[TupleRow], role: str, password: str, done: list[str]
) -> None:
    row = conn.execute(
        "SELECT rolpassword, rolcanlogin FROM pg_catalog.pg_authid WHERE rolname = %s", (role,)
    ).fetchone()
    verifier = sql.Literal(_scram_verifier(conn, role, password))
    if row is None:
        try:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), verifier)
            )
        except pg_errors.DuplicateObject:
            row = ("", False)  # created concurrently: fall through and set the password
        else:
            done.append(f"role {role}")
            return
    stored, can_login = row
    if can_login and scram_matches(str(stored) if stored else None, password):
        return
    conn.execute(
        sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(sql.Identifier(role), verifier)
    )
    done.append(f"password of role {role}")


def _database_owner(conn: psycopg.Connection[TupleRow], name: str) -> str | None:
    row = conn.execute(
        "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database WHERE datname = %s",
        (name,),
    ).fetchone()
    return None if row is None else str(row[0])


def _ensure_database(
    conn: psycopg.Connection[TupleRow], name: str, role: str, done: list[str]
) -> None:
    owner = _database_owner(conn, name)
    if owner is None:
        # CREATE DATABASE cannot run in a transaction: checked first, the race caught here
        try:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(role)
                )
            )
        except pg_errors.DuplicateDatabase:
            owner = _database_owner(conn, name)
        else:
            done.append(f"database {name}")
            return
    if owner != role:
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(name), sql.Identifier(role)
            )
        )
        done.append(f"owner of database {name}")


def bootstrap_platform(
    admin_conninfo: str,
    *,
    role: str,
    password: str,
    databases: Sequence[str] = DATABASES,
    timeout_ms: int | None = None,
    log: logging.Logger | None = None,
) -> list[str]:
    """Create the platform role (LOGIN, this password) and `databases` owned by it.

    Idempotent: checks before it acts and returns what it created or changed (e.g.
    `["role clawdie", "database system_ops", ...]`), `[]` when everything was already so. The
    password passed in is the source of truth: an existing role whose password differs gets it.
    If the server restarts midway, the whole pass is retried (bounded by `timeout_ms`, default
    `HOST_DB_READINESS_TIMEOUT_MS`); nothing is created twice.
    """
    logger = log or globals()["log"]
    budget_ms = readiness_timeout_ms() if timeout_ms is None else timeout_ms
    deadline = time.monotonic() + budget_ms / 1000
    done: list[str] = []

    def one_pass() -> None:
        wait_for_db(admin_conninfo, timeout_ms=_remaining_ms(deadline), log=logger)
        with psycopg.connect(admin_conninfo, autocommit=True) as conn:
            _ensure_role(conn, role, password, done)
            for name in databases:
                _ensure_database(conn, name, role, done)

    retry_io(one_pass, what="database bootstrap", timeout_ms=budget_ms, logger=logger)
    logger.info("database bootstrap: %s", ", ".join(done) or "nothing to do")
    return done
