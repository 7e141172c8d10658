"""Shared fixtures. Real PostgreSQL, started per test from a session template (initdb once).

`pg`          a running `tests.helpers.pg.PgCluster` of its own (function scope), admin `postgres`
              trusted on the Unix socket, everyone else SCRAM. API: `pg.admin_conninfo(db)`,
              `pg.conninfo(user, password, db)` (socket), `pg.tcp_conninfo(...)`, `pg.stop(mode)`,
              `pg.start()`, `pg.restart(mode)`, `pg.start_in_background(delay)`, `pg.set(k=v)`
              (next start), `pg.promote()`, `pg.sockdir`, `pg.port`, `pg.logfile`.
`pg_cluster`  the same, initialised but not started.
`second_pg`   another running cluster of its own (a restore's new box).
`root_tools`  skips the test unless it runs as root with every tool the disk installer runs.
`live`        a small live system as a squashfs (tests/helpers/install_disk.py).
`loop_devices` skips the test unless it runs as root with loop devices and the disk tools
              (`pytestmark = pytest.mark.usefixtures("loop_devices")` for a whole module).
`secureboot_machine`, `uefi_later` the boot tests' shared UEFI machine (tests/helpers/boot_lane.py):
              installed once under Secure Boot, then its plain-UEFI later boot (session scope:
              tests/test_boot.py and tests/test_boot_secureboot.py share them).

Both are stopped and removed after the test, whatever its outcome. They skip, with the reason,
when not root or when the server binaries are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

from tests.helpers.install_disk import make_live, require_install_tools
from tests.helpers.loopdev import require_root
from tests.helpers.pg import PgCluster, unavailable_reason

if TYPE_CHECKING:
    from tests.helpers.boot_lane import LaterBoot, Machine

# `terminal_in`: a tmux terminal at 80x25, TERM=linux (tests/helpers/terminal.py).
pytest_plugins = ("tests.helpers.terminal",)

# Property tests judge results, not speed: hypothesis's per-example deadline (200 ms) and its
# slow-generation check fail on a loaded 2-core machine whatever the code does. A failure prints
# the blob that replays it.
settings.register_profile(
    "suite", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("suite")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[Path]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = PgCluster().init()
    try:
        yield cluster.data
    finally:
        cluster.cleanup()


@pytest.fixture
def pg_cluster(pg_template: Path) -> Iterator[PgCluster]:
    cluster = PgCluster(template=pg_template)
    try:
        cluster.init()
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def pg(pg_cluster: PgCluster) -> PgCluster:
    pg_cluster.start()
    return pg_cluster


@pytest.fixture
def second_pg(pg_template: Path) -> Iterator[PgCluster]:
    """A second running cluster (a restore's new box beside the old one's `pg`)."""
    cluster = PgCluster(template=pg_template)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def loop_devices() -> None:
    require_root()


@pytest.fixture
def root_tools() -> None:
    require_install_tools()


@pytest.fixture
def live(tmp_path: Path) -> Path:
    return make_live(tmp_path)


@pytest.fixture(scope="session")
def installer_image() -> Path:
    """The installer image from `just iso` (build/iso), built now (cached base) when missing."""
    from tests.helpers.boot_lane import locked
    from tests.helpers.image import OUT, ensure_image

    with locked(OUT / "image.lock"):  # two boot-test workers: one builds, the other waits
        return ensure_image()


@pytest.fixture(scope="session")
def secureboot_machine(installer_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Machine:
    """The boot tests' one UEFI install: the stick under Secure Boot, the disk's first boot
    under Secure Boot to PLATFORM-READY (tests/helpers/boot_lane.py). Installed when a test
    first asks."""
    from tests.helpers import boot_lane, vm

    if not (vm.OVMF_CODE_SECBOOT.is_file() and vm.OVMF_VARS_MS.is_file()):
        pytest.skip("needs OVMF's Secure Boot build (Debian's ovmf package)")
    if os.environ.get("PYTEST_XDIST_WORKER"):  # `just boot-test`: the workers share it
        shared = tmp_path_factory.getbasetemp().parent
        return boot_lane.shared_secure_boot_install(installer_image, shared)
    workdir = tmp_path_factory.mktemp(boot_lane.SECURE_BOOT_RUN)
    return boot_lane.secure_boot_installed(installer_image, workdir)


@pytest.fixture(scope="session")
def uefi_later(secureboot_machine: Machine, tmp_path_factory: pytest.TempPathFactory) -> LaterBoot:
    """The Secure Boot install's later boot under plain UEFI, with the NIC the host probes and
    the kit that runs a package update's hooks (tests/helpers/boot_lane.py)."""
    from tests.helpers import boot_lane

    return boot_lane.uefi_later_boot(secureboot_machine, tmp_path_factory.mktemp("uefi-later"))


@pytest.fixture(params=["tmpfs", "checkout"])
def dir_on_each_fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """An empty directory on a tmpfs, then on the checkout's file system, whatever TMPDIR is.

    For tests whose subject reads files through the kernel (a disk read, QEMU's image files):
    what a file system answers differs (a directory read is EISDIR on ext4, EINVAL on tmpfs),
    and /tmp is a tmpfs on many machines. The checkout's directory is under its build/."""
    if request.param == "tmpfs":
        require_root()
        mount_point = tmp_path / "tmpfs"
        mount_point.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_point)], check=True
        )
        try:
            yield mount_point
        finally:
            subprocess.run(["umount", "--lazy", str(mount_point)], check=False)
        return
    checkout = Path(__file__).resolve().parent.parent / "build" / "test-tmp"
    checkout.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=checkout))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
