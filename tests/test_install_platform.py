"""`install-platform` on an existing Debian 12 host, in a sandbox root against a real PostgreSQL:
the host checks, the operator's login `ana` left byte for byte, a SERVICE_ACCOUNT that is her
login refused, a second run that changes nothing, and an adopt seed over the installation.

The root stands for a running Debian 12 host: os-release, systemd and Debian's PostgreSQL are
what the checks look at, so the root carries them as files. The real host, booted with
systemd-nspawn from a debootstrap root, is tests/test_existing_host.py (slow).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from installer.host.existing import HostFacts, host_problems
from tests.helpers import fake_platform
from tests.helpers.adopt import code_on_receipt
from tests.helpers.firstboot import ROOT, db_state, snapshot
from tests.helpers.host import ANA_KEYS, SEED, ana
from tests.helpers.pg import PgCluster, db_cli_args
from tests.helpers.seeds import ED25519, firstboot_box
from tests.helpers.sentinels import SENTINEL
from tests.helpers.update import new_keys, reference_release

DEBIAN_12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
# Debian 12's pg_hba.conf and pg_ident.conf as its postgresql-common writes them (comments cut).
DEBIAN_PG_HBA = """\
# DO NOT DISABLE!
local   all             postgres                                peer
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
"""
PAYLOAD = ROOT / "iso/reference_platform"
DEBIAN_PG_IDENT = "# MAPNAME       SYSTEM-USERNAME         PG-USERNAME\n"

pytestmark = pytest.mark.root


def debian_cluster(root: Path, version: str, name: str, port: int) -> Path:
    """/etc/postgresql/VERSION/NAME as Debian's pg_createcluster leaves it (the lines we read)."""
    cluster = root / "etc/postgresql" / version / name
    cluster.mkdir(parents=True)
    (cluster / "postgresql.conf").write_text(
        f"data_directory = '/var/lib/postgresql/{version}/{name}'\n"
        f"hba_file = '/etc/postgresql/{version}/{name}/pg_hba.conf'\t# host-based auth\n"
        f"ident_file = '/etc/postgresql/{version}/{name}/pg_ident.conf'\n"
        "#port = 5433\n"
        f"port = {port}\t\t\t\t# (change requires restart)\n"
    )
    (cluster / "pg_hba.conf").write_text(DEBIAN_PG_HBA)
    (cluster / "pg_ident.conf").write_text(DEBIAN_PG_IDENT)
    return cluster


def debian_host(where: Path, seed: str = SEED, *, port: int = 5432) -> Path:
    """A sandbox Debian 12 root with a person's login `ana` (home, authorized_keys, password)
    and Debian's cluster 15/main on `port` (the test server's, as the platform uses it)."""
    box = firstboot_box(where, seed)
    root = box / "root"
    (root / "etc/os-release").write_text(DEBIAN_12)
    for tool in (
        "usr/lib/systemd/systemd",
        "usr/lib/postgresql/15/bin/postgres",
        f"usr/bin/python3.{sys.version_info.minor}",
    ):
        (root / tool).parent.mkdir(parents=True, exist_ok=True)
        (root / tool).write_text("")
        (root / tool).chmod(0o755)
    (root / "usr/bin/python3").symlink_to(f"python3.{sys.version_info.minor}")
    debian_cluster(root, "15", "main", port)
    (root / "var/lib/dpkg").mkdir(parents=True, exist_ok=True)  # the payload's needs, installed
    (root / "var/lib/dpkg/status").write_text(dpkg_status("python3", "postgresql", "nodejs"))
    with (root / "etc/passwd").open("a") as f:
        f.write("ana:x:1000:1000:Ana,,,:/home/ana:/bin/bash\n")
    with (root / "etc/group").open("a") as f:
        f.write("ana:x:1000:\n")
    with (root / "etc/shadow").open("a") as f:
        f.write(
            "ana:$6$anasalt$Qm1Y0b2vFf5xYc0Q9a9V3b8oV8B7y0t2ZqO7G2m1pQnU4r5s6t7u8v9w0x1y2:20000:0:99999:7:::\n"
        )
    with (root / "etc/gshadow").open("a") as f:
        f.write("ana:!::\n")
    home = root / "home/ana"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh/authorized_keys").write_text(ANA_KEYS)
    (home / ".bashrc").write_text("alias ll='ls -l'\n")
    for path in (home, home / ".ssh", home / ".ssh/authorized_keys", home / ".bashrc"):
        os.chown(path, 1000, 1000)
    (home / ".ssh").chmod(0o700)
    (home / ".ssh/authorized_keys").chmod(0o600)
    return box


