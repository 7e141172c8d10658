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

from installer.errors import InstallerError, as_installer_error
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
from installer.tracker import PlannedStep, StepTracker
from installer.update import dbdump, needs
from installer.update.layout import Layout
from installer.update.manifest import Release, version_key
from installer.update.service import Service
from installer.update.signed import RefusedError, copy_bundle, read_signature, unpack, verify

FORWARD: tuple[PlannedStep, ...] = (
    PlannedStep("verify", "check the release: signature, name, version, packages", 300),
    PlannedStep("unpack", "put the release beside the running one", 60),
    PlannedStep("packages", "install the Debian packages the release needs", 900),
    PlannedStep("stop", "stop the platform", 120),
    PlannedStep("dump", "dump the platform's databases", 3600),
    PlannedStep("migrate", "run the release's migration", 600),
    PlannedStep("switch", "switch the platform link to the release", 60),
    PlannedStep("start", "start the release", 120),
    PlannedStep("ready", "wait until the release is ready", 120),
    PlannedStep("keep", "keep the previous release, prune older ones", 60),
)
BACK: tuple[PlannedStep, ...] = (
    PlannedStep("rollback-stop", "stop the platform", 120),
    PlannedStep("rollback-switch", "switch back to the previous release", 60),
    PlannedStep("rollback-restore", "restore the databases from the dump", 3600),
    PlannedStep("rollback-start", "start the previous release", 120),
    PlannedStep("rollback-ready", "wait until the previous release is ready", 120),
    PlannedStep("rolled-back", "remove what the failed release left", 60),
)
STALLED = "run `clawdie-setup update --resume` as root (the platform's start does it too)"
KEY_NAME = "release.pub"


def _nothing() -> None:
    return None


