"""First-boot steps: one small module each, `apply(ctx) -> StepRecord`, idempotent, checking
before acting. `installer.firstboot.runner` runs them in order and stamps each one."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from installer.paths import TargetPaths
from installer.seed.resolved import ResolvedSeed

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
    telegram_api: str | None = None
    wizard: str = "auto"  # auto | never
    wizard_timeout: float | None = 900.0


@dataclass(frozen=True)
class StepContext:
    """What a step works with: the config, the target's paths, the resolved seed and the
    seed's warnings (they go into the resolution record)."""

    config: FirstbootConfig
    paths: TargetPaths
    seed: ResolvedSeed
    warnings: tuple[str, ...] = ()
