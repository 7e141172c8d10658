"""First-boot steps: one small module each, `apply(ctx) -> StepRecord`, idempotent, checking
before acting. `installer.firstboot.runner` runs them in order and stamps each one."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from installer.paths import TargetPaths

if TYPE_CHECKING:  # the seed model (pydantic) loads with the runner, not with every helper here
    from installer.seed.resolve import SeedCheck

log = logging.getLogger("clawdie.firstboot")


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
    wizard: str = "auto"  # auto | never
    wizard_timeout: float | None = 900.0


@dataclass
class StepContext:
    """What a step works with: the config, the target's paths and the valid, resolved seed."""

    config: FirstbootConfig
    paths: TargetPaths
    check: SeedCheck

    def value(self, key: str) -> str | None:
        return self.check.value(key)

    def require(self, key: str) -> str:
        value = self.check.value(key)
        if value is None:
            raise KeyError(key)
        return value
