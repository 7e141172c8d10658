"""Build the Clawdie installer image: `just iso` (root, Debian 12).

A flat list of steps, each logged with its time. The Debian base system (debootstrap plus the
packages in iso/packages.txt) is cached outside the repo, keyed by everything that goes into
it, so a build where only Python code changed reuses it and only redoes the product layer:
the installer's venv from uv.lock, the platform payload, the units and configuration in
iso/overlay, the squashfs and the ISO. See iso/README.md for the layout and the choices.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from installer.errors import InstallerError, ProgramMissingError, UsageError  # noqa: E402
from installer.fsutil import file_sha256  # noqa: E402
from installer.media.seed_image import DEFAULT_SIZE, make_plan, write_seed_image  # noqa: E402
from installer.paths import in_root  # noqa: E402
from installer.run import run  # noqa: E402
from installer.update.channel import check_channel_url  # noqa: E402
from installer.update.nodeparts import build_modules  # noqa: E402
from installer.update.signed import install_public_key, read_public_key  # noqa: E402
from installer.update_channel import install_channel  # noqa: E402
from installer.venv import VenvSource  # noqa: E402
from installer.venv import install_venv as shared_install_venv  # noqa: E402

SUITE = "bookworm"
ARCH = "amd64"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Security updates (shim and GRUB revocations, SBAT, kernel fixes) come from here: the image's
# and so the installed system's apt sources name it, and the build takes its packages from it.
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# non-free-firmware: the firmware of the common wired and Wi-Fi chips (DESIGN §5, §7).
COMPONENTS = "main non-free-firmware"
# Bump when the way the base is made changes (not the package list: that is hashed itself).
BASE_RECIPE = "5"
VOLUME_ID = "CLAWDIE_INSTALL"
IMAGE_NAME = "clawdie-installer.iso"
# One build command never outlives this (debootstrap of the whole base on a slow mirror is the
# longest); a hung one fails the build with its command line instead of hanging it.
BUILD_COMMAND_TIMEOUT_S = 3600.0
# zstd level 9, measured on this image's root (1 GB, 2 cores): level 3 gives 297 MB in 8 s,
# 9 gives 278 MB in 26 s, 15 gives 276 MB in 91 s and 19 takes over 4 minutes. Level 9 has
# nearly all of the size win at a third of level 15's time, which keeps a build where only the
# Python code changed well inside 3 minutes; reading is as fast at any level.
ZSTD_LEVEL = 9
ISO_MBR_PART_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"  # Linux data: not "format me?"
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
BASIC_DATA_TYPE = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
# BIOS GRUB's modules (El Torito); the UEFI GRUB is Debian's signed one, modules built in.
GRUB_MODULES = (
    "normal configfile linux echo test search search_label search_fs_file search_fs_uuid "
    "iso9660 part_gpt part_msdos fat ext2 serial terminal all_video gfxterm ls cat sleep "
    "reboot halt"
).split()
# systemd.wants: the live installer looks for the seed once USB disks have settled; pulled in
# from here, the installed system (same units, no such parameter) does not wait for it.
# systemd.show_status=error: systemd prints on /dev/console (tty1: tty0 is named last) only a
# unit that failed; its "[  OK  ]" lines and "A start job is running for …" (the installer's
# own start job while it waits for an answer) would be written over the installer's question.
LIVE_CMDLINE = (
    "boot=live components systemd.wants=systemd-udev-settle.service "
    "console=ttyS0,115200n8 console=tty0 systemd.show_status=error"
)
DPKG_EXCLUDES = """\
# The appliance has no manual pages, info pages or translations: smaller image.
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
# (Debian 12 packages still ship modules under /lib, which dpkg matches literally.)
# Kernel modules a headless server appliance never loads: sound, cameras and TV, InfiniBand,
# industrial sensors, and the big desktop GPU drivers (the text console runs on the firmware frame
# buffer, built in). Wi-Fi stays: setup.txt's WIFI_* lines join a network (DESIGN §7).
path-exclude=/lib/modules/*/kernel/sound/*
path-exclude=/lib/modules/*/kernel/drivers/media/*
path-exclude=/lib/modules/*/kernel/drivers/infiniband/*
path-exclude=/lib/modules/*/kernel/drivers/iio/*
path-exclude=/lib/modules/*/kernel/drivers/gpu/drm/amd/*
path-exclude=/lib/modules/*/kernel/drivers/gpu/drm/nouveau/*
path-exclude=/lib/modules/*/kernel/drivers/gpu/drm/radeon/*
path-exclude=/lib/modules/*/kernel/drivers/gpu/drm/i915/*
# Firmware for hardware the image has no driver for, or that is never in a small PC: the desktop
# GPUs' (their drivers are left out above; 29 MB of firmware-misc-nonfree), and Qualcomm Wi-Fi of
# routers, access points and phone SoCs (40 MB of firmware-atheros); the PCIe/M.2 cards of PCs
# (ath10k QCA6174, QCA9377; ath11k QCA6390, WCN6855) stay.
path-exclude=/lib/firmware/i915/*
path-exclude=/lib/firmware/nvidia/*
path-exclude=/lib/firmware/ath11k/IPQ*
path-exclude=/lib/firmware/ath11k/QCN9074/*
path-exclude=/lib/firmware/ath11k/WCN6750/*
path-exclude=/lib/firmware/ath10k/QCA4019/*
path-exclude=/lib/firmware/ath10k/QCA988*
path-exclude=/lib/firmware/ath10k/QCA9984/*
path-exclude=/lib/firmware/ath10k/QCA99X0/*
path-exclude=/lib/firmware/ath10k/WCN3990/*
# Secure Boot (DESIGN §5): the ESPs get the signed loaders (*.efi.signed) only; the unsigned
# builds of shim, MokManager and the fallback loader (shim-unsigned) and GRUB's network-boot
# images (grubnetx64: an appliance never boots from the network) are never installed.
path-exclude=/usr/lib/shim/*.efi
path-exclude=/usr/lib/grub/x86_64-efi-signed/grubnet*
# PostgreSQL's JIT (llvmjit.so) is the only user of LLVM and Z3 (130 MB); the image turns JIT
# off (iso/postgresql.conf), and the server runs fine without the library.
path-exclude=/usr/lib/x86_64-linux-gnu/libLLVM-*
path-exclude=/usr/lib/x86_64-linux-gnu/libz3.so*
path-exclude=/usr/lib/postgresql/*/lib/llvmjit*
path-exclude=/usr/lib/postgresql/*/lib/bitcode/*
"""
# Sourced by live-boot in the initramfs: it looks for the medium on ISO 9660 volumes only.
LIVE_BOOT_OVERRIDE = REPO / "iso/live-boot/9999-clawdie-medium-only.sh"
# What debootstrap unpacked before the excludes above were in place.
PRUNE_AFTER_DEBOOTSTRAP = ("usr/share/man", "usr/share/info", "usr/share/lintian")


@dataclass(frozen=True)
class BuildConfig:
    """Everything the build is made from; frozen, decided once from the command line."""

    out_dir: Path
    cache_dir: Path
    platform_dir: Path
    mirror: str
    epoch: int
    packages: tuple[str, ...]
    zstd_level: int
    release_key: Path | None = None  # the publisher's minisign public key (DESIGN §9)
    update_channel: str | None = None  # the default update channel's URL (DESIGN §9)

    @property
    def base_key(self) -> str:
        digest = hashlib.sha256()
        for part in (
            BASE_RECIPE,
            SUITE,
            ARCH,
            COMPONENTS,
            self.mirror,
            SECURITY_MIRROR,
            *self.packages,
        ):
            digest.update(part.encode() + b"\0")
        digest.update(DPKG_EXCLUDES.encode())
        digest.update(LIVE_BOOT_OVERRIDE.read_bytes())
        return digest.hexdigest()[:16]

    @property
    def base_dir(self) -> Path:
        return self.cache_dir / f"base-{self.base_key}"

    @property
    def image(self) -> Path:
        return self.out_dir / IMAGE_NAME


class Step:
    """A named step: logs its start and how long it took."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = time.monotonic()

    def __enter__(self) -> Step:
        print(f"iso: {self.name} ...", flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        took = time.monotonic() - self.started
        state = "failed" if exc[0] else "done"
        print(f"iso: {self.name} {state} in {took:.1f} s", flush=True)


def sh(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
    quiet: bool = True,
    timeout: float = BUILD_COMMAND_TIMEOUT_S,
    cwd: Path | None = None,
) -> str:
    """Run a build command with `installer.run` (bounded; a missing program is worded); on
    failure raise with the command line, exit code and the tail of all it printed (a build
    tool often says why on its standard output)."""
    proc = run(argv, env=env, unset=unset, check=False, timeout=timeout, cwd=cwd)
    out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        tail = (out + err).strip().splitlines()[-15:]
        raise InstallerError(
            f"command failed (exit {proc.returncode}): {shlex.join(argv)}\n  " + "\n  ".join(tail),
            "the lines above are the command's own output",
        )
    if not quiet and out.strip():
        print(out.rstrip(), flush=True)
    return out


def sh_quiet(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run a command whose failure is no failure of the build (a lazy unmount, `git describe`
    outside a checkout): its result, whatever the exit code; a missing program is still worded."""
    return run(argv, check=False, timeout=BUILD_COMMAND_TIMEOUT_S)


def read_packages(path: Path) -> tuple[str, ...]:
    """Package names from iso/packages.txt: one per line, # comments and blank lines ignored."""
    names = []
    for line in path.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    return tuple(names)


# Ports the box itself uses: a payload cannot declare them as its dashboard's.
RESERVED_PORTS = {22: "SSH", 53: "DNS", 68: "DHCP", 546: "DHCPv6", 5353: "mDNS", 5432: "PostgreSQL"}
DASHBOARD_RULE = "@DASHBOARD_RULE@"


def check_platform_port(manifest: Path, port: object) -> int | None:
    """platform.toml's optional `port` (the dashboard's TCP port, which the firewall admits)."""
    if port is None:
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise UsageError(f"{manifest}: port must be a TCP port number (1-65535), e.g. 3000")
    if port in RESERVED_PORTS:
        raise UsageError(
            f"{manifest}: port {port} is the box's own {RESERVED_PORTS[port]} port",
            "give the port the platform's dashboard listens on",
        )
    return port


def render_firewall(port: int | None) -> str:
    """The appliance's nftables ruleset (iso/nftables.conf) with the dashboard's port, if any."""
    rule = f'tcp dport {port} accept comment "the dashboard"' if port else "# no dashboard port"
    return (REPO / "iso/nftables.conf").read_text().replace(DASHBOARD_RULE, rule)


def read_platform_manifest(platform_dir: Path) -> dict[str, object]:
    """The platform payload's manifest (platform.toml): name, version and start command, and
    the optional `port` its dashboard listens on."""
    manifest = platform_dir / "platform.toml"
    if not manifest.is_file():
        raise UsageError(
            f"{platform_dir} has no platform.toml",
            "the platform payload is a folder with platform.toml (name, version, start)",
        )
    data = tomllib.loads(manifest.read_text())
    start = data.get("start")
    if not isinstance(start, list) or not start or not all(isinstance(s, str) for s in start):
        raise UsageError(f'{manifest}: start must be a list of strings, e.g. ["bin/run"]')
    for key in ("name", "version"):
        if not isinstance(data.get(key), str):
            raise UsageError(f"{manifest}: {key} must be a string")
    program = platform_dir / start[0]
    if not (program.is_file() and os.access(program, os.X_OK)):
        raise UsageError(f"{manifest}: start program {start[0]} is not an executable file")
    check_platform_port(manifest, data.get("port"))
    return data


@contextlib.contextmanager
def chroot_mounts(root: Path, apt_cache: Path | None = None) -> Iterator[None]:
    """/proc, /sys, /dev (and the apt cache) mounted in `root` for as long as the block runs."""
    mounted: list[Path] = []
    try:
        for argv, target in (
            (["mount", "-t", "proc", "proc"], root / "proc"),
            (["mount", "-t", "sysfs", "sysfs"], root / "sys"),
            (["mount", "--bind", "/dev"], root / "dev"),
            (["mount", "--bind", "/dev/pts"], root / "dev/pts"),
        ):
            target.mkdir(parents=True, exist_ok=True)
            sh([*argv, str(target)])
            mounted.append(target)
        if apt_cache is not None:
            target = root / "var/cache/apt/archives"
            target.mkdir(parents=True, exist_ok=True)
            sh(["mount", "--bind", str(apt_cache), str(target)])
            mounted.append(target)
        yield
    finally:
        for target in reversed(mounted):
            sh_quiet(["umount", "-l", str(target)])


def in_chroot(root: Path, *argv: str, env: dict[str, str] | None = None) -> str:
    base = {"DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    return sh(["chroot", str(root), *argv], env={**base, **(env or {})})


# ---- the cached base system -------------------------------------------------------------------


def build_base(config: BuildConfig) -> bool:
    """Debian base with every package, cached by key; returns whether it was built now."""
    if (config.base_dir / ".complete").is_file():
        print(f"iso: base system cached ({config.base_dir.name})", flush=True)
        return False
    tmp = config.base_dir.with_name(config.base_dir.name + ".tmp")
    if tmp.exists():
        sh(["rm", "-rf", "--one-file-system", str(tmp)])
    debs = config.cache_dir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    with Step("debootstrap (minbase)"):
        sh(
            [
                "debootstrap",
                "--variant=minbase",
                f"--arch={ARCH}",
                f"--cache-dir={debs}",
                SUITE,
                str(tmp),
                config.mirror,
            ]
        )
    with Step(f"install {len(config.packages)} packages"):
        (tmp / "etc/dpkg/dpkg.cfg.d/clawdie-excludes").write_text(DPKG_EXCLUDES)
        policy = tmp / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\n# no service starts while the image is built\nexit 101\n")
        policy.chmod(0o755)
        (tmp / "etc/apt/sources.list").write_text(
            f"deb {config.mirror} {SUITE} {COMPONENTS}\n"
            f"deb {config.mirror} {SUITE}-updates {COMPONENTS}\n"
            f"deb {SECURITY_MIRROR} {SUITE}-security {COMPONENTS}\n"
        )
        shutil.copyfile("/etc/resolv.conf", tmp / "etc/resolv.conf")
        with chroot_mounts(tmp, apt_cache=debs):
            in_chroot(tmp, "apt-get", "update", "-qq")
            in_chroot(
                tmp,
                "apt-get",
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "-o",
                "APT::Keep-Downloaded-Packages=true",
                *config.packages,
            )
            shutil.copyfile(LIVE_BOOT_OVERRIDE, tmp / "usr/lib/live/boot" / LIVE_BOOT_OVERRIDE.name)
            in_chroot(tmp, "update-initramfs", "-u", "-k", "all")
            manifest = in_chroot(tmp, "dpkg-query", "-W", "-f", "${Package}\t${Version}\n")
        policy.unlink()
        prune_docs(tmp)
        (tmp / "etc/resolv.conf").unlink()
        for path in (tmp / "var/lib/apt/lists").glob("*_*"):
            path.unlink()
        (tmp / ".packages.manifest").write_text(manifest)
    (tmp / ".complete").write_text(f"{config.base_key}\n")
    tmp.rename(config.base_dir)
    for stale in config.cache_dir.glob("base-*"):
        if stale != config.base_dir:  # an older package list: about 1 GB that nothing reads
            print(f"iso: removing the stale base {stale.name}", flush=True)
            sh(["rm", "-rf", "--one-file-system", str(stale)])
    return True


def prune_docs(root: Path) -> None:
    """Remove what the dpkg excludes would have kept out of the packages debootstrap unpacked."""
    for name in PRUNE_AFTER_DEBOOTSTRAP:
        shutil.rmtree(root / name, ignore_errors=True)
    for item in (root / "usr/share/locale").glob("*"):
        if item.name != "locale.alias":
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    for item in (root / "usr/share/doc").glob("*/*"):
        if item.name != "copyright":
            shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()


