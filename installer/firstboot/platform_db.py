"""How the platform reaches its database: the `system_*` databases, its connection URLs and the
password first boot generated once and keeps in system.env. Shared by the platform-config step
(which writes them) and the database step (which creates the role with that password)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlencode

from installer.envfile import read_env_file
from installer.firstboot.config import DbConfig

DATABASES = ("system_ops", "system_brain", "system_skills")
DB_PASSWORD_KEY = "PLATFORM_DB_PASSWORD"  # noqa: S105 - a key name, not a password


def database_url(role: str, password: str, db: DbConfig, database: str) -> str:
    """A libpq URL for the platform; a socket directory goes in the `host` parameter."""
    auth = f"{quote(role, safe='')}:{quote(password, safe='')}"
    if db.host.startswith("/"):
        query = urlencode({"host": db.host, "port": str(db.port)})
        return f"postgresql://{auth}@/{database}?{query}"
    return f"postgresql://{auth}@{db.host}:{db.port}/{database}"


def existing_db_password(env_file: Path) -> str | None:
    """The platform's database password from an earlier run (it must never change under the
    role that already has it)."""
    try:
        return read_env_file(env_file).get(DB_PASSWORD_KEY) or None
    except FileNotFoundError:
        return None
