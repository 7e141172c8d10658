"""The only subprocess wrapper: argv lists, never a shell; secrets on stdin; redacted logs."""

from __future__ import annotations

import logging
import os
import select
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
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


def run_streaming(
    argv: list[str],
    on_output: Callable[[str], None],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> None:
    """Run `argv`, passing its standard output to `on_output` as it arrives (progress bars).

    Standard error is kept aside for the error message; raises `CommandFailedError` on a non-zero
    exit and kills the command at `timeout` seconds.
    """
    log.debug("run: %s", shlex.join(argv))
    full_env = None if env is None else {**os.environ, **env}
    deadline = None if timeout is None else time.monotonic() + timeout
    with (
        tempfile.TemporaryFile() as errors,
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, env=full_env) as proc,
    ):
        assert proc.stdout is not None  # noqa: S101 (Popen with stdout=PIPE)
        fd = proc.stdout.fileno()
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                proc.kill()
                raise CommandFailedError(argv, -9, f"killed: no end after {timeout:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            on_output(chunk.decode(errors="replace"))
        returncode = proc.wait()
        if returncode != 0:
            errors.seek(0)
            tail = errors.read().decode(errors="replace").strip().splitlines()[-3:]
            raise CommandFailedError(argv, returncode, " | ".join(tail))
