"""The install, the update and the backup are runs of the one skeleton (installer/steps.py):
each is a flat list of steps with a label, a deadline and an `apply`, and a step that fails
goes to the run's one failure handler (its receipt, its report, its clean-up)."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer import faults
from installer.backup import make
from installer.backup.make import BackupConfig, make_backup
from installer.install import flow, system
from installer.install.console import Console
from installer.install.flow import InstallConfig, InstallRun, install_steps
from installer.steps import Step, plan
from installer.tracker import StepTracker
from installer.update import run as update_run
from tests.helpers.adopt import installed_box as backup_box
from tests.helpers.pg import PgCluster
from tests.helpers.update import ROOT, Keys, bundle, installed_box, new_keys, payload, service
from tests.helpers.update import update as run_update


def described(steps: list[Step[object]] | tuple[Step[object], ...]) -> list[tuple[object, ...]]:
    return [(s.name, s.label, s.deadline_s, s.stamped) for s in steps]


def test_the_install_is_a_flat_list_of_steps() -> None:
    config = InstallConfig(console_wait=100.0, erase_countdown=15.0)
    steps = install_steps(config)
    assert all(isinstance(s, Step) for s in steps)
    assert described(steps) == [  # type: ignore[arg-type]
        ("stick", None, 60.0, False),
        ("seed", "reading and checking setup.txt", 160.0, False),
        ("disk", "choosing the disk", 375.0, False),
        ("partitions", "partitioning the disk", 120.0, False),
        ("file-systems", "making the file systems", 300.0, False),
        ("mount", None, 60.0, False),
        ("copy", "copying the system", system.COPY_TIMEOUT_S, False),
        ("configuration", "fstab, seed copy and install record", 120.0, False),
        ("identities", "host keys, TLS pair, database cluster", 600.0, False),
        ("boot-loader", "installing the boot loader", system.GRUB_TIMEOUT_S, False),
        ("complete", None, 60.0, False),
        ("unmount", None, 300.0, False),
    ]
    assert flow.plan_steps(config) == plan(steps)  # the receipt counts the labelled ones: 8
    assert [s.name for s in steps if s.timed is not None] == ["copy"]  # timed by its size


def test_the_update_is_two_flat_lists_of_stamped_steps() -> None:
    forward, back = update_run.FORWARD_STEPS, update_run.BACK_STEPS
    assert described(forward) == [  # type: ignore[arg-type]
        ("verify", "check the release: signature, name, version, packages", 300, False),
        ("unpack", "put the release beside the running one", 60, True),
        ("packages", "install the Debian packages the release needs", 900, True),
        ("stop", "stop the platform", 120, True),
        ("dump", "dump the platform's databases", 3600, True),
        ("migrate", "run the release's migration", 600, True),
        ("switch", "switch the platform link to the release", 60, True),
        ("start", "start the release", 120, True),
        ("ready", "wait until the release is ready", 120, True),
        ("keep", "keep the previous release, prune older ones", 60, True),
    ]
    assert described(back) == [  # type: ignore[arg-type]
        ("rollback-stop", "stop the platform", 120, True),
        ("rollback-switch", "switch back to the previous release", 60, True),
        ("rollback-restore", "restore the databases from the dump", 3600, True),
        ("rollback-start", "start the previous release", 120, True),
        ("rollback-ready", "wait until the previous release is ready", 120, True),
        ("rolled-back", "remove what the failed release left", 60, True),
    ]
    assert list(update_run.FORWARD) == plan(forward)
    assert list(update_run.BACK) == plan(back)


def test_the_backup_is_a_flat_list_of_steps() -> None:
    assert described(make.STEPS) == [  # type: ignore[arg-type]
        ("backup-read", "finding what the box holds", 60.0, False),
        ("backup-write", "dumping the databases into the encrypted backup", 3600.0, False),
        ("backup-verify", "checking the written backup", 60.0, False),
        ("backup-rotate", "removing old backups (7 daily, 4 weekly)", 60.0, False),
    ]
    assert list(make.PHASES) == plan(make.STEPS)


def test_a_failing_install_step_is_handled_in_one_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receipt, the log bundle next to it, the console's marker, exit code 1."""
    squashfs = tmp_path / "filesystem.squashfs"
    squashfs.write_bytes(b"not used")
    seed = tmp_path / "setup.txt"
    seed.write_text("TELEGRAM_BOT_TOKEN=not-a-token\n")
    (tmp_path / "receipt").mkdir()
    point = "fail:before:seed"
    monkeypatch.setenv(faults.INSTALL_FAULT_VARIABLE, point)
    monkeypatch.setattr(faults, "_armed", None)  # execute() arms it; the test disarms it after
    out = io.StringIO()
    config = InstallConfig(
        squashfs=squashfs,
        seed=seed,
        receipt_dir=tmp_path / "receipt",
        failure_wait=0,
        poweroff=False,
        reboot=False,
        live_root=tmp_path / "live",
        only_disks=("/dev/nonexistent",),
    )
    assert InstallRun(config, Console(out), asker=None).execute() == 1
    said = out.getvalue()
    assert f"CLAWDIE-INSTALL-FAILED: a failure was injected at {point[5:]}" in said
    receipt = (tmp_path / "receipt/SETUP-RESULT.txt").read_text()
    assert receipt.splitlines()[1].startswith("Stopped at step 1 of 8 (seed): a failure was")
    assert "No disk was changed." in receipt
    assert [p.name for p in (tmp_path / "receipt").iterdir() if p.name != "SETUP-RESULT.txt"]


@pytest.fixture
def update_keys() -> Keys:
    return new_keys()


@pytest.fixture
def update_box(tmp_path: Path, pg: PgCluster, update_keys: Keys) -> Iterator[Path]:
    made = installed_box(tmp_path / "box", pg, update_keys)
    yield made
    subprocess.run(service(made, "stop").split(), check=False, cwd=ROOT)


@pytest.mark.root
def test_a_failing_update_step_is_rolled_back_by_the_one_handler(
    update_box: Path, pg: PgCluster, update_keys: Keys, tmp_path: Path
) -> None:
    """The handler keeps the cause, runs the way back and the run's result is its report."""
    v2 = bundle(payload(tmp_path, "2"), tmp_path / "out", update_keys.publisher)
    result = run_update(update_box, pg, str(v2), fault="fail:before:migrate")
    assert result.returncode == 1, result.stdout + result.stderr
    cause = "rolled back: migrate: a failure was injected at before:migrate"
    assert cause in result.stdout
    assert "Traceback" not in result.stderr
    last = update_box / "root/var/lib/clawdie-setup/update/last.txt"
    assert last.read_text().startswith(cause)
    assert not (update_box / "root/var/lib/clawdie-setup/update/state.json").exists()


@pytest.mark.root
def test_a_failing_backup_step_leaves_no_incomplete_file(
    tmp_path: Path, pg: PgCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyrage  # type: ignore[import-untyped]

    box = backup_box(tmp_path / "a", pg)
    recipient = str(pyrage.x25519.Identity.generate().to_public())
    to = tmp_path / "stick"
    config = BackupConfig(box / "root", pg.admin_conninfo(), (recipient,), to)
    said: list[str] = []
    tracker = StepTracker("Clawdie backup", make.PHASES, "again", say=said.append)
    monkeypatch.setattr(faults, "_armed", "fail:before:backup-verify")
    with pytest.raises(faults.InjectedFailure):
        make_backup(config, tracker)
    assert said[-1].startswith("[3/4] checking the written backup")
    assert list(to.iterdir()) == []  # the written file was removed by the failure handler
