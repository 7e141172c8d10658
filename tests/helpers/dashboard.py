"""The reference platform's dashboard as its tests run it: the payload copied with its locked Node
modules (npm ci, kept in a cache outside the repo), a box first boot made (system.env, the
operator) with the TLS pair the disk installer makes, and the platform started on a free port."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from installer.install.identities import make_tls_snakeoil
from installer.paths import TargetPaths
from tests.helpers.better_auth import keep_cached, npm_into
from tests.helpers.firstboot import SEED, firstboot
from tests.helpers.pg import PgCluster, free_port
from tests.helpers.seeds import firstboot_box

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = ROOT / "iso/reference_platform"
LOCK = PAYLOAD / "dashboard/package-lock.json"
OPERATOR_EMAIL = "ops@example.com"  # the first-boot seed's (tests/helpers/firstboot.py)
READY_S = 60.0
# A folder whose `node` the platform runs instead of the host's: Debian 12's node 18, say (the
# image's), from a copy of its root, to prove the dashboard on the Node the box has.
NODE_DIR = "CLAWDIE_TEST_NODE_DIR"


def _cache_root() -> Path:
    base = os.environ.get("CLAWDIE_TEST_CACHE") or Path.home() / ".cache" / "clawdie-tests"
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]
    return Path(base) / f"dashboard-modules-{digest}"


# a cold npm ci takes 20-40 s: `slow` until the cache exists, in the fast suite after
COLD = not (_cache_root() / "node_modules/better-auth/package.json").exists()


def node_modules(tmp_path: Path) -> Path:
    """The dashboard's locked modules (npm ci --omit=dev, as the image build runs it)."""
    cached = _cache_root()
    if (cached / "node_modules/better-auth/package.json").exists():
        return cached / "node_modules"
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are needed to run the dashboard")
    work = tmp_path / "npm"
    work.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(PAYLOAD / "dashboard" / name, work / name)
    args = ["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"]
    npm_into(work, args, "npm ci of the dashboard's modules")
    return keep_cached(work, cached) / "node_modules"


@dataclass(frozen=True)
class Dashboard:
    """A running reference platform: where its page is and what it trusts."""

    port: int
    cert: Path
    system_env: Path
    log: Path
    platform: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CLAWDIE_SYSTEM_ENV": str(self.system_env),
            "CLAWDIE_TLS_CERT": str(self.cert),
            "CLAWDIE_TLS_KEY": str(self.cert.parents[1] / "private/ssl-cert-snakeoil.key"),
            "CLAWDIE_DASHBOARD_PORT": str(self.port),
        }


def installed_box(where: Path, pg: PgCluster) -> TargetPaths:
    """A box first boot has run on (system.env, Better Auth's tables, the seed's operator), with
    the TLS pair the disk installer makes (its own maker, the host's openssl)."""
    box = firstboot_box(where, SEED)
    root = box / "root"
    group = root / "etc/group"
    if "\nssl-cert:" not in "\n" + group.read_text():
        with group.open("a") as handle:
            handle.write("ssl-cert:x:110:\n")
    for tool in ("usr/bin/openssl", "usr/sbin/make-ssl-cert"):  # what the maker looks for
        (root / tool).parent.mkdir(parents=True, exist_ok=True)
        (root / tool).touch()
    assert make_tls_snakeoil(root, "zoes-helper.local")
    result = firstboot(box, pg, start_platform=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return TargetPaths(root)


@contextmanager
def running_dashboard(where: Path, pg: PgCluster, modules: Path) -> Iterator[Dashboard]:
    """bin/clawdie-platform on a box first boot made: PLATFORM-READY, then its dashboard child
    answering over HTTPS; stopped (its whole process group) afterwards."""
    paths = installed_box(where / "box", pg)
    platform = where / "platform"
    shutil.copytree(PAYLOAD, platform, ignore=shutil.ignore_patterns("node_modules"))
    (platform / "dashboard/node_modules").symlink_to(modules)
    dashboard = Dashboard(
        free_port(), paths.tls_cert, paths.system_env, where / "platform.log", platform
    )
    env = dashboard.env()
    env["PATH"] = f"{pg.bindir}:{env['PATH']}"  # psql, for the platform's database check
    if os.environ.get(NODE_DIR):
        env["PATH"] = f"{os.environ[NODE_DIR]}:{env['PATH']}"
    with dashboard.log.open("w") as log:
        proc = subprocess.Popen(
            [str(platform / "bin/clawdie-platform")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=where,
            start_new_session=True,
        )
    try:
        wait_for(dashboard.log, "DASHBOARD-READY", proc)
        yield dashboard
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def wait_for(log: Path, word: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if word in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(f"the platform never said {word}:\n{log.read_text(errors='replace')[-3000:]}")


@dataclass(frozen=True)
class Visit:
    """What headless Chromium saw of the dashboard: the page after a wrong password, the page
    after the right one, the session cookie's flags, and a screenshot of the signed-in page."""

    refused: str
    signed_in: str
    secure: bool
    http_only: bool
    screenshot: bytes


def chromium_sign_in(
    url: str, spki: str, email: str, password: str, timeout_ms: float = 30000
) -> Visit:
    """Debian's Chromium, headless, trusting the dashboard's certificate by its key's hash only
    (`spki`, as the summary prints it; any other certificate error stays an error): a wrong
    password, then the right one."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is needed for the browser test")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=[f"--ignore-certificate-errors-spki-list={spki}"],
        )
        page = browser.new_page(viewport={"width": 720, "height": 420})
        page.set_default_timeout(timeout_ms)
        page.goto(url)
        page.fill("#email", email)
        page.fill("#password", "not the operator's password")
        page.click("button[type=submit]")
        page.wait_for_selector("text=Sign-in refused")
        refused = page.inner_text("body")
        page.fill("#password", password)
        page.click("button[type=submit]")
        page.wait_for_selector("text=Signed in as")
        signed_in = page.inner_text("body")
        cookies = {c["name"]: c for c in page.context.cookies()}
        session = cookies.get("__Secure-better-auth.session_token", {})
        shot = page.screenshot()
        browser.close()
    return Visit(
        refused,
        signed_in,
        bool(session.get("secure")),
        bool(session.get("httpOnly")),
        shot,
    )
