"""Per-machine identities, made on the machine by the disk installer (DESIGN §4).

The image carries none of them (`iso/build.py` removes what Debian's packages made at build
time), so two machines installed from one image share nothing: each gets its own SSH host keys,
TLS snakeoil pair and PostgreSQL cluster (its own system identifier) here, inside the freshly
copied system; systemd makes the machine id (`/etc/machine-id` is left empty) and the random seed
at the first start. Each maker checks first: it makes only what the system lacks, and only what
the system carries the tool for.

Only elliptic-curve keys: an RSA key takes seconds to find its primes on a slow machine (and
minutes under emulation), an Ed25519 or P-256 key a few milliseconds, and every SSH client and
TLS library of the last decade takes them. The keys are made with the live system's own
`ssh-keygen` and `openssl` (the same image as the target) straight into the target's files;
only the cluster is made inside the target (chroot), by Debian's `pg_createcluster`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from installer.errors import InstallerError
from installer.fsutil import symlink_atomic
from installer.passwd import read_group_id
from installer.run import run

POSTGRES_TEMPLATES = "usr/share/clawdie/postgresql"
CHROOT_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
}
IDENTITY_TIMEOUT_S = 600.0
# The host key types sshd is told to use (iso/overlay/etc/ssh/sshd_config.d/clawdie-host-keys.conf)
HOST_KEY_TYPES = {"ed25519": "Ed25519", "ecdsa": "ECDSA"}  # ssh-keygen -t: as people name it
SNAKEOIL_KEY = "etc/ssl/private/ssl-cert-snakeoil.key"
SNAKEOIL_CERT = "etc/ssl/certs/ssl-cert-snakeoil.pem"
SNAKEOIL_DAYS = 3650  # as Debian's make-ssl-cert
SSL_CERT_GROUP = "ssl-cert"  # PostgreSQL's account is in it: it may read the key


def _in_target(root: Path, *argv: str) -> None:
    run(["chroot", str(root), *argv], env=CHROOT_ENV, timeout=IDENTITY_TIMEOUT_S)


def _has(root: Path, program: str) -> bool:
    return any((root / d / program).exists() for d in ("usr/sbin", "usr/bin", "sbin", "bin"))


def make_ssh_host_keys(root: Path, hostname: str) -> str | None:
    """The Ed25519 and ECDSA host keys sshd uses (ssh-keygen writes the private half 0600)."""
    if not _has(root, "ssh-keygen"):
        return None
    made = []
    for kind, label in HOST_KEY_TYPES.items():
        key = root / f"etc/ssh/ssh_host_{kind}_key"
        if key.exists():
            continue
        key.parent.mkdir(parents=True, exist_ok=True)
        run(
            ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"root@{hostname}", "-f", str(key)],
            timeout=IDENTITY_TIMEOUT_S,
        )
        made.append(label)
    if not made:
        return "SSH host keys: already there"
    return f"SSH host keys made on this machine ({', '.join(made)})"


def make_tls_snakeoil(root: Path, hostname: str) -> str | None:
    """The self-signed pair PostgreSQL's `ssl = on` uses, where Debian's make-ssl-cert puts it
    (key 0640 root:ssl-cert, certificate and its hash link in /etc/ssl/certs), for `hostname`."""
    if not _has(root, "openssl") or not _has(root, "make-ssl-cert"):
        return None
    key, cert = root / SNAKEOIL_KEY, root / SNAKEOIL_CERT
    if key.exists():
        return "TLS snakeoil key: already there"
    gid = read_group_id(root / "etc/group", SSL_CERT_GROUP)
    if gid is None:
        raise InstallerError(
            f"the system has make-ssl-cert but no {SSL_CERT_GROUP} group in /etc/group",
            "the installer image is incomplete; rebuild it",
        )
    key.parent.mkdir(parents=True, exist_ok=True)
    cert.parent.mkdir(parents=True, exist_ok=True)
    partial = key.with_name(key.name + ".partial")  # openssl writes a -keyout file 0600
    partial.unlink(missing_ok=True)
    run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-sha256", "-days", str(SNAKEOIL_DAYS), "-subj", f"/CN={hostname}",
            "-addext", f"subjectAltName=DNS:{hostname}",
            "-keyout", str(partial), "-out", str(cert),
        ],
        timeout=IDENTITY_TIMEOUT_S,
    )  # fmt: skip
    os.chown(partial, 0, gid)
    partial.chmod(0o640)
    partial.rename(key)
    cert.chmod(0o644)
    digest = run(["openssl", "x509", "-hash", "-noout", "-in", str(cert)], timeout=60)
    symlink_atomic(cert.parent / f"{digest.stdout.decode().strip()}.0", cert.name)
    return "TLS snakeoil key made on this machine (P-256)"


def postgres_versions(root: Path) -> list[str]:
    base = root / "usr/lib/postgresql"
    return (
        sorted(p.name for p in base.iterdir() if (p / "bin/initdb").exists())
        if base.is_dir()
        else []
    )


def make_postgres_cluster(root: Path, hostname: str) -> str | None:  # noqa: ARG001 (a maker)
    """The `main` cluster of the installed PostgreSQL, with the appliance's access files."""
    versions = postgres_versions(root)
    if not versions or not _has(root, "pg_createcluster"):
        return None
    version = versions[-1]
    config = root / "etc/postgresql" / version / "main"
    if not (root / "var/lib/postgresql" / version / "main/PG_VERSION").exists():
        if config.exists():  # a half-made cluster from an interrupted try: make it again
            shutil.rmtree(config)
        # initdb's own fsync of every file is left out: the installer syncs the whole disk
        # once at its end, and an install cut short is made again from the start
        _in_target(root, "pg_createcluster", version, "main", "--", "--no-sync")
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


MAKERS: tuple[Callable[[Path, str], str | None], ...] = (
    make_ssh_host_keys,
    make_tls_snakeoil,  # before the cluster: pg_createcluster turns on SSL when the pair exists
    make_postgres_cluster,
)


def make_machine_identities(root: Path, hostname: str, say: Callable[[str], None]) -> list[str]:
    """Make every identity the copied system at `root` (to be named `hostname`) lacks; say and
    return what was done. The caller has /dev, /proc, /sys and /run mounted in the target."""
    done = []
    for maker in MAKERS:
        result = maker(root, hostname)
        if result is not None:
            say(result)
            done.append(result)
    return done