def dpkg_status(*names: str) -> str:
    return "".join(
        f"Package: {name}\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n"
        for name in names
    )


def host_payload(where: Path) -> Path:
    """The reference payload without its dashboard (the sandbox runs a fake platform; the
    dashboard's modules on a host are tests/test_existing_host.py's and test_release.py's)."""
    folder = where / "payload"
    if not folder.exists():
        shutil.copytree(PAYLOAD, folder, ignore=shutil.ignore_patterns("dashboard"))
    return folder


def install_platform(
    box: Path, pg: PgCluster, *extra: str, seed: Path | None = None, env_path: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable,
        "-m",
        "installer.cli",
        "install-platform",
        str(seed or box / "setup.txt"),
        "--root",
        str(box / "root"),
        *db_cli_args(pg),
        "--platform-start",
        fake_platform.COMMAND,
        "--receipt-dir",
        str(box / "stick"),
        "--platform",
        str(host_payload(box.parent)),
        *extra,
    ]
    env = {k: v for k, v in os.environ.items() if k not in {"CLAWDIE_FIRSTBOOT_FAULT", "SUDO_USER"}}
    if env_path is not None:
        env["PATH"] = env_path
    env[fake_platform.ROOT_ENV] = str(box / "root")
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=ROOT, env=env, check=False, timeout=120
    )


