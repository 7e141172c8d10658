"""`clawdie-setup wait-db` and `set-operator` as an operator runs them: real processes, a real
server, and for set-operator a real pseudo-terminal (stdlib pty: echo off is really tested)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
import pytest

from installer.firstboot.db import auth, bootstrap
from installer.seed import hashes
from tests.helpers.pg import PgCluster
from tests.helpers.sentinels import DB_PASSWORD, OPERATOR_PASSWORD

ROOT = Path(__file__).resolve().parents[1]
ROLE = "clawdie"
EMAIL = "op@example.org"


def clawdie_setup(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "installer.cli", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_system_env(root: Path, pg: PgCluster, password: str = DB_PASSWORD) -> None:
    """What first boot writes: URL-encoded password, socket directory in `host`."""
    auth = f"{quote(ROLE, safe='')}:{quote(password, safe='')}"
    query = urlencode({"host": str(pg.sockdir), "port": str(pg.port)})
    env = root / "etc" / "clawdie" / "system.env"
    env.parent.mkdir(parents=True)
    env.write_text(
        f'DATABASE_URL="postgresql://{auth}@/system_ops?{query}"\nAGENT_DOMAIN=ada.local\n'
    )
    env.chmod(0o600)


@pytest.fixture
def platform(pg: PgCluster, tmp_path: Path) -> Path:
    """A bootstrapped server and a target root whose system.env points at it."""
    bootstrap.bootstrap_platform(pg.admin_conninfo(), role=ROLE, password=DB_PASSWORD)
    write_system_env(tmp_path, pg)
    return tmp_path


class Tty:
    """A child process on a pseudo-terminal (its controlling tty): expect and send."""

    def __init__(self, argv: list[str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # child: exec at once
            os.chdir(ROOT)
            os.execv(argv[0], argv)  # noqa: S606 (a fixed argv, no shell)
        self.pid, self.fd, self.out, self.pos = pid, fd, "", 0

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.out += chunk.decode(errors="replace")
        return bool(chunk)

    def expect(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.out[self.pos :]:
            if time.monotonic() > deadline or not self._read(0.1):
                raise AssertionError(f"{text!r} not seen; output so far:\n{self.out}")
        self.pos = self.out.index(text, self.pos) + len(text)

    def send(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\n")

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(0.1):
            pass
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


def set_operator_tty(root: Path, *extra: str) -> Tty:
    return Tty(
        [sys.executable, "-m", "installer.cli", "set-operator", EMAIL, "--root", str(root), *extra]
    )


# -- wait-db --------------------------------------------------------------------------------


def test_wait_db_reads_system_env_under_root(platform: Path) -> None:
    result = clawdie_setup("wait-db", "--root", str(platform), "--timeout-ms", "5000")
    assert result.returncode == 0, result.stderr
    assert DB_PASSWORD not in result.stdout + result.stderr
    assert quote(DB_PASSWORD, safe="") not in result.stdout + result.stderr


def test_wait_db_not_ready_has_its_own_exit_code(pg_cluster: PgCluster) -> None:
    result = clawdie_setup(
        "wait-db", "--conninfo", pg_cluster.admin_conninfo(), "--timeout-ms", "300"
    )
    assert result.returncode == 3
    assert "was not ready after 0.3 s" in result.stderr


def test_wait_db_wrong_password_is_fatal(pg: PgCluster, tmp_path: Path) -> None:
    bootstrap.bootstrap_platform(pg.admin_conninfo(), role=ROLE, password=DB_PASSWORD)
    write_system_env(tmp_path, pg, password="not-the-password")
    result = clawdie_setup("wait-db", "--root", str(tmp_path), "--timeout-ms", "30000")
    assert result.returncode == 1
    assert "rejected the password" in result.stderr
    assert "not-the-password" not in result.stderr


def test_wait_db_without_env_file_is_a_usage_error(tmp_path: Path) -> None:
    result = clawdie_setup("wait-db", "--root", str(tmp_path))
    assert result.returncode == 2
    assert "system.env does not exist" in result.stderr


# -- set-operator ---------------------------------------------------------------------------


def test_set_operator_in_a_terminal(platform: Path, pg: PgCluster) -> None:
    tty = set_operator_tty(platform)
    tty.expect("Password for op@example.org")
    tty.send("too-short")
    tty.expect("shorter than 12 characters")
    tty.expect("Password for")
    tty.send(OPERATOR_PASSWORD)
    tty.expect("Repeat the password")
    tty.send(OPERATOR_PASSWORD + "-typo")
    tty.expect("do not match")
    tty.expect("Password for")
    tty.send(OPERATOR_PASSWORD)
    tty.expect("Repeat the password")
    tty.send(OPERATOR_PASSWORD)
    tty.expect("dashboard operator op@example.org created; sign in to the dashboard at ")
    tty.expect("https://ada.local/ with it")  # the way there, not only the name
    assert tty.wait() == 0
    assert OPERATOR_PASSWORD not in tty.out  # echo was off
    ops = pg.conninfo(ROLE, DB_PASSWORD, "system_ops")
    with psycopg.connect(ops) as conn:
        rows = conn.execute(
            'SELECT u.email, a.password FROM account a JOIN "user" u ON u.id = a."userId"'
        ).fetchall()
    assert len(rows) == 1
    assert rows[0][0] == EMAIL
    assert hashes.verify_better_auth_password(OPERATOR_PASSWORD, rows[0][1])

    again = set_operator_tty(platform)
    again.expect("a dashboard operator already exists")
    assert again.wait() == 1
    assert "Password for" not in again.out


def test_set_operator_refuses_a_pipe(platform: Path, pg: PgCluster) -> None:
    result = clawdie_setup(
        "set-operator",
        EMAIL,
        "--root",
        str(platform),
        stdin=f"{OPERATOR_PASSWORD}\n{OPERATOR_PASSWORD}\n",
    )
    assert result.returncode == 2
    assert "not a terminal" in result.stderr
    assert auth.operator_exists(pg.conninfo(ROLE, DB_PASSWORD, "system_ops")) is False


def test_set_operator_checks_the_email_first() -> None:
    tty = Tty([sys.executable, "-m", "installer.cli", "set-operator", "not-an-email"])
    tty.expect("not an e-mail address")
    assert tty.wait() == 2


def test_set_operator_gives_up_after_three_bad_passwords(platform: Path, pg: PgCluster) -> None:
    tty = set_operator_tty(platform)
    for _ in range(3):
        tty.expect("Password for")
        tty.send("short")
    tty.expect("no valid password after 3 tries")
    assert tty.wait() == 1
    assert auth.operator_exists(pg.conninfo(ROLE, DB_PASSWORD, "system_ops")) is False
