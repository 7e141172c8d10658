"""The existing host (DESIGN §6, `clawdie-setup install-platform`): the platform on a Debian 12
machine that already runs, never the OS.

Before anything is written: the host is checked (release, architecture, free space, PostgreSQL,
systemd), the operator's own login (DESIGN §2) is found, and a SERVICE_ACCOUNT that names an
existing account first boot did not create (a person's login) is refused with the accounts
step's own words. Then the platform payload, the installer's command and the units are put in
place (each file written only when it differs, so a second run writes nothing) and first boot
runs against the same root, with its stamps, report and receipt. The operator login is never
renamed, recreated or given keys: nothing here or in first boot writes to it.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from installer.errors import InstallerError
from installer.firstboot.passwd import read_account
from installer.firstboot.stamps import StepRecord
from installer.firstboot.steps.accounts import AccountTakenError, read_ledger
from installer.fsutil import ensure_dir, symlink_atomic, write_atomic
from installer.paths import SERVICE_NAME, TargetPaths

MIN_FREE_BYTES = 2 * 1024**3  # the payload, the databases' first growth, logs
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
UNITS = (f"{SERVICE_NAME}.service", f"{SERVICE_NAME}-firstboot.service")
PLATFORM_DIR = f"/opt/{SERVICE_NAME}/platform"
COMMAND = "/usr/local/bin/clawdie-setup"
_HUMAN_UIDS = range(1000, 60000)
_NO_LOGIN_SHELLS = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false")


class HostError(InstallerError):
    """The host cannot take the platform as it is; nothing was installed."""


@dataclass(frozen=True)
class HostFacts:
    """What the checks look at, read once (so the checks themselves are pure)."""

    os_release: dict[str, str]
    machine: str
    free_bytes: int
    postgres_versions: tuple[str, ...]
    has_systemd: bool
    systemd_running: bool
    is_root: bool


def parse_os_release(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("\"'")
    return values


def read_host_facts(paths: TargetPaths) -> HostFacts:
    release = ""
    for candidate in ("etc/os-release", "usr/lib/os-release"):
        path = paths.root / candidate
        if path.is_file():
            release = path.read_text(encoding="utf-8", errors="replace")
            break
    pg_lib = paths.root / "usr/lib/postgresql"
    versions = tuple(
        sorted(p.name for p in pg_lib.iterdir() if (p / "bin/postgres").is_file())
        if pg_lib.is_dir()
        else ()
    )
    systemd = any(
        (paths.root / p).exists() for p in ("usr/lib/systemd/systemd", "lib/systemd/systemd")
    )
    return HostFacts(
        os_release=parse_os_release(release),
        machine=platform.machine(),
        free_bytes=shutil.disk_usage(paths.root).free,
        postgres_versions=versions,
        has_systemd=systemd,
        systemd_running=(not paths.is_live_system) or Path("/run/systemd/system").is_dir(),
        is_root=os.geteuid() == 0,
    )


def host_problems(facts: HostFacts) -> list[str]:
    """Every reason the host cannot take the platform, each with what to do."""
    problems = []
    if not facts.is_root:
        problems.append("not run as root: run it with sudo (it installs units and accounts)")
    release = facts.os_release
    if release.get("ID") != "debian" or release.get("VERSION_ID") != "12":
        name = release.get("PRETTY_NAME") or "an unknown system (no /etc/os-release)"
        problems.append(
            f"this host runs {name}; install-platform supports Debian 12 (bookworm) only"
        )
    if facts.machine not in ARCHITECTURES:
        problems.append(
            f"this host's architecture is {facts.machine}; the platform runs on amd64 or arm64"
        )
    if facts.free_bytes < MIN_FREE_BYTES:
        problems.append(
            f"{facts.free_bytes / 1024**3:.1f} GiB free; the platform needs at least "
            f"{MIN_FREE_BYTES / 1024**3:.0f} GiB: free some space first"
        )
    if not facts.postgres_versions:
        problems.append(
            "PostgreSQL is not installed: install Debian's with `apt-get install postgresql`, "
            "then run this again"
        )
    if not facts.has_systemd or not facts.systemd_running:
        problems.append("systemd does not run this host: the platform runs as systemd units")
    return problems


def check_host(paths: TargetPaths) -> HostFacts:
    facts = read_host_facts(paths)
    problems = host_problems(facts)
    if problems:
        raise HostError(
            "this host cannot take the platform: " + "; ".join(problems),
            "nothing was installed; fix the above and run install-platform again",
        )
    return facts


# --- the operator login ---------------------------------------------------------------------


def human_logins(paths: TargetPaths) -> list[str]:
    """Accounts people log in with: a uid in Debian's range for people, a login shell."""
    ours = read_ledger(paths)
    names = []
    for line in paths.passwd.read_text(encoding="utf-8").splitlines():
        fields = line.split(":")
        if len(fields) < 7 or not fields[2].isdigit() or int(fields[2]) not in _HUMAN_UIDS:
            continue
        if fields[6] not in _NO_LOGIN_SHELLS and fields[0] not in ours:
            names.append(fields[0])
    return names


