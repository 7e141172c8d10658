"""One update run (DESIGN §9): a flat list of named phases, each stamped once its effects are
durable, with the fault points the other runs use (`before:`/`effects:`/`stamped:<phase>`), the
step tracker for progress, and a way back that is itself a list of stamped phases.

    verify  unpack  packages  stop  dump  migrate  switch  start  ready  keep
    rollback-stop  rollback-switch  rollback-restore  rollback-start  rollback-ready  rolled-back

Everything that can refuse a release happens in `verify`, before anything changes: the copy of
the bundle and its unpacked folder (`releases/.incoming`) are removed on a refusal, and a power
cut there leaves only those, which the next run removes. From `unpack` on, `state.json` says an
update is under way; a run that finds it (`update --resume`, which the platform unit runs as root
before it starts the platform) finishes an update that was proven ready and otherwise rolls it
back, so the platform never starts on a mix of old code and new data.

The databases are dumped after the platform stopped (not before, as the issue's list reads): a
dump taken while the old release still runs would lose, on the way back, what it wrote after the
dump. The restore puts back exactly what the platform had when it stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from installer.errors import InstallerError
from installer.faults import fault_point
from installer.firstboot.config import DbConfig
from installer.firstboot.platform_db import DATABASES, DB_PASSWORD_KEY
from installer.fsutil import (
    ensure_dir,
    fsync_dir,
    read_bytes_nofollow,
    remove_durably,
    write_atomic,
)
from installer.paths import TargetPaths
from installer.redact import redact, register
from installer.stamps import Stamps, StepRecord
from installer.steps import Finished, Step, StepRun, plan
from installer.tracker import PlannedStep, StepTracker
from installer.update import dbdump, needs, nodeparts
from installer.update.layout import Layout
from installer.update.manifest import Release, version_key
from installer.update.service import Service
from installer.update.signed import (
    KEY_NAME,
    RefusedError,
    copy_bundle,
    read_signature,
    unpack,
    verify,
)

STALLED = "run `clawdie-setup update --resume` as root (the platform's start does it too)"
C = TypeVar("C")
Failed = Callable[[InstallerError], None] | None


@dataclass(frozen=True)
class UpdateConfig:
    """Frozen inputs of an update run."""

    root: Path = Path("/")
    db: DbConfig = field(default_factory=DbConfig)
    databases: tuple[str, ...] = DATABASES
    pg_bindir: Path | None = None
    start: Sequence[str] | None = ("systemctl", "start", "clawdie.service")
    stop: Sequence[str] | None = ("systemctl", "stop", "clawdie.service")
    reload: Sequence[str] | None = ("systemctl", "daemon-reload")
    public_key: Path | None = None  # default: /etc/clawdie/release.pub under root
    allow_downgrade: bool = False


@dataclass(frozen=True)
class Outcome:
    """How a run ended: `applied`, `rolled back` or `nothing to do`, in one line."""

    status: str
    line: str

    @property
    def exit_code(self) -> int:
        return 1 if self.status == "rolled back" else 0


@dataclass
class UpdateRun:
    config: UpdateConfig
    say: Callable[[str], None] = print
    paths: TargetPaths = field(init=False)
    layout: Layout = field(init=False)
    service: Service = field(init=False)
    tracker: StepTracker | None = field(init=False, default=None)  # the steps' progress

    def __post_init__(self) -> None:
        self.paths = TargetPaths(self.config.root)
        self.layout = Layout(self.paths)
        self.service = Service(self.paths, self.config.start, self.config.stop, self.config.reload)
        self._register_secrets()

    # -- where its state lives ---------------------------------------------------------------

    @property
    def directory(self) -> Path:
        return self.paths.setup_state_dir / "update"

    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"

    @property
    def stamps(self) -> Stamps:
        return Stamps(self.directory / "steps")

    @property
    def dumps(self) -> Path:
        return self.directory / "dumps"

    @property
    def kept(self) -> Path:
        """The release kept for `rollback`: its version and the dumps taken before the update."""
        return self.directory / "kept"

    @property
    def last(self) -> Path:
        """The last run's result, one line (the login screen and the report read it)."""
        return self.directory / "last.txt"

    def _register_secrets(self) -> None:
        from installer.envfile import read_env_file

        with contextlib.suppress(OSError, ValueError):
            env = read_env_file(self.paths.system_env)
            register(
                env.get(DB_PASSWORD_KEY), env.get("DATABASE_URL"), env.get("BETTER_AUTH_SECRET")
            )

    @contextlib.contextmanager
    def locked(self, wait: bool) -> Iterator[bool]:
        """One update run at a time (a power cut frees the lock). Yields False when another
        run holds it and `wait` is off."""
        ensure_dir(self.paths.runtime_dir, 0o700)
        lock = self.paths.runtime_dir / "update.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def read_state(self) -> dict[str, object] | None:
        try:
            data = json.loads(read_bytes_nofollow(self.state_file, 64 << 10, trusted=True))
        except FileNotFoundError:
            return None
        if not isinstance(data, dict):
            raise InstallerError(f"{self.state_file} is not an update's state")
        return data

    def write_state(self, state: dict[str, object]) -> None:
        ensure_dir(self.directory, 0o700)
        write_atomic(self.state_file, json.dumps(state, indent=2) + "\n", mode=0o600)

    def finish(self, line: str) -> None:
        """The run is over: its result kept, its state and stamps gone (the state last)."""
        write_atomic(self.last, line + "\n", mode=0o600)
        shutil.rmtree(self.dumps, ignore_errors=True)
        shutil.rmtree(self.stamps.directory, ignore_errors=True)
        remove_durably(self.state_file)

    def _tracker(self, steps: Sequence[Step[Any]]) -> StepTracker:
        return StepTracker("Clawdie update", plan(steps), STALLED, say=self.say)

    def _steps(self, steps: Sequence[Step[C]], context: C, failed: Failed = None) -> None:
        """`steps` on the run skeleton: stamped here, shown on the console, resumed silently."""
        self.tracker = self._tracker(FORWARD_STEPS if steps[-1].name == "keep" else steps)
        StepRun(steps, self.stamps, self.tracker, log=None, show_done=False).run(context, failed)

    # -- apply ---------------------------------------------------------------------------------

    def apply(self, bundle: Path) -> Outcome:
        """Verify `bundle`, then apply it; a failure after `verify` rolls back."""
        with self.locked(wait=True):
            self._sweep()
            if self.read_state() is not None:
                raise InstallerError(
                    "an earlier update did not finish",
                    "run `clawdie-setup update --resume` first (the platform's start does it too)",
                )
            forward = Forward(self, bundle)
            self._steps(FORWARD_STEPS, forward, forward.failed)
            return forward.outcome or self._applied(forward.state)

    def _sweep(self) -> None:
        """What a refused or cut `verify` left: the bundle's copy and its unpacked folder."""
        with contextlib.suppress(FileNotFoundError):
            self.layout.staging_copy.unlink()
        shutil.rmtree(self.layout.staging, ignore_errors=True)

    def _verify(self, bundle: Path, running: Release) -> tuple[Release, list[str]]:
        key_path = self.config.public_key or self.paths.config_dir / KEY_NAME
        try:
            key = read_bytes_nofollow(key_path, 4096, trusted=True)
        except OSError as err:
            raise RefusedError(
                f"this box has no publisher's key to check releases with ({key_path}: "
                f"{err.strerror})",
                "the image build takes it as --release-key",
            ) from None
        signature = read_signature(bundle)
        copy = copy_bundle(bundle, self.layout.staging_copy)
        verify(copy, signature, key)
        release = unpack(copy, self.layout.staging)
        copy.unlink()
        if release.name != running.name:
            raise RefusedError(
                f"the release is {release.name} {release.version}; this box runs {running.name}",
                "use a release of the platform this box runs",
            )
        newer = version_key(release.version) > version_key(running.version)
        if version_key(release.version) == version_key(running.version):
            raise RefusedError(f"this box already runs {release.name} {release.version}")
        if not newer and not self.config.allow_downgrade:
            raise RefusedError(
                f"{release.version} is older than the running {running.version}",
                "a downgrade is applied only with --allow-downgrade, by root",
            )
        unbuilt = nodeparts.check_modules(self.layout.staging)
        if unbuilt:
            raise RefusedError(
                "the release cannot run offline: " + "; ".join(unbuilt),
                "its publisher makes releases with their Node modules (iso/release.py)",
            )
        missing = needs.missing_packages(self.paths, release.needs)
        needs.fetch_packages(self.paths, missing)
        return release, missing

    def _applied(self, state: dict[str, object]) -> Outcome:
        line = f"applied: {state['name']} {state['target']} (kept {state['back_to']} for rollback)"
        self.finish(line)
        self.say(f"update: {line}")
        return Outcome("applied", line)

    def _back(self, state: dict[str, object], *, at_boot: bool) -> Outcome:
        """Back to `back_to`: stop, switch, the databases from the dump, start, ready. At boot
        (run by the platform's own start) it neither stops nor starts: the unit starts next."""
        self._steps(BACK_STEPS, Back(self, state, at_boot))
        back_to = state["back_to"]
        line = (
            f"rolled back: {state['cause']}"
            if state["kind"] == "update"
            else f"rolled back to {back_to}"
        )
        line = redact(line)
        self.finish(line)
        self.say(f"update: {line}; {back_to} runs")
        return Outcome("rolled back" if state["kind"] == "update" else "applied", line)

    # -- resume and rollback ---------------------------------------------------------------------

    def resume(self, *, at_boot: bool) -> Outcome:
        """Finish or roll back an update a power cut interrupted (nothing to do: say so)."""
        with self.locked(wait=not at_boot) as mine:
            if not mine:
                return Outcome("nothing to do", "an update run is in progress; it started this")
            state = self.read_state()
            if state is None:
                self._sweep()
                return Outcome("nothing to do", "no update was under way")
            if state["kind"] == "update" and state["cause"] is None:
                if self.stamps.done("ready"):
                    self._steps(FORWARD_STEPS[-1:], Forward(self, None, state))
                    return self._applied(state)
                cut = next(s.name for s in FORWARD_STEPS[1:] if not self.stamps.done(s.name))
                state["cause"] = f"the update was cut short during {cut} (power cut or crash)"
                self.write_state(state)
            return self._back(state, at_boot=at_boot)

    def rollback(self) -> Outcome:
        """Back to the release the last update kept, with the databases as they were before
        that update (what the platform wrote since is lost: the caller says so first)."""
        with self.locked(wait=True):
            if self.read_state() is not None:
                raise InstallerError(
                    "an update did not finish", "run `clawdie-setup update --resume` first"
                )
            try:
                kept = json.loads(read_bytes_nofollow(self.kept / "release.json", 64 << 10))
            except FileNotFoundError:
                raise InstallerError(
                    "there is no earlier release to go back to",
                    "a release is kept by the update that replaced it, until the next update",
                ) from None
            current = self.layout.current()
            state: dict[str, object] = {
                "kind": "rollback",
                "name": self.layout.release(current).name,
                "back_to": str(kept["version"]),
                "target": current,
                "restore": list(kept["databases"]),
                "cause": "asked by the owner",
            }
            self.write_state(state)
            return self._back(state, at_boot=False)


