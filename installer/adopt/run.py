"""Adopt: an `INSTALL_MODE=adopt` seed applied to an existing installation (DESIGN §6).

The installation is one first boot completed (its `complete` stamp) and left a resolution record
(`/etc/clawdie/setup.resolved.json`). The seed must carry the box's fingerprint (which box) and
its adopt code (whose box, DESIGN §10): both are checked before anything on the stick is
compared with the box (`check_gate`), and five wrong codes close adopt until the next reboot.
Every attempt, applied or refused, is told to the Telegram admin (queued when offline) and shown
on the console. Then the plan (`adopt_plan`, pure) decides each key,
and first boot's own steps apply the installation's values with the applied keys in their place:
no second implementation of identity, accounts, config or database. Databases and platform data
are never dropped (the steps only create what is missing). The platform is restarted only when
system.env, what it reads, changed.

A power cut is finished by the next run with the same seed: the plan is kept in root's state
directory until the run is done, with the step stamps, and reused, so the report says the same.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import SecretStr

from installer import faults, redact
from installer.adopt.plan import (
    ACCESS_KEYS,
    AdoptPlan,
    Installation,
    InstalledSetting,
    KeyOutcome,
    installed_values,
    merged_values,
    plan_adopt,
    wifi_key_problem,
)
from installer.adopt.record import Record, keep_record, read_record, record_changes
from installer.adopt.stick_release import ReleaseOutcome, Updater, apply_stick_release
from installer.envfile import MAX_ENV_BYTES, read_env_file
from installer.errors import InstallerError
from installer.fingerprint import matches, read_fingerprint
from installer.firstboot import adopt_code
from installer.firstboot.config import FirstbootConfig
from installer.firstboot.context import StepContext
from installer.firstboot.context import log as step_log
from installer.firstboot.platform_db import DB_PASSWORD_KEY, database_url
from installer.fsutil import (
    ensure_dir,
    open_dir,
    read_bytes_nofollow,
    remove_durably,
    remove_stale_temps,
    write_atomic,
)
from installer.passwd import read_account, read_shadow_hash
from installer.paths import TargetPaths
from installer.run import run
from installer.seed.io import Receipt, SeedInput
from installer.seed.messages import render_note, render_problem_line
from installer.seed.model import KNOWN_KEYS, SECRET_KEYS
from installer.seed.profiles import recorded_source
from installer.seed.reader import parse_seed
from installer.seed.resolve import SeedCheck, check_values, given_from_seed, seed_mode
from installer.seed.rules import SeedValueError, check_fingerprint
from installer.stamps import COMPLETE, Stamps
from installer.status import Status, settle
from installer.steps import Finished, Step, StepRun

log = logging.getLogger("clawdie.adopt")


class AdoptRefusedError(InstallerError):
    """The seed cannot be applied to this box; nothing on it was changed."""


def describe(seed: SeedInput) -> str:
    """Where a seed came from, for the admin: the stick by its label and serial."""
    device = seed.device
    if device is None:
        return seed.description
    label = device.fs_label or "(no label)"
    serial = device.serial or "(no serial)"
    return f"the stick labelled {label}, serial {serial} ({device.node}, {seed.name})"


def read_host_name(paths: TargetPaths) -> str:
    try:
        return paths.hostname.read_text(encoding="utf-8").strip() or "this box"
    except (OSError, UnicodeError):
        return "this box"


def is_installed(paths: TargetPaths) -> bool:
    """First boot completed here and left its resolution record."""
    return paths.complete_stamp.is_file() and paths.resolved_json.is_file()


# --- reading the installation ---------------------------------------------------------------


def read_settings(paths: TargetPaths) -> dict[str, InstalledSetting]:
    """The installation's resolved settings (setup.resolved.json), secrets from system.env and
    the Wi-Fi's key from the supplicant's configuration (`kept_wifi_key`)."""
    try:
        doc = json.loads(paths.resolved_json.read_text(encoding="utf-8"))
        env = read_env_file(paths.system_env)
    except (OSError, ValueError) as err:
        raise AdoptRefusedError(
            f"cannot read the installation's record: {err}",
            f"{paths.resolved_json} and {paths.system_env} are written by first boot; "
            "run first boot (or install-platform) before adopting",
        ) from None
    settings: dict[str, InstalledSetting] = {}
    for item in doc.get("settings", []):
        key, secret = str(item["key"]), bool(item.get("secret"))
        value = env.get(key) if secret else item.get("value")
        given = _given(item)
        settings[key] = InstalledSetting(key, None if value is None else str(value), given, secret)
    wifi_key = kept_wifi_key(paths, settings)
    if wifi_key is not None:
        settings[wifi_key.key] = wifi_key
    redact.register(*(s.value for s in settings.values() if s.secret and s.value))
    return settings


def _given(entry: Mapping[str, object]) -> bool:
    """Whether the operator gave an entry's value (its source's record says), not a default."""
    try:
        return recorded_source(entry).given
    except ValueError:
        return False


def read_wifi_key(paths: TargetPaths, ssid: str) -> SecretStr | None:
    """The key the box's supplicant joins `ssid` with (the network step's PSK), or None."""
    from installer.net.files import parse_supplicant_psk

    try:
        text = paths.wifi_supplicant_conf.read_text(encoding="utf-8")
    except (OSError, UnicodeError):
        return None
    return parse_supplicant_psk(text, ssid)


def kept_wifi_key(
    paths: TargetPaths, settings: Mapping[str, InstalledSetting]
) -> InstalledSetting | None:
    """WIFI_PASSWORD as the box keeps it: not the password (never stored) but the PSK of its
    network, which the seed's model takes as a raw key, so an adopt seed may leave the Wi-Fi
    lines out. None without Wi-Fi or a key for the box's network: then the seed repeats
    WIFI_PASSWORD."""
    ssid, password = settings.get("WIFI_SSID"), settings.get("WIFI_PASSWORD")
    if ssid is None or ssid.value is None or password is None:
        return None
    key = read_wifi_key(paths, ssid.value)
    if key is None:
        return None
    return InstalledSetting(password.key, key.get_secret_value(), password.given, secret=True)


def read_ssh_keys(paths: TargetPaths, account: str) -> tuple[str, ...]:
    """The service account's authorized keys, read without following a link in its home."""
    entry = read_account(paths.passwd, account)
    if entry is None:
        return ()
    home = paths.home_path(entry.home)
    if not home.is_dir() or home.is_symlink():
        return ()
    with open_dir(home) as home_fd:
        try:
            ssh = os.open(".ssh", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=home_fd)
        except OSError:
            return ()
        try:
            fd = os.open("authorized_keys", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=ssh)
        except OSError:
            return ()
        finally:
            os.close(ssh)
    with os.fdopen(fd, encoding="utf-8", errors="replace") as handle:
        text = handle.read(1 << 20)
    return tuple(line for line in text.splitlines() if line.strip() and not line.startswith("#"))