def test_the_platform_goes_on_the_host_and_ana_is_untouched(tmp_path: Path, pg: PgCluster) -> None:
    box = debian_host(tmp_path, port=pg.port)
    root = box / "root"
    before = ana(root)
    result = install_platform(box, pg)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ana(root) == before  # byte for byte: lines, files, modes, owners

    # the platform: payload, units enabled, the installer's command, first boot done
    assert os.access(root / "opt/clawdie/platform/bin/clawdie-platform", os.X_OK)
    unit = (root / "etc/systemd/system/clawdie.service").read_text()
    assert "ExecStart=/opt/clawdie/platform/bin/clawdie-platform" in unit
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert os.readlink(wants / "clawdie.service") == "/etc/systemd/system/clawdie.service"
    assert (wants / "clawdie-firstboot.service").is_symlink()
    timer = root / "etc/systemd/system/timers.target.wants/clawdie-telegram-retry.timer"
    assert os.readlink(timer) == "/etc/systemd/system/clawdie-telegram-retry.timer"
    for name in ("clawdie-adopt.service", "clawdie-telegram-retry.service"):
        assert (root / "etc/systemd/system" / name).read_bytes() == (
            ROOT / "iso/overlay/etc/systemd/system" / name
        ).read_bytes()
    assert not (root / "etc/systemd/system/clawdie-installer.service").exists()
    assert (root / "etc/udev/rules.d/90-clawdie-adopt.rules").is_file()
    wrapper = (root / "usr/local/bin/clawdie-setup").read_text()
    assert 'exec /opt/clawdie/venv/bin/python -m installer.cli "$@"' in wrapper
    operator = (root / "usr/local/bin/set-operator").read_text()  # the summary's own words
    assert 'exec /opt/clawdie/venv/bin/python -m installer.cli set-operator "$@"' in operator
    assert os.access(root / "usr/local/bin/set-operator", os.X_OK)
    # the installer's venv, from uv.lock, for the host's python3
    venv = root / "opt/clawdie/venv"
    python = f"python3.{sys.version_info.minor}"
    assert os.readlink(venv / "bin/python") == f"/usr/bin/{python}"
    site = venv / "lib" / python / "site-packages"
    assert (site / "installer/cli.py").read_bytes() == (ROOT / "installer/cli.py").read_bytes()
    assert list(site.glob("psycopg-*.dist-info"))
    assert list(site.glob("pydantic-*.dist-info"))
    assert not list(site.glob("pytest-*.dist-info"))  # the runtime only, not the dev tools
    # PostgreSQL's access: our block above Debian's lines, which stay as they were
    hba = (root / "etc/postgresql/15/main/pg_hba.conf").read_text()
    assert hba.startswith("# BEGIN clawdie")
    assert hba.endswith(DEBIAN_PG_HBA)
    assert hba.splitlines()[1].split() == [
        "local", "postgres", "postgres", "peer", "map=clawdie_admin"
    ]  # fmt: skip
    ident = (root / "etc/postgresql/15/main/pg_ident.conf").read_text()
    assert (
        ident
        == DEBIAN_PG_IDENT
        + "clawdie_admin    root             postgres\nclawdie_admin    postgres         postgres\n"
    )
    assert (root / "var/lib/clawdie-setup/firstboot/complete.done").is_file()
    assert (root / "platform.out").read_text().startswith("PLATFORM-READY role=clawdie")
    # the service account is the platform's own; its key went there, not to ana
    assert (root / "var/lib/clawdie/.ssh/authorized_keys").read_text() == f"{ED25519}\n"

    summary = (root / "var/lib/clawdie-setup/install-summary.txt").read_text()
    assert "Clawdie first boot: ok" in summary
    assert "existing host: Debian GNU/Linux 12 (bookworm)" in summary
    assert "operator login ana: checked, left as it is" in summary
    assert "Clawdie first boot: ok" in (box / "stick/SETUP-RESULT.txt").read_text()
    assert SENTINEL not in result.stdout + result.stderr + summary

    # twice: nothing changes the second time
    tree, rows = snapshot(root, pg), db_state(pg)
    again = install_platform(box, pg)
    assert again.returncode == 0, again.stderr
    assert "already completed" in again.stderr
    assert snapshot(root, pg) == tree
    assert db_state(pg) == rows
    assert ana(root) == before


def test_postgresql_is_installed_with_apt_and_a_failed_apt_is_worded(
    tmp_path: Path, pg: PgCluster
) -> None:
    box = debian_host(tmp_path, port=pg.port)
    root = box / "root"
    shutil.rmtree(root / "usr/lib/postgresql")
    # an apt-get that cannot run in this root (no libc): the install fails like a broken apt
    (root / "usr/bin/apt-get").write_text("")
    (root / "usr/bin/apt-get").chmod(0o755)
    before, tree = ana(root), snapshot(root, pg)
    result = install_platform(box, pg)
    assert result.returncode == 1
    assert "PostgreSQL is not installed, and installing Debian's failed: " in result.stderr
    assert "apt-get update" in result.stderr
    assert "nothing else was installed" in result.stderr
    assert "Traceback" not in result.stderr
    assert ana(root) == before
    assert snapshot(root, pg) == tree


