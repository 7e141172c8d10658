"""Benchmark: `clawdie-setup backup` and `restore` against the bare tools on the same databases,
in the same run (issue 24; goals: backup <= 1.2x the time and <= 1.05x the size of
`pg_dump -Fc | age`; restore against `age -d | pg_restore`).

A throwaway cluster holds the platform's three databases with about `--mb` MB of rows (the
bulk in system_brain, text rows as an assistant's memory is); a sandbox root holds a box that
first boot set up (its stamp, system.env, host name). Each command is timed as a whole process
from outside (wall clock, and the CPU of every process it waited for), after one warm-up run
each; A (ours) and B (the tools) run in turn, A B A B ..., and the ratio is taken pair by pair
(the machine's speed may drift during the run), the median quoted:

  backup   A: clawdie-setup backup --to DIR --recipient age1… (also files, manifest, fsync)
           B: for each database: pg_dump -Fc DB | age -r age1… > DB.age; sync (each file)
  restore  both start from the same reset (databases dropped, a fresh root; B's role and empty
           databases made, which A makes itself), so each side's figure includes it:
           A: clawdie-setup restore FILE --identity-file KEY (reads the file twice: checks all,
              then applies)
           B: for each database: age -d -i KEY DB.age | pg_restore --single-transaction -d DB
           The reset alone is timed too, to read the restore's own share.

Needs root and Debian's `age` (apt-get install age). Prints each side's median, min and max
(wall and CPU seconds), the ratios A/B, the files' sizes and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import pyrage  # type: ignore[import-untyped]  # noqa: E402

from installer.firstboot.db.bootstrap import bootstrap_platform  # noqa: E402
from installer.firstboot.platform_db import DATABASES  # noqa: E402
from installer.paths import TargetPaths  # noqa: E402
from tests.helpers.pg import ADMIN, PgCluster, pg_bindir, unavailable_reason  # noqa: E402
from tests.helpers.seeds import firstboot_box  # noqa: E402

PASSWORD = "bench-db-password"  # noqa: S105 - a throwaway cluster's
CLI = [sys.executable, "-m", "installer.cli"]


def fill(pg: PgCluster, mb: int) -> None:
    """About `mb` MB of rows: most in system_brain, some in system_ops and system_skills; text
    that compresses as hex does (about 2:1), not a repeated string pg_dump would squeeze away."""
    bootstrap_platform(pg.admin_conninfo(), role="clawdie", password=PASSWORD)
    rows = mb * 1024 * 1024 // 200  # a row of ~160 bytes of text plus its overhead
    share = {"system_brain": 0.8, "system_ops": 0.15, "system_skills": 0.05}
    for db, part in share.items():
        with psycopg.connect(pg.admin_conninfo(db), autocommit=True) as conn:
            conn.execute("SET ROLE clawdie")
            conn.execute("CREATE TABLE memory (id bigint PRIMARY KEY, note text, at timestamptz)")
            conn.execute(
                "INSERT INTO memory SELECT g, md5(g::text) || md5((g * 7)::text) || "
                "md5((g * 13)::text) || md5((g * 17)::text) || md5((g * 31)::text), "
                "now() - g * interval '1 s' "
                "FROM generate_series(1, %s) g",
                (int(rows * part),),
            )


def make_sandbox_root(root: Path) -> Path:
    """A sandbox target root (tests/helpers/seeds.py lays it out as first boot sees the world)."""
    firstboot_box(root.parent / f"{root.name}-around", "")
    (root.parent / f"{root.name}-around" / "root").rename(root)
    return root


def make_box(root: Path) -> None:
    make_sandbox_root(root)
    paths = TargetPaths(root)
    paths.stamps_dir.mkdir(parents=True)
    paths.complete_stamp.write_text("{}\n")
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    paths.system_env.write_text(f'PLATFORM_DB_ROLE="clawdie"\nPLATFORM_DB_PASSWORD="{PASSWORD}"\n')
    paths.hostname.write_text("bench\n")
    (root / "etc/machine-id").write_text("4f1c2a9be07d4c3a9a51d2e8b6c07f13\n")


def setup(work: Path, mb: int) -> None:
    (work / "pg").mkdir()
    pg = PgCluster(base=work / "pg")
    pg.init()
    pg.start()
    fill(pg, mb)
    make_box(work / "box")
    identity = pyrage.x25519.Identity.generate()
    (work / "key.txt").write_text(f"{identity}\n")
    state = {
        "admin": pg.admin_conninfo(),
        "sockdir": str(pg.sockdir),
        "port": pg.port,
        "recipient": str(identity.to_public()),
    }
    (work / "state.json").write_text(json.dumps(state))


def reset_target(work: Path, bootstrap: bool) -> None:
    """Databases dropped, a fresh root; with `bootstrap`, the role and empty databases (what
    the bare tools need made before pg_restore)."""
    state = json.loads((work / "state.json").read_text())
    with psycopg.connect(state["admin"], autocommit=True) as conn:
        for db in DATABASES:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    shutil.rmtree(work / "fresh", ignore_errors=True)
    shutil.rmtree(work / "fresh-around", ignore_errors=True)
    make_sandbox_root(work / "fresh")
    if bootstrap:
        bootstrap_platform(state["admin"], role="clawdie", password=PASSWORD)


def pg_env(state: dict[str, object]) -> str:
    return f"PGHOST={state['sockdir']} PGPORT={state['port']} PGUSER=postgres"


def timed(argv: list[str], timeout: int) -> tuple[float, float]:
    """One run of `argv`: its wall seconds and the CPU seconds of every process it waited for
    (user + system, the kernel's own accounting of reaped children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=True,
        cwd=ROOT,
        timeout=timeout,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.3f} {min(values):8.3f} {max(values):8.3f}"


