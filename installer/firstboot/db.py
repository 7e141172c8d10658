"""PostgreSQL: readiness wait, platform bootstrap and the dashboard operator (DESIGN §4, steps 6-7).

Readiness. Each attempt is the libpq connection handshake with the real credentials, driven
non-blocking (`PQconnectStart`/`PQconnectPoll`, which is what `PQping` runs inside) so that it
ends at our deadline to the millisecond -- libpq's own `connect_timeout` counts whole seconds with
a 2 s floor -- and so the server's own words ("the database system is starting up") become the
"last reason" in the log. A TCP connect is not readiness: the attempt succeeds only when
`SELECT 1, pg_is_in_recovery()` answers on that connection and the server is not in recovery.

Retries happen only here, at the I/O edge, always bounded by one deadline and always logged.
Passwords never reach a log line, an error message or a command line: role passwords go to the
server as SCRAM verifiers computed client-side, the operator's as a Better Auth scrypt hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import select
import string
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception_type

from installer.errors import InstallerError

log = logging.getLogger("clawdie.db")

TIMEOUT_ENV = "HOST_DB_READINESS_TIMEOUT_MS"
DEFAULT_TIMEOUT_MS = 60_000
# Pauses between attempts. No server yet (no socket, refused): a local connect() that costs
# ~0.2 ms and leaves no trace on the server, so every POLL_ABSENT_S (median detection ~25 ms,
# well under 1% of a core). A server that answers "not yet" (starting up, recovery): from
# POLL_FIRST_S doubling to POLL_MAX_S, so a long crash recovery is not flooded with FATAL lines.
POLL_ABSENT_S = 0.05
POLL_FIRST_S = 0.025
POLL_MAX_S = 0.25
ATTEMPT_MAX_S = 5.0  # one attempt never outlives this (nor the overall deadline)
LOG_EVERY_S = 5.0
PLATFORM_DATABASES = ("system_ops", "system_brain", "system_skills")

T = TypeVar("T")


class DbNotReadyError(InstallerError):
    """PostgreSQL did not accept queries before the deadline. Exit code 3, so a unit or a
    caller can tell "the database is not up (yet)" from a configuration mistake."""

    exit_code = 3


class DbFatalError(InstallerError):
    """Waiting cannot help: wrong password, missing role or database, no pg_hba entry, a broken
    connection string, or a bootstrap statement the server refused. Exit code 1."""


# -- connection strings ---------------------------------------------------------------------


def describe_target(conninfo: str) -> str:
    """`user@host:port/dbname` for logs: never the password."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "(unparseable connection string)"
    host = params.get("host") or params.get("hostaddr") or "default socket"
    port = f":{params['port']}" if params.get("port") else ""
    user = f"{params['user']}@" if params.get("user") else ""
    return f"{user}{host}{port}/{params.get('dbname', '')}"


def _password_of(conninfo: str) -> str | None:
    try:
        value = conninfo_to_dict(conninfo).get("password")
    except psycopg.ProgrammingError:
        return None
    return str(value) if value else None


def _redact(message: str, conninfo: str) -> str:
    password = _password_of(conninfo)
    return message.replace(password, "<redacted>") if password else message


def readiness_timeout_ms(environ: dict[str, str] | None = None) -> int:
    """`HOST_DB_READINESS_TIMEOUT_MS`, default 60000."""
    raw = (os.environ if environ is None else environ).get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_MS
    if not raw.isdigit():
        raise InstallerError(
            f"{TIMEOUT_ENV} must be a whole number of milliseconds, not {raw!r}",
            f"for example {TIMEOUT_ENV}={DEFAULT_TIMEOUT_MS}",
        )
    return int(raw)


# -- classification of failures -------------------------------------------------------------


@dataclass(frozen=True)
class _Fatal:
    needle: tuple[str, ...]
    message: str
    hint: str