def test_an_overlay_folder_without_the_units_is_worded_before_anything_is_installed(
    tmp_path: Path, pg: PgCluster
) -> None:
    box = debian_host(tmp_path, port=pg.port)
    tree = snapshot(box / "root", pg)
    result = install_platform(box, pg, "--overlay", str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert f"cannot read {tmp_path / 'nowhere/etc/systemd/system/clawdie.service'}" in result.stderr
    assert "give --overlay the image's overlay folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(box / "root", pg) == tree


def test_ana_as_the_service_account_is_refused_and_nothing_is_installed(
    tmp_path: Path, pg: PgCluster
) -> None:
    box = debian_host(tmp_path, SEED + "SERVICE_ACCOUNT=ana\n", port=pg.port)
    root = box / "root"
    before, tree = ana(root), snapshot(root, pg)
    result = install_platform(box, pg)
    assert result.returncode == 1
    assert "SERVICE_ACCOUNT ana is your own login (the operator login) (uid 1000" in result.stderr
    assert "remove the SERVICE_ACCOUNT line" in result.stderr
    assert "Traceback" not in result.stderr
    assert ana(root) == before
    assert snapshot(root, pg) == tree  # not even the payload


def test_the_operator_login_must_exist_and_is_asked_for_when_unclear(
    tmp_path: Path, pg: PgCluster
) -> None:
    box = debian_host(tmp_path, port=pg.port)
    missing = install_platform(box, pg, "--operator-login", "bob")
    assert missing.returncode == 1
    assert "the operator login bob does not exist on this host" in missing.stderr
    with (box / "root/etc/passwd").open("a") as f:
        f.write("carl:x:1001:1001:Carl:/home/carl:/bin/bash\n")
    unclear = install_platform(box, pg)
    assert unclear.returncode == 1
    assert "cannot tell which login is the operator's: this host has ana, carl" in unclear.stderr
    assert "--operator-login NAME" in unclear.stderr
    assert not (box / "root/opt/clawdie").exists()


def test_an_adopt_seed_over_the_installation_is_adopted(tmp_path: Path, pg: PgCluster) -> None:
    from installer.fingerprint import read_fingerprint
    from installer.paths import TargetPaths

    box = debian_host(tmp_path, port=pg.port)
    root = box / "root"
    (root / "etc/machine-id").write_text("4f1c2a9be07d4c3a9a51d2e8b6c07f13\n")
    assert install_platform(box, pg).returncode == 0
    fingerprint = read_fingerprint(TargetPaths(root))
    # the existing host's first boot made its adopt code: on the receipt only
    code = code_on_receipt((box / "stick/SETUP-RESULT.txt").read_text())
    seed = box / "adopt.txt"
    lines = f"INSTALL_MODE=adopt\nINSTALL_FINGERPRINT={fingerprint}\nPROFILE=quality\n"
    seed.write_text(lines)
    refused = install_platform(box, pg, seed=seed)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "refused: wrong or missing ADOPT_CODE" in refused.stderr
    assert 'PROFILE="balanced"' in (root / "etc/clawdie/system.env").read_text()
    seed.write_text(lines + f"ADOPT_CODE={code}\n")
    result = install_platform(box, pg, seed=seed)
    assert result.returncode == 0, result.stderr
    assert "PROFILE: applied (balanced → quality)" in result.stdout
    assert 'PROFILE="quality"' in (root / "etc/clawdie/system.env").read_text()


HOST = HostFacts(
    os_release={"ID": "debian", "VERSION_ID": "12", "PRETTY_NAME": "Debian 12"},
    machine="x86_64",
    free_bytes=10 * 1024**3,
    postgres_versions=("15",),
    has_apt=True,
    has_systemd=True,
    systemd_running=True,
    is_root=True,
)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"is_root": False}, "run it with sudo"),
        ({"os_release": {"ID": "ubuntu", "PRETTY_NAME": "Ubuntu 24.04"}}, "runs Ubuntu 24.04"),
        ({"os_release": {"ID": "debian", "VERSION_ID": "11"}}, "Debian 12 (bookworm) only"),
        ({"os_release": {}}, "an unknown system (no /etc/os-release)"),
        ({"machine": "riscv64"}, "architecture is riscv64"),
        ({"free_bytes": 512 * 1024**2}, "0.5 GiB free"),
        ({"postgres_versions": (), "has_apt": False}, "no apt-get to install it"),
        ({"has_systemd": False}, "systemd does not run this host"),
        ({"systemd_running": False}, "systemd does not run this host"),
    ],
)
def test_each_host_check(change: dict[str, object], words: str) -> None:
    import dataclasses

    assert host_problems(HOST) == []
    (problem,) = host_problems(dataclasses.replace(HOST, **change))  # type: ignore[arg-type]
    assert words in problem


