"""A platform release as its publisher makes it (iso/release.py, DESIGN §9): the whole reference
platform with its dashboard's modules built from the lock file, as plain files, signed. Applied
by `update` to a box that runs v1 (a sandbox root, real PostgreSQL, the platform started as
clawdie.service would), it leaves a dashboard that starts and answers its sign-in over HTTPS
with the box's TLS pair, offline: nothing is fetched on the box but what apt would.

The release without the modules is refused by the update (tests/test_update.py) and by
install-platform (tests/test_install_platform.py); on a booted Debian 12 host it is
tests/test_existing_host.py.
"""

from __future__ import annotations

import ssl
import tarfile
import urllib.request
from pathlib import Path

import pytest

from installer.install.identities import make_tls_snakeoil
from tests.helpers.pg import PgCluster, free_port
from tests.helpers.update import (
    DPKG_STATUS,
    Keys,
    new_keys,
    reference_release,
    running_box,
    update,
)

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def keys() -> Keys:
    return new_keys()


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Path:
    return reference_release(tmp_path_factory.mktemp("release"), "2", keys.publisher)


def test_a_release_carries_the_dashboards_locked_modules_as_plain_files(release: Path) -> None:
    with tarfile.open(release) as archive:
        members = archive.getmembers()
    names = {m.name for m in members}
    for name in (
        "platform.toml",
        "bin/clawdie-platform",
        "dashboard/server.mjs",
        "dashboard/package-lock.json",
        "dashboard/node_modules/.package-lock.json",  # npm's record: checked against the lock
        "dashboard/node_modules/better-auth/package.json",
        "dashboard/node_modules/pg/package.json",
    ):
        assert name in names, name
    assert all(m.isfile() or m.isdir() for m in members)  # no links: what unpack takes
    assert not any("/node_modules/.bin" in n for n in names)
    assert all(m.uid == 0 and m.mtime == 0 for m in members)
    assert release.with_name(release.name + ".minisig").is_file()


def box_tls_pair(root: Path) -> tuple[Path, Path]:
    """The TLS pair the disk installer makes (its own maker), as the dashboard serves it."""
    with (root / "etc/group").open("a") as handle:
        handle.write("ssl-cert:x:110:\n")
    for tool in ("usr/bin/openssl", "usr/sbin/make-ssl-cert"):  # what the maker looks for
        (root / tool).parent.mkdir(parents=True, exist_ok=True)
        (root / tool).touch()
    assert make_tls_snakeoil(root, "ada.local")
    return (
        root / "etc/ssl/certs/ssl-cert-snakeoil.pem",
        root / "etc/ssl/private/ssl-cert-snakeoil.key",
    )


def sign_in_page(port: int, cert: Path) -> str:
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False  # the certificate is checked, not the name 127.0.0.1
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/", timeout=20, context=context) as got:
        assert got.status == 200
        return str(got.read().decode())


def test_an_update_to_the_release_leaves_a_dashboard_that_answers_over_https(
    release: Path, keys: Keys, pg: PgCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    with running_box(tmp_path, pg, keys) as box:
        root = box / "root"
        monkeypatch.setenv("CLAWDIE_DASHBOARD_PORT", str(port))  # not 443: tests side by side
        cert, key = box_tls_pair(root)
        monkeypatch.setenv("CLAWDIE_TLS_CERT", str(cert))
        monkeypatch.setenv("CLAWDIE_TLS_KEY", str(key))
        (root / "var/lib/dpkg/status").write_text(
            DPKG_STATUS + "Package: nodejs\nStatus: install ok installed\nVersion: 18\n\n"
        )
        assert not (root / "opt/clawdie/platform/dashboard").exists()  # v1 has none

        result = update(box, pg, str(release))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "applied: reference-platform 2" in result.stdout + result.stderr
        modules = root / "opt/clawdie/platform/dashboard/node_modules"
        assert (modules / "better-auth/package.json").is_file()
        # the readiness check the update waited for asked the dashboard; it answers still
        page = sign_in_page(port, cert)
        assert 'action="/sign-in"' in page
        log = (box / "platform.log").read_text()
        assert "no dashboard" not in log
        assert "DASHBOARD-READY" in log
