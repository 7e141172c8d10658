"""The existing-host test (issue 15): a real Debian 12 host, booted with systemd-nspawn, with a
person's login `ana`, her authorized_keys and Debian's PostgreSQL. `install-platform` runs on
it as the operator would run it, from this checkout with the publisher's signed release of the
reference platform (iso/release.py: its dashboard's modules built from the lock) and key: it
installs the payload's Debian packages (`nodejs`, from a local apt repository of Debian's own
.debs: the machine has no network), the locked venv, the payload and the units, then first boot
runs; real systemd starts the platform.

Then: ana is untouched byte for byte (her passwd, shadow and group lines, her home), the
platform runs (`PLATFORM-READY` in its journal), its dashboard answers on the host over HTTPS
with the host's TLS pair (Debian's snakeoil pair) and signs the seed's operator in, and a second
run changes no file.

Needs root, debootstrap and systemd-nspawn (`just slow-test` installs them). The first run
makes the cached root (a few minutes); later runs take about a minute and a half on two cores.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.apt_repo import Origin, make_repository
from tests.helpers.host import ANA_KEYS, SEED, ana
from tests.helpers.nspawn_host import DEBS, Machine, booted
from tests.helpers.sentinels import OPERATOR_PASSWORD, SENTINEL
from tests.helpers.update import Keys, new_keys, reference_release

ROOT = Path(__file__).resolve().parents[1]
ANA_HASH = "$6$anasalt$Qm1Y0b2vFf5xYc0Q9a9V3b8oV8B7y0t2ZqO7G2m1pQnU4r5s6t7u8v9w0x1y2"
# Not the default account: the unit's own User=clawdie must give way to first boot's drop-in,
# which systemd reads only when told to.
ACCOUNT = "assistant"
# What install-platform and first boot own or may write; a second run must leave all of it.
WATCHED = ("etc", "opt", "usr/local", "var/lib/clawdie-setup", "var/lib/clawdie", "home")

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def uv_cache() -> Path:
    """The checkout's uv cache, which the host reads the locked wheels from (offline). Asked of
    uv when the test runs, not when the module is collected: a missing uv skips this test with
    the reason instead of breaking the collection of the whole suite."""
    uv = ROOT / ".venv/bin/uv"
    if not uv.exists():
        pytest.skip(f"{uv} is missing: run .ci/bootstrap")
    result = subprocess.run(
        [str(uv), "cache", "dir"], capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0 or not result.stdout.strip():
        pytest.skip(f"`uv cache dir` failed: {result.stderr.strip()}")
    return Path(result.stdout.strip())


@pytest.fixture(scope="module")
def keys() -> Keys:
    return new_keys()


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Path:
    """The publisher's signed release of the reference platform (dashboard modules and all)."""
    return reference_release(tmp_path_factory.mktemp("publisher"), "1", keys.publisher)


# Debian 12's nodejs and what it depends on that the host root lacks, from the image build's
# .deb cache (the versions the image has): an apt repository the machine reads as a file: source.
NODE_DEBS = (
    "nodejs_*",
    "libnode108_*",
    "node-acorn_*",
    "node-busboy_*",
    "node-cjs-module-lexer_*",
    "node-undici_*",
    "node-xtend_*",
    "libuv1_*",
    "libc-ares2_*",
    "libicu72_*",
    "libbrotli1_*",
    "libnghttp2-14_*",
)
NODE_SUITE = Origin("Debian", "Debian", "bookworm-node", "bookworm-node")


def node_repository(where: Path) -> Path:
    """A local apt repository of NODE_DEBS (the newest of each), skipped when the cache lacks
    one (the image build fills it: `just iso`)."""
    debs = []
    for pattern in NODE_DEBS:
        found = sorted(DEBS.glob(pattern + "_amd64.deb")) or sorted(DEBS.glob(pattern + "_all.deb"))
        if not found:
            pytest.skip(f"{DEBS} has no {pattern}.deb: build the image once (`just iso`)")
        debs.append(found[-1])
    return make_repository(where, NODE_SUITE, debs)