def test_a_host_that_fails_a_check_gets_nothing(tmp_path: Path, pg: PgCluster) -> None:
    box = debian_host(tmp_path, port=pg.port)
    (box / "root/etc/os-release").write_text(
        'ID=debian\nVERSION_ID="11"\nPRETTY_NAME="Debian 11"\n'
    )
    for path in (box / "root/usr/lib/postgresql").rglob("postgres"):
        path.unlink()
    tree = snapshot(box / "root", pg)
    result = install_platform(box, pg)
    assert result.returncode == 1
    assert "this host runs Debian 11" in result.stderr
    assert "apt-get install postgresql" in result.stderr
    assert "nothing was installed" in result.stderr
    assert snapshot(box / "root", pg) == tree


def test_only_the_platforms_cluster_is_touched_and_a_linked_pg_hba_is_refused(
    tmp_path: Path, pg: PgCluster
) -> None:
    """Two clusters: the platform's (on the test server's port) gets our lines, the other one
    stays byte for byte. A pg_hba.conf that is a link is refused before anything is installed,
    naming the link and what to do; the file it points to stays as it was."""
    box = debian_host(tmp_path, port=pg.port)
    root = box / "root"
    other = debian_cluster(root, "16", "reports", pg.port + 1)
    (other / "pg_hba.conf").write_text(DEBIAN_PG_HBA + "host all all 10.0.0.0/8 reject\n")
    ours = root / "etc/postgresql/15/main"
    kept = root / "etc/postgresql-hba/15-main.conf"
    kept.parent.mkdir()
    (ours / "pg_hba.conf").rename(kept)
    (ours / "pg_hba.conf").symlink_to(kept)

    def files(cluster: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(cluster.iterdir())}

    other_before, tree = files(other), snapshot(root, pg)
    refused = install_platform(box, pg)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert (
        "/etc/postgresql/15/main/pg_hba.conf is a symbolic link (to "
        f"{kept}); install-platform edits only the file itself" in refused.stderr
    )
    assert "replace the link with the file it points to" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert snapshot(root, pg) == tree
    assert kept.read_text() == DEBIAN_PG_HBA

    (ours / "pg_hba.conf").unlink()
    kept.rename(ours / "pg_hba.conf")
    result = install_platform(box, pg)
    assert result.returncode == 0, result.stdout + result.stderr
    assert files(other) == other_before  # byte for byte
    assert (ours / "pg_hba.conf").read_text().startswith("# BEGIN clawdie")


def test_a_port_no_cluster_or_several_clusters_use_is_worded(tmp_path: Path) -> None:
    from installer.host.existing import HostError, find_platform_cluster
    from installer.paths import TargetPaths

    root = tmp_path / "root"
    debian_cluster(root, "15", "main", 5432)
    paths = TargetPaths(root)
    assert find_platform_cluster(paths, 5432).unit == "postgresql@15-main.service"
    with pytest.raises(HostError, match="no PostgreSQL cluster in /etc/postgresql listens on port"):
        find_platform_cluster(paths, 5433)
    debian_cluster(root, "16", "main", 5432)
    with pytest.raises(HostError, match="several PostgreSQL clusters are set to port 5432"):
        find_platform_cluster(paths, 5432)


