"""What a first-boot step works with (`StepContext`) and the log it writes to. Each step module
imports this, never another step."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from installer.firstboot.config import FirstbootConfig
from installer.paths import TargetPaths

if TYPE_CHECKING:  # the seed model (pydantic) loads with the runner, not with every helper here
    from installer.seed.resolved import ResolvedSeed

log = logging.getLogger("clawdie.firstboot")
# A step record's fact: "yes" when the step changed a systemd unit file (then a reload is due).
UNITS_CHANGED = "units_changed"


@dataclass(frozen=True)
class StepContext:
    """What a step works with: the config, the target's paths, the resolved seed and the
    seed's warnings (they go into the resolution record)."""

    config: FirstbootConfig
    paths: TargetPaths
    seed: ResolvedSeed
    warnings: tuple[str, ...] = ()