def read_operator_email(config: FirstbootConfig, role: str, password: str | None) -> str | None:
    """The dashboard operator's e-mail (None when there is none), read as the platform's role
    once PostgreSQL answers."""
    from installer.firstboot.db import auth, ready

    ready.wait_for_db(config.db.admin_conninfo, timeout_ms=config.db.readiness_timeout_ms, log=log)
    if password is None:
        return None
    return auth.operator_email(database_url(role, password, config.db, "system_ops"))


def read_installation(config: FirstbootConfig, paths: TargetPaths) -> Installation:
    """The box as first boot left it: settings, fingerprint, keys, password, operator."""
    settings = read_settings(paths)
    env = read_env_file(paths.system_env)
    account = env.get("PLATFORM_DB_ROLE") or "clawdie"
    db_password = env.get(DB_PASSWORD_KEY)
    redact.register(db_password or "")
    return Installation(
        fingerprint=read_fingerprint(paths),
        settings=settings,
        ssh_keys=read_ssh_keys(paths, account),
        user_password_hash=read_shadow_hash(paths.shadow, account),
        operator_email=read_operator_email(config, account, db_password),
    )


# --- the seed over the installation ---------------------------------------------------------


def check_over(box: Installation, seed: SeedInput) -> SeedCheck:
    """The adopt seed checked with the installation's values filling what it leaves blank: a
    seed of three lines is enough (the box's Wi-Fi key fills WIFI_PASSWORD, for the network it
    is on only). Problems name the seed's lines."""
    text = parse_seed(seed.data, KNOWN_KEYS)
    given = given_from_seed(text)
    secret_values = (g.value for k, g in given.items() if k in SECRET_KEYS)
    redact.register(*secret_values)
    problems = list(text.problems)
    wifi = wifi_key_problem(box, given)
    if wifi is not None:
        problems.append(wifi)
    return check_values(
        {**installed_values(box), **given},
        name=seed.name,
        reader_problems=problems,
        repairs=text.repairs,
        encoding=text.encoding,
        listed_lines={e.key: e.line for e in text.entries},
    )