# ---- the product layer -------------------------------------------------------------------------


@contextlib.contextmanager
def layered_root(config: BuildConfig) -> Iterator[Path]:
    """The cached base with a fresh writable layer on top (overlayfs), removed afterwards."""
    work = config.cache_dir / "layer"
    if work.exists():
        sh_quiet(["umount", "-l", str(work / "merged")])
        sh(["rm", "-rf", "--one-file-system", str(work)])
    for name in ("upper", "work", "merged"):
        (work / name).mkdir(parents=True)
    options = f"lowerdir={config.base_dir},upperdir={work / 'upper'},workdir={work / 'work'}"
    sh(["mount", "-t", "overlay", "overlay", "-o", options, str(work / "merged")])
    try:
        yield work / "merged"
    finally:
        sh_quiet(["umount", "-l", str(work / "merged")])


def install_venv(config: BuildConfig, root: Path, work: Path) -> str:
    """The installer and its locked dependencies in /opt/clawdie/venv (installer/venv.py, the
    recipe install-platform uses too); returns the pin list."""
    source = VenvSource(checkout=REPO, uv=REPO / ".venv/bin/uv")
    _, pins = shared_install_venv(
        source,
        root,
        work / "venv",
        arch=ARCH,
        epoch=config.epoch,
        compile_site=lambda site: compile_bytecode(config, root, [site]),
    )
    return pins


