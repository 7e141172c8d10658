"""PostgreSQL readiness: wait until the server really answers queries (DESIGN §4, step 6).

Each attempt is the libpq connection handshake with the real credentials, driven
non-blocking (`PQconnectStart`/`PQconnectPoll`, which is what `PQping` runs inside) so that it
ends at our deadline to the millisecond -- libpq's own `connect_timeout` counts whole seconds with
a 2 s floor -- and so the server's own words ("the database system is starting up") become the
"last reason" in the log. A TCP connect is not readiness: the attempt succeeds only when
`SELECT 1, pg_is_in_recovery()` answers on that connection and the server is not in recovery.

Retries happen only here, at the I/O edge, always bounded by one deadline and always logged:
`wait_for_db`, and `retry_io` for the bootstrap and the auth tables when the server restarts
under them. Passwords never reach a log line or an error message.
"""

from __future__ import annotations

import logging
import os
import select
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict
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


@dataclass(frozen=True)
class Clock:
    """Where the wait reads the time and how it pauses: the real clock, or a test's own, so
    that a deadline is checked to the millisecond and not against a loaded machine's speed."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


REAL_CLOCK = Clock()


def _wait_socket(fd: int, *, write: bool, deadline: float, clock: Clock) -> None:
    remaining = deadline - clock.monotonic()
    if remaining <= 0:
        raise _NotYet("connection attempt timed out", timed_out=True)
    ready = (
        select.select([], [fd], [], remaining) if write else select.select([fd], [], [], remaining)
    )
    if not any(ready):
        raise _NotYet("connection attempt timed out", timed_out=True)


def _handshake(conninfo: str, deadline: float, clock: Clock) -> pq.abc.PGconn:
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
            writing = status == pq.PollingStatus.WRITING
            _wait_socket(conn.socket, write=writing, deadline=deadline, clock=clock)
    except BaseException:
        conn.finish()
        raise


def _fail(raw: bytes, conninfo: str) -> Exception:
    message = raw.decode(errors="replace")
    fatal = _fatal_for(message, conninfo)
    if fatal:
        return fatal
    return _NotYet(_redact(_first_line(message), conninfo), answered="FATAL:" in message)


def _query_ready(conn: pq.abc.PGconn, conninfo: str, deadline: float, clock: Clock) -> None:
    """`SELECT 1` on the authenticated connection; a server still in recovery is not ready."""
    conn.nonblocking = 1
    conn.send_query(b"SELECT 1, pg_catalog.pg_is_in_recovery()")
    while conn.flush():
        _wait_socket(conn.socket, write=True, deadline=deadline, clock=clock)
    results = []
    while True:
        conn.consume_input()
        if conn.is_busy():
            _wait_socket(conn.socket, write=False, deadline=deadline, clock=clock)
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


def _attempt(conninfo: str, deadline: float, clock: Clock) -> None:
    attempt_deadline = min(deadline, clock.monotonic() + ATTEMPT_MAX_S)
    conn = _handshake(conninfo, attempt_deadline, clock)
    try:
        _query_ready(conn, conninfo, attempt_deadline, clock)
    finally:
        conn.finish()


# -- the wait -------------------------------------------------------------------------------


def wait_for_db(
    conninfo: str,
    *,
    timeout_ms: int | None = None,
    log: logging.Logger | None = None,
    clock: Clock = REAL_CLOCK,
) -> None:
    """Return once PostgreSQL answers `SELECT 1` with these credentials and is not in recovery.

    The total wait is bounded by `timeout_ms` (else `HOST_DB_READINESS_TIMEOUT_MS`, else 60000):
    each attempt ends by the deadline, and the last attempt runs at the deadline, not after.
    Raises `DbNotReadyError` (exit code 3) at the deadline, `DbFatalError` at once when waiting
    cannot help (wrong password, missing role or database, no pg_hba entry, bad conninfo).
    """
    logger = log or globals()["log"]
    budget_s = (readiness_timeout_ms() if timeout_ms is None else timeout_ms) / 1000
    start = clock.monotonic()
    deadline = start + budget_s
    target = describe_target(conninfo)
    reason = "no attempt yet"
    next_log = start + LOG_EVERY_S
    answered_streak = 0  # consecutive "not yet" answers from the server itself

    def wait(_: RetryCallState) -> float:
        pause = POLL_ABSENT_S
        if answered_streak:
            pause = min(POLL_MAX_S, POLL_FIRST_S * 2.0 ** (answered_streak - 1))
        return max(0.0, min(pause, deadline - clock.monotonic()))

    def after_failure(rs: RetryCallState) -> None:
        nonlocal reason, next_log, answered_streak
        err = rs.outcome.exception() if rs.outcome else None
        if isinstance(err, _NotYet) and not err.timed_out:
            answered_streak = answered_streak + 1 if err.answered else 0
        if isinstance(err, _NotYet) and (not err.timed_out or reason == "no attempt yet"):
            if err.reason != reason:
                logger.debug("database %s: %s", target, err.reason)
            reason = err.reason
        now = clock.monotonic()
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
        stop=lambda _: clock.monotonic() >= deadline,
        wait=wait,
        after=after_failure,
        sleep=clock.sleep,
        reraise=False,
    )
    try:
        retrying(_attempt, conninfo, deadline, clock)
    except RetryError:
        raise DbNotReadyError(
            f"PostgreSQL ({target}) was not ready after {budget_s:g} s: {reason}",
            f"check `systemctl status postgresql` and the journal; {TIMEOUT_ENV} sets the wait",
        ) from None
    logger.info("PostgreSQL (%s) is ready after %.3f s", target, clock.monotonic() - start)


def retry_io(
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
        stop=lambda _: time.monotonic() >= deadline,
        wait=lambda _: max(0.0, min(0.2, deadline - time.monotonic())),
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