def find_operator_login(paths: TargetPaths, named: str | None) -> str:
    """The operator's own login: `named` (--operator-login), else the one who ran sudo, else
    the only person's login on the host. It must exist; it is only ever read."""
    people = human_logins(paths)
    sudo_user = os.environ.get("SUDO_USER") if paths.is_live_system else None
    name = named or (sudo_user if sudo_user and sudo_user != "root" else None)
    if name is None and len(people) == 1:
        name = people[0]
    if name is None:
        raise HostError(
            "cannot tell which login is the operator's: "
            + (
                f"this host has {', '.join(people)}"
                if people
                else "this host has no person's login"
            ),
            "name it with --operator-login NAME"
            + ("" if people else " (create your own login first: adduser NAME)"),
        )
    if read_account(paths.passwd, name) is None:
        raise HostError(
            f"the operator login {name} does not exist on this host",
            "name an existing login with --operator-login NAME; install-platform never creates it",
        )
    return name


def refuse_taken_service_account(paths: TargetPaths, service: str, operator: str) -> None:
    """A SERVICE_ACCOUNT that is someone's login (or any account first boot did not create) is
    refused before anything is installed, in the accounts step's own words."""
    account = read_account(paths.passwd, service)
    if account is None or service in read_ledger(paths):
        return
    whose = "your own login (the operator login)" if service == operator else "an existing account"
    raise AccountTakenError(
        f"SERVICE_ACCOUNT {service} is {whose} (uid {account.uid}, home {account.home}); the "
        "platform runs as an account of its own, so it is not taken over; nothing was installed",
        "remove the SERVICE_ACCOUNT line to use the default clawdie, or name an account that "
        "does not exist yet",
    )


# --- the payload, the command, the units ----------------------------------------------------


def read_start_command(payload: Path) -> list[str]:
    manifest = payload / "platform.toml"
    try:
        data = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise HostError(
            f"cannot read {manifest}: {err}",
            "give --platform the platform payload folder (it holds platform.toml)",
        ) from None
    start = data.get("start")
    if not isinstance(start, list) or not start or not all(isinstance(s, str) for s in start):
        raise HostError(f'{manifest}: start must be a list of strings, e.g. ["bin/run"]')
    return [str(s) for s in start]


def install_payload(paths: TargetPaths, payload: Path) -> int:
    """The payload under /opt/clawdie/platform, file by file (modes kept); returns how many
    files were written (0 when it was already there)."""
    target = paths.root / PLATFORM_DIR.lstrip("/")
    written = 0
    for source in sorted(payload.rglob("*")):
        relative = source.relative_to(payload)
        if source.is_dir() and not source.is_symlink():
            ensure_dir(target / relative, 0o755)
        elif source.is_file() and not source.is_symlink():
            mode = 0o755 if os.access(source, os.X_OK) else 0o644
            written += write_atomic(target / relative, source.read_bytes(), mode=mode)
    return written


def render_unit(text: str, start: list[str]) -> str:
    command = shlex.join([f"{PLATFORM_DIR}/{start[0]}", *start[1:]])
    return text.replace("@PLATFORM_START@", command)


def render_command_wrapper() -> str:
    """/usr/local/bin/clawdie-setup: this installer, from the environment it runs in now."""
    return (
        "#!/bin/sh\n# The Clawdie installer (installed by install-platform).\n"
        f'exec {shlex.quote(sys.executable)} -m installer.cli "$@"\n'
    )


def install_units(paths: TargetPaths, units_dir: Path, start: list[str]) -> int:
    """The platform and first-boot units, enabled (multi-user.target wants them); returns how
    many files changed."""
    system = paths.root / "etc/systemd/system"
    wants = system / "multi-user.target.wants"
    ensure_dir(wants, 0o755)
    changed = 0
    for unit in UNITS:
        text = (units_dir / unit).read_text(encoding="utf-8")
        changed += write_atomic(system / unit, render_unit(text, start), mode=0o644)
        changed += symlink_atomic(wants / unit, f"/etc/systemd/system/{unit}")
    changed += write_atomic(paths.root / COMMAND.lstrip("/"), render_command_wrapper(), mode=0o755)
    return changed


def host_record(facts: HostFacts, operator: str, changed: int) -> StepRecord:
    """The summary's words for the host and the operator login."""
    release = facts.os_release.get("PRETTY_NAME", "Debian 12")
    arch = ARCHITECTURES.get(facts.machine, facts.machine)
    pg = ", ".join(facts.postgres_versions)
    return StepRecord(
        created=(
            f"existing host: {release}, {arch}, PostgreSQL {pg}",
            f"platform payload in {PLATFORM_DIR}, units {', '.join(UNITS)} "
            + (f"({changed} file(s) written)" if changed else "(already in place)"),
            f"operator login {operator}: checked, left as it is (never renamed, recreated or "
            "given keys)",
        ),
        facts={"operator_login": operator},
    )