def compile_bytecode(config: BuildConfig, root: Path, dirs: list[Path]) -> None:
    """Bytecode that Python loads without validating it: unchecked-hash pycs (PEP 552).

    The image is read-only and its files never change under the pycs. Timestamp pycs would be
    stale: the squashfs gives every file the build's epoch as its time, so each import at first
    boot would compile its module again (Debian's own stdlib pycs included, hence `-f`); checked
    hashes would read and hash every source at each import. An unchecked-hash pyc depends only
    on its source, so two builds of the same inputs give the same bytes.
    """
    in_chroot(
        root,
        "/usr/bin/python3",
        "-m",
        "compileall",
        "-q",
        "-f",
        "-j",
        "0",
        "--invalidation-mode",
        "unchecked-hash",
        *map(str, dirs),
        env={"SOURCE_DATE_EPOCH": str(config.epoch)},
    )


def stdlib_dir(root: Path) -> Path:
    """The image's standard library (/usr/lib/python3.N), as a path inside the image."""
    (found,) = (root / "usr/lib").glob("python3.[0-9]*")
    return Path("/") / found.relative_to(root)


# The locale first boot sets when setup.txt names none (installer/seed/resolve.py): compiled
# into the image's locale archive here, so first boot runs locale-gen only for another LOCALE.
DEFAULT_LOCALE = "en_US.UTF-8"


