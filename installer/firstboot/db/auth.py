"""The dashboard's auth tables and its operator: Better Auth's core schema, its password hash,
and the first dashboard login (DESIGN §4, step 7, and `set-operator`).

The operator's password is stored only as Better Auth's scrypt hash, never in clear.
"""

from __future__ import annotations

import logging
import secrets
import string

import psycopg

from installer.firstboot.db.ready import retry_io
from installer.seed.hashes import hash_better_auth_password, verify_better_auth_password
from installer.seed.rules import is_better_auth_hash

log = logging.getLogger("clawdie.db")

# Better Auth's core schema (better-auth 1.x `getAuthTables` with default options, Postgres
# types of its Kysely migration: string -> text, date -> timestamptz, boolean -> boolean).
AUTH_TABLES: dict[str, str] = {
    "user": """
        CREATE TABLE IF NOT EXISTS public."user" (
            "id" text NOT NULL PRIMARY KEY,
            "name" text NOT NULL,
            "email" text NOT NULL UNIQUE,
            "emailVerified" boolean NOT NULL DEFAULT false,
            "image" text,
            "createdAt" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "updatedAt" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
        )""",
    "session": """
        CREATE TABLE IF NOT EXISTS public."session" (
            "id" text NOT NULL PRIMARY KEY,
            "expiresAt" timestamptz NOT NULL,
            "token" text NOT NULL UNIQUE,
            "createdAt" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "updatedAt" timestamptz NOT NULL,
            "ipAddress" text,
            "userAgent" text,
            "userId" text NOT NULL REFERENCES public."user" ("id") ON DELETE CASCADE
        )""",
    "account": """
        CREATE TABLE IF NOT EXISTS public."account" (
            "id" text NOT NULL PRIMARY KEY,
            "accountId" text NOT NULL,
            "providerId" text NOT NULL,
            "userId" text NOT NULL REFERENCES public."user" ("id") ON DELETE CASCADE,
            "accessToken" text,
            "refreshToken" text,
            "idToken" text,
            "accessTokenExpiresAt" timestamptz,
            "refreshTokenExpiresAt" timestamptz,
            "scope" text,
            "password" text,
            "createdAt" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "updatedAt" timestamptz NOT NULL
        )""",
    "verification": """
        CREATE TABLE IF NOT EXISTS public."verification" (
            "id" text NOT NULL PRIMARY KEY,
            "identifier" text NOT NULL,
            "value" text NOT NULL,
            "expiresAt" timestamptz NOT NULL,
            "createdAt" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "updatedAt" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
        )""",
}
AUTH_INDEXES = (
    'CREATE INDEX IF NOT EXISTS "session_userId_idx" ON public."session" ("userId")',
    'CREATE INDEX IF NOT EXISTS "account_userId_idx" ON public."account" ("userId")',
    'CREATE INDEX IF NOT EXISTS "verification_identifier_idx"'
    ' ON public."verification" ("identifier")',
)
_AUTH_LOCK = 0x0C1A_0D1E  # advisory lock key: one schema/operator writer at a time
CREDENTIAL = "credential"


def _new_id() -> str:
    """An id like Better Auth's `generateId()`: 32 characters of [A-Za-z0-9]."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


def ensure_auth_schema(
    conninfo: str, *, timeout_ms: int | None = None, log: logging.Logger | None = None
) -> list[str]:
    """Better Auth's core tables (`user`, `session`, `account`, `verification`) and their
    indexes in `public`, created if missing by the connecting role (so owned by it: connect as
    the platform role). Returns the tables it created (`["table user", ...]`)."""
    logger = log or globals()["log"]

    def one_pass() -> list[str]:
        created = []
        with psycopg.connect(conninfo) as conn, conn.transaction():
            conn.execute("SELECT pg_catalog.pg_advisory_xact_lock(%s)", (_AUTH_LOCK,))
            for table, ddl in AUTH_TABLES.items():
                exists = conn.execute(
                    "SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (f'public."{table}"',)
                ).fetchone()
                if not (exists and exists[0]):
                    conn.execute(ddl.encode())
                    created.append(f"table {table}")
            for index in AUTH_INDEXES:
                conn.execute(index.encode())
        return created

    created = retry_io(one_pass, what="auth schema", timeout_ms=timeout_ms, logger=logger)
    if created:
        logger.info("auth schema: created %s", ", ".join(created))
    return created


_OPERATOR_SQL = """
    SELECT u."email", a."password" FROM public."account" a
    JOIN public."user" u ON u."id" = a."userId"
    WHERE a."providerId" = %s ORDER BY a."createdAt" LIMIT 1
