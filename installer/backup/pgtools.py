"""pg_dump and pg_restore as streams: a dump goes into the archive as it is made, a restore is
fed from the archive as it is read. The admin's connection reaches them in the environment
(libpq's PG* variables), never in an argument.

A backup starts every database's pg_dump at once: each compresses on its own core while there
is one, and the archive takes them in order, the later ones read ahead (at most READ_AHEAD
bytes each, then their pg_dump waits). Their output is read in whole READ_BLOCK blocks, which
go into the archive as they are (no copy) - what once made the backup 1.4x the bare tools'
time is the per-piece work of Python, not the dump."""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import queue
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
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


def _read_ahead(out: IO[bytes], blocks: queue.Queue[bytes | None], stop: threading.Event) -> None:
    """pg_dump's output read as it comes (so pg_dump never waits while the archive is being
    encrypted, or while an earlier database is), in whole blocks (however small the pieces
    pg_dump writes) onto `blocks`; None at its end."""
    while not stop.is_set():
        block = out.read(READ_BLOCK)
        while not stop.is_set():
            try:
                blocks.put(block or None, timeout=0.5)
                break
            except queue.Full:
                continue
        if not block:
            return


class Blocks:
    """A chunk of a dump as the blocks it was read in, read back by tarfile as a file: a read of
    a block's length gives that block itself, not a copy."""

    def __init__(self) -> None:
        self.parts: collections.deque[bytes] = collections.deque()
        self.size = 0

    def add(self, block: bytes) -> None:
        self.parts.append(block)
        self.size += len(block)

    def read(self, n: int) -> bytes:
        if self.parts and len(self.parts[0]) == n:
            return self.parts.popleft()
        out = bytearray()
        while self.parts and len(out) < n:
            block = self.parts.popleft()
            take = n - len(out)
            out += block[:take]
            if len(block) > take:
                self.parts.appendleft(block[take:])
        return bytes(out)


class Dump:
    """`pg_dump -Fc DATABASE` running, its output read ahead by a thread (at most READ_AHEAD
    bytes held), so it runs beside the archive's encryption and beside the other databases'
    dumps: `chunks()` gives it, `stop()` ends it (killed when it has not finished)."""

    def __init__(self, conninfo: str, database: str) -> None:
        self.argv = ["pg_dump", "--format=custom", "--no-password"]
        self.database = database
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop
        self.proc = _start(
            self.argv, libpq_env(conninfo, database), stdout=subprocess.PIPE, stderr=self.errors
        )
        assert self.proc.stdout is not None  # noqa: S101 (stdout=PIPE)
        fd = self.proc.stdout.fileno()
        with contextlib.suppress(OSError):  # a larger pipe: fewer, larger reads
            fcntl.fcntl(fd, F_SETPIPE_SZ, READ_BLOCK)
        self.blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=READ_AHEAD // READ_BLOCK)
        self.halt = threading.Event()
        self.reader = threading.Thread(
            target=_read_ahead, args=(self.proc.stdout, self.blocks, self.halt), daemon=True
        )
        self.reader.start()

    def chunks(self, size: int) -> Iterator[Blocks]:
        """The dump as chunks of `size` bytes (the last one: what is left), each the blocks as
        they were read (a block is cut, so copied, only where a chunk ends inside it);
        CommandFailedError at the end when pg_dump failed (the chunks given are then not a
        dump)."""
        pending = Blocks()
        while (block := self.blocks.get()) is not None:
            while len(block) >= size - pending.size:
                room = size - pending.size
                pending.add(block[:room] if room < len(block) else block)
                yield pending
                pending, block = Blocks(), block[room:]
            if block:
                pending.add(block)
        if pending.size:
            yield pending
        code = self.stop()
        if code != 0:
            raise CommandFailedError([*self.argv, self.database], code, _tail(self.errors))

    def stop(self) -> int:
        """pg_dump's exit code, killed first when its output was not read to the end."""
        self.halt.set()
        if self.proc.poll() is None and self.reader.is_alive():
            self.proc.kill()  # the archive stopped taking the dump
        self.reader.join()
        assert self.proc.stdout is not None  # noqa: S101 (stdout=PIPE)
        self.proc.stdout.close()
        return self.proc.wait()


@contextlib.contextmanager
def dumps_started(conninfo: str, databases: Sequence[str]) -> Iterator[dict[str, Dump]]:
    """Every database's pg_dump started at once (each its own core while there is one: the
    archive takes them in order, the later ones wait read ahead); whatever is still running
    when the block ends is killed."""
    running: dict[str, Dump] = {}
    try:
        for database in databases:
            running[database] = Dump(conninfo, database)
        yield running
    finally:
        for dump in running.values():
            dump.stop()
            dump.errors.close()


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
