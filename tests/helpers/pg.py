"""Test-only controls on top of the throwaway cluster (installer/dev/throwaway_pg.py): a late start
in the background, promotion of a standby, the server log's ready time, TCP conninfo."""

from __future__ import annotations

import contextlib
import subprocess
import time
from datetime import datetime
from pathlib import Path

from psycopg.conninfo import make_conninfo

from installer.dev import throwaway_pg
from installer.dev.throwaway_pg import ADMIN, free_port, pg_bindir, unavailable_reason

__all__ = ["ADMIN", "PgCluster", "db_cli_args", "free_port", "pg_bindir", "unavailable_reason"]


class PgCluster(throwaway_pg.PgCluster):
    """The throwaway cluster, plus what fault tests need."""

    def __init__(self, base: Path | None = None, template: Path | None = None) -> None:
        super().__init__(base, template)
        self._background: subprocess.Popen[bytes] | None = None

    def start_in_background(self, delay: float) -> None:
        """Start the server `delay` seconds from now without blocking the caller."""
        pg_ctl = [str(self.bindir / "pg_ctl"), "-D", str(self.data)]
        script = f'sleep {delay}; exec "$@" -l {self.logfile} -W start'
        self._background = subprocess.Popen(
            ["runuser", "-u", ADMIN, "--", "sh", "-c", script, "late-start", *pg_ctl],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_background(self, timeout: float = 30) -> None:
        if self._background is not None:
            self._background.wait(timeout)
            self._background = None

    def promote(self) -> None:
        self.pg_ctl("-W", "promote")

    def ready_time(self) -> float | None:
        """Wall-clock time (epoch s) of the last "ready to accept connections" log line."""
        stamp = None
        text = self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
        for line in text.splitlines():
            if "ready to accept connections" in line:
                stamp = line.split(" [", 1)[0]  # '2025-01-01 12:00:00.123 UTC'
        if stamp is None:
            return None
        return datetime.strptime(
            stamp.replace(" UTC", "+0000"), "%Y-%m-%d %H:%M:%S.%f%z"
        ).timestamp()

    def clear_log(self) -> None:
        """Empty the server log (kept owned by postgres, so the next start can append)."""
        if self.logfile.exists():
            self.logfile.write_text("")

    def tcp_conninfo(self, user: str, password: str | None = None, dbname: str = "postgres") -> str:
        return make_conninfo(
            "", host="127.0.0.1", port=self.port, user=user, password=password, dbname=dbname
        )

    def wait_until(self, predicate: object, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if callable(predicate) and predicate():
                return
            time.sleep(0.02)
        raise TimeoutError(f"condition not met in {timeout} s{self.log_tail()}")

    def cleanup(self) -> None:
        if self._background is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._background.wait(10)
            self._background = None
        super().cleanup()


def db_cli_args(pg: PgCluster, timeout_ms: int = 20000) -> list[str]:
    """The database options of `firstboot`, `adopt` and `install-platform` for this cluster."""
    return [
        *("--db-admin", pg.admin_conninfo()),
        *("--db-host", str(pg.sockdir)),
        *("--db-port", str(pg.port)),
        *("--db-timeout-ms", str(timeout_ms)),
    ]