"""


def operator_exists(conninfo: str) -> bool:
    """Whether a dashboard operator (a user with a credential account) exists in system_ops."""
    return operator_email(conninfo) is not None


def create_operator(
    conninfo: str,
    email: str,
    password: str,
    name: str = "Operator",
    *,
    timeout_ms: int | None = None,
    log: logging.Logger | None = None,
) -> bool:
    """Create the dashboard operator: a `user` with a `credential` account holding Better Auth's
    scrypt hash of `password` (never the password). First set only: returns False, changing
    nothing, when an operator already exists (rotation belongs to the dashboard).

    Creates the auth schema if it is missing. `email` is stored lower-case, as Better Auth does.
    `password` may already be its Better Auth hash (the installer's seed copy holds no password
    in clear): that hash is stored as it is.
    """
    logger = log or globals()["log"]
    email = email.strip().lower()
    derived = is_better_auth_hash(password)
    hashed = password if derived else hash_better_auth_password(password)

    def is_ours(stored: str) -> bool:
        return stored == hashed if derived else verify_better_auth_password(password, stored)

    committing = {"tried": False}

    def one_pass() -> bool:
        with psycopg.connect(conninfo) as conn:
            with conn.transaction():
                conn.execute("SELECT pg_catalog.pg_advisory_xact_lock(%s)", (_AUTH_LOCK,))
                row = conn.execute(_OPERATOR_SQL, (CREDENTIAL,)).fetchone()
                if row is not None:
                    # our own commit whose acknowledgement a restart swallowed counts as ours
                    ours = committing["tried"] and row[0] == email
                    return ours and is_ours(str(row[1]))
                found = conn.execute(
                    'SELECT "id" FROM public."user" WHERE "email" = %s', (email,)
                ).fetchone()
                user_id = str(found[0]) if found else _new_id()
                if found is None:
                    conn.execute(
                        'INSERT INTO public."user" ("id", "name", "email", "emailVerified",'
                        ' "createdAt", "updatedAt") VALUES (%s, %s, %s, true, now(), now())',
                        (user_id, name, email),
                    )
                conn.execute(
                    'INSERT INTO public."account" ("id", "accountId", "providerId", "userId",'
                    ' "password", "createdAt", "updatedAt")'
                    " VALUES (%s, %s, %s, %s, %s, now(), now())",
                    (_new_id(), user_id, CREDENTIAL, user_id, hashed),
                )
                committing["tried"] = True
            return True

    ensure_auth_schema(conninfo, timeout_ms=timeout_ms, log=logger)
    created = retry_io(one_pass, what="dashboard operator", timeout_ms=timeout_ms, logger=logger)
    logger.info("dashboard operator %s: %s", email, "created" if created else "one exists already")
    return created


def operator_email(conninfo: str) -> str | None:
    """The dashboard operator's e-mail, or None when there is none yet."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT pg_catalog.to_regclass('public.\"account\"') IS NOT NULL"
        ).fetchone()
        if not (row and row[0]):
            return None
        found = conn.execute(_OPERATOR_SQL, (CREDENTIAL,)).fetchone()
        return str(found[0]) if found else None