@dataclass
class Forward:
    """The forward steps' context: one update from its bundle (None: resumed at `keep`) and the
    state `verify` writes; `outcome` once a failure rolled it back."""

    run: UpdateRun
    bundle: Path | None
    state: dict[str, object] = field(default_factory=dict)
    outcome: Outcome | None = None

    @property
    def target(self) -> str:
        return str(self.state["target"])

    @property
    def folder(self) -> Path:
        return self.run.layout.folder(self.target)

    def release(self) -> Release:
        return self.run.layout.release(self.target)

    def verify(self) -> None:
        """Everything that can refuse the release, before anything changes; then the state
        that says an update is under way (`stamped:verify`: verify keeps no stamp)."""
        run, layout = self.run, self.run.layout
        assert self.bundle is not None  # noqa: S101 (a resumed run starts at keep)
        back_to = layout.current()
        try:
            release, missing = run._verify(self.bundle, layout.release(back_to))
        except BaseException:
            run._sweep()
            raise
        self.state = {
            "kind": "update",
            "name": release.name,
            "back_to": back_to,
            "target": release.version,
            "missing": missing,
            "cause": None,
        }
        run.write_state(self.state)
        fault_point("stamped:verify")

    def unpack(self) -> StepRecord:
        layout, folder = self.run.layout, self.folder
        layout.ensure()  # an image's plain folder becomes a release and the link
        if layout.staging.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(layout.staging, folder)
        return StepRecord(created=(str(folder),))

    def packages(self) -> None:
        needs.install_packages([str(m) for m in self.state.get("missing", [])])  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.run.service.stop()

    def dump(self) -> StepRecord:
        config = self.run.config
        names = dbdump.dump_databases(
            config.db.admin_conninfo, config.databases, self.run.dumps, config.pg_bindir
        )
        return StepRecord(facts={"databases": ",".join(names)})

    def migrate(self) -> None:
        rel = self.release()
        if rel.migrate:
            self.run.service.run_in(self.folder, rel.migrate, rel.migrate_timeout_s)

    def switch(self) -> None:
        if self.run.layout.point_at(self.target, self.release()):
            self.run.service.reload_units()

    def start(self) -> None:
        self.run.service.start()

    def ready(self) -> None:
        rel = self.release()
        self.run.service.wait_ready(self.folder, rel.ready, rel.ready_timeout_s)

    def keep(self) -> StepRecord:
        """The previous release and the dumps kept for `rollback`; older releases pruned."""
        run, back_to = self.run, str(self.state["back_to"])
        if run.dumps.is_dir():  # the dumps go with the kept release, for `rollback`
            shutil.rmtree(run.kept, ignore_errors=True)
            ensure_dir(run.kept, 0o700)
            databases = (run.stamps.record("dump") or StepRecord()).facts.get("databases", "")
            doc = {"version": back_to, "databases": databases.split(",") if databases else []}
            write_atomic(run.kept / "release.json", json.dumps(doc) + "\n", mode=0o600)
            os.replace(run.dumps, run.kept / "dumps")  # last: a cut before it redoes this
            fsync_dir(run.kept)
            fsync_dir(run.directory)
        gone = run.layout.prune({self.target, back_to})
        return StepRecord(skipped=tuple(gone))

    def failed(self, err: InstallerError) -> None:
        """The one place a failure is handled: a refused release goes up as it is (nothing
        changed), and so does a failed `keep` (the release runs: `--resume` keeps it); in
        between, the cause is kept and the update rolled back."""
        tracker = self.run.tracker
        where = tracker.current.name if tracker is not None and tracker.current else "verify"
        if not self.state or where == "keep":  # nothing changed yet, or all is in place
            return
        cause = f"{where}: {err.message}"
        self.run.say(redact(f"update: {cause}; rolling back"))
        self.state["cause"] = cause
        self.run.write_state(self.state)
        self.outcome = self.run._back(self.state, at_boot=False)
        raise Finished


