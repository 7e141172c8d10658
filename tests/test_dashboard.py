"""The reference platform's dashboard (iso/reference_platform/dashboard, DESIGN §4, §5, §10): the
operator's sign-in over HTTPS with the box's own TLS pair, through Better Auth, on the platform's
database as the platform role.

Real parts: PostgreSQL (the tests' throwaway cluster), first boot itself (system.env, Better
Auth's tables, the seed's operator with the hash first boot makes), the disk installer's TLS
maker, bin/clawdie-platform with its Node child on the host's Node, and the locked modules the
image build installs (npm ci, cached outside the repo). The browser test drives Debian's
Chromium, which trusts the box's certificate only by its key's hash, as the login screen and the
summary print it. Without node/npm (or the registry) the tests skip and say why.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from installer.machine import read_tls_fingerprint
from installer.paths import TargetPaths
from tests.helpers.dashboard import (
    COLD,
    OPERATOR_EMAIL,
    Dashboard,
    chromium_sign_in,
    node_modules,
    running_dashboard,
)
from tests.helpers.pg import PgCluster
from tests.helpers.sentinels import OPERATOR_PASSWORD

SCREENSHOT = Path(__file__).resolve().parents[1] / "docs/dashboard-signed-in.png"
pytestmark = [pytest.mark.slow] if COLD else []


@pytest.fixture
def dashboard(tmp_path: Path, pg: PgCluster) -> Iterator[Dashboard]:
    with running_dashboard(tmp_path, pg, node_modules(tmp_path)) as running:
        yield running


def _connection(dashboard: Dashboard) -> http.client.HTTPSConnection:
    """HTTPS that trusts only the box's own certificate (issued to the box's name, so the
    certificate is checked and the name 127.0.0.1 is not)."""
    context = ssl.create_default_context(cafile=str(dashboard.cert))
    context.check_hostname = False
    return http.client.HTTPSConnection("127.0.0.1", dashboard.port, context=context, timeout=20)


def _request(
    dashboard: Dashboard,
    method: str,
    path: str,
    form: dict[str, str] | None = None,
    cookie: str = "",
) -> tuple[int, dict[str, list[str]], str]:
    conn = _connection(dashboard)
    headers = {"Cookie": cookie} if cookie else {}
    body = None
    if form is not None:
        body = urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    answer = conn.getresponse()
    text = answer.read().decode()
    seen: dict[str, list[str]] = {}
    for name, value in answer.getheaders():
        seen.setdefault(name.lower(), []).append(value)
    conn.close()
    return answer.status, seen, text


def test_the_operator_signs_in_over_https_and_a_wrong_password_is_refused(
    dashboard: Dashboard,
) -> None:
    status, _, page = _request(dashboard, "GET", "/")
    assert status == 200, page
    assert 'action="/sign-in"' in page

    status, _, page = _request(
        dashboard, "POST", "/sign-in", {"email": OPERATOR_EMAIL, "password": "not the password"}
    )
    assert status == 401
    assert "Sign-in refused: wrong email or password." in page
    assert "not the password" not in page

    form = {"email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD}
    status, headers, _ = _request(dashboard, "POST", "/sign-in", form)
    assert status == 303, headers
    cookies = headers["set-cookie"]
    session = next(c for c in cookies if c.startswith("__Secure-better-auth.session_token="))
    assert "; Secure" in session, session
    assert "; HttpOnly" in session, session
    status, _, page = _request(dashboard, "GET", "/", cookie=session.split(";", 1)[0])
    assert status == 200
    assert f"Signed in as <strong>{OPERATOR_EMAIL}</strong>" in page

    log = dashboard.log.read_text()
    assert "PLATFORM-READY role=clawdie db=system_ops operators=1" in log
    assert OPERATOR_PASSWORD not in log


def test_the_platforms_readiness_check_asks_the_dashboard_over_https(dashboard: Dashboard) -> None:
    env = dashboard.env()
    env["PATH"] = f"{os.path.dirname(shutil.which('psql') or '/usr/bin/psql')}:{env['PATH']}"
    check = subprocess.run(
        [str(dashboard.platform / "bin/clawdie-platform"), "--ready"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_the_summary_prints_what_the_browser_checks(dashboard: Dashboard) -> None:
    """The certificate's SHA-256 is the one a TLS client sees; the SPKI hash is its key's (as
    OpenSSL finds it)."""
    tls = read_tls_fingerprint(TargetPaths(dashboard.cert.parents[3]))
    assert tls is not None
    conn = _connection(dashboard)
    conn.connect()
    assert conn.sock is not None
    served = conn.sock.getpeercert(binary_form=True)
    conn.close()
    assert served is not None
    assert hashlib.sha256(served).digest() == tls.certificate
    # the key's hash as OpenSSL takes the key out of the certificate
    key = subprocess.run(
        ["openssl", "x509", "-in", str(dashboard.cert), "-noout", "-pubkey"],
        capture_output=True,
        check=True,
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "DER"], input=key, capture_output=True, check=True
    ).stdout
    assert hashlib.sha256(der).digest() == tls.spki


def test_chromium_trusts_the_box_by_its_key_hash_and_signs_in(dashboard: Dashboard) -> None:
    """Headless Chromium told to accept this one key (the SPKI hash the summary prints): the
    sign-in form, a wrong password refused, the right one signed in (CLAWDIE_DOCS_SCREENSHOT=1
    keeps the signed-in page as docs/dashboard-signed-in.png)."""
    tls = read_tls_fingerprint(TargetPaths(dashboard.cert.parents[3]))
    assert tls is not None
    visit = chromium_sign_in(dashboard.url, tls.spki_base64, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    assert "Sign-in refused: wrong email or password." in visit.refused
    assert f"Signed in as {OPERATOR_EMAIL}" in visit.signed_in
    assert visit.secure
    assert visit.http_only
    if os.environ.get("CLAWDIE_DOCS_SCREENSHOT"):
        SCREENSHOT.write_bytes(visit.screenshot)