def _done(action: Callable[[], object]) -> Callable[[], StepRecord]:
    """A phase whose record says nothing more than that it ran."""

    def phase() -> StepRecord:
        action()
        return StepRecord()

    return phase


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

    def _phase(self, tracker: StepTracker, name: str, action: Callable[[], StepRecord]) -> None:
        if self.stamps.done(name):
            return
        fault_point(f"before:{name}")
        tracker.begin(name)
        record = action()
        fault_point(f"effects:{name}")
        self.stamps.mark(name, record)
        fault_point(f"stamped:{name}")

    def _tracker(self, plan: Sequence[PlannedStep]) -> StepTracker:
        return StepTracker("Clawdie update", plan, STALLED, say=self.say)

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
            tracker = self._tracker(FORWARD)
            fault_point("before:verify")
            tracker.begin("verify")
            back_to = self.layout.current()
            try:
                release, missing = self._verify(bundle, self.layout.release(back_to))
            except BaseException:
                self._sweep()
                raise
            self.write_state(
                {
                    "kind": "update",
                    "name": release.name,
                    "back_to": back_to,
                    "target": release.version,
                    "missing": missing,
                    "cause": None,
                }
            )
            fault_point("stamped:verify")
            return self._forward(tracker, at_boot=False)

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
        missing = needs.missing_packages(self.paths, release.needs)
        needs.fetch_packages(self.paths, missing)
        return release, missing

    # its phases are closures over one update's state; they go onto installer/steps.py next
    def _forward(self, tracker: StepTracker, *, at_boot: bool) -> Outcome:  # noqa: C901
        state = self.read_state()
        assert state is not None  # noqa: S101 (written before)
        target = str(state["target"])
        folder = self.layout.folder(target)
        missing = [str(m) for m in state.get("missing", [])]  # type: ignore[attr-defined]

        def release() -> Release:
            return self.layout.release(target)

        def do_unpack() -> StepRecord:
            self.layout.ensure()  # an image's plain folder becomes a release and the link
            if self.layout.staging.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(self.layout.staging, folder)
            return StepRecord(created=(str(folder),))

        def do_dump() -> StepRecord:
            names = dbdump.dump_databases(
                self.config.db.admin_conninfo,
                self.config.databases,
                self.dumps,
                self.config.pg_bindir,
            )
            return StepRecord(facts={"databases": ",".join(names)})

        def do_migrate() -> StepRecord:
            rel = release()
            if rel.migrate:
                self.service.run_in(folder, rel.migrate, rel.migrate_timeout_s)
            return StepRecord()

        def do_switch() -> StepRecord:
            if self.layout.point_at(target, release()):
                self.service.reload_units()
            return StepRecord()

        def do_ready() -> StepRecord:
            rel = release()
            self.service.wait_ready(folder, rel.ready, rel.ready_timeout_s)
            return StepRecord()

        steps: list[tuple[str, Callable[[], StepRecord]]] = [
            ("unpack", do_unpack),
            ("packages", _done(lambda: needs.install_packages(missing))),
            ("stop", _done(self.service.stop)),
            ("dump", do_dump),
            ("migrate", do_migrate),
            ("switch", do_switch),
            ("start", _done(self.service.start)),
            ("ready", do_ready),
        ]
        for name, action in steps:
            try:
                self._phase(tracker, name, action)
            except (InstallerError, OSError) as err:
                cause = f"{name}: {as_installer_error(err).message}"
                self.say(redact(f"update: {cause}; rolling back"))
                state["cause"] = cause
                self.write_state(state)
                return self._back(state, at_boot=at_boot)
        return self._keep(tracker, state)

    def _keep(self, tracker: StepTracker, state: dict[str, object]) -> Outcome:
        target, back_to = str(state["target"]), str(state["back_to"])

        def keep() -> StepRecord:
            if self.dumps.is_dir():  # the dumps go with the kept release, for `rollback`
                shutil.rmtree(self.kept, ignore_errors=True)
                ensure_dir(self.kept, 0o700)
                databases = (self.stamps.record("dump") or StepRecord()).facts.get("databases", "")
                doc = {"version": back_to, "databases": databases.split(",") if databases else []}
                write_atomic(self.kept / "release.json", json.dumps(doc) + "\n", mode=0o600)
                os.replace(self.dumps, self.kept / "dumps")  # last: a cut before it redoes this
                fsync_dir(self.kept)
                fsync_dir(self.directory)
            gone = self.layout.prune({target, back_to})
            return StepRecord(skipped=tuple(gone))

        self._phase(tracker, "keep", keep)
        line = f"applied: {state['name']} {target} (kept {back_to} for rollback)"
        self.finish(line)
        self.say(f"update: {line}")
        return Outcome("applied", line)

    # -- the way back ----------------------------------------------------------------------------

    def _back(self, state: dict[str, object], *, at_boot: bool) -> Outcome:
        """Back to `back_to`: stop, switch, the databases from the dump, start, ready. At boot
        (run by the platform's own start) it neither stops nor starts: the unit starts next."""
        tracker = self._tracker(BACK)
        target, back_to = str(state["target"]), str(state["back_to"])
        cause = str(state["cause"])
        touched = self.stamps.done("packages") or state["kind"] == "rollback"
        folder = self.layout.folder(back_to)
        if "restore" in state:
            restore = [str(d) for d in state["restore"]]  # type: ignore[attr-defined]
            dumps = self.kept / "dumps"
        else:
            record = self.stamps.record("dump") if self.stamps.done("dump") else None
            names = record.facts.get("databases", "") if record else ""
            restore, dumps = (names.split(",") if names else []), self.dumps

        def switch() -> StepRecord:
            self.layout.ensure()
            if self.layout.point_at(back_to, self.layout.release(back_to)) and not at_boot:
                self.service.reload_units()
            return StepRecord()

        def restore_dbs() -> StepRecord:
            dbdump.restore_databases(
                self.config.db.admin_conninfo, restore, dumps, self.config.pg_bindir
            )
            return StepRecord(created=tuple(restore))

        def ready() -> StepRecord:
            rel = self.layout.release(back_to)
            self.service.wait_ready(folder, rel.ready, rel.ready_timeout_s)
            return StepRecord()

        def clean() -> StepRecord:
            self._sweep()
            if target != back_to and target != self.layout.current():
                self.layout.remove(target)
            if state["kind"] == "rollback":
                shutil.rmtree(self.kept, ignore_errors=True)
            return StepRecord()

        live = touched and not at_boot
        phases: list[tuple[str, Callable[[], StepRecord]]] = [
            ("rollback-stop", _done(self.service.stop if live else _nothing)),
            ("rollback-switch", switch),
            ("rollback-restore", restore_dbs),
            ("rollback-start", _done(self.service.start if live else _nothing)),
            ("rollback-ready", ready if live else StepRecord),
            ("rolled-back", clean),
        ]
        for name, action in phases:
            self._phase(tracker, name, action)
        line = f"rolled back: {cause}" if state["kind"] == "update" else f"rolled back to {back_to}"
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
                    return self._keep(self._tracker(FORWARD), state)
                cut = next(s.name for s in FORWARD[1:] if not self.stamps.done(s.name))
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