def test_our_lines_name_only_the_platforms_role_and_databases() -> None:
    """First match decides in pg_hba.conf: apart from root's admin line (the postgres database,
    through the root/postgres map), every line of ours names the platform's role and its
    databases, so the owner's lines for any other role, such as a stricter `postgres` line for
    the platform's databases, stay effective below ours."""
    from installer.host.existing import HBA_BEGIN, HBA_END, render_pg_hba

    owner = "local   system_ops   postgres   reject\nhost all postgres 127.0.0.1/32 reject\n"
    text = render_pg_hba(owner + DEBIAN_PG_HBA, role="ada")
    block = text[len(HBA_BEGIN) : text.index(HBA_END)]
    lines = [line.split() for line in block.splitlines()]
    assert lines[0] == ["local", "postgres", "postgres", "peer", "map=clawdie_admin"]
    for line in lines[1:]:
        assert line[1:3] == ["system_ops,system_brain,system_skills", "ada"]
    assert text.endswith(owner + DEBIAN_PG_HBA)


def test_pg_hba_gets_our_block_once_and_an_older_block_is_replaced() -> None:
    from installer.host.existing import HBA_BEGIN, HBA_END, render_pg_hba, render_pg_ident

    ours = render_pg_hba(DEBIAN_PG_HBA)
    assert ours.endswith(DEBIAN_PG_HBA)
    assert render_pg_hba(ours) == ours
    older = HBA_BEGIN + "local all all trust\n" + HBA_END + DEBIAN_PG_HBA
    assert render_pg_hba(older) == ours
    ident = render_pg_ident("# no newline at the end")
    assert ident.splitlines()[0] == "# no newline at the end"
    assert render_pg_ident(ident) == ident


def test_a_host_without_python3_gets_a_worded_error(tmp_path: Path) -> None:
    from installer.venv import VenvError, target_python

    (tmp_path / "usr/bin").mkdir(parents=True)
    with pytest.raises(VenvError, match="apt-get install python3"):
        target_python(tmp_path)
    (tmp_path / "usr/bin/python3.11").write_text("")
    (tmp_path / "usr/bin/python3").symlink_to("python3.11")
    assert target_python(tmp_path) == "python3.11"


def test_the_host_takes_the_publishers_key_and_a_channel_and_refuses_a_secret_key(
    tmp_path: Path, pg: PgCluster
) -> None:
    """With --release-key and --update-channel the host takes signed releases and asks the
    channel daily (its timer enabled like the image's); a secret key or an address that is not a
    channel is refused before anything is installed."""
    import minisign

    key = minisign.KeyPair.generate()
    public, secret = tmp_path / "release.pub", tmp_path / "release.key"
    public.write_bytes(bytes(key.public_key))  # minisign's .pub: its comment line, then the key
    secret.write_bytes(bytes(key.secret_key))
    box = debian_host(tmp_path, port=pg.port)
    root = box / "root"
    refused = install_platform(box, pg, "--release-key", str(secret))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--release-key" in refused.stderr
    assert "not a minisign public key" in refused.stderr
    wrong = install_platform(box, pg, "--update-channel", "ftp://updates.example/")
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert "is not an https:// address of a channel" in wrong.stderr
    assert not (root / "opt/clawdie/platform").exists()
    assert "Traceback" not in refused.stderr + wrong.stderr

    url = "https://updates.example/clawdie/stable"
    result = install_platform(box, pg, "--release-key", str(public), "--update-channel", url + "/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        (root / "etc/clawdie/release.pub")
        .read_bytes()
        .strip()
        .endswith(bytes(key.public_key).strip())
    )
    assert (root / "etc/clawdie/update-channel").read_text().splitlines()[-1] == url
    timer = root / "etc/systemd/system/timers.target.wants/clawdie-update-check.timer"
    assert os.readlink(timer) == "/etc/systemd/system/clawdie-update-check.timer"
    # twice: the key and the channel leave first boot's /etc/clawdie (0750) as it is
    mode = (root / "etc/clawdie").stat().st_mode & 0o7777
    assert mode == 0o750
    tree = snapshot(root, pg)
    again = install_platform(box, pg, "--release-key", str(public), "--update-channel", url)
    assert again.returncode == 0, again.stdout + again.stderr
    assert snapshot(root, pg) == tree