# Run inside the machine: the dashboard's page over HTTPS trusting only the host's own
# certificate, the seed's operator signed in (the password read from the seed, never an argument).
SIGN_IN = """\
import http.client, ssl, sys, urllib.parse
seed = dict(l.split("=", 1) for l in open("/root/setup.txt").read().splitlines() if "=" in l)
ctx = ssl.create_default_context(cafile="/etc/ssl/certs/ssl-cert-snakeoil.pem")
ctx.check_hostname = False
def ask(method, body=None, cookie=""):
    conn = http.client.HTTPSConnection("127.0.0.1", 443, context=ctx, timeout=20)
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    if cookie:
        headers["Cookie"] = cookie
    conn.request(method, "/sign-in" if body else "/", body=body, headers=headers)
    got = conn.getresponse()
    return got.status, got.getheader("set-cookie") or "", got.read().decode()
status, _, page = ask("GET")
print("page", status, 'action="/sign-in"' in page)
who = {"email": seed["OPERATOR_EMAIL"], "password": seed["OPERATOR_PASSWORD"]}
form = urllib.parse.urlencode(who)
status, cookie, _ = ask("POST", form)
status, _, page = ask("GET", cookie=cookie.split(";", 1)[0])
print("signed-in", status, "Signed in as <strong>" + seed["OPERATOR_EMAIL"] in page)
"""
OPERATOR_EMAIL = "ops@example.com"


def checkout_paths() -> list[Path]:
    """This checkout, and the Python its .venv was made from when that is not Debian's."""
    paths = [ROOT]
    if not sys.base_prefix.startswith("/usr"):
        paths.append(Path(sys.base_prefix))
    return paths


def files(root: Path) -> dict[str, tuple[str, int, str]]:
    """Mode, owner and content (or link target) of every file under WATCHED."""
    out = {}
    for top in WATCHED:
        for path in sorted((root / top).rglob("*")):
            st = path.lstat()
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = ("link", st.st_uid, os.readlink(path))
            elif path.is_dir():
                out[rel] = (oct(stat.S_IMODE(st.st_mode)), st.st_uid, "dir")
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
                out[rel] = (oct(stat.S_IMODE(st.st_mode)), st.st_uid, digest)
    return out


def add_ana(machine: Machine) -> None:
    """A person's login as `adduser` makes it, with a password and her SSH key."""
    for argv in (
        ("useradd", "--create-home", "--uid", "1000", "--shell", "/bin/bash", "ana"),
        ("usermod", "--password", ANA_HASH, "ana"),
        ("install", "-d", "-o", "ana", "-g", "ana", "-m", "0700", "/home/ana/.ssh"),
    ):
        result = machine.run(*argv)
        assert result.returncode == 0, result.stderr
    keys = machine.root / "home/ana/.ssh/authorized_keys"
    keys.write_text(ANA_KEYS)
    os.chown(keys, 1000, 1000)
    keys.chmod(0o600)


def install_platform(
    machine: Machine, uv_cache: Path, release: Path
) -> subprocess.CompletedProcess[str]:
    return machine.run(
        str(ROOT / ".venv/bin/clawdie-setup"),
        "install-platform",
        "/root/setup.txt",
        *("--platform", str(release), "--release-key", "/root/release.pub"),
        env={"UV_OFFLINE": "1", "UV_CACHE_DIR": str(uv_cache), "UV_PYTHON_DOWNLOADS": "never"},
        timeout=1200,
    )


def platform_journal(machine: Machine) -> str:
    return machine.run("journalctl", "--no-pager", "-o", "cat", "-u", "clawdie.service").stdout


POSTGRES_PACKAGES = (
    "postgresql",
    "postgresql-15",
    "postgresql-common",
    "postgresql-client-15",
    "postgresql-client-common",
)


