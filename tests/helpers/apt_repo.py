"""A Debian package repository on loopback for the unattended-upgrades proof: tiny .deb files
made with dpkg-deb, a `dists/<suite>` tree whose Release names its origin, label and codename
(what unattended-upgrades' Origins-Pattern matches on), served by tests/helpers/loopback.py."""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Origin:
    """What a repository's Release says of itself."""

    origin: str
    label: str
    suite: str
    codename: str


DEBIAN_SECURITY = Origin("Debian", "Debian-Security", "bookworm-security", "bookworm-security")
DEBIAN_MAIN = Origin("Debian", "Debian", "stable", "bookworm")


def build_deb(out: Path, name: str, version: str, postinst: str = "") -> Path:
    """A binary package that installs one file, /usr/share/<name>/version, holding `version`."""
    tree = out / f"{name}_{version}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Clawdie tests "
        f"<tests@example.invalid>\nPriority: optional\nSection: misc\n"
        f"Description: a probe for the unattended-upgrades test\n"
    )
    if postinst:
        script = tree / "DEBIAN/postinst"
        script.write_text(f"#!/bin/sh\nset -e\n{postinst}\n")
        script.chmod(0o755)
    share = tree / "usr/share" / name
    share.mkdir(parents=True)
    (share / "version").write_text(version + "\n")
    deb = out / f"{name}_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


def _stanza(deb: Path, filename: str) -> str:
    control = subprocess.run(
        ["dpkg-deb", "--field", str(deb)], check=True, capture_output=True, text=True
    ).stdout.rstrip("\n")
    data = deb.read_bytes()
    return (
        f"{control}\nFilename: {filename}\nSize: {len(data)}\n"
        f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
    )


def make_repository(root: Path, origin: Origin, debs: list[Path]) -> Path:
    """`root` as a repository of `debs` in suite `origin.codename`, component main."""
    pool = root / "pool/main"
    pool.mkdir(parents=True)
    stanzas = []
    for deb in debs:
        (pool / deb.name).write_bytes(deb.read_bytes())
        stanzas.append(_stanza(deb, f"pool/main/{deb.name}"))
    dist = root / "dists" / origin.codename
    index = dist / "main/binary-amd64/Packages"
    index.parent.mkdir(parents=True)
    index.write_text("\n".join(stanzas))
    data = index.read_bytes()
    (dist / "Release").write_text(
        f"Origin: {origin.origin}\nLabel: {origin.label}\nSuite: {origin.suite}\n"
        f"Codename: {origin.codename}\nArchitectures: amd64\nComponents: main\n"
        f"SHA256:\n {hashlib.sha256(data).hexdigest()} {len(data)} main/binary-amd64/Packages\n"
    )
    return root


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@contextlib.contextmanager
def writable_root(lower: Path, work: Path) -> Iterator[Path]:
    """A writable overlay of the read-only root `lower` (its changes in `work`), with /proc and
    /dev, to chroot into; unmounted after, `lower` untouched."""
    upper, scratch, merged = work / "upper", work / "work", work / "merged"
    for path in (upper, scratch, merged):
        path.mkdir(parents=True)
    _sh(
        "mount", "-t", "overlay", "overlay", "-o",
        f"lowerdir={lower},upperdir={upper},workdir={scratch}", str(merged),
    )  # fmt: skip
    mounted = [merged]
    try:
        _sh("mount", "-t", "proc", "proc", str(merged / "proc"))
        mounted.append(merged / "proc")
        _sh("mount", "--bind", "/dev", str(merged / "dev"))
        mounted.append(merged / "dev")
        yield merged
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", "--lazy", str(path)], check=False, capture_output=True)


def in_root(root: Path, script: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    """`script` run by sh inside `root` (chroot), as a non-interactive apt run would be."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LC_ALL": "C.UTF-8",
        "HOME": "/root",
    }
    return subprocess.run(
        ["chroot", str(root), "sh", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# Debian bookworm's own list (unattended-upgrades' 50unattended-upgrades), which ours follows.
DEBIANS = """\
Unattended-Upgrade::Origins-Pattern {
        "origin=Debian,codename=${distro_codename},label=Debian";
        "origin=Debian,codename=${distro_codename},label=Debian-Security";
        "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";
};
"""


def apt_config(parts: Path) -> dict[str, list[str]]:
    """`apt-config dump` of only the files in `parts` (none of this machine's)."""
    main = parts.parent / "apt.conf"
    main.write_text(f'Dir::Etc::Parts "{parts}";\nDir::Etc::main "{parts.parent / "none"}";\n')
    (parts.parent / "none").write_text("")
    env = {**os.environ, "APT_CONFIG": str(main)}
    out = subprocess.run(
        ["apt-config", "dump"], env=env, capture_output=True, text=True, check=True, timeout=30
    ).stdout
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        found.setdefault(key, []).append(value.rstrip(";").strip('"'))
    return found


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser
