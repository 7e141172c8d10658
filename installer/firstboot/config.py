"""First boot's frozen inputs: where the target is, which seed, how to reach PostgreSQL, how to
start the platform and report. Built by `clawdie-setup firstboot` (or the demo), read by the
runner and the steps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DbConfig:
    """How first boot reaches PostgreSQL: the admin connection for bootstrap, and where the
    platform connects (a Unix socket directory or host, and port)."""

    admin_conninfo: str = "host=/run/postgresql user=postgres dbname=postgres"
    host: str = "/run/postgresql"
    port: int = 5432
    readiness_timeout_ms: int | None = None


@dataclass(frozen=True)
class FirstbootConfig:
    """Frozen inputs of one first-boot run."""

    root: Path = Path("/")
    seed: Path | None = None
    db: DbConfig = DbConfig()
    platform_start: Sequence[str] | None = ("systemctl", "start", "clawdie.service")
    # run before the platform starts, only when a step changed a unit file; None: never
    units_reload: Sequence[str] | None = None
    telegram_api: str | None = None
    openrouter_api: str | None = None
    wizard: str = "auto"  # auto | never
    wizard_timeout: float | None = 900.0
