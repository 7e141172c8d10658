"""The error boundary: a subprocess that times out or is missing is our worded error, never a
raw exception that could quote a secret; first boot writes its failure report whatever failed;
the CLI never prints a traceback; an account first boot did not create is never taken over."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import installer.run as run_module
from installer import redact
from installer.cli import run_command
from installer.errors import CommandTimeoutError, InstallerError, ProgramMissingError
from installer.firstboot.config import DbConfig, FirstbootConfig
from installer.firstboot.runner import FirstbootRun
from installer.run import run, run_streaming
from installer.seed.answers import render_seed_with_answers
from installer.seed.io import receipt_in_directory
from installer.seed.model import KNOWN_KEYS
from installer.seed.reader import parse_seed
from installer.seed.resolve import apply_answers, check_seed_bytes
from installer.seed.scrub import render_scrubbed_seed
from installer.wizard.outcome import WizardOutcome
from tests.helpers.firstboot import SEED, firstboot
from tests.helpers.pg import PgCluster
from tests.helpers.seeds import firstboot_box
from tests.helpers.sentinels import SENTINEL

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    redact.forget_all()
    yield
    redact.forget_all()


def test_a_timeout_is_worded_and_redacted() -> None:
    with pytest.raises(CommandTimeoutError) as caught:
        run(["sh", "-c", "sleep 5", SENTINEL], secrets=[SENTINEL], timeout=0.3)
    assert "timed out after 0.3 s" in caught.value.message
    assert SENTINEL not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_a_streaming_timeout_is_worded() -> None:
    with pytest.raises(CommandTimeoutError, match=r"timed out after 0\.3 s"):
        run_streaming(["sleep", "5"], lambda _: None, timeout=0.3)


@pytest.mark.parametrize("runner", ["run", "run_streaming"])
def test_a_missing_program_is_worded(runner: str) -> None:
    argv = ["clawdie-no-such-program", SENTINEL]

    def call() -> None:
        if runner == "run":
            run(argv, secrets=[SENTINEL])
        else:
            run_streaming(argv, lambda _: None)

    with pytest.raises(ProgramMissingError) as caught:
        call()
    assert "clawdie-no-such-program is not installed" in caught.value.message
    assert SENTINEL not in str(caught.value)


def test_every_command_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float | None] = []
    real = subprocess.run

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("timeout"))
        return real(*args, **kwargs)

    monkeypatch.setattr("installer.run.subprocess.run", spy)
    run(["true"])
    assert seen == [run_module.DEFAULT_TIMEOUT_S]


def _config(box: Path, pg: PgCluster) -> FirstbootConfig:
    root = box / "root"
    return FirstbootConfig(
        root=root,
        seed=box / "setup.txt",
        db=DbConfig(pg.admin_conninfo(), str(pg.sockdir), pg.port, 20000),
        platform_start=(sys.executable, "-m", "tests.helpers.fake_platform", str(root)),
        wizard="never",
    )


def _commands_of_a_clean_run(tmp_path_factory: pytest.TempPathFactory, pg: PgCluster) -> int:
    box = firstboot_box(tmp_path_factory.mktemp("count"), SEED)
    calls = 0
    real = subprocess.run

    def count(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("installer.run.subprocess.run", count)
        assert FirstbootRun(_config(box, pg)).execute() == 0
    return calls


@pytest.mark.root
def test_every_subprocess_timing_out_writes_a_report_without_a_secret(
    tmp_path_factory: pytest.TempPathFactory,
    pg: PgCluster,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """First boot with the k-th command timing out, for every k of a clean run. The timeout
    carries the secrets in its command, output and error (as a real one could): the error, the
    log, the summary, the console issue file and the receipt must word it without any."""
    total = _commands_of_a_clean_run(tmp_path_factory, pg)
    assert total >= 4  # useradd, usermod --lock, chpasswd, the platform's start
    real = subprocess.run
    caplog.set_level(logging.DEBUG)
    for fail_at in range(total):
        redact.forget_all()
        box = firstboot_box(tmp_path_factory.mktemp(f"timeout-{fail_at}"), SEED)
        calls = 0

        def times_out(argv: list[str], *args: Any, fail_at: int = fail_at, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls - 1 == fail_at:
                leak = f"{SENTINEL} {kwargs.get('input') or b''!r}".encode()
                raise subprocess.TimeoutExpired([*argv, SENTINEL], 7.0, output=leak, stderr=leak)
            return real(argv, *args, **kwargs)

        monkeypatch.setattr("installer.run.subprocess.run", times_out)
        with pytest.raises(InstallerError) as caught:
            FirstbootRun(_config(box, pg), receipt=receipt_in_directory(box / "stick")).execute()
        monkeypatch.setattr("installer.run.subprocess.run", real)

        assert "timed out after" in caught.value.message, (fail_at, caught.value.message)
        root = box / "root"
        summary = (root / "var/lib/clawdie-setup/install-summary.txt").read_text()
        receipt = (box / "stick/SETUP-RESULT.txt").read_text()
        issue = (root / "etc/issue.d/clawdie.issue").read_text()
        assert "timed out after" in summary + issue
        for text in (str(caught.value), summary, receipt, issue, caplog.text):
            assert SENTINEL not in text, fail_at
        assert "Traceback" not in summary + receipt
        caplog.clear()


@pytest.mark.root
def test_a_fault_of_ours_is_reported_without_a_traceback(
    tmp_path: Path,
    pg: PgCluster,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bug (an exception that is not ours) in a step: the failure report is written, the CLI
    prints one worded line, no traceback, no secret."""
    box = firstboot_box(tmp_path, SEED)
    import installer.firstboot.steps.identity as identity

    def broken(ctx: Any) -> Any:
        raise RuntimeError(f"bug holding {ctx.seed.models.keys[0].value.get_secret_value()}")

    monkeypatch.setattr(identity, "apply", broken)
    only = [dataclasses.replace(identity.STEP, apply=broken)]
    monkeypatch.setattr("installer.firstboot.runner.SETUP_STEPS", only)
    argv = [
        "--root", str(box / "root"), "--seed", str(box / "setup.txt"),
        "--db-admin", pg.admin_conninfo(), "--db-host", str(pg.sockdir),
        "--db-port", str(pg.port), "--no-telegram", "--wizard", "never",
        "--receipt-dir", str(box / "stick"), "--no-platform-start",
    ]  # fmt: skip
    code = run_command("firstboot", argv)
    out = capsys.readouterr()
    assert code == 1
    assert "unexpected error (RuntimeError: bug holding <redacted>)" in out.err
    assert "Traceback" not in out.err + out.out
    assert SENTINEL not in out.err + out.out
    summary = (box / "root/var/lib/clawdie-setup/install-summary.txt").read_text()
    assert "Clawdie first boot: failed" in summary
    assert "unexpected error (RuntimeError" in summary
    assert SENTINEL not in summary
    assert "Clawdie first boot: failed" in (box / "stick/SETUP-RESULT.txt").read_text()


