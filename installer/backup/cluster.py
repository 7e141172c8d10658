"""The factory reset's PostgreSQL part on a box that runs its own cluster (DESIGN §9): the
whole cluster goes, not only the platform's databases. A DROP DATABASE frees the files of the
database but leaves its rows in the freed blocks, and in the WAL segments the cluster keeps;
here PostgreSQL stops, every file of the data directory (the WAL with it), of its settings and
of its log is overwritten as it is deleted, and a new cluster is made as the disk installer
makes it (installer/install/identities.py: Debian's pg_createcluster and the appliance's
access files), with a new system identifier.

Resumable: every step checks first. A run cut short after the old files went finds no data
directory and makes the new cluster; one cut after that finds a new, empty cluster (no marker
of ours in it) and replaces it once more, which costs a few seconds and leaves the same box.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from installer import faults
from installer.errors import InstallerError
from installer.run import run

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
CLUSTER_NAME = "main"


@dataclass(frozen=True)
class ClusterControl:
    """How the cluster is stopped, made again and started: argv lists, `{version}` and `{data}`
    replaced. None: not at all (a root that is not the running system), and for `create`:
    Debian's pg_createcluster inside the root, with the appliance's access files."""

    stop: Sequence[str] | None = None
    create: Sequence[str] | None = None
    start: Sequence[str] | None = None


# The running box: systemd's units of Debian's postgresql-common. postgresql.service is the
# umbrella; the cluster's own unit is the one to start (the generator made it at boot).
LIVE = ClusterControl(
    stop=("systemctl", "stop", "postgresql.service", "postgresql@{version}-main.service"),
    start=("systemctl", "start", "postgresql@{version}-main.service"),
)


def control_for(root: Path) -> ClusterControl:
    """The running system's units; a root that is not running (mounted elsewhere) has nothing
    to stop or start."""
    return LIVE if root.resolve() == Path("/") else ClusterControl()


@dataclass(frozen=True)
class Cluster:
    """The box's own cluster: PostgreSQL's version and the cluster's three places."""

    root: Path
    version: str

    @property
    def data(self) -> Path:
        return self.root / "var/lib/postgresql" / self.version / CLUSTER_NAME

    @property
    def settings(self) -> Path:
        return self.root / "etc/postgresql" / self.version / CLUSTER_NAME

    def logs(self) -> list[Path]:
        """The cluster's log and its rotated copies (a failed statement is logged whole)."""
        logs = self.root / "var/log/postgresql"
        if not logs.is_dir():
            return []
        return sorted(logs.glob(f"postgresql-{self.version}-{CLUSTER_NAME}.log*"))


def own_cluster(root: Path) -> Cluster | None:
    """The cluster of the PostgreSQL installed in `root` (the newest version), or None when
    the root has no PostgreSQL server of its own (then the platform's cluster is elsewhere)."""
    from installer.install.identities import postgres_versions

    versions = postgres_versions(root)
    return Cluster(root, versions[-1]) if versions else None


def scrub_tree_at(parent_fd: int, name: str, keep: frozenset[str] = frozenset()) -> int:
    """Delete `name` (a directory, file or link) in the open directory, everything below it
    first, each file overwritten as it goes (`remove_at`); no link is followed. Entries named
    in `keep` (directly inside `name`) stay, and so does the directory then. Returns how many
    files were removed."""
    from installer.fsutil import remove_at

    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        return 1 if remove_at(parent_fd, name) else 0
    fd = os.open(name, _DIR, dir_fd=parent_fd)
    removed = 0
    try:
        for child in sorted(os.listdir(fd)):
            if child not in keep:
                removed += scrub_tree_at(fd, child)
        os.fsync(fd)
    finally:
        os.close(fd)
    if not keep:
        with contextlib.suppress(OSError):
            os.rmdir(name, dir_fd=parent_fd)
    return removed


def scrub_path(path: Path, keep: frozenset[str] = frozenset()) -> int:
    """`scrub_tree_at` for a path whose parents root owns."""
    try:
        parent = os.open(path.parent, _DIR)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return 0
        raise
    try:
        return scrub_tree_at(parent, path.name, keep)
    finally:
        os.close(parent)


def _argv(template: Sequence[str], cluster: Cluster) -> list[str]:
    return [arg.format(version=cluster.version, data=cluster.data) for arg in template]


def _create(cluster: Cluster, control: ClusterControl) -> str:
    if control.create is None:
        from installer.install.identities import make_postgres_cluster

        return make_postgres_cluster(cluster.root, "") or "no PostgreSQL cluster made"
    run(_argv(control.create, cluster), timeout=600)
    return f"PostgreSQL {cluster.version} cluster made again"


def replace_cluster(cluster: Cluster, control: ClusterControl) -> list[str]:
    """Stop PostgreSQL, overwrite and delete the cluster's files, make a new cluster, start it;
    returns what was done, in words."""
    if control.stop is not None:
        result = run(_argv(control.stop, cluster), check=False, timeout=300)
        # a stop that failed is fine when no server holds the cluster (an earlier run's)
        if result.returncode != 0 and (cluster.data / "postmaster.pid").exists():
            raise InstallerError(
                f"PostgreSQL did not stop (exit {result.returncode}): its files stay as they are",
                "run factory-reset again",
            )
    files = scrub_path(cluster.data)
    faults.fault_point("during:reset-cluster")
    files += scrub_path(cluster.settings)
    for log in cluster.logs():
        files += scrub_path(log)
    done = [
        f"PostgreSQL {cluster.version} cluster: {files} files overwritten and removed (the "
        "platform's databases, the WAL, the cluster's settings and log)"
    ]
    done.append(_create(cluster, control))
    os.sync()  # the installer's pg_createcluster leaves the syncing to its caller (--no-sync)
    if control.start is not None:
        run(_argv(control.start, cluster), timeout=300)
        done.append("PostgreSQL started on the new cluster")
    return done
