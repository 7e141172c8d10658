"""A throwaway PostgreSQL cluster for the demo, the tests and the benchmarks: Debian's server
binaries, run as the `postgres` OS user (initdb refuses root), data and Unix socket in a private
temp dir, TCP on 127.0.0.1 only. Fast and disposable (fsync off): never a model for production.

Authentication: the admin `postgres` is trusted on the Unix socket; every other role, and every
TCP connection, needs its SCRAM password, so a wrong password really fails.

Commands go through `installer.run`; tests add test-only controls in tests/helpers/pg.py.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Self

from psycopg.conninfo import make_conninfo

from installer.run import run

ADMIN = "postgres"

PG_HBA = """\
# written by clawdie-setup's throwaway cluster
local   all   postgres                 trust
local   all   all                      scram-sha-256
host    all   all        127.0.0.1/32  scram-sha-256
"""

CONF = """\
# written by clawdie-setup's throwaway cluster: fast and disposable, never production
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockdir}'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 16MB
log_line_prefix = '%m [%p] '
log_timezone = 'UTC'
password_encryption = 'scram-sha-256'
"""


def pg_bindir() -> Path | None:
    """The server binaries (`pg_config --bindir` first, else the newest /usr/lib/postgresql)."""
    found = shutil.which("pg_config")
    if found:
        out = run([found, "--bindir"], check=False)
        candidate = Path(out.stdout.decode().strip())
        if (candidate / "initdb").exists():
            return candidate
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    return Path(dirs[-1]) if dirs and Path(dirs[-1], "initdb").exists() else None


def unavailable_reason() -> str | None:
    """Why a cluster cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "real PostgreSQL tests need root (the server runs as the postgres user via runuser)"
    if pg_bindir() is None:
        return "PostgreSQL server binaries not found (apt-get install postgresql)"
    if shutil.which("runuser") is None:
        return "runuser not found"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_postgres(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` as the postgres OS user."""
    return run(["runuser", "-u", ADMIN, "--", *argv], check=check, timeout=120)


class PgCluster:
    """One cluster. `init()` then `start()`; `cleanup()` stops it and removes everything.

    Attributes: `base` (private temp dir), `data`, `sockdir`, `port`, `logfile`, `bindir`.
    """

    def __init__(self, base: Path | None = None, template: Path | None = None) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL binaries not found")
        self.bindir = bindir
        self.base = base or Path(tempfile.mkdtemp(prefix="clawdie-pg-"))
        self.data = self.base / "data"
        self.sockdir = self.base / "sock"
        self.logfile = self.base / "server.log"
        self.port = free_port()
        self.template = template
        self.sockdir.mkdir(exist_ok=True)
        shutil.chown(self.base, ADMIN, ADMIN)
        shutil.chown(self.sockdir, ADMIN, ADMIN)
        self.base.chmod(0o755)

    # -- lifecycle ---------------------------------------------------------------------------

    def init(self) -> Self:
        """initdb (or copy `template`, an initialised data dir), then our pg_hba and settings."""
        if self.template is not None:
            as_postgres(["cp", "-a", str(self.template), str(self.data)])
        else:
            as_postgres(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    ADMIN,
                    "--auth=trust",
                    "--no-sync",
                    "--no-locale",
                    "-E",
                    "UTF8",
                ]
            )
        self._write(self.data / "pg_hba.conf", PG_HBA)
        self._write(
            self.data / "postgresql.auto.conf",
            CONF.format(port=self.port, sockdir=self.sockdir),
        )
        return self

    def set(self, **settings: str) -> None:
        """Append settings to postgresql.auto.conf (takes effect at the next start)."""
        lines = "".join(f"{k} = '{v}'\n" for k, v in settings.items())
        with (self.data / "postgresql.auto.conf").open("a") as f:
            f.write(lines)

    def _write(self, path: Path, text: str) -> None:
        path.write_text(text)
        shutil.chown(path, ADMIN, ADMIN)
        path.chmod(0o600)

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        argv = [str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]
        proc = as_postgres(argv, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"pg_ctl {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}"
                f"{self.log_tail()}"
            )
        return proc

    def start(self, *, wait: bool = True) -> None:
        self.pg_ctl("-l", str(self.logfile), "-w" if wait else "-W", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop (modes: smart, fast, immediate); no error when it is not running."""
        if self.running():
            self.pg_ctl("-m", mode, "-w", "-t", "30", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def running(self) -> bool:
        return self.pg_ctl("status", check=False).returncode == 0

    def cleanup(self) -> None:
        """Stop the server (immediately) and remove the directory. Safe to call twice."""
        if self.data.exists():
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    # -- facts -------------------------------------------------------------------------------

    def log_tail(self, lines: int = 15) -> str:
        if not self.logfile.exists():
            return ""
        return "\n" + "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])

    # -- connection strings (in-process only: never on a command line) ----------------------

    def conninfo(self, user: str, password: str | None = None, dbname: str = "postgres") -> str:
        """libpq key=value string over the Unix socket."""
        return make_conninfo(
            "", host=str(self.sockdir), port=self.port, user=user, password=password, dbname=dbname
        )

    def admin_conninfo(self, dbname: str = "postgres") -> str:
        """The superuser over the socket (trusted)."""
        return self.conninfo(ADMIN, dbname=dbname)