_FATAL = (
    _Fatal(
        ("password authentication failed",),
        "PostgreSQL rejected the password for {target}",
        "the password in the connection string (DATABASE_URL in /etc/clawdie/system.env) must "
        "be the platform role's; firstboot's database step sets it",
    ),
    _Fatal(
        ("no password supplied",),
        "PostgreSQL wants a password for {target} and none was given",
        "put the password in the connection string",
    ),
    _Fatal(
        ('role "', "does not exist"),
        "the database role of {target} does not exist",
        "the firstboot database step creates it; run `clawdie-setup firstboot` first",
    ),
    _Fatal(
        ('database "', "does not exist"),
        "the database of {target} does not exist",
        "the firstboot database step creates the system_* databases",
    ),
    _Fatal(
        ("no pg_hba.conf entry",),
        "pg_hba.conf has no entry allowing {target}",
        "allow the platform role on the local socket in pg_hba.conf, then reload PostgreSQL",
    ),
    _Fatal(
        ("authentication failed",),
        "PostgreSQL refused to authenticate {target}",
        "check pg_hba.conf and the connection string",
    ),
    _Fatal(
        ("not permitted to log in",),
        "the role of {target} may not log in",
        "ALTER ROLE ... LOGIN (the firstboot database step does it)",
    ),
    _Fatal(
        ("permission denied for database",),
        "the role of {target} may not connect to its database",
        "the platform role must own its system_* databases",
    ),
    _Fatal(
        ("invalid connection option",),
        "the connection string for {target} is invalid",
        "use postgresql://ROLE:PASSWORD@/DBNAME?host=/run/postgresql",
    ),
    _Fatal(
        ("invalid uri",),
        "the connection string is not a valid URI",
        "percent-encode special characters in the password",
    ),
    _Fatal(
        ("invalid percent-encoded",),
        "the connection string is not a valid URI",
        "percent-encode special characters in the password",
    ),
    _Fatal(
        ('missing "=" after',),
        "the connection string is invalid",
        "use key=value pairs or a postgresql:// URI",
    ),
)


def _fatal_for(message: str, conninfo: str) -> DbFatalError | None:
    """The fatal error a server/libpq message means, or None when waiting may help."""
    lowered = message.lower()
    if "starting up" in lowered or "recovery" in lowered or "shutting down" in lowered:
        return None
    for rule in _FATAL:
        if all(n in lowered for n in rule.needle):
            detail = _redact(_first_line(message), conninfo)
            text = f"{rule.message.format(target=describe_target(conninfo))} ({detail})"
            return DbFatalError(text, rule.hint)
    return None