@dataclass
class Back:
    """The way back's context: the state of the update (or the owner's rollback) it undoes."""

    run: UpdateRun
    state: dict[str, object]
    at_boot: bool

    @property
    def back_to(self) -> str:
        return str(self.state["back_to"])

    @property
    def live(self) -> bool:
        """The platform is stopped and started here (not at boot: the unit starts next), and
        only when the update got as far as touching the box."""
        touched = self.run.stamps.done("packages") or self.state["kind"] == "rollback"
        return touched and not self.at_boot

    def stop(self) -> None:
        if self.live:
            self.run.service.stop()

    def switch(self) -> None:
        layout = self.run.layout
        layout.ensure()
        if layout.point_at(self.back_to, layout.release(self.back_to)) and not self.at_boot:
            self.run.service.reload_units()

    def restore(self) -> StepRecord:
        run, state = self.run, self.state
        if "restore" in state:
            restore = [str(d) for d in state["restore"]]  # type: ignore[attr-defined]
            dumps = run.kept / "dumps"
        else:
            record = run.stamps.record("dump") if run.stamps.done("dump") else None
            names = record.facts.get("databases", "") if record else ""
            restore, dumps = (names.split(",") if names else []), run.dumps
        config = run.config
        dbdump.restore_databases(config.db.admin_conninfo, restore, dumps, config.pg_bindir)
        return StepRecord(created=tuple(restore))

    def start(self) -> None:
        if self.live:
            self.run.service.start()

    def ready(self) -> None:
        if self.live:
            rel = self.run.layout.release(self.back_to)
            folder = self.run.layout.folder(self.back_to)
            self.run.service.wait_ready(folder, rel.ready, rel.ready_timeout_s)

    def clean(self) -> None:
        run, target = self.run, str(self.state["target"])
        run._sweep()
        if target != self.back_to and target != run.layout.current():
            run.layout.remove(target)
        if self.state["kind"] == "rollback":
            shutil.rmtree(run.kept, ignore_errors=True)