def compile_default_locale(root: Path) -> None:
    """en_US.UTF-8 enabled in /etc/locale.gen and compiled (localedef output is reproducible)."""
    from installer.firstboot.steps.identity import render_locale_gen

    locale_gen = root / "etc/locale.gen"
    locale_gen.write_text(render_locale_gen(locale_gen.read_text(), DEFAULT_LOCALE))
    in_chroot(root, "locale-gen")


def read_release_key(path: Path) -> bytes:
    """The publisher's public key, checked as a box checks it (installer.update.signed)."""
    return read_public_key(path)


def read_channel_url(text: str) -> str:
    """The default update channel's URL, checked as a box checks it (installer.update.channel)."""
    try:
        return check_channel_url(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def installed_packages(root: Path) -> set[str]:
    """The Debian packages installed in `root` (dpkg's own list)."""
    listing = in_chroot(root, "dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Package}\n")
    return {
        name
        for state, name in (line.split("\t", 1) for line in listing.splitlines())
        if state.startswith("ii")
    }


def platform_needs(manifest: dict[str, object]) -> list[str]:
    needs = manifest.get("needs", [])
    return [str(n) for n in needs] if isinstance(needs, list) else []


def install_needs(config: BuildConfig, root: Path, manifest: dict[str, object]) -> str:
    """The Debian packages the payload needs (platform.toml `needs`) that the cached base lacks,
    installed into this image's layer, so the shared base stays as it is; returns the packages
    added (name and version, one a line) for the image's manifest."""
    missing = sorted(set(platform_needs(manifest)) - installed_packages(root))
    if not missing:
        unstamp(config, root)  # the same image whatever the payload needs
        return ""
    before = set(in_chroot(root, "dpkg-query", "-W", "-f", "${Package}\t${Version}\n").splitlines())
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# no service starts while the image is built\nexit 101\n")
    policy.chmod(0o755)
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    try:
        with chroot_mounts(root, apt_cache=config.cache_dir / "debs"):
            in_chroot(root, "apt-get", "update", "-qq")
            in_chroot(
                root, "apt-get", "install", "-y", "-qq", "--no-install-recommends",
                "-o", "APT::Keep-Downloaded-Packages=true", *missing,
            )  # fmt: skip
            after = in_chroot(root, "dpkg-query", "-W", "-f", "${Package}\t${Version}\n")
    finally:
        policy.unlink(missing_ok=True)
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        for path in (root / "var/lib/apt/lists").glob("*_*"):
            path.unlink()
    prune_docs(root)
    unstamp(config, root)
    return "".join(f"{line}\n" for line in sorted(set(after.splitlines()) - before))


# What apt, dpkg and ldconfig write with the time of the run in it: the base's copy stands (the
# logs) or none (caches made again when needed), so two builds of the same inputs stay identical.
# apt's two package caches are 80 MB (about 33 MB in the squashfs) that apt makes again itself.
RUN_STAMPED_LOGS = (
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/log/apt/history.log",
    "var/log/apt/term.log",
    "var/log/apt/eipp.log.xz",
)
RUN_STAMPED_CACHES = (
    "var/cache/apt/pkgcache.bin",
    "var/cache/apt/srcpkgcache.bin",
    "var/cache/ldconfig/aux-cache",
)


def unstamp(config: BuildConfig, root: Path) -> None:
    """The layer's package install leaves no trace of when it ran (see RUN_STAMPED_LOGS)."""
    for name in RUN_STAMPED_LOGS:
        if (config.base_dir / name).is_file():
            shutil.copy2(config.base_dir / name, root / name)
        else:
            (root / name).unlink(missing_ok=True)
    for name in RUN_STAMPED_CACHES:
        (root / name).unlink(missing_ok=True)


def install_node_modules(config: BuildConfig, target: Path) -> None:
    """Each Node part of the payload (a folder with package-lock.json) gets its locked modules
    beside it (`npm ci`, production only, no install scripts), so the box runs it offline: the
    same recipe a release is made with (iso/release.py, installer/update/nodeparts.py)."""
    build_modules(target, config.cache_dir / "npm")


def install_platform(config: BuildConfig, root: Path, manifest: dict[str, object]) -> None:
    """The platform payload in /opt/clawdie/platform (its Node modules installed) and its
    unit's start command."""
    target = root / "opt/clawdie/platform"
    shutil.copytree(config.platform_dir, target, symlinks=True)
    install_node_modules(config, target)
    start = [str(s) for s in manifest["start"]]  # type: ignore[attr-defined]
    command = shlex.join(["/opt/clawdie/platform/" + start[0], *start[1:]])
    unit = root / "etc/systemd/system/clawdie.service"
    unit.write_text(unit.read_text().replace("@PLATFORM_START@", command))
    if config.release_key is not None:
        key = read_release_key(config.release_key)
        install_public_key(root / "etc/clawdie", key)
    if config.update_channel is not None:
        install_channel(root / "etc/clawdie", config.update_channel, "the image's default")
    port = manifest.get("port")
    (root / "etc/nftables.conf").write_text(
        render_firewall(port if isinstance(port, int) else None)
    )


def configure_system(config: BuildConfig, root: Path, version: str) -> None:
    """Units, PostgreSQL access, network, host keys, hostname; overlay files first."""
    sh(["cp", "-a", "--no-preserve=ownership", f"{REPO / 'iso/overlay'}/.", str(root)])
    (root / "etc/hostname").write_text("clawdie\n")
    (root / "etc/clawdie").mkdir(exist_ok=True)
    (root / "etc/clawdie/image-version").write_text(version + "\n")
    remove_machine_identities(root)
    compile_default_locale(root)
    # The overlay's console font (the QR code's half blocks): console-setup's cached setup
    # scripts name the font the boot loads, so they are made again from the new settings.
    in_chroot(root, "setupcon", "--force", "--save-only")
    # When a shim update runs grub-install (shim-signed's postinst, for EFI/clawdie), it renews
    # the removable path too and asks the firmware for no boot entry, as the installer did.
    selections = root / "run/clawdie-debconf"
    selections.parent.mkdir(exist_ok=True)
    selections.write_text(DEBCONF_BOOT_SELECTIONS)
    in_chroot(root, "debconf-set-selections", "/run/clawdie-debconf")
    selections.unlink()
    compile_bytecode(config, root, [stdlib_dir(root)])
    templates = in_root(root, POSTGRES_TEMPLATES)
    templates.mkdir(parents=True, exist_ok=True)
    for name, target in (
        ("pg_hba.conf", "pg_hba.conf"),
        ("pg_ident.conf", "pg_ident.conf"),
        ("postgresql.conf", "clawdie.conf"),
    ):
        shutil.copyfile(REPO / "iso" / name, templates / target)
    in_chroot(
        root,
        "systemctl",
        "enable",
        "clawdie-installer.service",
        "clawdie-firstboot.service",
        "clawdie.service",
        "clawdie-telegram-retry.timer",
        "clawdie-update-check.timer",
        "clawdie-backup.timer",
        "clawdie-weekly-report.timer",
        # Freed blocks discarded once a week (util-linux's timer; Debian's recommended way): an
        # SSD then drops what deleted and rewritten files held (issue 27). Not the `discard`
        # mount option: that costs a TRIM on every delete, and some drives stall on it.
        "fstrim.timer",
        "nftables.service",
        "systemd-networkd.service",
        "systemd-resolved.service",
        "systemd-timesyncd.service",
    )


DEBCONF_BOOT_SELECTIONS = """\
grub-efi-amd64 grub2/force_efi_extra_removable boolean true
grub-efi-amd64 grub2/update_nvram boolean false
"""
# Where the image keeps the appliance's PostgreSQL access files; the disk installer puts them in
# the cluster it creates on the machine (see installer/install/identities.py).
POSTGRES_TEMPLATES = "/usr/share/clawdie/postgresql"
# Made by Debian's packages at build time, and so the same on every machine made from the image:
# each machine makes its own (DESIGN §4). The machine id is emptied (systemd makes one at first
# boot) and D-Bus's copy becomes a link to it; the rest is removed.
IDENTITY_FILES = (
    "etc/ssl/private/ssl-cert-snakeoil.key",
    "etc/ssl/certs/ssl-cert-snakeoil.pem",
    "var/lib/systemd/random-seed",
)


def remove_machine_identities(root: Path) -> None:
    """No per-machine identity in the image: machine id, SSH host keys, the TLS snakeoil pair,
    the PostgreSQL cluster (its system identifier), systemd's random seed."""
    (root / "etc/machine-id").write_text("")
    dbus_id = root / "var/lib/dbus/machine-id"
    dbus_id.parent.mkdir(parents=True, exist_ok=True)
    dbus_id.unlink(missing_ok=True)
    dbus_id.symlink_to("/etc/machine-id")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    for name in IDENTITY_FILES:
        (root / name).unlink(missing_ok=True)
    for link in (root / "etc/ssl/certs").glob("*"):
        if link.is_symlink() and os.readlink(link) == "ssl-cert-snakeoil.pem":
            link.unlink()  # the certificate's hash link
    for config_dir in (root / "etc/postgresql").glob("*/main"):
        version = config_dir.parent.name  # what pg_dropcluster removes, without a chroot
        shutil.rmtree(config_dir)
        shutil.rmtree(root / f"var/lib/postgresql/{version}/main", ignore_errors=True)
        (root / f"var/log/postgresql/postgresql-{version}-main.log").unlink(missing_ok=True)


def write_squashfs(config: BuildConfig, root: Path, out: Path) -> None:
    # The kernel and initrd are on the medium already (/live); the disk installer copies them
    # from there into the installed /boot, so the squashfs does not carry them a second time.
    excludes = [
        "proc/*",
        "sys/*",
        "dev/*",
        "run/*",
        "tmp/*",
        ".complete",
        ".packages.manifest",
        "boot/vmlinuz-*",
        "boot/initrd.img-*",
    ]
    sh(
        [
            "mksquashfs",
            str(root),
            str(out),
            "-noappend",
            "-no-progress",
            "-comp",
            "zstd",
            "-Xcompression-level",
            str(config.zstd_level),
            "-b",
            "1M",
            "-wildcards",
            "-mkfs-time",
            str(config.epoch),
            "-all-time",
            str(config.epoch),
            "-e",
            *excludes,
        ],
        # mksquashfs refuses SOURCE_DATE_EPOCH together with -mkfs-time/-all-time; the
        # options carry the same epoch, so the variable is dropped for this one command.
        unset=("SOURCE_DATE_EPOCH",),
    )
    # Read it back: a truncated or corrupt squashfs must fail the build, not the install.
    sh(["unsquashfs", "-s", str(out)])


# ---- boot loaders and the ISO -------------------------------------------------------------------

# The stick's UEFI boot (DESIGN §5): Debian's shim, signed by Microsoft's third-party UEFI CA,
# at the path firmware starts from a removable disk; it starts the signed GRUB beside it, whose
# CD variant (gcdx64) looks for /.disk/info on every disk and reads /boot/grub/grub.cfg there
# (else grub.cfg beside itself: the ESP's copy of EARLY_CFG). Under Secure Boot GRUB loads no
# module: everything GRUB_CFG uses (serial, terminal_*, search, linux, initrd) is built into it.
SHIM_DIR = "usr/lib/shim"
SIGNED_GRUB_DIR = "usr/lib/grub/x86_64-efi-signed"
STICK_ESP_FILES = (
    ("EFI/BOOT/BOOTX64.EFI", f"{SHIM_DIR}/shimx64.efi.signed"),
    ("EFI/BOOT/grubx64.efi", f"{SIGNED_GRUB_DIR}/gcdx64.efi.signed"),
    ("EFI/BOOT/mmx64.efi", f"{SHIM_DIR}/mmx64.efi.signed"),
)
# What the installed system's ESP receives from the image's root (grub-install
# --uefi-secure-boot copies them from there: installer/install/system.py).
INSTALLED_ESP_SOURCES = (
    f"{SHIM_DIR}/shimx64.efi.signed",
    f"{SHIM_DIR}/mmx64.efi.signed",
    f"{SHIM_DIR}/fbx64.efi.signed",
    f"{SIGNED_GRUB_DIR}/grubx64.efi.signed",
)
ESP_SIZE = 8 * 1024 * 1024  # the stick's: shim, GRUB, MokManager take 6 MB

EARLY_CFG = f"""\
search --no-floppy --set=root --label {VOLUME_ID}
set prefix=($root)/boot/grub
configfile ($root)/boot/grub/grub.cfg
"""

# Read by BIOS GRUB (root already set by EARLY_CFG) and by the signed UEFI GRUB (root is the
# first disk with /.disk/info): the label search makes both start the kernel of this stick.
GRUB_CFG = f"""\
search --no-floppy --set=root --label {VOLUME_ID}
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set timeout=1
set default=0
menuentry "Install Clawdie" {{
    linux /live/vmlinuz {LIVE_CMDLINE}
    initrd /live/initrd.img
}}
"""


def touch_tree(path: Path, epoch: int) -> None:
    for item in [path, *path.rglob("*")]:
        os.utime(item, (epoch, epoch), follow_symlinks=False)


def write_boot_files(config: BuildConfig, base: Path, staging: Path, work: Path) -> Path:
    """Kernel, initrd, GRUB for BIOS (El Torito) and the signed chain for UEFI (an ESP image);
    returns the ESP, whose every EFI binary is checked for its signature."""
    kernels = sorted((base / "boot").glob("vmlinuz-*"))
    initrds = sorted((base / "boot").glob("initrd.img-*"))
    if len(kernels) != 1 or len(initrds) != 1:
        raise InstallerError("the base system must have exactly one kernel and one initrd")
    (staging / "live").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kernels[0], staging / "live/vmlinuz")
    shutil.copyfile(initrds[0], staging / "live/initrd.img")
    grub_dir = staging / "boot/grub"
    grub_dir.mkdir(parents=True, exist_ok=True)
    (grub_dir / "grub.cfg").write_text(GRUB_CFG)
    # what the signed GRUB's built-in configuration searches for (Debian's CD layout)
    (staging / ".disk").mkdir(exist_ok=True)
    (staging / ".disk/info").write_text(f"Clawdie installer {render_version(config.epoch)}\n")
    early = work / "early.cfg"
    early.write_text(EARLY_CFG)
    sh(
        [
            "grub-mkimage",
            "-O",
            "i386-pc-eltorito",
            "-p",
            "/boot/grub",
            "-c",
            str(early),
            "-o",
            str(grub_dir / "bios.img"),
            "biosdisk",
            *GRUB_MODULES,
        ]
    )
    check_installed_esp_sources(base)
    esp_files = [(name, base / source) for name, source in STICK_ESP_FILES]
    esp_files.append(("EFI/BOOT/grub.cfg", early))
    return write_esp(work / "esp.img", esp_files, config.epoch)


