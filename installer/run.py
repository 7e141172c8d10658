"""The only subprocess wrapper: argv lists, never a shell; secrets on stdin; redacted logs."""

from __future__ import annotations

import logging
import os
import select
import shlex
import subprocess
import tempfile
import time
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from installer.errors import CommandFailedError, CommandTimeoutError, ProgramMissingError

log = logging.getLogger("clawdie.run")

REDACTED = "<redacted>"
# Every command is bounded: one that names no timeout gets this one.
DEFAULT_TIMEOUT_S = 600.0


def _missing(argv: list[str], err: OSError) -> ProgramMissingError:
    why = "is not installed" if isinstance(err, FileNotFoundError) else "cannot be run"
    return ProgramMissingError(argv[0], f"{why} ({err.strerror})")


def redact_argv(argv: Iterable[str], secrets: Iterable[str] = ()) -> list[str]:
    """`argv` with every occurrence of each secret replaced by a marker (for logs and errors)."""
    hidden = [s for s in secrets if s]
    out = []
    for arg in argv:
        for secret in hidden:
            arg = arg.replace(secret, REDACTED)
        out.append(arg)
    return out


def _environment(env: Mapping[str, str] | None, unset: Iterable[str]) -> dict[str, str] | None:
    """This process's environment with `env` laid over it, less `unset` (None: unchanged)."""
    drop = set(unset)
    if env is None and not drop:
        return None
    return {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in drop}


def run(
    argv: list[str],
    *,
    stdin_secret: str | None = None,
    stdin_data: bytes | None = None,
    secrets: Iterable[str] = (),
    check: bool = True,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    unset: Iterable[str] = (),
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` and return its result; raise `CommandFailedError` on a non-zero exit when `check`.

    `stdin_secret` is written to the command's standard input and never logged; any string in
    `secrets` is masked wherever it would appear in a log line or error message. `env` is laid
    over this process's environment, less the variables named in `unset`. Every command
    is bounded (`timeout`, else `DEFAULT_TIMEOUT_S`); a timeout is `CommandTimeoutError`, a
    missing program `ProgramMissingError`: never a raw exception that could quote a secret.
    """
    hidden = [*secrets, *([stdin_secret] if stdin_secret else [])]
    shown = redact_argv(argv, hidden)
    log.debug("run: %s", shlex.join(shown))
    data = stdin_secret.encode() if stdin_secret is not None else stdin_data
    full_env = _environment(env, unset)
    limit = DEFAULT_TIMEOUT_S if timeout is None else timeout
    try:
        proc = subprocess.run(
            argv,
            input=data,
            capture_output=True,
            check=False,
            cwd=cwd,
            env=full_env,
            timeout=limit,
        )
    except subprocess.TimeoutExpired:
        # its message and captured output may quote a secret: none of it is kept
        raise CommandTimeoutError(shown, limit) from None
    except (FileNotFoundError, PermissionError) as err:
        raise _missing(argv, err) from None
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
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, env=full_env)
        except (FileNotFoundError, PermissionError) as err:
            raise _missing(argv, err) from None
        with proc:
            _stream(proc, argv, errors, on_output, deadline, timeout)


def _stream(
    proc: subprocess.Popen[bytes],
    argv: list[str],
    errors: typing.IO[bytes],
    on_output: Callable[[str], None],
    deadline: float | None,
    timeout: float | None,
) -> None:
    """Pass `proc`'s output on as it arrives; bounded by `deadline`."""
    assert proc.stdout is not None  # noqa: S101 (Popen with stdout=PIPE)
    fd = proc.stdout.fileno()
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            proc.kill()
            raise CommandTimeoutError(argv, timeout or 0.0)
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