FORWARD_STEPS: tuple[Step[Forward], ...] = (
    Step(
        "verify",
        "check the release: signature, name, version, packages",
        300,
        Forward.verify,
        stamped=False,
    ),
    Step("unpack", "put the release beside the running one", 60, Forward.unpack),
    Step("packages", "install the Debian packages the release needs", 900, Forward.packages),
    Step("stop", "stop the platform", 120, Forward.stop),
    Step("dump", "dump the platform's databases", 3600, Forward.dump),
    Step("migrate", "run the release's migration", 600, Forward.migrate),
    Step("switch", "switch the platform link to the release", 60, Forward.switch),
    Step("start", "start the release", 120, Forward.start),
    Step("ready", "wait until the release is ready", 120, Forward.ready),
    Step("keep", "keep the previous release, prune older ones", 60, Forward.keep),
)
BACK_STEPS: tuple[Step[Back], ...] = (
    Step("rollback-stop", "stop the platform", 120, Back.stop),
    Step("rollback-switch", "switch back to the previous release", 60, Back.switch),
    Step("rollback-restore", "restore the databases from the dump", 3600, Back.restore),
    Step("rollback-start", "start the previous release", 120, Back.start),
    Step("rollback-ready", "wait until the previous release is ready", 120, Back.ready),
    Step("rolled-back", "remove what the failed release left", 60, Back.clean),
)
FORWARD: tuple[PlannedStep, ...] = tuple(plan(FORWARD_STEPS))
BACK: tuple[PlannedStep, ...] = tuple(plan(BACK_STEPS))
