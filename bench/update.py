"""Benchmark: a platform release applied to ready, and a failed one rolled back, against the floor
of what any such update must do with the same databases (issue 23).

One box (a sandbox root first boot set up, against a throwaway PostgreSQL, the reference
platform as v1, run by tests/helpers/platform_service.py), its system_ops database filled to `--mb`
MiB (default 100) of rows that do not compress away. In the same run:

- floor: a bare `pg_dump -Fc` of the platform's databases plus `pg_restore --create` of them
  (dropped first), the dump and the restore the update's way back needs;
- apply: `clawdie-setup update v2` to `applied` (verify, unpack, stop, dump, migrate, switch,
  start, ready);
- rollback: `clawdie-setup update v4`, whose migration fails, to `rolled back` with v2 ready
  again (verify, unpack, stop, dump, migrate, then back: switch, restore, start, ready).

Prints each time and each as a ratio of the floor; the issue's goal is <= 1.5x. Needs root.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from tests.helpers.pg import PgCluster, unavailable_reason  # noqa: E402
from tests.helpers.update import (  # noqa: E402
    V2_SQL,
    V4_SQL,
    bundle,
    installed_box,
    new_keys,
    payload,
    service,
    update,
)

FILL = """
CREATE TABLE filler (id integer PRIMARY KEY, body text NOT NULL);
INSERT INTO filler
SELECT s.i, (SELECT string_agg(md5(random()::text || s.i || k.j), '')
             FROM generate_series(1, 32) AS k(j))
FROM generate_series(1, %s) AS s(i);
"""
ROW_BYTES = 32 * 32  # 32 md5 hex digests per row


def fill(pg: PgCluster, mib: int) -> int:
    """system_ops grown by about `mib` MiB; returns the database's size in bytes."""
    rows = mib * (1 << 20) // ROW_BYTES
    with psycopg.connect(pg.admin_conninfo("system_ops"), autocommit=True) as conn:
        conn.execute(FILL.replace("%s", str(rows)))
        conn.execute("VACUUM ANALYZE filler")
        size = conn.execute("SELECT pg_database_size('system_ops')").fetchone()
    assert size is not None
    return int(size[0])


def floor(pg: PgCluster, work: Path) -> float:
    """A bare pg_dump -Fc and pg_restore --create of the three databases."""
    names = ("system_ops", "system_brain", "system_skills")
    started = time.monotonic()
    for name in names:
        subprocess.run(
            [
                str(pg.bindir / "pg_dump"),
                "-Fc",
                f"--file={work / name}.dump",
                f"--dbname={pg.admin_conninfo(name)}",
            ],
            check=True,
        )
    for name in names:
        with psycopg.connect(pg.admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        subprocess.run(
            [
                str(pg.bindir / "pg_restore"),
                "--create",
                "--exit-on-error",
                f"--dbname={pg.admin_conninfo()}",
                f"{work / name}.dump",
            ],
            check=True,
        )
    return time.monotonic() - started


def timed_update(box: Path, pg: PgCluster, release: Path, expect: int) -> float:
    started = time.monotonic()
    result = update(box, pg, str(release))
    elapsed = time.monotonic() - started
    if result.returncode != expect:
        raise SystemExit(f"update exited {result.returncode}: {result.stdout}{result.stderr}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=100, help="MiB of rows in system_ops")
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    keys = new_keys()
    with tempfile.TemporaryDirectory(prefix="bench-update-") as temp:
        where = Path(temp)
        pg = PgCluster().init()
        box = where / "box"
        try:
            pg.start()
            installed_box(box, pg, keys)
            size = fill(pg, args.mb)
            v2 = bundle(payload(where, "2", sql=V2_SQL), where / "out", keys.publisher)
            v4 = bundle(payload(where, "4", sql=V4_SQL), where / "out", keys.publisher)
            (where / "floor").mkdir()
            base = floor(pg, where / "floor")
            apply = timed_update(box, pg, v2, 0)
            back = timed_update(box, pg, v4, 1)
        finally:
            subprocess.run(service(box, "stop").split(), check=False, cwd=ROOT)
            pg.cleanup()
    print(f"system_ops: {size / (1 << 20):.0f} MiB")
    print(f"floor (pg_dump -Fc + pg_restore --create): {base:.1f} s")
    print(f"apply to ready (v1 -> v2):                {apply:.1f} s  {apply / base:.2f}x")
    print(f"rollback to ready (v4's migration fails): {back:.1f} s  {back / base:.2f}x")
    print(f"{apply / base:.2f} {back / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
