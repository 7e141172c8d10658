"""Steps 6 and 7: wait until PostgreSQL really answers, then the platform role, the three
`system_*` databases, the auth schema and, when the seed has one, the dashboard operator."""

from __future__ import annotations

from installer.stamps import StepRecord
from installer.steps import StepContext, log
from installer.steps.platform_env import (
    DATABASES,
    database_url,
    existing_db_password,
)

NAME = "database"
WAIT_NAME = "database-ready"


def wait(ctx: StepContext) -> None:
    """Step 6: a libpq ping, then `SELECT 1` with the admin credentials, bounded in time."""
    from installer import db

    db.wait_for_db(
        ctx.config.db.admin_conninfo, timeout_ms=ctx.config.db.readiness_timeout_ms, log=log
    )


def apply(ctx: StepContext) -> StepRecord:
    """Step 7: bootstrap; idempotent (a rerun creates nothing twice)."""
    from installer import db

    role = ctx.require("SERVICE_ACCOUNT")
    password = existing_db_password(ctx.paths.system_env)
    if password is None:
        raise RuntimeError(
            "system.env has no database password; the platform-config step must run first"
        )
    created = list(
        db.bootstrap_platform(
            ctx.config.db.admin_conninfo, role=role, password=password, databases=DATABASES
        )
    )
    ops = database_url(role, password, ctx.config.db, "system_ops")
    db.ensure_auth_schema(ops)
    email = ctx.value("OPERATOR_EMAIL")
    operator_password = ctx.value("OPERATOR_PASSWORD")
    skipped: list[str] = []
    if email and operator_password:
        name = ctx.value("ASSISTANT_NAME") or "Operator"
        if db.create_operator(ops, email, operator_password, name=f"{name} operator"):
            created.append(f"dashboard operator {email}")
            state = f"operator {email} created"
        else:
            skipped.append("dashboard operator: one already exists (left as it is)")
            state = "an operator already exists"
    elif db.operator_exists(ops):
        state = "an operator already exists"
    else:
        skipped.append("dashboard operator: no OPERATOR_EMAIL/OPERATOR_PASSWORD in setup.txt")
        state = "locked until `set-operator EMAIL` is run on the box"
    log.info("database: %s", "; ".join(created) or "already bootstrapped")
    return StepRecord(created=tuple(created), skipped=tuple(skipped), facts={"dashboard": state})