def write_esp(esp: Path, files: list[tuple[str, Path]], epoch: int) -> Path:
    """A FAT ESP image holding `files` (path on the ESP, source), then checked as written."""
    esp.unlink(missing_ok=True)
    with esp.open("wb") as handle:
        handle.truncate(ESP_SIZE)
    digest = hashlib.sha256()
    for name, source in files:
        digest.update(name.encode() + b"\0" + source.read_bytes())
    volume_id = digest.hexdigest()[:8].upper()
    sh(["mkfs.vfat", "--invariant", "-i", volume_id, "-n", "CLAWDIE-EFI", str(esp)])
    env = {"TZ": "UTC", "MTOOLS_SKIP_CHECK": "1", "SOURCE_DATE_EPOCH": str(epoch)}
    folders = {
        "/".join(Path(name).parent.parts[:depth])
        for name, _ in files
        for depth in range(1, len(Path(name).parent.parts) + 1)
    }
    for folder in sorted(folders):
        sh(["mmd", "-i", str(esp), f"::{folder}"], env=env)
    for name, source in files:
        staged = esp.with_name("esp-file")
        shutil.copyfile(source, staged)
        os.utime(staged, (epoch, epoch))
        sh(["mcopy", "-m", "-i", str(esp), str(staged), f"::{name}"], env=env)
        staged.unlink()
    check_esp_image(esp)
    return esp


