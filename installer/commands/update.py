"""`clawdie-setup update FILE`: apply a signed platform release (FILE and FILE.minisig) to this
box, or to the one under `--root` (DESIGN §9). The signature (the image's publisher key), the
name, a newer version (`--allow-downgrade` for an older one) and the Debian packages it needs are
checked before anything changes; then the release is unpacked beside the running one, the
platform stopped, its databases dumped, the migration run, the link switched, the release
started and its readiness waited for. Not ready, or the migration failed: everything goes back,
the databases from the dump, and the run says `rolled back: <cause>`.

`--channel [URL]` asks the update channel (URL, else the box's own: /etc/clawdie/update-channel,
from the image or install-platform --update-channel) for a newer release and applies it like a
file; no answer is `not checked` (exit 0): a box offline keeps what it runs.
clawdie-update-check.timer runs it daily, inside the update window (masked by UPDATES=off).

`--resume` is what the platform unit runs as root before every start: an update a power cut
interrupted is finished (when it was proven ready) or rolled back, so the platform never starts
on a mix of old code and new data; with no update under way it does nothing.

Exit codes: 0 applied (or nothing to do), 1 refused (nothing changed) or rolled back, 2 usage.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from installer.commands._update_options import add_update_target_arguments, update_config

if TYPE_CHECKING:
    from installer.update.run import UpdateRun

HELP = "apply a signed platform release (rolls back by itself when it is not ready)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("file", nargs="?", type=Path, help="the release (FILE.minisig beside it)")
    what.add_argument(
        "--channel",
        nargs="?",
        const="",
        metavar="URL",
        help="ask the update channel (URL, else the box's own) and apply a newer release",
    )
    what.add_argument(
        "--resume",
        action="store_true",
        help="finish or roll back an interrupted update (the platform unit's ExecStartPre)",
    )
    parser.add_argument(
        "--allow-downgrade", action="store_true", help="apply an older release (root only)"
    )
    add_update_target_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from installer.errors import UsageError
    from installer.faults import arm_from_environment
    from installer.update.run import UpdateRun

    arm_from_environment()
    if os.geteuid() != 0 and (args.allow_downgrade or Path(args.root).resolve() == Path("/")):
        raise UsageError(
            "update changes the platform, its databases and its unit: it runs as root",
            "run it with sudo",
        )
    update = UpdateRun(update_config(args, allow_downgrade=args.allow_downgrade))
    if args.channel is not None:
        return _from_channel(update, args.channel)
    outcome = update.resume(at_boot=True) if args.resume else update.apply(args.file)
    if outcome.status == "nothing to do":
        print(f"update: {outcome.line}")
    return outcome.exit_code


def _from_channel(update: UpdateRun, given: str) -> int:
    from installer.update.channel import ChannelCheck, channel_url

    url = channel_url(update.paths.config_dir, given or None)
    if url is None:
        print(
            "update: not checked: this box has no update channel (give one: update --channel URL)"
        )
        return 0
    outcome = ChannelCheck(update, url).check()
    if outcome.status in ("nothing to do", "not checked"):
        print(f"update: {outcome.line}")
    return outcome.exit_code