@pytest.mark.parametrize("postgresql", ["already there", "installed by apt"])
def test_install_platform_on_a_running_debian_host_leaves_ana_alone(
    tmp_path: Path, postgresql: str, uv_cache: Path, release: Path, keys: Keys
) -> None:
    started = time.monotonic()
    repo = node_repository(tmp_path / "node-debs")
    operator = f"OPERATOR_EMAIL={OPERATOR_EMAIL}\nOPERATOR_PASSWORD={OPERATOR_PASSWORD}\n"
    seed = SEED + f"SERVICE_ACCOUNT={ACCOUNT}\n" + operator
    source = f"deb [trusted=yes] file:{repo} {NODE_SUITE.codename} main\n"
    prepare = [
        ("/root/setup.txt", seed.encode(), 0o600),
        ("/root/release.pub", bytes(keys.publisher.public_key) + b"\n", 0o644),
        ("/root/sign-in.py", SIGN_IN.encode(), 0o644),
        ("/etc/apt/sources.list.d/clawdie-test-node.list", source.encode(), 0o644),
    ]
    by_apt = postgresql == "installed by apt"
    with booted(
        tmp_path / "machine",
        prepare,
        read_only=[*checkout_paths(), repo, release.parent],
        writable=[uv_cache],
        apt_archives=("postgresql*.deb",) if by_apt else (),
    ) as machine:
        booted_at = time.monotonic()
        add_ana(machine)
        root = machine.root
        if by_apt:  # a host without PostgreSQL: install-platform runs apt-get (offline here)
            purge = machine.run("apt-get", "purge", "-y", "-qq", *POSTGRES_PACKAGES, timeout=300)
            assert purge.returncode == 0, purge.stdout + purge.stderr
            assert not (root / "usr/lib/postgresql/15/bin/postgres").exists()
        before = ana(root)
        assert (root / "home/ana/.ssh/authorized_keys").read_text() == ANA_KEYS

        assert machine.run("dpkg", "-s", "nodejs").returncode != 0  # not there yet

        # offline with no source for nodejs: refused with apt's reason, nothing installed
        node_list = root / "etc/apt/sources.list.d/clawdie-test-node.list"
        node_list.rename(node_list.with_suffix(".off"))
        untouched = files(root)
        offline = install_platform(machine, uv_cache, release)
        assert offline.returncode == 1, offline.stdout + offline.stderr
        assert "needs Debian packages that cannot be fetched now: nodejs" in offline.stderr
        assert "nothing was installed" in offline.stderr
        assert files(root) == untouched
        node_list.with_suffix(".off").rename(node_list)

        result = install_platform(machine, uv_cache, release)
        installed_at = time.monotonic()
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert SENTINEL not in output
        assert ana(root) == before  # passwd/shadow/group lines, home, keys: byte for byte
        assert machine.run("systemctl", "is-active", "postgresql@15-main").stdout.strip() == (
            "active"
        )

        # the platform runs under real systemd, as its own account, from the installed venv
        deadline = time.monotonic() + 120
        while "PLATFORM-READY" not in platform_journal(machine) and time.monotonic() < deadline:
            time.sleep(1)
        journal = platform_journal(machine)
        assert f"PLATFORM-READY role={ACCOUNT} db=system_ops" in journal, journal
        assert machine.run("systemctl", "is-active", "clawdie.service").stdout.strip() == "active"
        pid = machine.run("systemctl", "show", "--value", "--property=MainPID", "clawdie.service")
        owner = machine.run("stat", "--format=%U", f"/proc/{pid.stdout.strip()}")
        assert owner.stdout.strip() == ACCOUNT
        assert machine.run("systemctl", "is-enabled", "clawdie.service").stdout.strip() == (
            "enabled"
        )
        timer = machine.run("systemctl", "is-active", "clawdie-telegram-retry.timer")
        assert timer.stdout.strip() == "active"
        wrapper = root / "usr/local/bin/clawdie-setup"
        assert "/opt/clawdie/venv/bin/python" in wrapper.read_text()
        version = machine.run("/usr/local/bin/clawdie-setup", "--version")
        assert version.returncode == 0, version.stderr
        summary = (root / "var/lib/clawdie-setup/install-summary.txt").read_text()
        assert "existing host: Debian GNU/Linux 12 (bookworm)" in summary
        assert "operator login ana: checked, left as it is" in summary
        if by_apt:  # (apt-get update finds no network, and says so only as a warning)
            assert "PostgreSQL 15 (installed now with apt-get" in summary
        assert SENTINEL not in summary

        assert "the platform's Debian packages installed now with apt-get: nodejs" in summary
        assert f"(from {release.name}, signature checked)" in summary

        # the dashboard on the host: HTTPS with its TLS pair, the seed's operator signed in
        deadline = time.monotonic() + 120
        while "DASHBOARD-READY" not in platform_journal(machine) and time.monotonic() < deadline:
            time.sleep(1)
        journal = platform_journal(machine)
        assert "DASHBOARD-READY https on port 443 (Node v18." in journal, journal
        visit = machine.run("python3", "/root/sign-in.py", timeout=60)
        assert visit.returncode == 0, visit.stdout + visit.stderr
        assert visit.stdout.splitlines() == ["page 200 True", "signed-in 200 True"], visit.stdout
        ready = machine.run("/opt/clawdie/platform/bin/clawdie-platform", "--ready", timeout=60)
        assert ready.returncode == 0, ready.stderr  # the update's readiness check: the same
        assert SENTINEL not in platform_journal(machine)

        # twice: nothing changes the second time
        tree = files(root)
        second = time.monotonic()
        again = install_platform(machine, uv_cache, release)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already completed" in again.stderr
        assert files(root) == tree
        assert ana(root) == before
        finished = time.monotonic()
    print(
        f"existing host, PostgreSQL {postgresql}: boot {booted_at - started:.0f} s, "
        f"install-platform + first boot {installed_at - booted_at:.0f} s, "
        f"second run {finished - second:.0f} s, "
        f"whole test {time.monotonic() - started:.0f} s"
    )
