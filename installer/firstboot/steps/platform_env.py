"""Step 5, platform config: /etc/clawdie/system.env (0600, owned by the service account) with the
resolved settings, keys and database URLs, and /etc/clawdie/setup.resolved.json with the
non-secret resolution and its provenance."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from installer import __version__, redact
from installer.firstboot.stamps import StepRecord
from installer.firstboot.steps import DbConfig, StepContext, log
from installer.firstboot.steps.accounts import read_account
from installer.fsutil import ensure_dir, write_atomic
from installer.paths import SERVICE_NAME

if TYPE_CHECKING:  # `wait-db` reads system.env with parse_env_file: no profile code for that
    from installer.seed.profiles import Setting

NAME = "platform-config"
DATABASES = ("system_ops", "system_brain", "system_skills")
DB_PASSWORD_KEY = "PLATFORM_DB_PASSWORD"  # noqa: S105 - a key name, not a password
# A step record's fact: "yes" when the step changed a systemd unit file (then a reload is due).
UNITS_CHANGED = "units_changed"

# Settings that are for the installer only and do not go to the platform's environment.
_NOT_FOR_PLATFORM = frozenset(
    {
        "OPERATOR_PASSWORD",
        "CLAWDIE_USER_PASSWORD",
        "SSH_AUTHORIZED_KEY",
        "INSTALL_MODE",
        "TARGET_DISK",
        "ERASE_TARGET_DISK",
        "KEYMAP",
        "LOCALE",
        "SEED_SCRUB",
    }
)


def parse_env_file(text: str) -> dict[str, str]:
    """Read a file written by `render_env_file` (systemd EnvironmentFile syntax)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, raw = line.split("=", 1)
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        values[key] = raw
    return values


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit_dropin(account: str) -> str:
    """The platform unit's drop-in: run as the service account (read at the next reload)."""
    return (
        "# Written by clawdie-setup firstboot: the platform runs as the service account.\n"
        f"[Service]\nUser={account}\nGroup={account}\n"
    )


def render_env_file(values: Mapping[str, str]) -> str:
    """KEY="value" lines in systemd EnvironmentFile syntax."""
    lines = [
        f"# Written by clawdie-setup {__version__} first boot. Holds secrets: keep it 0600.",
        *(f"{key}={_quote(value)}" for key, value in values.items()),
    ]
    return "\n".join(lines) + "\n"


def database_url(role: str, password: str, db: DbConfig, database: str) -> str:
    """A libpq URL for the platform; a socket directory goes in the `host` parameter."""
    auth = f"{quote(role, safe='')}:{quote(password, safe='')}"
    if db.host.startswith("/"):
        query = urlencode({"host": db.host, "port": str(db.port)})
        return f"postgresql://{auth}@/{database}?{query}"
    return f"postgresql://{auth}@{db.host}:{db.port}/{database}"


def render_platform_env(
    settings: list[Setting], role: str, db_password: str, db: DbConfig
) -> dict[str, str]:
    """The platform's environment: resolved settings, keys, and database access."""
    values = {s.key: s.value for s in settings if s.key not in _NOT_FOR_PLATFORM}
    values["TZ"] = values.get("TIMEZONE", "UTC")
    values["PLATFORM_DB_ROLE"] = role
    values[DB_PASSWORD_KEY] = db_password
    values["DATABASE_URL"] = database_url(role, db_password, db, "system_ops")
    values["SYSTEM_BRAIN_DATABASE_URL"] = database_url(role, db_password, db, "system_brain")
    values["SYSTEM_SKILLS_DATABASE_URL"] = database_url(role, db_password, db, "system_skills")
    values["HOST_DB_READINESS_TIMEOUT_MS"] = str(db.readiness_timeout_ms or 60000)
    return values


def render_resolved_json(settings: list[Setting], mapping_version: int, warnings: list[str]) -> str:
    """The non-secret resolution with provenance; secrets appear only as "set"."""
    doc: dict[str, Any] = {
        "format": "clawdie-setup-resolved/1",
        "installer_version": __version__,
        "profile_mapping_version": mapping_version,
        "settings": [
            {
                "key": s.key,
                "value": None if s.secret else s.value,
                "secret": s.secret,
                "source": s.source.describe(),
            }
            for s in settings
            if s.key not in {"OPERATOR_PASSWORD", "CLAWDIE_USER_PASSWORD"}
        ],
        "warnings": warnings,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def existing_db_password(env_file: Path) -> str | None:
    """The platform's database password from an earlier run (it must never change under the
    role that already has it)."""
    try:
        return parse_env_file(env_file.read_text()).get(DB_PASSWORD_KEY) or None
    except OSError:
        return None


def apply(ctx: StepContext) -> StepRecord:
    paths = ctx.paths
    role = ctx.require("SERVICE_ACCOUNT")
    account = read_account(paths.passwd, role)
    uid, gid = (account.uid, account.gid) if account else (-1, -1)
    db_password = existing_db_password(paths.system_env) or secrets.token_urlsafe(32)
    redact.register(db_password)
    settings = list(ctx.check.settings)
    env = render_platform_env(settings, role, db_password, ctx.config.db)

    ensure_dir(paths.config_dir, 0o750, 0, gid if gid != -1 else 0)
    write_atomic(paths.system_env, render_env_file(env), mode=0o600, uid=uid, gid=gid)
    warnings = [w.message for w in ctx.check.warnings]
    write_atomic(
        paths.resolved_json,
        render_resolved_json(settings, ctx.check.mapping_version, warnings),
        mode=0o644,
    )
    ensure_dir(paths.platform_unit_dropin.parent, 0o755)
    # The image ships the default account's drop-in: only another account changes a unit file,
    # and only then does systemd need a reload (the runner does it before starting the platform).
    units_changed = write_atomic(paths.platform_unit_dropin, render_unit_dropin(role), mode=0o644)
    written = (paths.system_env, paths.resolved_json, paths.platform_unit_dropin)
    created = [f"/{p.relative_to(paths.root)}" for p in written]
    log.info("platform config: %s", ", ".join(created))
    return StepRecord(
        created=tuple(created),
        facts={
            "service": SERVICE_NAME,
            "db_role": role,
            UNITS_CHANGED: "yes" if units_changed else "no",
        },
    )
