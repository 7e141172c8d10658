"""Step 5, platform config: /etc/clawdie/system.env (0640, root's, group of the service account)
with the resolved settings, keys, database URLs and the dashboard's session secret, and
/etc/clawdie/setup.resolved.json with the non-secret resolution and its provenance."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from installer import __version__, redact
from installer.envfile import read_env_file, render_env_file
from installer.firstboot.config import DbConfig
from installer.firstboot.context import UNITS_CHANGED, StepContext, log
from installer.firstboot.platform_db import DB_PASSWORD_KEY, database_url, existing_db_password
from installer.fsutil import ensure_dir, write_atomic
from installer.passwd import read_account
from installer.paths import SERVICE_NAME
from installer.seed.model import keys_where
from installer.stamps import StepRecord
from installer.steps import Step

if TYPE_CHECKING:  # `wait-db` reads system.env with parse_env_file: no profile code for that
    from installer.seed.profiles import Setting

NAME = "platform-config"
LABEL = "the platform's configuration"  # what the receipt and the console say
DEADLINE_S = 60.0
# The key the dashboard's Better Auth signs its session cookies with: made on the box at first
# boot (never at image build, so no two boxes share it), kept across runs (a new one would sign
# every operator out), only in system.env (root's file, readable by the service account's group).
AUTH_SECRET_KEY = "BETTER_AUTH_SECRET"  # noqa: S105 - a key name, not a secret

# Settings that are for the installer only and do not go to the platform's environment (the
# network step writes the network's into the system's configuration), as each key declares.
_NOT_FOR_PLATFORM = keys_where(lambda s: not s.platform)
# The login passwords live only as their hashes (the database, /etc/shadow): not in the record.
_NOT_RECORDED = keys_where(lambda s: s.login_password)


def render_unit_dropin(account: str) -> str:
    """The platform unit's drop-in: run as the service account (read at the next reload)."""
    return (
        "# Written by clawdie-setup firstboot: the platform runs as the service account.\n"
        f"[Service]\nUser={account}\nGroup={account}\n"
    )


def render_platform_env(
    settings: list[Setting], role: str, db_password: str, db: DbConfig
) -> dict[str, str]:
    """The platform's environment: resolved settings, keys, and database access."""
    values = {s.key: s.reveal() for s in settings if s.key not in _NOT_FOR_PLATFORM}
    values["TZ"] = values.get("TIMEZONE", "UTC")
    values["PLATFORM_DB_ROLE"] = role
    values[DB_PASSWORD_KEY] = db_password
    values["DATABASE_URL"] = database_url(role, db_password, db, "system_ops")
    values["SYSTEM_BRAIN_DATABASE_URL"] = database_url(role, db_password, db, "system_brain")
    values["SYSTEM_SKILLS_DATABASE_URL"] = database_url(role, db_password, db, "system_skills")
    values["HOST_DB_READINESS_TIMEOUT_MS"] = str(db.readiness_timeout_ms or 60000)
    return values


def render_resolved_json(settings: list[Setting], mapping_version: int, warnings: list[str]) -> str:
    """The non-secret resolution with provenance (`source` in words, `origin` as data:
    `Source.to_record`); secrets appear only as "set"."""
    doc: dict[str, Any] = {
        "format": "clawdie-setup-resolved/1",
        "installer_version": __version__,
        "profile_mapping_version": mapping_version,
        "settings": [
            {
                "key": s.key,
                "value": None if s.secret else s.reveal(),
                "secret": s.secret,
                "source": s.source.describe(),
                "origin": s.source.to_record(),
            }
            for s in settings
            if s.key not in _NOT_RECORDED
        ],
        "warnings": warnings,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def apply(ctx: StepContext) -> StepRecord:
    paths = ctx.paths
    role = ctx.seed.accounts.service_account
    account = read_account(paths.passwd, role)
    gid = account.gid if account else -1
    db_password = existing_db_password(paths.system_env) or secrets.token_urlsafe(32)
    redact.register(db_password)
    settings = list(ctx.seed.settings)
    env = render_platform_env(settings, role, db_password, ctx.config.db)
    env[AUTH_SECRET_KEY] = existing_auth_secret(paths.system_env) or secrets.token_urlsafe(32)
    redact.register(env[AUTH_SECRET_KEY])

    ensure_dir(paths.config_dir, 0o750, 0, gid if gid != -1 else 0)
    # Root's file that the platform reads (DESIGN §4): root:<service group> 0640, so nothing the
    # platform does can change what root later reads from it (adopt, the database password).
    # Its keys and token: the version this one replaces is overwritten, not left in freed blocks.
    write_atomic(paths.system_env, render_env_file(env), mode=0o640, uid=0, gid=gid, scrub_old=True)
    write_atomic(
        paths.resolved_json,
        render_resolved_json(settings, ctx.seed.models.mapping_version, list(ctx.warnings)),
        mode=0o644,
    )
    ensure_dir(paths.platform_unit_dropin.parent, 0o755)
    # The image ships the default account's drop-in: only another account changes a unit file,
    # and only then does systemd need a reload (the runner does it before starting the platform).
    # A power cut between the write and the stamp must not lose the reload: the marker is made
    # durable before the drop-in changes and stays until the runner has reloaded.
    dropin = render_unit_dropin(role)
    if _read_or_none(paths.platform_unit_dropin) != dropin:
        write_atomic(paths.units_reload_marker, "the platform's unit drop-in changed\n", mode=0o600)
    write_atomic(paths.platform_unit_dropin, dropin, mode=0o644)
    units_changed = paths.units_reload_marker.exists()
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


def existing_auth_secret(env_file: Path) -> str | None:
    """The dashboard's session secret from an earlier run (a new one would end every session)."""
    try:
        return read_env_file(env_file).get(AUTH_SECRET_KEY) or None
    except FileNotFoundError:
        return None


def _read_or_none(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


STEP = Step(NAME, LABEL, DEADLINE_S, apply)