# ---- Authenticode signatures: no unsigned EFI binary on either ESP ----------------------------


def is_efi_binary(name: str, head: bytes) -> bool:
    """An EFI binary by its name (*.efi, any case) or by its content (a PE image: `MZ`)."""
    return name.lower().endswith(".efi") or head[:2] == b"MZ"


def efi_signatures(path: Path) -> list[str]:
    """The issuers of a PE image's Authenticode signatures (`sbverify --list`, Debian's
    sbsigntool); empty when it has none, or is no PE image sbverify can read."""
    try:
        proc = sh_quiet(["sbverify", "--list", str(path)])
    except ProgramMissingError:
        raise InstallerError(
            "sbverify is not installed: the build checks every EFI binary's signature with it",
            "install Debian's sbsigntool (`just iso` does: iso_apt in the justfile)",
        ) from None
    lines = proc.stdout.decode(errors="replace").splitlines()
    if proc.returncode != 0 or not any(line.startswith("signature ") for line in lines):
        return []
    issuers = [
        lines[index + 1].strip().removeprefix("- ")
        for index, line in enumerate(lines[:-1])
        if line.strip() == "image signature issuers:"
    ]
    return issuers or ["(issuer not listed)"]


def check_signed(files: list[tuple[str, Path]], where: str) -> None:
    """Refuse the build when any EFI binary among `files` (its name, the file) is unsigned."""
    unsigned = []
    for name, path in files:
        with path.open("rb") as handle:
            head = handle.read(2)
        if is_efi_binary(name, head) and not efi_signatures(path):
            unsigned.append(name)
    if unsigned:
        raise InstallerError(
            f"{where}: EFI binary without an Authenticode signature: {', '.join(unsigned)}",
            "firmware with Secure Boot on refuses it; only Debian's signed shim and GRUB "
            "(shim-signed, grub-efi-amd64-signed) go on an ESP, there is no unsigned fallback",
        )


