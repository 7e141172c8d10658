"""A stand-in for systemd in update tests: `start BOX` runs the platform the link names (as
clawdie.service would: through `/opt/clawdie/platform`, reading the box's system.env) in the
background, its output in BOX/platform.log and its release in BOX/platform.runs; `stop BOX`
ends it. Run as: python -m tests.helpers.platform_service start|stop BOX
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path


def start(box: Path) -> int:
    root = box / "root"
    link = root / "opt/clawdie/platform"
    manifest = tomllib.loads((link / "platform.toml").read_text())
    argv = [str(link / manifest["start"][0]), *manifest["start"][1:]]
    env = {**os.environ, "CLAWDIE_SYSTEM_ENV": str(root / "etc/clawdie/system.env")}
    with open(box / "platform.log", "ab") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=log, env=env, start_new_session=True, cwd=link
        )
    (box / "platform.pid").write_text(f"{proc.pid}\n")
    with open(box / "platform.runs", "a") as runs:
        runs.write(f"{manifest['version']}\n")
    return 0


def stop(box: Path) -> int:
    pidfile = box / "platform.pid"
    if not pidfile.exists():
        return 0
    pid = int(pidfile.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
        for _ in range(100):
            os.killpg(pid, 0)
            time.sleep(0.05)
        os.killpg(pid, signal.SIGKILL)
    pidfile.unlink()
    return 0


if __name__ == "__main__":
    action, where = sys.argv[1], Path(sys.argv[2])
    sys.exit(start(where) if action == "start" else stop(where))