def _first_line(message: str) -> str:
    """The server's own words from a libpq message (after "FATAL:"), first line only."""
    text = message.strip()
    if "FATAL:" in text:
        text = text.split("FATAL:", 1)[1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else "unknown error"


# -- one readiness attempt ------------------------------------------------------------------


class _NotYet(Exception):
    """This attempt failed in a way that waiting may cure; `reason` is for the log."""

    def __init__(self, reason: str, *, timed_out: bool = False, answered: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.timed_out = timed_out  # cut short by our deadline: the server said nothing new
        self.answered = answered  # the server itself said "not yet" (vs. nobody there)


def _wait_socket(fd: int, *, write: bool, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _NotYet("connection attempt timed out", timed_out=True)
    ready = (
        select.select([], [fd], [], remaining) if write else select.select([fd], [], [], remaining)
    )
    if not any(ready):
        raise _NotYet("connection attempt timed out", timed_out=True)


def _handshake(conninfo: str, deadline: float) -> pq.abc.PGconn:
    """Connect (non-blocking libpq handshake) before `deadline`; the caller finishes the conn."""
    conn = pq.PGconn.connect_start(conninfo.encode())
    try:
        while True:
            if conn.status == pq.ConnStatus.BAD:
                raise _fail(conn.error_message, conninfo)
            status = conn.connect_poll()
            if status == pq.PollingStatus.OK:
                return conn
            if status == pq.PollingStatus.FAILED:
                raise _fail(conn.error_message, conninfo)
            _wait_socket(conn.socket, write=status == pq.PollingStatus.WRITING, deadline=deadline)
    except BaseException:
        conn.finish()
        raise


def _fail(raw: bytes, conninfo: str) -> Exception:
    message = raw.decode(errors="replace")
    fatal = _fatal_for(message, conninfo)
    if fatal:
        return fatal
    return _NotYet(_redact(_first_line(message), conninfo), answered="FATAL:" in message)


def _query_ready(conn: pq.abc.PGconn, conninfo: str, deadline: float) -> None:
    """`SELECT 1` on the authenticated connection; a server still in recovery is not ready."""
    conn.nonblocking = 1
    conn.send_query(b"SELECT 1, pg_catalog.pg_is_in_recovery()")
    while conn.flush():
        _wait_socket(conn.socket, write=True, deadline=deadline)
    results = []
    while True:
        conn.consume_input()
        if conn.is_busy():
            _wait_socket(conn.socket, write=False, deadline=deadline)
            continue
        result = conn.get_result()
        if result is None:
            break
        results.append(result)
    if not results or results[0].status != pq.ExecStatus.TUPLES_OK:
        message = results[0].error_message if results else conn.error_message
        raise _fail(message, conninfo)
    if results[0].get_value(0, 1) == b"t":
        raise _NotYet("the database system is in recovery (read-only)", answered=True)


def _attempt(conninfo: str, deadline: float) -> None:
    attempt_deadline = min(deadline, time.monotonic() + ATTEMPT_MAX_S)
    conn = _handshake(conninfo, attempt_deadline)
    try:
        _query_ready(conn, conninfo, attempt_deadline)
    finally:
        conn.finish()


# -- the wait -------------------------------------------------------------------------------


def wait_for_db(
    conninfo: str, *, timeout_ms: int | None = None, log: logging.Logger | None = None
) -> None:
    """Return once PostgreSQL answers `SELECT 1` with these credentials and is not in recovery.

    The total wait is bounded by `timeout_ms` (else `HOST_DB_READINESS_TIMEOUT_MS`, else 60000):
    each attempt ends by the deadline, and the last attempt runs at the deadline, not after.
    Raises `DbNotReadyError` (exit code 3) at the deadline, `DbFatalError` at once when waiting
    cannot help (wrong password, missing role or database, no pg_hba entry, bad conninfo).
    """
    logger = log or globals()["log"]
    budget_s = (readiness_timeout_ms() if timeout_ms is None else timeout_ms) / 1000
    start = time.monotonic()
    deadline = start + budget_s
    target = describe_target(conninfo)
    reason = "no attempt yet"
    next_log = start + LOG_EVERY_S
    answered_streak = 0  # consecutive "not yet" answers from the server itself

    def wait(rs: RetryCallState) -> float:
        pause = POLL_ABSENT_S
        if answered_streak:
            pause = min(POLL_MAX_S, POLL_FIRST_S * 2.0 ** (answered_streak - 1))
        return max(0.0, min(pause, deadline - time.monotonic()))

    def after_failure(rs: RetryCallState) -> None:
        nonlocal reason, next_log, answered_streak
        err = rs.outcome.exception() if rs.outcome else None
        if isinstance(err, _NotYet) and not err.timed_out:
            answered_streak = answered_streak + 1 if err.answered else 0
        if isinstance(err, _NotYet) and (not err.timed_out or reason == "no attempt yet"):
            if err.reason != reason:
                logger.debug("database %s: %s", target, err.reason)
            reason = err.reason
        now = time.monotonic()
        if now >= next_log:
            next_log = now + LOG_EVERY_S
            logger.info(
                "waiting for PostgreSQL (%s): %.1f s elapsed, %.1f s left; last: %s",
                target,
                now - start,
                max(0.0, deadline - now),
                reason,
            )

    # tenacity's stop_before_delay would give up as soon as the next pause crosses the deadline,
    # i.e. up to one poll interval early; instead the pause is clipped to the deadline and the
    # last attempt runs at it.
    retrying = Retrying(
        retry=retry_if_exception_type(_NotYet),
        stop=lambda rs: time.monotonic() >= deadline,
        wait=wait,
        after=after_failure,
        reraise=False,
    )
    try:
        retrying(_attempt, conninfo, deadline)
    except RetryError:
        raise DbNotReadyError(
            f"PostgreSQL ({target}) was not ready after {budget_s:g} s: {reason}",
            f"check `systemctl status postgresql` and the journal; {TIMEOUT_ENV} sets the wait",
        ) from None
    logger.info("PostgreSQL (%s) is ready after %.3f s", target, time.monotonic() - start)


def _retry_io(
    fn: Callable[[], T], *, what: str, timeout_ms: int | None, logger: logging.Logger
) -> T:
    """Run `fn`, retrying when the connection drops (server restart), until the deadline."""
    budget_s = (readiness_timeout_ms() if timeout_ms is None else timeout_ms) / 1000
    deadline = time.monotonic() + budget_s

    def before_sleep(rs: RetryCallState) -> None:
        err = rs.outcome.exception() if rs.outcome else None
        logger.warning(
            "%s: connection lost (%s); retrying, %.1f s left",
            what,
            _first_line(str(err)),
            max(0.0, deadline - time.monotonic()),
        )

    retrying = Retrying(
        retry=retry_if_exception_type(psycopg.OperationalError),
        stop=lambda rs: time.monotonic() >= deadline,
        wait=lambda rs: max(0.0, min(0.2, deadline - time.monotonic())),
        before_sleep=before_sleep,
        reraise=False,
    )
    try:
        return retrying(fn)
    except RetryError as err:
        raise DbNotReadyError(
            f"{what} did not complete within {budget_s:g} s: the server kept dropping the "
            f"connection ({_first_line(str(err.last_attempt.exception()))})",
            "check `systemctl status postgresql` and the journal",
        ) from None
    except psycopg.Error as err:
        raise DbFatalError(
            f"{what} failed: {_first_line(str(err))}",
            "see the PostgreSQL log for the statement the server refused",
        ) from None


def _remaining_ms(deadline: float) -> int:
    return max(0, int((deadline - time.monotonic()) * 1000))


# -- bootstrap: role and databases ----------------------------------------------------------


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
    databases: Sequence[str] = PLATFORM_DATABASES,
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

    _retry_io(one_pass, what="database bootstrap", timeout_ms=budget_ms, logger=logger)
    logger.info("database bootstrap: %s", ", ".join(done) or "nothing to do")
    return done


# -- Better Auth: schema, password hashes, the dashboard operator ---------------------------

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

SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 16384, 16, 1, 64
_SCRYPT_MAXMEM = 2 * 128 * SCRYPT_N * SCRYPT_R * SCRYPT_P  # as Better Auth's own maxmem


def _better_auth_key(password: str, salt_hex: str) -> bytes:
    # Better Auth hands the salt to scrypt as the hex *string* (its UTF-8 bytes), not decoded
    return hashlib.scrypt(
        unicodedata.normalize("NFKC", password).encode(),
        salt=salt_hex.encode(),
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=SCRYPT_DKLEN,
        maxmem=_SCRYPT_MAXMEM,
    )


def hash_better_auth_password(password: str) -> str:
    """Better Auth's default password hash: `saltHex:keyHex`, scrypt N=16384 r=16 p=1 dkLen=64
    over the NFKC-normalised password, salt = 16 random bytes as 32 lowercase hex characters."""
    salt_hex = secrets.token_bytes(16).hex()
    return f"{salt_hex}:{_better_auth_key(password, salt_hex).hex()}"


def verify_better_auth_password(password: str, stored: str) -> bool:
    """Whether `stored` (Better Auth's `saltHex:keyHex`) is the hash of `password`."""
    salt_hex, _, key_hex = stored.partition(":")
    try:
        key = bytes.fromhex(key_hex)
    except ValueError:
        return False
    if not salt_hex or not key:
        return False
    return hmac.compare_digest(_better_auth_key(password, salt_hex), key)


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

    created = _retry_io(one_pass, what="auth schema", timeout_ms=timeout_ms, logger=logger)
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
    """
    logger = log or globals()["log"]
    email = email.strip().lower()
    hashed = hash_better_auth_password(password)
    committing = {"tried": False}

    def one_pass() -> bool:
        with psycopg.connect(conninfo) as conn:
            with conn.transaction():
                conn.execute("SELECT pg_catalog.pg_advisory_xact_lock(%s)", (_AUTH_LOCK,))
                row = conn.execute(_OPERATOR_SQL, (CREDENTIAL,)).fetchone()
                if row is not None:
                    # our own commit whose acknowledgement a restart swallowed counts as ours
                    ours = committing["tried"] and row[0] == email
                    return ours and verify_better_auth_password(password, str(row[1]))
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
    created = _retry_io(one_pass, what="dashboard operator", timeout_ms=timeout_ms, logger=logger)
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
