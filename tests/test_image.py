"""The installer image as built: partition layout, the seed partition, the units, the figures.

Marked `boot`: needs the image (`just iso`), root and loop devices. No VM here; see test_boot.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import apt_repo, loopback
from tests.helpers.image import OUT, REPO, copy_image, load_build, read_figures
from tests.helpers.loopdev import attach_loop, require_root, sh

pytestmark = [pytest.mark.boot, pytest.mark.timeout(900), pytest.mark.xdist_group("uefi-disk")]

LINUX_DATA = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
MIB = 1024 * 1024
UNITS = (
    "clawdie-installer.service",
    "clawdie-firstboot.service",
    "clawdie.service",
)
TIMERS = ("clawdie-telegram-retry.timer",)  # and the service each one starts
SYSTEM_TIMERS = ("fstrim.timer",)  # Debian's own: freed blocks discarded weekly (issue 27)


def partitions(image: Path) -> list[dict[str, object]]:
    table = json.loads(sh("sfdisk", "--json", str(image)))["partitiontable"]
    assert table["label"] == "gpt"
    return list(table["partitions"])


def test_partition_layout(installer_image: Path) -> None:
    parts = partitions(installer_image)
    assert [p["type"] for p in parts] == [LINUX_DATA, ESP, BASIC_DATA]
    seed = parts[2]
    assert int(str(seed["size"])) * 512 == 64 * MIB
    # the appended partitions follow the ISO 9660 data, in order
    assert int(str(parts[0]["start"])) < int(str(parts[1]["start"])) < int(str(seed["start"]))


def test_image_size_checksum_and_manifest(installer_image: Path) -> None:
    figures = read_figures()
    size = installer_image.stat().st_size
    print(
        f"\nimage: {size / 1e6:.0f} MB (target <= 480 MB), build {figures['seconds']} s, "
        f"base {figures['base']}"
    )
    assert size <= 480 * 1000 * 1000  # 450 before the dashboard's Node (issue: the first hour)
    line = installer_image.with_name(installer_image.name + ".sha256").read_text()
    digest = hashlib.sha256(installer_image.read_bytes()).hexdigest()
    assert line == f"{digest}  {installer_image.name}\n"
    manifest = installer_image.with_name(installer_image.name + ".manifest").read_text()
    for package in ("linux-image-amd64", "postgresql", "live-boot", "openssh-server", "nodejs"):
        assert f"\n{package}\t" in manifest
    assert "pydantic==" in manifest
    assert "psycopg==" in manifest


@pytest.fixture
def looped(installer_image: Path, tmp_path: Path) -> Iterator[list[str]]:
    require_root()
    disk = attach_loop(copy_image(installer_image, tmp_path / "stick.img"), partitions=3)
    try:
        yield disk.parts
    finally:
        disk.detach()


def test_seed_partition_opens_as_a_normal_drive(looped: list[str], tmp_path: Path) -> None:
    """What a Linux desktop sees when the stick is plugged in: a FAT32 drive named CLAWDIESEED.

    udisks shows and mounts a partition that blkid reports as a file system with a label and that
    is not hidden by type; this kernel has no vfat driver, so the mount itself goes through FUSE.
    """
    probe = sh("blkid", "-p", "-o", "export", looped[2])
    fields = dict(line.split("=", 1) for line in probe.splitlines() if "=" in line)
    assert fields["TYPE"] == "vfat"
    assert fields["VERSION"] == "FAT32"
    assert fields["LABEL"] == "CLAWDIESEED"
    assert fields["USAGE"] == "filesystem"
    assert fields["PART_ENTRY_TYPE"].upper() == BASIC_DATA
    if shutil.which("fusefat") is None:
        pytest.skip("fusefat is not installed (`just iso` installs it)")
    mount = tmp_path / "mnt"
    mount.mkdir()
    sh("fusefat", "-o", "ro", looped[2], str(mount))
    try:
        # fusefat shows 8.3 names (and the volume label as an entry); a desktop's vfat mount
        # shows the long names. The installer's own kernel vfat mount is exercised in test_boot.
        names = {name.lower(): name for name in os.listdir(mount)}
        text = (mount / names["setup.txt"]).read_text()
        readme = (mount / names["readme.txt"]).read_text()
        # the check page, under its 8.3 name here (CHECK-~1.HTM)
        assert any(name.startswith("check") and ".htm" in name for name in names)
    finally:
        subprocess.run(["fusermount", "-u", str(mount)], check=False)
    assert text == (REPO / "setup.txt.example").read_text()
    assert readme == (REPO / "seed/README.txt").read_text()


@pytest.fixture(scope="module")
def image_root(installer_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The image's root file system (its squashfs, taken out of the ISO), mounted read-only."""
    require_root()
    work = tmp_path_factory.mktemp("image-root")
    squashfs = work / "filesystem.squashfs"
    sh(
        "osirrox",
        "-indev",
        str(installer_image),
        "-extract",
        "/live/filesystem.squashfs",
        str(squashfs),
    )
    root = work / "root"
    root.mkdir()
    sh("mount", "-t", "squashfs", "-o", "loop,ro", str(squashfs), str(root))
    try:
        yield root
    finally:
        subprocess.run(["umount", "--lazy", str(root)], check=False)