def refuse_invalid(check: SeedCheck) -> None:
    if check.valid:
        return
    lines = "; ".join(render_problem_line(p, check.name) for p in check.problems)
    raise AdoptRefusedError(
        f"{check.name} cannot be adopted: {lines}",
        "fix setup.txt (clawdie-setup check shows every problem); nothing on the box was changed",
    )


class AdoptCodeRefusedError(AdoptRefusedError):
    """The stick did not prove the box is its owner's: the refusal says nothing about the box."""


_NOT_ADOPT_HINT = (
    "to change an installed box, add INSTALL_MODE=adopt, INSTALL_FINGERPRINT= (the 8 "
    "characters on its login screen) and ADOPT_CODE= (from its first-boot report)"
)
_FINGERPRINT_HINT = (
    "copy the Fingerprint shown on this box's login screen (or in its install summary) into "
    "INSTALL_FINGERPRINT="
)
_CODE_HINT = (
    "nothing on this box was changed. The code is in the box's first-boot report "
    "(SETUP-RESULT.txt on the stick it was installed with, and the Telegram report to its "
    f"admin); its owner makes a new one with `{adopt_code.NEW_CODE_COMMAND}` as root on the box"
)


def check_gate(paths: TargetPaths, seed: SeedInput, mode: str = "adopt") -> None:
    """The stick's right to change this box (DESIGN §10), before anything on it is validated
    against or compared with the box: the seed is for `mode` (adopt, or reset), adopt open
    (fewer than 5 wrong codes since the box started), the fingerprint (which box), then the code
    (whose box). Only the seed's own lines are read; a wrong code is counted."""
    text = parse_seed(seed.data, KNOWN_KEYS)
    lines = {e.key: e for e in text.entries if e.value}
    code = lines.get(adopt_code.KEY)
    if code is not None:
        redact.register(code.value)
    wanted, mode_line = mode, lines.get("INSTALL_MODE")
    given_mode = mode_line.value.strip().lower() if mode_line is not None else "fresh"
    if given_mode != wanted:
        raise AdoptRefusedError(
            f"{seed.name} is not an {wanted} seed (INSTALL_MODE is {given_mode}); nothing on "
            "the box was changed",
            _NOT_ADOPT_HINT,
        )
    if adopt_code.is_closed(paths):
        raise AdoptCodeRefusedError(
            adopt_code.closed_message(),
            "nothing on this box was changed; restart the box to try again with the right "
            "ADOPT_CODE",
        )
    fingerprint = lines.get("INSTALL_FINGERPRINT")
    if fingerprint is None:
        raise AdoptRefusedError(
            f"{seed.name}: INSTALL_FINGERPRINT: required because INSTALL_MODE={wanted}; nothing "
            "on this box was changed",
            _FINGERPRINT_HINT,
        )
    try:
        given = check_fingerprint(fingerprint.value)
    except SeedValueError as err:
        raise AdoptRefusedError(
            f"{seed.name}:{fingerprint.line}: INSTALL_FINGERPRINT: {err.message}; nothing on "
            "this box was changed",
            err.hint,
        ) from None
    if not matches(given, read_fingerprint(paths)):
        raise AdoptRefusedError(
            f"{seed.name}:{fingerprint.line}: INSTALL_FINGERPRINT={given} is not this box's "
            "fingerprint: this stick was made for another box; nothing on this box was changed",
            _FINGERPRINT_HINT,
        )
    if adopt_code.code_matches(paths, code.value if code is not None else None):
        return
    if code is not None:  # a missing code is a mistake, not a guess
        count = adopt_code.count_wrong_code(paths)
        log.warning("adopt: a wrong ADOPT_CODE (%d of %d)", count, adopt_code.MAX_WRONG)
    raise AdoptCodeRefusedError(adopt_code.REFUSED, _CODE_HINT)