def paired(a: list[str], b: list[str], runs: int, timeout: int) -> str:
    """A and B in turn (one warm-up each, then `runs` pairs): each side's median, min and max,
    and the ratio A/B taken pair by pair."""
    timed(a, timeout)
    timed(b, timeout)
    pairs = [(timed(a, timeout), timed(b, timeout)) for _ in range(runs)]
    rows = ["                 median      min      max"]
    for side, index in (("A", 0), ("B", 1)):
        rows.append(f"{side} wall s       {spread([p[index][0] for p in pairs])}")
        rows.append(f"{side} cpu s        {spread([p[index][1] for p in pairs])}")
    rows.append(f"A/B wall       {spread([x[0] / y[0] for x, y in pairs])}")
    rows.append(f"A/B cpu        {spread([x[1] / y[1] for x, y in pairs])}")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="database size to fill (MB)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backup-only", action="store_true", help="leave out the restore")
    parser.add_argument("--work", type=Path, help="keep the work here (default: a temp dir)")
    parser.add_argument("--reset-target", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reset_target is not None:  # one side's first step in the restore bench
        reset_target(args.reset_target, args.bootstrap)
        return 0
    reason = unavailable_reason() or (None if shutil.which("age") else "age is not installed")
    if reason:
        print(f"skipped: {reason}")
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="clawdie-bench-backup-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)  # noqa: S103 - the postgres user reaches its cluster inside
    try:
        return run(work, args.mb, args.runs, args.backup_only)
    finally:
        bindir = pg_bindir()
        if (work / "pg/data").exists() and bindir is not None:
            pg_ctl = [str(bindir / "pg_ctl"), "-D", str(work / "pg/data"), "-m", "immediate"]
            subprocess.run(["runuser", "-u", ADMIN, "--", *pg_ctl, "stop"], check=False)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, mb: int, runs: int, backup_only: bool) -> int:
    setup(work, mb)
    state = json.loads((work / "state.json").read_text())
    env = pg_env(state)
    db_args = [
        "--db-admin",
        state["admin"],
        "--db-host",
        state["sockdir"],
        "--db-port",
        str(state["port"]),
    ]
    ours_dir, theirs_dir = work / "ours", work / "theirs"
    ours_dir.mkdir()
    theirs_dir.mkdir()
    recipient = state["recipient"]

    ours = [*CLI, "backup", "--root", str(work / "box"), "--to", str(ours_dir)]
    ours += ["--recipient", recipient, "--no-rotate", *db_args]
    dumps = "; ".join(
        f"pg_dump -Fc {db} | age -r {recipient} > {out} && sync {out}"
        for db, out in ((db, theirs_dir / f"{db}.age") for db in DATABASES)
    )
    theirs = ["sh", "-c", f"export {env}; {dumps}"]
    print(f"# backup of {mb} MB of rows: A = clawdie-setup backup, B = pg_dump -Fc | age")
    print(paired(ours, theirs, runs, 1800))
    ours_size = sum(p.stat().st_size for p in ours_dir.iterdir())
    theirs_size = sum(p.stat().st_size for p in theirs_dir.iterdir())
    ratio = ours_size / theirs_size
    print(f"size: ours {ours_size} bytes, theirs {theirs_size} bytes, ratio {ratio:.4f}")

    if backup_only:
        return 0
    (backup,) = list(ours_dir.iterdir())
    key = work / "key.txt"
    reset = [sys.executable, str(Path(__file__).resolve()), "--reset-target", str(work)]
    restore = [
        *CLI,
        "restore",
        str(backup),
        "--root",
        str(work / "fresh"),
        "--identity-file",
        str(key),
        *db_args,
    ]
    ours_restore = f"{shlex.join(reset)} && exec {shlex.join(restore)}"
    restores = "; ".join(
        f"age -d -i {key} {theirs_dir}/{db}.age | pg_restore --single-transaction "
        f"--exit-on-error -d {db}"
        for db in DATABASES
    )
    theirs_restore = f"export {env}; {shlex.join(reset)} --bootstrap && {{ {restores}; }}"
    print("\n# restore (each side starts with the same reset)")
    print("# A = clawdie-setup restore, B = age -d | pg_restore")
    print(paired(["sh", "-c", ours_restore], ["sh", "-c", theirs_restore], runs, 1800))
    print("\n# the reset alone (A) against the reset with the role and empty databases (B)")
    print(paired(reset, [*reset, "--bootstrap"], runs, 600))
    return 0


if __name__ == "__main__":
    sys.exit(main())
