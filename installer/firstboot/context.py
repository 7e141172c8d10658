"""What a first-boot step works with (`StepContext`) and the log it writes to. Each step module
imports this, never another step."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from installer.firstboot.config import FirstbootConfig
from installer.paths import TargetPaths
from installer.seed.resolve import SeedCheck

log = logging.getLogger("clawdie.firstboot")


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
