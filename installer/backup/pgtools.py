"""pg_dump and pg_restore as streams: a dump goes into the archive as it is made, a restore is
fed from the archive as it is read. The admin's connection reaches them in the environment
(libpq's PG* variables), never in an argument."""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from typing import IO

from psycopg.conninfo import conninfo_to_dict

from installer.errors import CommandFailedError, ProgramMissingError

F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), named in Python 3.10+ only on some builds
READ_BLOCK = 1 << 20
READ_AHEAD = 32 << 20

_ENV_OF = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
    "connect_timeout": "PGCONNECT_TIMEOUT",
}


def libpq_env(conninfo: str, database: str) -> dict[str, str]:
    """The PG* variables for `conninfo`, connected to `database`."""
    env = {_ENV_OF[k]: str(v) for k, v in conninfo_to_dict(conninfo).items() if k in _ENV_OF}
    env["PGDATABASE"] = database
    return env


def _start(argv: list[str], env: dict[str, str], **kw: object) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(argv, env={**os.environ, **env}, **kw)  # type: ignore[call-overload, no-any-return]
    except (FileNotFoundError, PermissionError) as err:
        why = "is not installed" if isinstance(err, FileNotFoundError) else "cannot be run"
        raise ProgramMissingError(argv[0], f"{why} ({err.strerror})") from None


def _tail(errors: IO[bytes]) -> str:
    errors.seek(0)
    return " | ".join(errors.read().decode(errors="replace").strip().splitlines()[-3:])


def _read_ahead(fd: int, blocks: queue.Queue[bytes | None], stop: threading.Event) -> None:
    """pg_dump's output read as it comes (so pg_dump never waits while the archive is being
    encrypted), in blocks onto `blocks`; None at its end."""
    while not stop.is_set():
        block = os.read(fd, READ_BLOCK)
        while not stop.is_set():
            try:
                blocks.put(block or None, timeout=0.5)
                break
            except queue.Full:
                continue
        if not block:
            return


def dump_chunks(conninfo: str, database: str, size: int) -> Iterator[bytes]:
    """`pg_dump -Fc DATABASE` as chunks of at most `size` bytes; CommandFailedError at the end
    when pg_dump failed (the chunks given are then not a dump). A thread reads ahead (at most
    READ_AHEAD bytes), so the dump and its encryption run side by side."""
    argv = ["pg_dump", "--format=custom", "--no-password"]
    with tempfile.TemporaryFile() as errors:
        proc = _start(argv, libpq_env(conninfo, database), stdout=subprocess.PIPE, stderr=errors)
        assert proc.stdout is not None  # noqa: S101 (stdout=PIPE)
        fd = proc.stdout.fileno()
        with contextlib.suppress(OSError):  # a larger pipe: fewer, larger reads
            fcntl.fcntl(fd, F_SETPIPE_SZ, READ_BLOCK)
        blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=READ_AHEAD // READ_BLOCK)
        stop = threading.Event()
        reader = threading.Thread(target=_read_ahead, args=(fd, blocks, stop), daemon=True)
        reader.start()
        try:
            pending = bytearray()
            while (block := blocks.get()) is not None:
                pending += block
                while len(pending) >= size:
                    yield bytes(pending[:size])
                    del pending[:size]
            if pending:
                yield bytes(pending)
        finally:
            stop.set()
            if proc.poll() is None and reader.is_alive():
                proc.kill()  # the archive stopped taking the dump
            reader.join()
            proc.stdout.close()
            code = proc.wait()
        if code != 0:
            raise CommandFailedError([*argv, database], code, _tail(errors))


class Restorer:
    """`pg_restore` into `database`, in one transaction, fed chunk by chunk: `feed()` then
    `finish()`; `abort()` kills it before its input ends, so nothing is committed."""

    def __init__(self, conninfo: str, database: str) -> None:
        self.argv = [
            "pg_restore",
            "--exit-on-error",
            "--single-transaction",
            "--no-password",
            f"--dbname={database}",
        ]
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed by finish or abort
        self.proc = _start(
            self.argv,
            libpq_env(conninfo, database),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self.errors,
        )

    def feed(self, chunk: bytes) -> None:
        assert self.proc.stdin is not None  # noqa: S101 (stdin=PIPE)
        try:
            self.proc.stdin.write(chunk)
        except BrokenPipeError:
            self.finish()  # it stopped reading: its exit says why

    def finish(self, timeout: float = 3600.0) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.abort()
            raise CommandFailedError(self.argv, -9, "timed out") from None
        tail = _tail(self.errors)
        self.errors.close()
        if code != 0:
            raise CommandFailedError(self.argv, code, tail)

    def abort(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.errors.close()
