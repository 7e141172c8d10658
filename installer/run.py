"""The only subprocess wrapper: argv lists, never a shell; secrets on stdin; redacted logs."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from installer.errors import CommandFailedError

log = logging.getLogger("clawdie.run")

REDACTED = "<redacted>"


def redact_argv(argv: Iterable[str], secrets: Iterable[str] = ()) -> list[str]:
    """`argv` with every occurrence of each secret replaced by a marker (for logs and errors)."""
    hidden = [s for s in secrets if s]
    out = []
    for arg in argv:
        for secret in hidden:
            arg = arg.replace(secret, REDACTED)
        out.append(arg)
    return out


def run(
    argv: list[str],
    *,
    stdin_secret: str | None = None,
    stdin_data: bytes | None = None,
    secrets: Iterable[str] = (),
    check: bool = True,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` and return its result; raise `CommandFailedError` on a non-zero exit when `check`.

    `stdin_secret` is written to the command's standard input and never logged; any string in
    `secrets` is masked wherever it would appear in a log line or error message.
    """
    hidden = [*secrets, *([stdin_secret] if stdin_secret else [])]
    shown = redact_argv(argv, hidden)
    log.debug("run: %s", shlex.join(shown))
    data = stdin_secret.encode() if stdin_secret is not None else stdin_data
    full_env = None if env is None else {**os.environ, **env}
    proc = subprocess.run(
        argv,
        input=data,
        capture_output=True,
        check=False,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        message = " | ".join(redact_argv(tail, hidden))
        raise CommandFailedError(shown, proc.returncode, message)
    return proc