def test_a_package_need_apt_cannot_fetch_is_refused_before_anything_is_installed(
    tmp_path: Path, pg: PgCluster
) -> None:
    box = debian_host(tmp_path, port=pg.port)
    root = box / "root"
    (root / "var/lib/dpkg/status").write_text(dpkg_status("python3", "postgresql"))  # no nodejs
    # an apt-get that cannot run in this root (no libc): it fails as an offline apt does
    (root / "usr/bin/apt-get").write_text("")
    (root / "usr/bin/apt-get").chmod(0o755)
    before, tree = ana(root), snapshot(root, pg)
    result = install_platform(box, pg)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the platform needs Debian packages that cannot be fetched now: nodejs" in result.stderr
    assert "apt-get update failed too" in result.stderr
    assert "nothing was installed" in result.stderr
    assert "Traceback" not in result.stderr
    assert ana(root) == before
    assert snapshot(root, pg) == tree


def test_a_dashboard_without_its_modules_and_no_npm_is_refused_with_the_way_out(
    tmp_path: Path, pg: PgCluster
) -> None:
    box = debian_host(tmp_path, port=pg.port)
    root = box / "root"
    tree = snapshot(root, pg)
    no_npm = tmp_path / "bin"
    no_npm.mkdir()
    result = install_platform(box, pg, "--platform", str(PAYLOAD), env_path=str(no_npm))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "dashboard/ has no node_modules" in result.stderr
    assert "npm is not on this machine to build them" in result.stderr
    assert "--platform FILE.tar --release-key FILE.pub" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(root, pg) == tree


@pytest.mark.slow  # the release made with npm, then 3,400 module files installed one by one
def test_the_publishers_release_file_brings_the_dashboard_with_its_modules(
    tmp_path: Path, pg: PgCluster
) -> None:
    keys = new_keys()
    release = reference_release(tmp_path / "publisher", "1", keys.publisher)
    box = debian_host(tmp_path, port=pg.port)
    root = box / "root"
    tree = snapshot(root, pg)
    refused = install_platform(box, pg, "--platform", str(release))  # no key to check it with
    assert refused.returncode == 1
    assert "is a release file, and it is checked with its publisher's key" in refused.stderr
    assert snapshot(root, pg) == tree

    public = tmp_path / "release.pub"
    public.write_bytes(bytes(keys.publisher.public_key) + b"\n")
    result = install_platform(box, pg, "--platform", str(release), "--release-key", str(public))
    assert result.returncode == 0, result.stdout + result.stderr
    dashboard = root / "opt/clawdie/platform/dashboard"
    assert (dashboard / "node_modules/better-auth/package.json").is_file()
    served = (PAYLOAD / "dashboard/server.mjs").read_bytes()
    assert (dashboard / "server.mjs").read_bytes() == served
    summary = (root / "var/lib/clawdie-setup/install-summary.txt").read_text()
    assert f"(from {release.name}, signature checked)" in summary


@pytest.mark.slow  # npm ci from the registry into the host's own cold cache: 20-40 s
def test_a_folder_without_modules_gets_them_built_with_npm_from_its_lock(
    tmp_path: Path, pg: PgCluster
) -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is needed to build the dashboard's modules")
    payload = tmp_path / "checkout-payload"
    shutil.copytree(PAYLOAD, payload, ignore=shutil.ignore_patterns("node_modules"))
    box = debian_host(tmp_path, port=pg.port)
    root = box / "root"
    result = install_platform(box, pg, "--platform", str(payload))
    if result.returncode != 0 and "npm failed" in result.stderr:
        pytest.skip(f"npm could not reach its registry: {result.stderr[-400:]}")
    assert result.returncode == 0, result.stdout + result.stderr
    modules = root / "opt/clawdie/platform/dashboard/node_modules"
    assert (modules / "better-auth/package.json").is_file()
    assert not (payload / "dashboard/node_modules").exists()  # built in a copy
    summary = (root / "var/lib/clawdie-setup/install-summary.txt").read_text()
    assert "Node modules of 1 part(s) built with npm from the lock" in summary
