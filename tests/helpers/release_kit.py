"""A platform release for the BIOS lane's adopt stick (tests/test_boot.py): the image's own payload
(/opt/clawdie/platform as the installed disk has it, its dashboard's Node modules with it) made
a newer version, signed with a minisign key made here, and the box made to trust that key (its
public half written into the run's copy of the installed disk, offline with debugfs, as the Wi-Fi
and update kits write their files). The product image trusts no key unless its build is given
one (`--release-key`), and no private key is kept anywhere.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import minisign

from tests.helpers.disk_image import read_file, root_filesystem, write_root
from tests.helpers.update import bundle

PAYLOAD = "/opt/clawdie/platform"
KEY_PATH = "/etc/clawdie/release.pub"
# The readiness check waits for the dashboard over HTTPS: Node starts slowly under TCG.
READY_TIMEOUT_S = 600


def image_payload(disk: Path, dest: Path) -> Path:
    """The payload the installed disk runs, dumped offline (modes kept) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    with root_filesystem(disk) as node:
        proc = subprocess.run(
            ["debugfs", "-R", f"rdump {PAYLOAD} {dest}", node],
            capture_output=True,
            text=True,
            check=False,
        )
    folder = dest / Path(PAYLOAD).name
    assert proc.returncode == 0, proc.stderr
    assert (folder / "platform.toml").is_file(), proc.stderr
    return folder


def newer(folder: Path, version: str) -> Path:
    """`folder`'s manifest made `version` (and its readiness deadline one for TCG)."""
    manifest = folder / "platform.toml"
    text = re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', manifest.read_text())
    text = re.sub(r"(?m)^timeout_s = \d+$", f"timeout_s = {READY_TIMEOUT_S}", text)
    manifest.write_text(text)
    renamed = folder.with_name(f"clawdie-platform-{version}")
    folder.rename(renamed)
    return renamed


def signed_release(disk: Path, workdir: Path, version: str) -> tuple[Path, minisign.KeyPair]:
    """The image's payload as `version`, a tar and its `.minisig` in `workdir/release`, and the
    key pair that signed it."""
    key = minisign.KeyPair.generate()
    folder = newer(image_payload(disk, workdir / "payload"), version)
    return bundle(folder, workdir / "release", key), key


def trust(disk: Path, key: minisign.PublicKey, workdir: Path) -> None:
    """`key` as the box's publisher key (/etc/clawdie/release.pub, root's, 0644) on `disk`."""
    local = workdir / "release.pub"
    local.write_bytes(bytes(key) + b"\n")
    with root_filesystem(disk) as node:
        there = read_file(node, KEY_PATH) is not None
    folder, name = KEY_PATH.rsplit("/", 1)
    commands = [f"cd {folder}", *([f"rm {name}"] if there else []), f"write {local} {name}"]
    commands += [f"sif {name} mode 0100644", f"sif {name} uid 0", f"sif {name} gid 0"]
    write_root(disk, "\n".join(commands), "the publisher's key")


def link_target(disk: Path) -> str:
    """Where /opt/clawdie/platform points on a shut-down disk ('' for the image's folder)."""
    with root_filesystem(disk) as node:
        proc = subprocess.run(
            ["debugfs", "-R", f"stat {PAYLOAD}", node], capture_output=True, text=True, check=False
        )
    match = re.search(r'Fast link dest: "([^"]*)"', proc.stdout)
    return match.group(1) if match else ""