def check_esp_image(esp: Path) -> None:
    """Every EFI binary in the FAT image `esp` (read back out of it) carries a signature."""
    out = esp.with_name(esp.name + ".check")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    try:
        sh(["mcopy", "-s", "-n", "-i", str(esp), "::*", str(out)], env={"MTOOLS_SKIP_CHECK": "1"})
        files = [
            (str(path.relative_to(out)), path) for path in sorted(out.rglob("*")) if path.is_file()
        ]
        check_signed(files, f"the ESP image {esp.name}")
    finally:
        shutil.rmtree(out, ignore_errors=True)


def check_installed_esp_sources(root: Path) -> None:
    """What the installed system's ESP will receive: Debian's signed loaders, each there."""
    missing = [name for name in INSTALLED_ESP_SOURCES if not (root / name).is_file()]
    if missing:
        raise InstallerError(
            f"the image lacks the signed boot loaders: {', '.join(missing)}",
            "iso/packages.txt must name shim-signed and grub-efi-amd64-signed",
        )
    check_signed(
        [(name, root / name) for name in INSTALLED_ESP_SOURCES], "the installed system's ESP"
    )


def write_iso(config: BuildConfig, staging: Path, esp: Path, seed: Path, out: Path) -> None:
    touch_tree(staging, config.epoch)
    sh(
        [
            "xorriso",
            "-as",
            "mkisofs",
            "-o",
            str(out),
            "-iso-level",
            "3",
            "-full-iso9660-filenames",
            "-joliet",
            "-joliet-long",
            "-rational-rock",
            "-volid",
            VOLUME_ID,
            "-appid",
            "Clawdie installer",
            "-publisher",
            "Clawdie",
            "-preparer",
            "iso/build.py",
            "-partition_offset",
            "16",
            "--grub2-mbr",
            "/usr/lib/grub/i386-pc/boot_hybrid.img",
            "--mbr-force-bootable",
            "-iso_mbr_part_type",
            ISO_MBR_PART_TYPE,
            "-append_partition",
            "2",
            ESP_TYPE,
            str(esp),
            "-append_partition",
            "3",
            BASIC_DATA_TYPE,
            str(seed),
            "-appended_part_as_gpt",
            "-c",
            "boot/boot.cat",
            "-b",
            "boot/grub/bios.img",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
            "--grub2-boot-info",
            "-eltorito-alt-boot",
            "-e",
            "--interval:appended_partition_2:all::",
            "-no-emul-boot",
            "-no-pad",
            str(staging),
        ],
        env={"SOURCE_DATE_EPOCH": str(config.epoch)},
    )


def render_version(epoch: int) -> str:
    proc = sh_quiet(["git", "-C", str(REPO), "describe", "--always", "--dirty"])
    commit = proc.stdout.decode(errors="replace").strip() or "unknown"
    return f"{time.strftime('%Y%m%d', time.gmtime(epoch))}-{commit}"


def build(config: BuildConfig) -> dict[str, object]:
    """The whole build; returns the figures it reports."""
    started = time.monotonic()
    manifest = read_platform_manifest(config.platform_dir)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    config.cache_dir.mkdir(parents=True, exist_ok=True)
    with cache_lock(config.cache_dir):
        return build_locked(config, manifest, started)