# --- the run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdoptResult:
    plan: AdoptPlan
    fingerprint: str
    platform: str
    warnings: tuple[str, ...] = ()
    changes: Mapping[str, str] = field(default_factory=dict)  # key -> "before → after"
    release: ReleaseOutcome | None = None  # a release on the stick (stick_release.py)

    @property
    def changed(self) -> bool:
        return bool(self.plan.applied)

    @property
    def problems(self) -> int:
        """Keys refused, and a release on the stick that was not applied."""
        refused = sum(1 for e in self.plan.entries if e.outcome == "refused")
        return refused + (self.release is not None and self.release.failed)


def render_adopt_summary(name: str, result: AdoptResult, machine: Sequence[str] = ()) -> str:
    """Every key of the seed with its outcome, then the box as the operator finds it (`machine`:
    firmware, disk, network, keys); never a secret value."""
    applied = len(result.plan.applied)
    refused = sum(1 for e in result.plan.entries if e.outcome == "refused")
    head = (
        f"{applied} setting(s) applied, {refused} refused"
        if applied or refused
        else "nothing to change: the box already has every setting of this seed"
    )
    out = [
        f"Clawdie adopt: {settle(False, result.problems)} ({name})",
        head,
        "",
        f"Installation fingerprint: {result.fingerprint} (matches INSTALL_FINGERPRINT)",
        "",
    ]
    access = [e for e in result.plan.entries if e.key in ACCESS_KEYS]
    if access:
        out += [
            "Access changes:",
            *(f"  - {render_entry(e, result.changes)}" for e in access),
            "",
        ]
    out += [
        "Settings:",
        *(
            f"  - {render_entry(e, result.changes)}"
            for e in result.plan.entries
            if e.key not in ACCESS_KEYS
        ),
        *(
            f"  - {key}: applied ({change}; follows the settings above)"
            for key, change in result.changes.items()
            if result.plan.outcome(key) is None
        ),
        "  - every other setting: kept as installed (system.env and setup.resolved.json unchanged)",
        "",
    ]
    if result.warnings:
        out += ["Warnings:", *(f"  - {w}" for w in result.warnings), ""]
    out.append(f"Platform: {result.platform}")
    if result.release is not None:
        out.append(result.release.line)
    if machine:
        out += ["", "This box:", *(f"  {line}" for line in machine)]
    return "\n".join(out) + "\n"


def render_entry(entry: KeyOutcome, changes: Mapping[str, str]) -> str:
    """A key's outcome; an applied one with what the record held before and holds now."""
    change = changes.get(entry.key)
    if entry.outcome != "applied" or change is None:
        return entry.render()
    reason = entry.reason
    if reason.startswith("was ") or reason == "filled":  # the change says it better
        reason = reason.partition("; ")[2]
    return f"{entry.key}: applied ({change}{'; ' + reason if reason else ''})"


