"""The platform as a service: stop and start it (systemctl on the box; any commands in a test),
and run a release's own programs (its migration, its readiness check) as the service account
(`runuser`) in the release's folder, with `CLAWDIE_SYSTEM_ENV` naming the platform's settings
(the platform reads its database password there itself: it is never an argument)."""

from __future__ import annotations

import configparser
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from installer.errors import CommandFailedError, InstallerError
from installer.paths import SERVICE_NAME, TargetPaths
from installer.run import run

READY_POLL_S = 1.0


@dataclass(frozen=True)
class Service:
    """How this run reaches the platform. `start`/`stop` None: left alone (a sandbox)."""

    paths: TargetPaths
    start_command: Sequence[str] | None = ("systemctl", "start", f"{SERVICE_NAME}.service")
    stop_command: Sequence[str] | None = ("systemctl", "stop", f"{SERVICE_NAME}.service")
    reload_command: Sequence[str] | None = ("systemctl", "daemon-reload")

    def account(self) -> str | None:
        """The service account (the unit's drop-in's `User=`) on the running system; None in a
        sandbox root, where the release's programs run as this process does."""
        if not self.paths.is_live_system:
            return None
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        try:
            parser.read_string(self.paths.platform_unit_dropin.read_text(encoding="utf-8"))
            return parser.get("Service", "User", fallback=SERVICE_NAME)
        except (OSError, configparser.Error):
            return SERVICE_NAME

    def stop(self) -> None:
        if self.stop_command is not None:
            run(list(self.stop_command), timeout=120)

    def start(self) -> None:
        if self.start_command is not None:
            run(list(self.start_command), timeout=120)

    def reload_units(self) -> None:
        if self.reload_command is not None:
            run(list(self.reload_command), timeout=60)

    def run_in(self, folder: Path, command: Sequence[str], timeout: float) -> None:
        """A release's program, as the service account, in its folder."""
        argv = [str(folder / command[0]), *command[1:]]
        account = self.account()
        if account is not None:
            argv = ["runuser", "-u", account, "--", *argv]
        env = {"CLAWDIE_SYSTEM_ENV": str(self.paths.system_env), "CLAWDIE_RELEASE": str(folder)}
        run(argv, cwd=folder, env=env, timeout=timeout)

    def wait_ready(
        self,
        folder: Path,
        command: Sequence[str],
        deadline_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Poll the readiness check until it passes; `InstallerError` with its last words at
        the deadline. No check (an image's first release): started counts as ready."""
        if not command:
            return
        end = clock() + deadline_s
        last = "it never answered"
        while True:
            try:
                self.run_in(folder, command, timeout=max(1.0, min(30.0, end - clock())))
                return
            except CommandFailedError as err:  # includes a timeout of the check itself
                last = err.stderr_tail or err.message
            if clock() >= end:
                raise InstallerError(
                    f"not ready within {deadline_s:g} s ({last})",
                    "the release's readiness check never passed",
                )
            sleep(READY_POLL_S)