def test_the_cli_boundary_catches_what_is_not_ours(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import installer.commands.check as check

    redact.register(SENTINEL)

    def broken(_args: Any) -> int:
        raise KeyError(SENTINEL)

    monkeypatch.setattr(check, "run", broken)
    assert run_command("check", [str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "internal error: KeyError" in err
    assert SENTINEL not in err
    assert "Traceback" not in err


@pytest.mark.root
def test_an_existing_account_is_never_taken_over(tmp_path: Path, pg: PgCluster) -> None:
    """SERVICE_ACCOUNT names a person's login that first boot did not create: refused, with
    the reason; the login's entry, home and keys are exactly as they were."""
    box = firstboot_box(tmp_path, SEED)
    root = box / "root"
    with (root / "etc/passwd").open("a") as passwd:
        passwd.write("ana:x:1000:1000:Ana:/home/ana:/bin/bash\n")
    with (root / "etc/shadow").open("a") as shadow:
        shadow.write("ana:$6$salt$hash:20000:0:99999:7:::\n")
    with (root / "etc/group").open("a") as group:
        group.write("ana:x:1000:\n")
    keys = root / "home/ana/.ssh/authorized_keys"
    keys.parent.mkdir(parents=True, mode=0o700)
    keys.write_text("ssh-ed25519 AAAA ana@laptop\n")
    before = {
        p: (p.stat().st_mode, p.stat().st_uid, p.read_bytes() if p.is_file() else b"")
        for p in [root / "etc/passwd", root / "etc/shadow", keys, keys.parent, root / "home/ana"]
    }
    (box / "setup.txt").write_text(SEED + "SERVICE_ACCOUNT=ana\n")

    result = firstboot(box, pg)

    assert result.returncode == 1, result.stderr
    assert "SERVICE_ACCOUNT ana: an account of that name already exists" in result.stderr
    assert "Traceback" not in result.stderr
    after = {
        p: (p.stat().st_mode, p.stat().st_uid, p.read_bytes() if p.is_file() else b"")
        for p in before
    }
    assert after == before
    summary = (root / "var/lib/clawdie-setup/install-summary.txt").read_text()
    assert "is not taken over" in summary


def _reprs(obj: object, seen: set[int] | None = None) -> Iterator[str]:
    """repr() of `obj` and of everything its repr shows (dataclass fields that repr includes,
    container items, pydantic fields): what a log line or a traceback could show."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, str | bytes | int | float | bool | type(None)):
        return
    seen.add(id(obj))
    yield repr(obj)
    yield str(obj)
    children: list[object] = []
    if dataclasses.is_dataclass(obj):
        children = [getattr(obj, f.name) for f in dataclasses.fields(obj) if f.repr]
    elif isinstance(obj, Mapping):
        children = list(obj.values())
    elif isinstance(obj, tuple | list | set | frozenset):
        children = list(obj)
    elif isinstance(obj, BaseModel):
        children = [getattr(obj, name) for name in type(obj).model_fields]
    for child in children:
        yield from _reprs(child, seen)


def test_no_seed_object_shows_a_secret_in_repr() -> None:
    data = SEED.encode()
    check = check_seed_bytes(data)
    assert check.valid, check.problems
    answered = apply_answers(check, {"OPERATOR_PASSWORD": f"new-{SENTINEL}"})
    objects: list[object] = [
        check,
        answered,
        parse_seed(data, KNOWN_KEYS),
        check.model,
        check.resolved,  # the typed seed: host, accounts, telegram, models, install options
        answered.resolved,
        render_seed_with_answers(data, {"OPERATOR_PASSWORD": f"new-{SENTINEL}"}),
        render_scrubbed_seed(data, host="ada", when="2026-12-01 10:00 UTC"),
        WizardOutcome("done", {"OPERATOR_PASSWORD": f"new-{SENTINEL}"}),
    ]
    shown = list(_reprs(objects))
    assert len(shown) > 50  # the walk reached the settings and entries, not only the tops
    leaked = [text for text in shown if SENTINEL in text]
    assert not leaked, leaked[:3]