def render_console_outcome(head: str, report: str, told: str) -> str:
    """The outcome as the box's consoles show it: one block, framed so it reads apart from the
    login prompt around it."""
    rule = "=" * 60
    return "\n".join(
        [rule, head, "", report.rstrip("\n"), f"Telegram message to the admin: {told}", rule]
    )


def render_refusal(name: str, err: InstallerError) -> str:
    out = [f"Clawdie adopt: {Status.FAILED} ({name})", f"Reason: {err.message}"]
    if err.hint:
        out.append(f"What to do: {err.hint}")
    return "\n".join(out) + "\n"


def render_failure(name: str, err: InstallerError) -> str:
    out = [f"Clawdie adopt: {Status.FAILED} ({name})", f"Reason: {err.message}"]
    if err.hint:
        out.append(f"What to do: {err.hint}")
    out.append("Run it again with the same setup.txt: it finishes what this run started.")
    return "\n".join(out) + "\n"


def show_refusal(paths: TargetPaths, text: str, *, reload_prompts: bool = True) -> None:
    """The refusal on the login screen (tty1 and the serial console) until the next boot; never
    raises (the receipt and the console have it already). `reload_prompts`: the prompts shown
    now print it at once (else the outcome's block on the consoles does that after it)."""
    notice = "\n".join(
        ["", *text.rstrip("\n").splitlines(), "Nothing on this box was changed.", ""]
    )
    try:
        ensure_dir(paths.adopt_refused_issue.parent, 0o755, 0, 0)
        write_atomic(paths.adopt_refused_issue, notice + "\n", mode=0o644)
    except OSError as err:
        log.warning("adopt: the refusal is not on the login screen: %s", err.strerror)
        return
    if paths.is_live_system and reload_prompts:
        run(["agetty", "--reload"], check=False, timeout=30)  # prompts shown now reprint it


def clear_refusal(paths: TargetPaths, *, reload_prompts: bool = True) -> None:
    """An adopt that ran takes an earlier refusal off the login screen."""
    if paths.adopt_refused_issue.exists():
        remove_durably(paths.adopt_refused_issue)
        if paths.is_live_system and reload_prompts:
            run(["agetty", "--reload"], check=False, timeout=30)