def test_units_verify_in_the_image(image_root: Path) -> None:
    """`systemd-analyze verify` on our units, against the image's own root file system."""
    retry = ("clawdie-telegram-retry.service", *TIMERS)
    units = [f"/etc/systemd/system/{unit}" for unit in (*UNITS, *retry)]
    proc = subprocess.run(
        ["systemd-analyze", "verify", f"--root={image_root}", *units],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ours = [line for line in proc.stderr.splitlines() if "clawdie" in line]
    assert not ours, "\n".join(ours)


def test_image_root_carries_the_product(image_root: Path) -> None:
    wanted = image_root / "etc/systemd/system/multi-user.target.wants"
    assert {p.name for p in wanted.iterdir()} >= set(UNITS)
    timers = image_root / "etc/systemd/system/timers.target.wants"
    assert {p.name for p in timers.iterdir()} >= {*TIMERS, *SYSTEM_TIMERS}
    unit = (image_root / "etc/systemd/system/clawdie.service").read_text()
    assert "ExecStart=/opt/clawdie/platform/bin/clawdie-platform" in unit
    assert "ExecStartPre=/usr/local/bin/clawdie-setup wait-db" in unit
    assert (image_root / "opt/clawdie/venv/bin/python").exists()
    # the dashboard serves https://<host>.local/ (443) as the service account, with the TLS key
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in unit
    assert "SupplementaryGroups=ssl-cert" in unit


def test_image_carries_the_dashboard_on_debians_node(image_root: Path) -> None:
    """The reference platform's dashboard runs offline on Debian's nodejs: Node is installed (the
    payload's `needs`) and the locked modules are beside the server (npm ci at image build)."""
    assert (image_root / "usr/bin/node").exists()
    dashboard = image_root / "opt/clawdie/platform/dashboard"
    assert (dashboard / "server.mjs").is_file()
    for module in ("better-auth", "pg", "@noble/hashes"):
        assert (dashboard / "node_modules" / module / "package.json").is_file(), module
    lock = json.loads((dashboard / "package-lock.json").read_text())
    installed = json.loads((dashboard / "node_modules/better-auth/package.json").read_text())
    assert installed["version"] == lock["packages"]["node_modules/better-auth"]["version"]


def test_image_carries_the_networks_pieces(image_root: Path) -> None:
    """Wi-Fi (supplicant, regulatory database, drivers, firmware of common small-PC chips from
    non-free-firmware), NTP on, and no boot-test hook (DESIGN §7, §10)."""
    for program in ("sbin/wpa_supplicant", "sbin/iw", "bin/ip"):
        assert (image_root / program).is_file(), program
    # regulatory.db is an alternatives link (absolute: it resolves in the image, not here)
    assert (image_root / "lib/firmware/regulatory.db").is_symlink()
    assert (image_root / "lib/firmware/regulatory.db-debian").is_file()
    modules = next((image_root / "lib/modules").iterdir()) / "kernel"
    assert list((modules / "drivers/net/wireless").rglob("iwlwifi.ko*"))
    assert list((modules / "drivers/net/wireless").rglob("mac80211_hwsim.ko*"))
    firmware = image_root / "lib/firmware"
    assert list(firmware.glob("iwlwifi-*.ucode"))
    assert list((firmware / "rtl_nic").glob("rtl8168*.fw"))
    assert list((firmware / "mediatek").glob("*"))
    assert list((firmware / "ath10k/QCA6174").rglob("*"))
    # (dpkg keeps an excluded file's folder, empty)
    left_out = [p for p in (firmware / "i915").rglob("*") if not p.is_dir()]
    assert not left_out, "no firmware for a driver the image leaves out"
    left_out = [p for p in (firmware / "ath11k/QCN9074").rglob("*") if not p.is_dir()]
    assert not left_out, "no firmware for access-point chips"
    assert "non-free-firmware" in (image_root / "etc/apt/sources.list").read_text()
    timesync = image_root / "etc/systemd/system/sysinit.target.wants/systemd-timesyncd.service"
    assert timesync.is_symlink()
    # the production image carries no test hook: the boot tests bring their own
    hooks = [
        str(p.relative_to(image_root))
        for unit_dir in ("etc/systemd", "lib/systemd", "usr/lib/systemd")
        for p in (image_root / unit_dir).rglob("*testkit*")
    ]
    assert hooks == [], "no test hook in the image, enabled or not"


def test_image_shows_only_what_it_serves(image_root: Path) -> None:
    """DESIGN §10: nftables enabled with our ruleset (the reference payload's dashboard port
    admitted), PostgreSQL on localhost, LLMNR off and mDNS on."""
    wanted = image_root / "etc/systemd/system/sysinit.target.wants/nftables.service"
    assert wanted.is_symlink(), "nftables.service is enabled"
    ruleset = (image_root / "etc/nftables.conf").read_text()
    assert "policy drop;" in ruleset
    assert 'tcp dport 443 accept comment "the dashboard"' in ruleset
    assert (image_root / "usr/sbin/nft").is_file()
    conf = (image_root / "usr/share/clawdie/postgresql/clawdie.conf").read_text()
    assert "listen_addresses = 'localhost'" in conf
    resolved = (image_root / "etc/systemd/resolved.conf.d/clawdie.conf").read_text()
    assert "LLMNR=no" in resolved
    assert "MulticastDNS=yes" in resolved


def test_image_boots_the_signed_chain_only(
    installer_image: Path, image_root: Path, tmp_path: Path
) -> None:
    """The stick's ESP: shim at the removable path, Debian's signed GRUB and MokManager beside
    it, every EFI binary signed; the installed system gets signed loaders only, and updates
    from bookworm-security."""
    build = load_build()
    esp = next(p for p in partitions(installer_image) if p["type"] == ESP)
    offset = int(str(esp["start"])) * 512
    out = tmp_path / "esp"
    out.mkdir()
    subprocess.run(
        ["mcopy", "-s", "-n", "-i", f"{installer_image}@@{offset}", "::*", str(out)],
        check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    )  # fmt: skip
    files = {str(p.relative_to(out)): p for p in out.rglob("*") if p.is_file()}
    names = ("BOOTX64.EFI", "grubx64.efi", "mmx64.efi", "grub.cfg")
    assert sorted(files) == sorted(f"EFI/BOOT/{n}" for n in names)
    build.check_signed(list(files.items()), "the stick's ESP")
    assert any("Microsoft" in i for i in build.efi_signatures(files["EFI/BOOT/BOOTX64.EFI"]))
    for name in build.INSTALLED_ESP_SOURCES:
        assert (image_root / name).is_file(), name
    assert not list((image_root / "usr/lib/shim").glob("*.efi")), "no unsigned shim build"
    sources = (image_root / "etc/apt/sources.list").read_text()
    assert "deb http://deb.debian.org/debian-security bookworm-security main" in sources


def test_unattended_upgrades_take_debian_security_fixes_and_nothing_else(
    image_root: Path, tmp_path: Path
) -> None:
    """The image's own unattended-upgrades, with its own configuration, against repositories on
    loopback: a newer version from a repository that calls itself Debian (the main suite) is
    left alone; the same version from one whose Release says Debian-Security is applied, and
    as it asks for a reboot, the reboot is scheduled at the window's start (04:00), not now."""
    probe = "clawdie-probe"
    debs = tmp_path / "debs"
    debs.mkdir()
    old = apt_repo.build_deb(debs, probe, "1.0")
    new = apt_repo.build_deb(debs, probe, "1.1", postinst="touch /var/run/reboot-required")
    main = apt_repo.make_repository(tmp_path / "main", apt_repo.DEBIAN_MAIN, [new])
    security = apt_repo.make_repository(tmp_path / "security", apt_repo.DEBIAN_SECURITY, [new])
    with (
        loopback.served(tmp_path) as url,
        apt_repo.writable_root(image_root, tmp_path / "root") as root,
    ):
        # shutdown records how it was asked instead of acting (this is a chroot on a test host)
        shutdown = root / "usr/sbin/shutdown"
        shutdown.unlink()
        shutdown.write_text('#!/bin/sh\necho "$*" >> /var/tmp/shutdown-asked\n')
        shutdown.chmod(0o755)
        (root / "var/tmp" / old.name).write_bytes(old.read_bytes())
        for listed in (root / "etc/apt/sources.list.d").glob("*"):
            listed.unlink()
        sources = root / "etc/apt/sources.list"

        def upgrade(*repos: tuple[Path, apt_repo.Origin]) -> str:
            sources.write_text(
                "".join(
                    f"deb [trusted=yes] {url}/{path.name} {origin.codename} main\n"
                    for path, origin in repos
                )
            )
            proc = apt_repo.in_root(root, "apt-get -q update && unattended-upgrade -v")
            assert proc.returncode == 0, proc.stdout + proc.stderr
            return apt_repo.in_root(root, f"dpkg-query -W -f '${{Version}}' {probe}").stdout

        installed = apt_repo.in_root(root, f"dpkg -i /var/tmp/{old.name}")
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert upgrade((main, apt_repo.DEBIAN_MAIN)) == "1.0"
        assert not (root / "var/tmp/shutdown-asked").exists()
        assert upgrade((main, apt_repo.DEBIAN_MAIN), (security, apt_repo.DEBIAN_SECURITY)) == "1.1"
        assert (root / "run/reboot-required").exists()  # /var/run is a link to /run
        asked = (root / "var/tmp/shutdown-asked").read_text().split()
        assert "-r" in asked
        assert "04:00" in asked


def test_image_renews_the_esp_after_every_dpkg_run(image_root: Path) -> None:
    """The installed system (a copy of this root) has apt's hook that keeps the ESP's signed
    loaders equal to the packaged ones, apt reads it, and its command is in the image's venv;
    the CD variant GRUB the boot kit's GRUB-only update uses is there too."""
    hook = REPO / "iso/overlay/etc/apt/apt.conf.d/90clawdie-esp"
    assert (image_root / "etc/apt/apt.conf.d/90clawdie-esp").read_text() == hook.read_text()
    dump = sh("chroot", str(image_root), "apt-config", "dump", "DPkg::Post-Invoke")
    assert "clawdie-setup renew-boot-loader --from-apt" in dump, dump
    usage = sh("chroot", str(image_root), "/usr/local/bin/clawdie-setup", "renew-boot-loader", "-h")
    assert "--from-apt" in usage
    assert (image_root / "usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed").is_file()


def test_image_ships_the_default_locale_compiled(image_root: Path) -> None:
    """First boot runs locale-gen only for another LOCALE: en_US.UTF-8 is in the archive."""
    assert "\nen_US.UTF-8 UTF-8\n" in "\n" + (image_root / "etc/locale.gen").read_text()
    listed = sh("localedef", "--list-archive", f"--prefix={image_root}")
    assert "en_US.utf8" in listed.split()


def pyc_flags(pyc: Path) -> int:
    """PEP 552 flags of a pyc: 0 timestamp, 0b11 checked hash, 0b01 unchecked hash."""
    return int.from_bytes(pyc.read_bytes()[4:8], "little")


def test_image_bytecode_needs_no_validation(image_root: Path) -> None:
    """Every pyc of the installer's venv and of the standard library is unchecked-hash: a
    timestamp pyc would be stale (the squashfs gives every file the epoch as its time)."""
    site = next((image_root / "opt/clawdie/venv/lib").glob("python3.*/site-packages"))
    stdlib = next((image_root / "usr/lib").glob("python3.[0-9]*"))
    for tree in (site, stdlib):
        pycs = list(tree.rglob("*.pyc"))
        assert len(pycs) > 100, tree
        others = [p for p in pycs if pyc_flags(p) != 0b01]
        assert not others, f"{len(others)} pycs are not unchecked-hash, e.g. {others[:3]}"
    assert (site / "installer/__pycache__/cli.cpython-311.pyc").is_file()


def test_image_carries_no_machine_identity(image_root: Path) -> None:
    """Nothing per machine in the squashfs (DESIGN §4): every machine makes its own."""
    assert (image_root / "etc/machine-id").read_text() == ""
    dbus_id = image_root / "var/lib/dbus/machine-id"
    assert dbus_id.is_symlink()
    assert os.readlink(dbus_id) == "/etc/machine-id"
    assert not list((image_root / "etc/ssh").glob("ssh_host_*")), "host keys must be per machine"
    assert not (image_root / "etc/ssl/private/ssl-cert-snakeoil.key").exists()
    assert not (image_root / "etc/ssl/certs/ssl-cert-snakeoil.pem").exists()
    assert not list((image_root / "var/lib/postgresql").glob("*/main")), "a cluster per machine"
    assert not list((image_root / "etc/postgresql").glob("*/main"))
    assert not (image_root / "var/lib/systemd/random-seed").exists()
    templates = image_root / "usr/share/clawdie/postgresql"
    assert {p.name for p in templates.iterdir()} == {"pg_hba.conf", "pg_ident.conf", "clawdie.conf"}
    assert not list((image_root / "boot").glob("initrd.img-*")), "the initrd is on the medium"


@pytest.mark.usefixtures("installer_image")
def test_warm_rebuild_is_reproducible(tmp_path: Path) -> None:
    """A second build of the same inputs (cached base) gives the same image, byte for byte;
    says how long a build takes when only the product changed."""
    first = read_figures()
    started = time.monotonic()
    out = tmp_path / "again"
    proc = subprocess.run(
        [str(REPO / ".venv/bin/python"), str(REPO / "iso/build.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SOURCE_DATE_EPOCH": str(first["source_date_epoch"])},
    )
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    second = json.loads((out / "build-figures.json").read_text())
    identical = second["sha256"] == first["sha256"]
    print(
        f"\nwarm build: {took:.0f} s (target <= 180 s); seed partition identical: "
        f"{second['seed_partition_sha256'] == first['seed_partition_sha256']}; "
        f"whole image identical: {identical}"
    )
    (OUT / "repro.json").write_text(
        json.dumps({"warm_build_seconds": round(took, 1), "image_identical": identical}) + "\n"
    )
    assert second["seed_partition_sha256"] == first["seed_partition_sha256"]
    assert identical, (
        f"two builds of the same inputs differ: {first['sha256']} vs {second['sha256']} "
        "(the image in build/iso must come from this tree: `just boot-test` builds it first)"
    )
