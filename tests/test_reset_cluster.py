"""The factory reset's PostgreSQL part on a box that runs its own cluster (issue 24,
installer/backup/cluster.py), against a real PostgreSQL whose cluster lives in an ext4 loop
file system laid out as Debian's (/var/lib/postgresql/V/main, /etc/postgresql/V/main,
/var/log/postgresql): a DROP DATABASE leaves the platform's rows on the raw file system (freed
pages, the WAL), and a failed statement leaves one in the server's log; replacing the cluster
leaves none in the files the cluster had (the overwrite layer), and the discard that follows
(fstrim) none in the blocks PostgreSQL freed itself. A run cut short half way is finished by
running it again, and the new cluster has its own system identifier."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psycopg
import pytest

from installer import faults
from installer.backup.cluster import Cluster, ClusterControl, own_cluster, replace_cluster
from installer.backup.reset import discard_freed_blocks
from installer.dev.throwaway_pg import ADMIN
from installer.faults import InjectedFailure
from installer.paths import TargetPaths
from tests.helpers.disk_image import pg_system_identifier, raw_counts
from tests.helpers.loopdev import ext4_at, make_ext4, sh
from tests.helpers.pg import PgCluster, pg_bindir
from tests.helpers.sentinels import DROPPED_ROW, ROW

# The row of a database the platform dropped before the reset.
DROPPED = DROPPED_ROW
pytestmark = [pytest.mark.root, pytest.mark.usefixtures("loop_devices")]


def debian_layout(root: Path) -> tuple[Cluster, PgCluster]:
    """The root's PostgreSQL as Debian lays it out (the server's binaries linked in), and a
    real server on its cluster, with its log where Debian keeps it."""
    bindir = pg_bindir()
    assert bindir is not None
    version = bindir.parent.name
    (root / "usr/lib/postgresql" / version / "bin").mkdir(parents=True)
    (root / "usr/lib/postgresql" / version / "bin/initdb").symlink_to(bindir / "initdb")
    cluster = own_cluster(root)
    assert cluster == Cluster(root, version)
    cluster.settings.mkdir(parents=True)
    (cluster.settings / "postgresql.conf").write_text("# the cluster's settings\n")
    logs = root / "var/log/postgresql"
    logs.mkdir(parents=True)
    cluster.data.parent.mkdir(parents=True)
    server = PgCluster(base=cluster.data.parent)
    server.data = cluster.data
    server.logfile = logs / f"postgresql-{version}-main.log"
    server.logfile.touch()
    os.chown(server.logfile, *_postgres_ids())
    server.init().start()
    return cluster, server


def _postgres_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(ADMIN)
    return entry.pw_uid, entry.pw_gid


def platform_rows(server: PgCluster) -> None:
    """A database the platform keeps (its row in a table file and the WAL), a statement that
    failed (logged whole), and a database it dropped once its pages were on the disk (its row
    left in blocks PostgreSQL freed)."""
    with psycopg.connect(server.admin_conninfo(), autocommit=True) as conn:
        for name, row in (("system_ops", ROW), ("system_old", DROPPED)):
            conn.execute(f"CREATE DATABASE {name}")
            with psycopg.connect(server.admin_conninfo(name), autocommit=True) as db:
                db.execute("CREATE TABLE notes (note text)")
                db.execute("INSERT INTO notes VALUES (%s)", (row,))
        with pytest.raises(psycopg.errors.UndefinedFunction):
            conn.execute(f"SELECT no_such_function('{ROW}')")
        conn.execute("CHECKPOINT")
        sh("sync")
        conn.execute("DROP DATABASE system_old")
        conn.execute("CHECKPOINT")


def mount_point() -> Path:
    """Where PostgreSQL's account can reach (pytest's own directories are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="clawdie-reset-"))
    path.chmod(0o755)
    return path


def control(server: PgCluster) -> ClusterControl:
    as_pg = ["runuser", "-u", ADMIN, "--"]
    return ClusterControl(
        stop=[*as_pg, str(server.bindir / "pg_ctl"), "-D", "{data}", "-m", "fast", "-w", "stop"],
        create=[*as_pg, str(server.bindir / "initdb"), "-D", "{data}", "--no-sync", "-U", ADMIN],
        start=None,
    )


def test_the_box_s_own_cluster_is_replaced_and_no_row_is_left_on_the_raw_file_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = tmp_path / "root.img"
    make_ext4(image)
    root = mount_point()
    with ext4_at(image, root):
        cluster, server = debian_layout(root)
        try:
            platform_rows(server)
            identifier = pg_system_identifier((cluster.data / "global/pg_control").read_bytes())
        finally:
            server.stop()
        sh("sync")
    rows = {"row": ROW, "dropped row": DROPPED}
    before = raw_counts(image, rows)
    assert before["row"] >= 3, before  # the search finds what is there: table, WAL, log
    assert before["dropped row"] >= 1, before

    with ext4_at(image, root):
        server.start()
        # cut short half way: the data directory gone, the settings and the log not yet
        monkeypatch.setenv(faults.FAULT_VARIABLE, "fail:during:reset-cluster")
        faults.arm_from_environment()
        with pytest.raises(InjectedFailure):
            replace_cluster(cluster, control(server))
        assert not cluster.data.exists()
        assert cluster.settings.exists()
        monkeypatch.delenv(faults.FAULT_VARIABLE)
        faults.arm_from_environment()
        try:
            done = replace_cluster(cluster, control(server))  # again: it finishes
        finally:
            server.stop()
        sh("sync")
        assert "cluster made again" in done[-1], done
        assert (cluster.data / "PG_VERSION").is_file()
        new = pg_system_identifier((cluster.data / "global/pg_control").read_bytes())
        assert new != identifier
        assert not cluster.settings.exists()
        assert cluster.logs() == []
    overwritten = raw_counts(image, rows)
    assert overwritten["row"] == 0, overwritten  # every file the cluster had: overwritten
    with ext4_at(image, root):
        # the blocks PostgreSQL freed itself: only the discard reaches them (a loop device's
        # discard makes holes in its file)
        assert discard_freed_blocks(TargetPaths(root)) == "freed blocks discarded (fstrim)"
    root.rmdir()
    assert raw_counts(image, rows) == {"row": 0, "dropped row": 0}


def test_a_root_without_its_own_postgresql_has_no_cluster_to_replace(tmp_path: Path) -> None:
    assert own_cluster(tmp_path) is None