@contextlib.contextmanager
def cache_lock(cache_dir: Path) -> Iterator[None]:
    """One build at a time per cache: two would share (and clobber) the same layer."""
    with (cache_dir / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"iso: another build is using {cache_dir}; waiting for it", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def build_locked(
    config: BuildConfig, manifest: dict[str, object], started: float
) -> dict[str, object]:
    built_base = build_base(config)
    work = config.out_dir / "work"
    shutil.rmtree(work, ignore_errors=True)
    staging = work / "staging"
    (staging / "live").mkdir(parents=True)
    version = render_version(config.epoch)
    with layered_root(config) as root:
        with Step("install the installer's venv from uv.lock"):
            pins = install_venv(config, root, work)
        with Step("the platform's Debian packages (platform.toml needs)"):
            added = install_needs(config, root, manifest)
        with Step("platform payload, units and configuration"):
            configure_system(config, root, version)
            install_platform(config, root, manifest)
        with Step(f"squashfs (zstd level {config.zstd_level})"):
            write_squashfs(config, root, staging / "live/filesystem.squashfs")
    with Step("boot loaders (BIOS and UEFI)"):
        esp = write_boot_files(config, config.base_dir, staging, work)
    with Step("seed partition"):
        seed = work / "seed.img"
        write_seed_image(
            make_plan(seed, DEFAULT_SIZE, None, {"SOURCE_DATE_EPOCH": str(config.epoch)})
        )
    out = config.image
    tmp = out.with_name(out.name + ".tmp")
    with Step("hybrid ISO (xorriso)"):
        tmp.unlink(missing_ok=True)
        write_iso(config, staging, esp, seed, tmp)
    digest = file_sha256(tmp)
    tmp.replace(out)
    out.with_name(out.name + ".sha256").write_text(f"{digest}  {out.name}\n")
    manifest_text = (
        f"# {IMAGE_NAME} {version}\n# Debian {SUITE} {ARCH}, mirror {config.mirror}\n"
        f"# platform: {manifest['name']} {manifest['version']}\n\n## Debian packages\n"
        + (config.base_dir / ".packages.manifest").read_text()
        + (
            "\n## Debian packages the platform needs (installed at build)\n" + added
            if added
            else ""
        )
        + "\n## Python packages (installer venv, from uv.lock)\n"
        + "\n".join(line for line in pins.splitlines() if "==" in line)
        + "\n"
    )
    out.with_name(out.name + ".manifest").write_text(manifest_text)
    seed_sha = file_sha256(seed)
    shutil.rmtree(work / "staging", ignore_errors=True)
    figures = {
        "image": str(out),
        "size_bytes": out.stat().st_size,
        "sha256": digest,
        "seed_partition_sha256": seed_sha,
        "base": "built" if built_base else "cached",
        "seconds": round(time.monotonic() - started, 1),
        "version": version,
        "source_date_epoch": config.epoch,
    }
    (config.out_dir / "build-figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def parse_args(argv: list[str]) -> BuildConfig:
    parser = argparse.ArgumentParser(prog="iso/build.py", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "build/iso")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("CLAWDIE_ISO_CACHE", "/var/cache/clawdie-iso")),
        help="package and base-system cache, outside the repo (env CLAWDIE_ISO_CACHE)",
    )
    parser.add_argument(
        "--platform",
        type=Path,
        default=Path(os.environ.get("CLAWDIE_PLATFORM", REPO / "iso/reference_platform")),
        help="the platform payload folder (env CLAWDIE_PLATFORM; default: the reference one)",
    )
    parser.add_argument(
        "--release-key",
        type=Path,
        default=os.environ.get("CLAWDIE_RELEASE_KEY") or None,
        help="the platform publisher's minisign public key, for signed releases (env "
        "CLAWDIE_RELEASE_KEY; default: none, and the image refuses every release)",
    )
    parser.add_argument(
        "--update-channel",
        metavar="URL",
        type=read_channel_url,
        default=os.environ.get("CLAWDIE_UPDATE_CHANNEL") or None,
        help="the default update channel the boxes ask daily (https://…/; env "
        "CLAWDIE_UPDATE_CHANNEL; default: none, releases come by file or stick only)",
    )
    parser.add_argument("--mirror", default=os.environ.get("CLAWDIE_DEBIAN_MIRROR", DEFAULT_MIRROR))
    parser.add_argument("--zstd-level", type=int, default=ZSTD_LEVEL)
    args = parser.parse_args(argv)
    epoch_text = (
        os.environ.get("SOURCE_DATE_EPOCH")
        or sh_quiet(["git", "-C", str(REPO), "log", "-1", "--format=%ct"]).stdout.decode().strip()
        or "1704067200"
    )
    return BuildConfig(
        out_dir=args.out.resolve(),
        cache_dir=args.cache.resolve(),
        platform_dir=args.platform.resolve(),
        mirror=args.mirror,
        epoch=int(epoch_text),
        packages=read_packages(REPO / "iso/packages.txt"),
        zstd_level=args.zstd_level,
        release_key=Path(args.release_key).resolve() if args.release_key else None,
        update_channel=read_channel_url(args.update_channel) if args.update_channel else None,
    )


def main(argv: list[str] | None = None) -> int:
    if os.geteuid() != 0:
        print("iso: the image build needs root (debootstrap, chroot, mounts)", file=sys.stderr)
        return 2
    try:
        config = parse_args(sys.argv[1:] if argv is None else argv)
        figures = build(config)
    except InstallerError as err:
        print(f"iso: error: {err.message}", file=sys.stderr)
        if err.hint:
            print(f"  hint: {err.hint}", file=sys.stderr)
        return 1
    size_mb = int(figures["size_bytes"]) / 1e6  # type: ignore[call-overload]
    print(
        f"iso: image {figures['image']}: {size_mb:.0f} MB (target <= 480 MB), "
        f"built in {figures['seconds']} s with the base system {figures['base']}"
    )
    print(f"iso: sha256 {figures['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
