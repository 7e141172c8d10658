"""The per-machine identities the disk installer makes in the copied system: SSH host keys and
the TLS snakeoil pair, made for real with ssh-keygen and openssl in a sandbox root (the cluster
needs a chroot with PostgreSQL in it: the boot test makes and compares that one)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from installer.errors import InstallerError
from installer.install import identities

SSL_CERT_GID = 4242


def target_root(tmp_path: Path, name: str = "root") -> Path:
    """A copied system's shape as far as the makers look: the tools it carries, its groups."""
    root = tmp_path / name
    for program in ("usr/bin/ssh-keygen", "usr/bin/openssl", "usr/sbin/make-ssl-cert"):
        (root / program).parent.mkdir(parents=True, exist_ok=True)
        (root / program).write_text("")
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/group").write_text(f"root:x:0:\nssl-cert:x:{SSL_CERT_GID}:postgres\n")
    return root


def openssl_text(*argv: str) -> str:
    return subprocess.run(["openssl", *argv], capture_output=True, text=True, check=True).stdout


def test_ssh_host_keys_are_elliptic_curve_only(tmp_path: Path) -> None:
    root = target_root(tmp_path)
    said = identities.make_ssh_host_keys(root, "boot-test")
    assert said == "SSH host keys made on this machine (Ed25519, ECDSA)"
    made = sorted(p.name for p in (root / "etc/ssh").iterdir())
    assert made == [
        "ssh_host_ecdsa_key",
        "ssh_host_ecdsa_key.pub",
        "ssh_host_ed25519_key",
        "ssh_host_ed25519_key.pub",
    ]
    for kind in identities.HOST_KEY_TYPES:
        key = root / f"etc/ssh/ssh_host_{kind}_key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert (root / f"etc/ssh/ssh_host_{kind}_key.pub").read_text().endswith(" root@boot-test\n")
    # a second run keeps them
    before = (root / "etc/ssh/ssh_host_ed25519_key").read_bytes()
    assert identities.make_ssh_host_keys(root, "boot-test") == "SSH host keys: already there"
    assert (root / "etc/ssh/ssh_host_ed25519_key").read_bytes() == before


def test_two_machines_get_different_keys(tmp_path: Path) -> None:
    one, two = target_root(tmp_path, "one"), target_root(tmp_path, "two")
    for root in (one, two):
        identities.make_ssh_host_keys(root, "box")
        identities.make_tls_snakeoil(root, "box")
    for name in ("etc/ssh/ssh_host_ed25519_key", identities.SNAKEOIL_KEY):
        assert (one / name).read_bytes() != (two / name).read_bytes()


def test_tls_snakeoil_pair_is_where_postgresql_reads_it(tmp_path: Path) -> None:
    root = target_root(tmp_path)
    said = identities.make_tls_snakeoil(root, "boot-test")
    assert said == "TLS snakeoil key made on this machine (P-256)"
    key, cert = root / identities.SNAKEOIL_KEY, root / identities.SNAKEOIL_CERT
    info = key.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 0, SSL_CERT_GID)
    assert stat.S_IMODE(cert.stat().st_mode) == 0o644
    assert not list(key.parent.glob("*.partial"))
    text = openssl_text("x509", "-in", str(cert), "-noout", "-text")
    assert "Subject: CN = boot-test" in text
    assert "DNS:boot-test" in text
    assert "prime256v1" in text or "P-256" in text
    # the key is the certificate's
    assert openssl_text("pkey", "-in", str(key), "-pubout") == openssl_text(
        "x509", "-in", str(cert), "-noout", "-pubkey"
    )
    # the hash link make-ssl-cert makes, to the certificate by its name
    links = [p for p in cert.parent.iterdir() if p.is_symlink()]
    assert [os.readlink(p) for p in links] == [cert.name]
    assert links[0].name.endswith(".0")
    assert identities.make_tls_snakeoil(root, "boot-test") == "TLS snakeoil key: already there"


def test_tls_pair_needs_the_ssl_cert_group(tmp_path: Path) -> None:
    root = target_root(tmp_path)
    (root / "etc/group").write_text("root:x:0:\n")
    with pytest.raises(InstallerError, match="no ssl-cert group"):
        identities.make_tls_snakeoil(root, "boot-test")
    assert not (root / identities.SNAKEOIL_KEY).exists()


def test_a_system_without_the_tools_gets_no_identity(tmp_path: Path) -> None:
    root = tmp_path / "bare"
    (root / "etc").mkdir(parents=True)
    assert identities.make_ssh_host_keys(root, "box") is None
    assert identities.make_tls_snakeoil(root, "box") is None
    assert identities.make_postgres_cluster(root, "box") is None
    said: list[str] = []
    assert identities.make_machine_identities(root, "box", said.append) == []
    assert said == []
