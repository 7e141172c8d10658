"""Step 3b, network (DESIGN §7): the seed's network written into the target
(installer/net/files.py says what and why) and, on the running system, brought up
(installer/net/live.py). Anything but joined-with-an-address is left to fix (the `to_fix` fact
makes first boot `degraded`), never a failure: first boot goes on offline."""

from __future__ import annotations

from installer.firstboot.context import StepContext, log
from installer.net.files import describe, write_files
from installer.net.live import bring_up
from installer.stamps import TO_FIX, StepRecord
from installer.steps import Step

NAME = "network"
LABEL = "the wired and Wi-Fi network"  # what the receipt and the console say
DEADLINE_S = 120.0


def apply(ctx: StepContext) -> StepRecord:
    paths = ctx.paths
    network = ctx.seed.network
    changed = write_files(paths, network)
    done = describe(paths, network)
    live = bring_up(paths, ctx.seed, changed)
    log.info("network: %s%s", "; ".join(done), "" if changed else " (already so)")
    for line in [*live.done, *live.notes]:
        log.info("network: %s", line)
    # The record states what holds now: the same after a resumed run as after a clean one. No
    # fact asks for a systemd reload: the Wi-Fi unit is new, and a new unit is found on start.
    facts = {TO_FIX: "\n".join(live.to_fix)} if live.to_fix else {}
    return StepRecord(created=(*done, *live.done), notes=tuple(live.notes), facts=facts)


STEP = Step(NAME, LABEL, DEADLINE_S, apply)