def _plan_doc(plan: AdoptPlan, digest: str, env_digest: str, record: Record) -> str:
    entries = [{"key": e.key, "outcome": e.outcome, "reason": e.reason} for e in plan.entries]
    doc = {
        "seed_sha256": digest,
        "system_env_sha256": env_digest,
        "entries": entries,
        "record_before": record.to_doc(),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _stored_plan(paths: TargetPaths, digest: str) -> tuple[AdoptPlan, str, Record] | None:
    """The plan of an interrupted run of this very seed, and system.env's digest before it."""
    try:
        doc = json.loads(paths.adopt_plan.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if doc.get("seed_sha256") != digest:
        return None
    entries = tuple(KeyOutcome(e["key"], e["outcome"], e["reason"]) for e in doc["entries"])
    record = Record.from_doc(doc.get("record_before", {}))
    return AdoptPlan(entries), str(doc["system_env_sha256"]), record


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _clear_stamps(paths: TargetPaths) -> None:
    if paths.adopt_stamps_dir.is_dir():
        for stamp in sorted(paths.adopt_stamps_dir.iterdir()):
            remove_durably(stamp)
        paths.adopt_stamps_dir.rmdir()


def _env_digest(paths: TargetPaths) -> str:
    try:
        return _digest(read_bytes_nofollow(paths.system_env, MAX_ENV_BYTES, trusted=True))
    except OSError:
        return ""


@dataclass
class AdoptRun:
    """One adopt run: `config` says where the box and its database are; `restart` restarts the
    platform (None: it starts after this run by itself, as at boot)."""

    config: FirstbootConfig
    seed: SeedInput
    restart: Sequence[str] | None = ("systemctl", "try-restart", "clawdie.service")
    receipt: Receipt | None = None
    # the outcome as one whole block on the box's consoles, then the login prompts below it
    # (installer.consoles.show_on_consoles; None: standard output is where it is read)
    show: Callable[[str], object] | None = None
    # applies a release found next to the seed, once the gate passed (None: a release there is
    # not looked at); the update room's run, given by the command (stick_release.py)
    updater: Updater | None = None

    def execute(self) -> int:
        paths = TargetPaths(self.config.root)
        adoption = Adoption(self, paths)
        StepRun(adopt_steps(self.config), Stamps(paths.adopt_stamps_dir), log=step_log).run(
            adoption, adoption.failed
        )
        result = adoption.result()
        from installer.firstboot.steps.report import render_machine

        clear_refusal(paths, reload_prompts=self.show is None)
        machine = render_machine(paths, None)
        summary = render_adopt_summary(self.seed.name, result, machine)
        if result.changed:
            write_atomic(paths.adopt_summary, summary, mode=0o600)
            self._finish(paths)
        outcome = "applied" if result.changed else "nothing changed"
        release = self._release(paths, result, machine)
        if release is not None:  # the gate passed and adopt's own keys are in place
            result = dataclasses.replace(result, release=release)
            summary = render_adopt_summary(self.seed.name, result, machine)
            write_atomic(paths.adopt_summary, summary, mode=0o600)
            outcome = f"{outcome}; {release.line}"
        self._receipt(summary)
        print(summary, end="")
        self._tell(paths, outcome, summary)
        return 0

    def _release(
        self, paths: TargetPaths, result: AdoptResult, machine: Sequence[str]
    ) -> ReleaseOutcome | None:
        """The release next to the seed applied (None: none there, or no updater); while it
        runs, the receipt says adopt's outcome and that the update is under way."""
        if self.updater is None:
            return None

        def started(name: str) -> None:
            line = f"update: {name} from the stick: under way (this receipt says how it ended)"
            print(line)
            under_way = dataclasses.replace(result, release=ReleaseOutcome("under way", line))
            self._receipt(render_adopt_summary(self.seed.name, under_way, machine))

        return apply_stick_release(paths, self.seed, self.updater, started)

    def _tell(self, paths: TargetPaths, outcome: str, report: str) -> None:
        """Every attempt, applied or refused, to the Telegram admin (queued when offline) and
        on the console: what happened, from which stick."""
        from installer.online.telegram_queue import tell_admin

        head = f"Clawdie adopt on {read_host_name(paths)}: {outcome}, from {describe(self.seed)}"
        name = f"adopt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(3)}"
        told = tell_admin(paths, self.config.telegram_api, name, f"{head}\n\n{report}")
        log.info("adopt: %s; Telegram message to the admin: %s", outcome, told)
        print(f"{head}\nTelegram message to the admin: {told}", file=sys.stderr)
        if self.show is not None:
            self.show(render_console_outcome(head, report, told))

    def _receipt(self, text: str) -> None:
        if self.receipt is not None:
            written, why = self.receipt(text)
            log.info("receipt on the stick: %s", why if written else f"not written: {why}")

    def _finish(self, paths: TargetPaths) -> None:
        """The run is done: its plan and stamps go (the summary stays)."""
        faults.fault_point("before:adopt-done")
        _clear_stamps(paths)
        remove_durably(paths.adopt_plan)
        if paths.adopt_dir.is_dir() and not any(paths.adopt_dir.iterdir()):
            shutil.rmtree(paths.adopt_dir)


@dataclass
class Adoption:
    """An adopt run under way: what its steps (`adopt_steps`) found so far, and its one failure
    path (a refusal, or a failure, on the stick, the login screen and to the admin)."""

    inputs: AdoptRun
    paths: TargetPaths
    box: Installation | None = None
    check: SeedCheck | None = None  # the seed over the installation
    plan: AdoptPlan | None = None
    digest: str = ""  # the seed's, naming the plan a power cut left
    env_before: str = ""  # system.env's digest before the run
    before: Record | None = None  # the resolution record before the run
    warnings: tuple[str, ...] = ()
    context: StepContext | None = None  # the installation with the applied keys, for the steps
    changes: Mapping[str, str] = field(default_factory=dict)
    platform: str = "not restarted: nothing changed"

    def result(self) -> AdoptResult:
        if self.box is None or self.plan is None:
            raise RuntimeError("adopt ended before its plan was made")
        return AdoptResult(
            self.plan, self.box.fingerprint, self.platform, self.warnings, self.changes
        )

    def step_context(self) -> StepContext:
        if self.context is None:
            raise RuntimeError("a step ran before the seed was merged with the installation")
        return self.context

    # -- the steps -----------------------------------------------------------------------------

    def gate(self) -> None:
        """An installation is here, and the stick may change it (fingerprint and code)."""
        paths = self.paths
        if not is_installed(paths):
            raise AdoptRefusedError(
                f"there is no installation at {paths.root} to adopt: first boot has not "
                f"completed there ({paths.complete_stamp.name}, {paths.resolved_json.name})",
                "install first (the stick with INSTALL_MODE=fresh, or clawdie-setup "
                "install-platform); adopt changes a box that is already set up",
            )
        faults.arm_from_environment()
        check_gate(paths, self.inputs.seed)

    def read(self) -> None:
        """The box as first boot left it, and the seed checked over it."""
        self.box = read_installation(self.inputs.config, self.paths)
        self.check = check_over(self.box, self.inputs.seed)
        refuse_invalid(self.check)

    def decide(self) -> None:
        """Each key applied, kept or refused: the plan an interrupted run of this seed kept, or
        a new one. A plan that applies nothing ends the run here."""
        if self.box is None or self.check is None:
            raise RuntimeError("adopt planned before it read the box")
        paths = self.paths
        self.digest = _digest(self.inputs.seed.data)
        stored = _stored_plan(paths, self.digest)
        if stored is not None:
            self.plan, self.env_before, self.before = stored
            log.info("adopt: finishing an interrupted run of this seed")
        else:
            # an interrupted run of another seed is not finished: its step stamps would skip
            # steps this seed needs
            _clear_stamps(paths)
            self.plan, self.env_before = plan_adopt(self.box, self.check), _env_digest(paths)
            self.before = read_record(paths)
        self.warnings = tuple(render_note(w, self.check.name) for w in self.check.warnings)
        if not self.plan.applied:
            raise Finished

    def prepare(self) -> None:
        """The plan kept for a power cut, and the installation with the applied keys checked
        as one seed for first boot's steps."""
        if self.box is None or self.check is None or self.plan is None or self.before is None:
            raise RuntimeError("adopt prepared before its plan was made")
        from installer.seed.ask import register_secrets

        paths = self.paths
        for directory in paths.written_dirs():  # what a power cut left half-written
            remove_stale_temps(directory)
        ensure_dir(paths.adopt_dir, 0o700, 0, 0)
        doc = _plan_doc(self.plan, self.digest, self.env_before, self.before)
        write_atomic(paths.adopt_plan, doc, mode=0o600)
        merged = check_values(merged_values(self.box, self.check, self.plan), name=self.check.name)
        refuse_invalid(merged)
        register_secrets(merged)
        self.context = StepContext(
            self.inputs.config,
            paths,
            merged.require_resolved(),
            tuple(w.message for w in merged.warnings),
        )

    def keep(self) -> None:
        """The resolution record with the applied keys, and what changed in it."""
        if self.plan is None or self.before is None:
            raise RuntimeError("adopt kept its record before its plan was made")
        account = self.step_context().seed.accounts.service_account
        keep_record(self.paths, self.before, self.plan.applied, read_ssh_keys(self.paths, account))
        self.changes = record_changes(self.before, read_record(self.paths))

    def restart(self) -> None:
        """The platform restarted, only when system.env (what it reads) changed."""
        self.platform = self._restart(self.env_before != _env_digest(self.paths))

    def _restart(self, env_changed: bool) -> str:
        if not env_changed:
            return "not restarted: nothing it reads (system.env) changed"
        argv = self.inputs.restart
        if argv is None:
            return "starts after this with the new settings"
        result = run(list(argv), check=False, timeout=300)
        if result.returncode != 0:
            return f"restart failed: {' '.join(argv)} exited {result.returncode}"
        return f"restarted: system.env changed ({' '.join(argv)})"

    # -- the one failure path ------------------------------------------------------------------

    def failed(self, err: InstallerError) -> None:
        """A refusal (nothing was changed) on the stick, the login screen and to the admin; a
        failure (a step failed: run it again) on the stick and to the admin."""
        run_ = self.inputs
        if isinstance(err, AdoptRefusedError):
            refusal = render_refusal(run_.seed.name, err)
            run_._receipt(refusal)
            show_refusal(self.paths, refusal, reload_prompts=run_.show is None)
            run_._tell(self.paths, "refused", refusal)
            return
        report = render_failure(run_.seed.name, err)
        run_._receipt(report)
        run_._tell(self.paths, "failed", report)


def adopt_steps(config: FirstbootConfig) -> list[Step[Adoption]]:
    """Adopt's steps in order: the gate, the box read, the plan, then first boot's own steps
    with the applied keys in place, the record and the platform's restart. Only first boot's
    steps are stamped (in adopt's own stamp directory) and in the log's plan."""
    from installer.firstboot.runner import steps_for

    return [
        Step("adopt-gate", None, 60.0, Adoption.gate, stamped=False),
        Step("adopt-read", None, 120.0, Adoption.read, stamped=False),
        Step("adopt-plan", None, 60.0, Adoption.decide, stamped=False),
        Step("adopt-prepare", None, 60.0, Adoption.prepare, stamped=False),
        *(step.over(Adoption.step_context) for step in steps_for(config)),
        Step("adopt-record", None, 60.0, Adoption.keep, stamped=False),
        Step("adopt-restart", None, 300.0, Adoption.restart, stamped=False),
    ]


def adopt_at_boot(
    config: FirstbootConfig,
    paths: TargetPaths,
    receipt: Receipt | None,
    updater: Updater | None = None,
) -> int | None:
    """First boot found its `complete` stamp: a seed with INSTALL_MODE=adopt (given with
    --seed, or on a stick in the running box) is adopted; any other seed is never read again.
    Returns the exit code, or None when there is nothing to adopt."""
    if not Stamps(paths.stamps_dir).done(COMPLETE):
        return None
    seed = seed_at_boot(config, paths)
    if seed is None or seed_mode(seed.data) != "adopt":
        return None
    print(f"first boot already completed; {seed.description} asks to adopt", file=sys.stderr)
    # At boot the platform starts after first boot by itself: no restart.
    return AdoptRun(config, seed, restart=None, receipt=receipt, updater=updater).execute()


def seed_at_boot(config: FirstbootConfig, paths: TargetPaths) -> SeedInput | None:
    """The seed a completed box looks at when it starts: --seed, or a stick in the running box
    (None: no seed, or none readable)."""
    from installer.seed.io import read_seed_on_stick, read_seed_path

    try:
        if config.seed is not None:
            name, data, _ = read_seed_path(config.seed)
            return SeedInput(name, data, str(config.seed), path=config.seed)
        if paths.is_live_system:
            return read_seed_on_stick()
    except InstallerError as err:
        log.info("adopt: no seed to look at (%s)", err.message)
    return None
