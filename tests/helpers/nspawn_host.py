"""A running Debian 12 host for the existing-host test: a debootstrap root booted with
`systemd-nspawn --boot`, so real systemd runs PostgreSQL and our units.

The root (minbase plus systemd, Debian's PostgreSQL and python3) is cached like the image's base
(iso/build.py): in `$CLAWDIE_ISO_CACHE/existing-host/base-<key>`, keyed by the recipe, the
suite and the package list, sharing the image build's .deb cache. Each test boots a writable
overlay of it, so the cached root is never changed. Commands run inside the machine through
`nsenter` into its namespaces (the host's PID 1 is not systemd here, so there is no machined:
the container runs with --register=no --keep-unit). The machine has no network
(--private-network): first boot then reports `degraded: no network` and sends nothing.

What `install-platform` needs from this checkout reaches the machine at the same path: the
worktree (read-only) and uv's cache, from which the venv is installed offline.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from installer.paths import in_root

SUITE = "bookworm"
MIRROR = os.environ.get("CLAWDIE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE = Path(os.environ.get("CLAWDIE_ISO_CACHE", "/var/cache/clawdie-iso"))
DEBS = CACHE / "debs"  # the image build's package cache, shared
RECIPE = "1"  # bump when the way the root is made changes
# What an ordinary small Debian 12 server has that the platform relies on; PostgreSQL comes
# from Debian, as the existing host has it. No apt lists are kept: apt-get is not run.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "postgresql",
    "python3",
    "ca-certificates",
    "tzdata",
    "locales",
    "openssh-server",
    "iproute2",
)
BOOT_TIMEOUT_S = 180.0


def _sh(argv: list[str], timeout: float = 1800.0) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-20:]
        raise RuntimeError(f"{shlex.join(argv)} exited {proc.returncode}:\n" + "\n".join(tail))
    return proc.stdout


def base_key() -> str:
    digest = hashlib.sha256()
    for part in (RECIPE, SUITE, MIRROR, *PACKAGES):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def cached_root() -> Path:
    """The debootstrap root, made once (a few minutes) and then reused."""
    cache = CACHE / "existing-host"
    base = cache / f"base-{base_key()}"
    if (base / ".complete").is_file():
        return base
    tmp = base.with_name(base.name + ".tmp")
    if tmp.exists():
        _sh(["rm", "-rf", "--one-file-system", str(tmp)])
    DEBS.mkdir(parents=True, exist_ok=True)
    _sh(
        [
            "debootstrap",
            "--variant=minbase",
            "--arch=amd64",
            f"--cache-dir={DEBS}",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(tmp),
            MIRROR,
        ]
    )
    (tmp / "etc/machine-id").unlink(missing_ok=True)  # each machine gets its own
    for key in (tmp / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (tmp / ".complete").write_text(base_key() + "\n")
    tmp.rename(base)
    for stale in cache.glob("base-*"):
        if stale != base:
            _sh(["rm", "-rf", "--one-file-system", str(stale)])
    return base


@dataclass
class Machine:
    """A booted overlay of the cached root."""

    root: Path
    leader: int
    log: Path

    def run(
        self, *argv: str, env: dict[str, str] | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """`argv` inside the machine, as root, with a clean environment."""
        base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
        command = ["env", "-i", *(f"{k}={v}" for k, v in {**base, **(env or {})}.items()), *argv]
        return subprocess.run(
            ["nsenter", f"--target={self.leader}", "-m", "-u", "-i", "-n", "-p", *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _leader(nspawn: subprocess.Popen[bytes]) -> int:
    """The machine's PID 1 (as the host sees it): the nspawn process's child."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if nspawn.poll() is not None:
            break
        for task in Path(f"/proc/{nspawn.pid}/task").iterdir():
            children = (task / "children").read_text().split()
            if children:
                return int(children[0])
        time.sleep(0.2)
    raise RuntimeError("systemd-nspawn started no machine")


@contextlib.contextmanager
def booted(
    work: Path,
    prepare: list[tuple[str, bytes, int]],
    *,
    read_only: list[Path],
    writable: list[Path],
    apt_archives: tuple[str, ...] = (),
) -> Iterator[Machine]:
    """Boot an overlay of the cached root; `prepare` writes (path, content, mode) into it first
    (before systemd starts); `read_only` and `writable` are host paths the machine sees at the
    same place. `apt_archives`: .deb files (glob patterns) from the cache the root was made from,
    copied into the machine's apt archive, so apt-get installs those packages without a
    network."""
    base = cached_root()
    for name in ("upper", "work", "root"):
        (work / name).mkdir(parents=True)
    root = work / "root"
    options = f"lowerdir={base},upperdir={work / 'upper'},workdir={work / 'work'}"
    _sh(["mount", "-t", "overlay", "overlay", "-o", options, str(root)])
    nspawn = None
    try:
        (root / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")
        for path, content, mode in prepare:
            target = in_root(root, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            target.chmod(mode)
        archive = work / "archives"
        (archive / "partial").mkdir(parents=True)
        for pattern in apt_archives:
            for deb in DEBS.glob(pattern):
                shutil.copyfile(deb, archive / deb.name)
        log = work / "console.log"
        argv = [
            "systemd-nspawn",
            f"--directory={root}",
            "--boot",
            "--register=no",
            "--keep-unit",
            "--private-network",
            "--console=pipe",
            "--quiet",
            *(f"--bind-ro={p}" for p in read_only),
            *(f"--bind={p}" for p in writable),
            *([f"--bind={archive}:/var/cache/apt/archives"] if apt_archives else []),
        ]
        with log.open("wb") as out:
            nspawn = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        machine = Machine(root=root, leader=_leader(nspawn), log=log)
        wait_until_up(machine)
        yield machine
    finally:
        if nspawn is not None:
            nspawn.terminate()  # nspawn asks the machine's systemd to power off
            try:
                nspawn.wait(timeout=60)
            except subprocess.TimeoutExpired:
                nspawn.kill()
                nspawn.wait(timeout=30)
        subprocess.run(["umount", "-l", str(root)], check=False, capture_output=True)
        shutil.rmtree(work / "work", ignore_errors=True)


def wait_until_up(machine: Machine) -> None:
    """Until systemd has started everything (running or degraded)."""
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    state = ""
    while time.monotonic() < deadline:
        proc = machine.run("systemctl", "is-system-running", "--wait", timeout=BOOT_TIMEOUT_S)
        state = proc.stdout.strip()
        if state in {"running", "degraded"}:
            return
        time.sleep(1)
    raise RuntimeError(
        f"the machine did not come up ({state or 'no answer'}):\n"
        + machine.log.read_text(errors="replace")[-3000:]
    )
