"""Per-machine identities, made on the machine by the disk installer (DESIGN §4).

The image carries none of them (`iso/build.py` removes what Debian's packages made at build
time), so two machines installed from one image share nothing: each gets its own SSH host keys,
TLS snakeoil pair and PostgreSQL cluster (its own system identifier) here, inside the freshly
copied system; systemd makes the machine id (`/etc/machine-id` is left empty) and the random seed
at the first start. Each maker checks first: it makes only what the system lacks, and only what
the system carries the tool for.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from installer.errors import InstallerError
from installer.run import run

# As in iso/build.py: the appliance's PostgreSQL access files, copied into the new cluster.
POSTGRES_TEMPLATES = "usr/share/clawdie/postgresql"
CHROOT_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
}
IDENTITY_TIMEOUT_S = 600.0
SNAKEOIL_KEY = "etc/ssl/private/ssl-cert-snakeoil.key"


def _in_target(root: Path, *argv: str) -> None:
    run(["chroot", str(root), *argv], env=CHROOT_ENV, timeout=IDENTITY_TIMEOUT_S)


def _has(root: Path, program: str) -> bool:
    return any((root / d / program).exists() for d in ("usr/sbin", "usr/bin", "sbin", "bin"))


def make_ssh_host_keys(root: Path) -> str | None:
    """Every SSH host key type the target's sshd uses (`ssh-keygen -A`)."""
    if not _has(root, "ssh-keygen"):
        return None
    if list((root / "etc/ssh").glob("ssh_host_*_key")):
        return "SSH host keys: already there"
    _in_target(root, "ssh-keygen", "-A")
    return "SSH host keys made on this machine"


def make_tls_snakeoil(root: Path) -> str | None:
    """The self-signed pair PostgreSQL's `ssl = on` uses (Debian's make-ssl-cert)."""
    if not _has(root, "make-ssl-cert"):
        return None
    if (root / SNAKEOIL_KEY).exists():
        return "TLS snakeoil key: already there"
    _in_target(root, "make-ssl-cert", "generate-default-snakeoil", "--force-overwrite")
    return "TLS snakeoil key made on this machine"


def postgres_versions(root: Path) -> list[str]:
    base = root / "usr/lib/postgresql"
    return (
        sorted(p.name for p in base.iterdir() if (p / "bin/initdb").exists())
        if base.is_dir()
        else []
    )


def make_postgres_cluster(root: Path) -> str | None:
    """The `main` cluster of the installed PostgreSQL, with the appliance's access files."""
    versions = postgres_versions(root)
    if not versions or not _has(root, "pg_createcluster"):
        return None
    version = versions[-1]
    config = root / "etc/postgresql" / version / "main"
    if not (root / "var/lib/postgresql" / version / "main/PG_VERSION").exists():
        if config.exists():  # a half-made cluster from an interrupted try: make it again
            shutil.rmtree(config)
        _in_target(root, "pg_createcluster", version, "main")
    templates = root / POSTGRES_TEMPLATES
    if not templates.is_dir():
        raise InstallerError(
            f"the system has PostgreSQL but not its access files ({templates})",
            "the installer image is incomplete; rebuild it",
        )
    owner = config.stat()
    for name, target in (
        ("pg_hba.conf", config / "pg_hba.conf"),
        ("pg_ident.conf", config / "pg_ident.conf"),
        ("clawdie.conf", config / "conf.d/clawdie.conf"),
    ):
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(templates / name, target)
        os.chown(target, owner.st_uid, owner.st_gid)
        target.chmod(0o640)
    return f"PostgreSQL {version} cluster made on this machine"


MAKERS: tuple[Callable[[Path], str | None], ...] = (
    make_ssh_host_keys,
    make_tls_snakeoil,  # before the cluster: pg_createcluster turns on SSL when the pair exists
    make_postgres_cluster,
)


def make_machine_identities(root: Path, say: Callable[[str], None]) -> list[str]:
    """Make every identity the copied system at `root` lacks; say and return what was done.

    Runs inside the target (chroot): the caller has /dev, /proc, /sys and /run mounted there.
    """
    done = []
    for maker in MAKERS:
        result = maker(root)
        if result is not None:
            say(result)
            done.append(result)
    return done
