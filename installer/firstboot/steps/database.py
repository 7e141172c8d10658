"""Steps 6 and 7: wait until PostgreSQL really answers, then the platform role, the three
`system_*` databases, the auth schema and, when the seed has one, the dashboard operator."""

from __future__ import annotations

from installer.errors import InstallerError
from installer.firstboot.config import FirstbootConfig
from installer.firstboot.context import StepContext, log
from installer.firstboot.platform_db import DATABASES, database_url, existing_db_password
from installer.stamps import StepRecord
from installer.steps import Step

NAME = "database"
LABEL = "database role, databases, operator"  # what the receipt and the console say
DEADLINE_S = 300.0
WAIT_NAME = "database-ready"
WAIT_LABEL = "waiting for PostgreSQL"
WAIT_DEFAULT_MS = 60_000  # HOST_DB_READINESS_TIMEOUT_MS when not set


def wait(ctx: StepContext) -> None:
    """Step 6: a libpq ping, then `SELECT 1` with the admin credentials, bounded in time."""
    from installer.firstboot.db import ready

    ready.wait_for_db(
        ctx.config.db.admin_conninfo, timeout_ms=ctx.config.db.readiness_timeout_ms, log=log
    )


def wait_deadline_s(config: FirstbootConfig) -> float:
    """The wait's deadline: the readiness timeout first boot waits for PostgreSQL."""
    from installer.firstboot.db.ready import readiness_timeout_ms

    wait_ms = config.db.readiness_timeout_ms
    if wait_ms is None:
        try:
            wait_ms = readiness_timeout_ms()
        except InstallerError:  # a malformed variable: the wait itself reports it
            wait_ms = WAIT_DEFAULT_MS
    return wait_ms / 1000


def wait_step(config: FirstbootConfig) -> Step[StepContext]:
    """Step 6 as `config` times it; it runs on every run, stamped or not (no stamp of its own)."""
    return Step(WAIT_NAME, WAIT_LABEL, wait_deadline_s(config), wait, stamped=False)


def apply(ctx: StepContext) -> StepRecord:
    """Step 7: bootstrap; idempotent (a rerun creates nothing twice)."""
    from installer.firstboot.db import auth, bootstrap

    role = ctx.seed.accounts.service_account
    password = existing_db_password(ctx.paths.system_env)
    if password is None:
        raise RuntimeError(
            "system.env has no database password; the platform-config step must run first"
        )
    bootstrap.bootstrap_platform(
        ctx.config.db.admin_conninfo, role=role, password=password, databases=DATABASES
    )
    ops = database_url(role, password, ctx.config.db, "system_ops")
    auth.ensure_auth_schema(ops)
    # The record states what holds now, so a run resumed after a power cut reports the same.
    created = [
        f"database role {role}",
        f"databases {', '.join(DATABASES)} (owner {role})",
        "dashboard tables (Better Auth schema) in system_ops",
    ]
    skipped: list[str] = []
    operator = ctx.seed.accounts.operator
    email = operator.email if operator else None
    if operator is not None:
        name = ctx.seed.host.assistant_name
        auth.create_operator(
            ops, operator.email, operator.password.get_secret_value(), name=f"{name} operator"
        )
    existing = auth.operator_email(ops)
    if existing is not None and email is not None and existing == email.lower():
        created.append(f"dashboard operator {existing}")
        state = f"operator {existing} can sign in"
    elif existing is not None:
        if email:
            skipped.append(f"dashboard operator: {existing} already exists; OPERATOR_EMAIL unused")
        state = f"operator {existing} (already there) can sign in"
    else:
        skipped.append("dashboard operator: no OPERATOR_EMAIL/OPERATOR_PASSWORD in setup.txt")
        state = "locked until `set-operator EMAIL` is run on the box"
    log.info("database: %s; dashboard %s", "; ".join(created), state)
    return StepRecord(created=tuple(created), skipped=tuple(skipped), facts={"dashboard": state})


STEP = Step(NAME, LABEL, DEADLINE_S, apply)
