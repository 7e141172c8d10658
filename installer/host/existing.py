"""The existing host (DESIGN §6, `clawdie-setup install-platform`): the platform on a Debian 12
machine that already runs, never the OS.

Before anything is written: the host is checked (release, architecture, free space, PostgreSQL
or apt-get to install it, systemd), the operator's own login (DESIGN §2) is found, and a
SERVICE_ACCOUNT that names an existing account first boot did not create (a person's login) is
refused with the accounts step's own words. Then what the platform needs is put in place, each
file written only when it differs (so a second run writes nothing): Debian's PostgreSQL when it
is missing, the installer's venv and command (installer/venv.py), the platform payload, the
units, and the platform's lines in the pg_hba.conf and pg_ident.conf of the one PostgreSQL
cluster it uses (found by its port; a linked file is refused before anything is installed).
First boot then runs against the same root, with its stamps, report and receipt. The operator
login is never renamed, recreated or given keys: nothing here or in first boot writes to it.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from installer.errors import InstallerError
from installer.firstboot.steps.accounts import AccountTakenError, read_ledger
from installer.fsutil import ensure_dir, read_bytes_nofollow, symlink_atomic, write_atomic
from installer.passwd import read_account
from installer.paths import SERVICE_NAME, TargetPaths, in_root
from installer.run import run
from installer.stamps import StepRecord

log = logging.getLogger("clawdie.host")

MIN_FREE_BYTES = 2 * 1024**3  # the payload, the databases' first growth, logs
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
UNITS = (f"{SERVICE_NAME}.service", f"{SERVICE_NAME}-firstboot.service")
PLATFORM_DIR = f"/opt/{SERVICE_NAME}/platform"
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
    has_apt: bool
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


def postgres_versions(paths: TargetPaths) -> tuple[str, ...]:
    """The PostgreSQL servers Debian installed (/usr/lib/postgresql/N/bin/postgres)."""
    pg_lib = paths.root / "usr/lib/postgresql"
    if not pg_lib.is_dir():
        return ()
    found = [p.name for p in pg_lib.iterdir() if (p / "bin/postgres").is_file()]
    return tuple(sorted(found, key=lambda v: (len(v), v)))


def read_host_facts(paths: TargetPaths) -> HostFacts:
    release = ""
    for candidate in ("etc/os-release", "usr/lib/os-release"):
        path = paths.root / candidate
        if path.is_file():
            release = path.read_text(encoding="utf-8", errors="replace")
            break
    versions = postgres_versions(paths)
    systemd = any(
        (paths.root / p).exists() for p in ("usr/lib/systemd/systemd", "lib/systemd/systemd")
    )
    return HostFacts(
        os_release=parse_os_release(release),
        machine=platform.machine(),
        free_bytes=shutil.disk_usage(paths.root).free,
        postgres_versions=versions,
        has_apt=any((paths.root / p).exists() for p in ("usr/bin/apt-get", "bin/apt-get")),
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
    if not facts.postgres_versions and not facts.has_apt:
        problems.append(
            "PostgreSQL is not installed and this host has no apt-get to install it: install "
            "Debian's (`apt-get install postgresql`), then run this again"
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


def install_payload(paths: TargetPaths, payload: Path) -> int:
    """The payload under /opt/clawdie/platform, file by file (modes kept); returns how many
    files were written (0 when it was already there)."""
    target = in_root(paths.root, PLATFORM_DIR)
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


# The image's files (iso/overlay/etc) a running host needs too, relative to /etc, each with the
# target that enables it (None: started by something else). The platform and first boot; adopt
# from a stick that appears (its udev rule starts it); the timer that sends the Telegram messages
# first boot queued; the login prompts wait for first boot, so its summary is on the login
# screen. Not the live installer's unit, nor the image's ssh, network or journald settings: on
# an existing host those are the operator's.
HOST_FILES: tuple[tuple[str, str | None], ...] = (
    *((f"systemd/system/{unit}", "multi-user.target") for unit in UNITS),
    (f"systemd/system/{SERVICE_NAME}-adopt.service", None),
    (f"systemd/system/{SERVICE_NAME}-telegram-retry.service", None),
    (f"systemd/system/{SERVICE_NAME}-telegram-retry.timer", "timers.target"),
    (f"systemd/system/{SERVICE_NAME}-update-check.service", None),
    (f"systemd/system/{SERVICE_NAME}-update-check.timer", "timers.target"),
    ("systemd/system/getty@.service.d/clawdie-after-firstboot.conf", None),
    ("systemd/system/serial-getty@.service.d/clawdie-after-firstboot.conf", None),
    ("udev/rules.d/90-clawdie-adopt.rules", None),
)
TIMERS = tuple(Path(name).name for name, wanted_by in HOST_FILES if wanted_by == "timers.target")


def read_host_files(overlay: Path) -> dict[str, str]:
    """The files install_units writes, read from the image's overlay folder before anything is
    installed."""
    texts = {}
    for name, _ in HOST_FILES:
        path = overlay / "etc" / name
        try:
            texts[name] = path.read_text(encoding="utf-8")
        except OSError as err:
            raise HostError(
                f"cannot read {path}: {err.strerror}",
                "give --overlay the image's overlay folder (iso/overlay in the checkout)",
            ) from None
    return texts


def install_units(paths: TargetPaths, texts: dict[str, str], start: list[str]) -> tuple[int, int]:
    """The units, drop-ins and udev rule (`texts`, from read_host_files), each enabled where
    the image enables it; returns how many unit files and udev rules changed."""
    units = rules = 0
    for name, wanted_by in HOST_FILES:
        target = paths.root / "etc" / name
        ensure_dir(target.parent, 0o755)
        changed = int(write_atomic(target, render_unit(texts[name], start), mode=0o644))
        if wanted_by is not None:
            wants = paths.root / f"etc/systemd/system/{wanted_by}.wants"
            ensure_dir(wants, 0o755)
            changed += symlink_atomic(wants / target.name, f"/etc/{name}")
        if name.startswith("udev/"):
            rules += changed
        else:
            units += changed
    return units, rules


# --- Debian's PostgreSQL ----------------------------------------------------------------------

APT_TIMEOUT_S = 900.0
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}


def in_target(paths: TargetPaths, argv: list[str]) -> list[str]:
    """`argv` as run on the target: as it is on the running host, through chroot otherwise."""
    return argv if paths.is_live_system else ["chroot", str(paths.root), *argv]


def install_postgresql(paths: TargetPaths) -> str:
    """Debian's PostgreSQL (`apt-get install postgresql`) on a host that has none; returns the
    summary's words for it. A failed install is a worded HostError (check_host has made sure
    apt-get is there). A failed `apt-get update` (offline, a broken mirror) is only logged:
    the lists and packages already on the host may be enough."""
    update = ["apt-get", "update", "-qq"]
    try:
        result = run(in_target(paths, update), env=APT_ENV, check=False, timeout=APT_TIMEOUT_S)
        why = f"exit {result.returncode}" if result.returncode else ""
    except InstallerError as err:  # timed out, or chroot missing
        why = err.message
    if why:
        log.warning("apt-get update failed (%s); installing from the lists already here", why)
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"]
    try:
        run(in_target(paths, install), env=APT_ENV, timeout=APT_TIMEOUT_S)
    except InstallerError as err:
        raise HostError(
            f"PostgreSQL is not installed, and installing Debian's failed: {err.message}"
            + (f" (apt-get update had failed too: {why})" if why else ""),
            "fix apt (network, sources, a held lock), or run `apt-get install postgresql` "
            "yourself, then run install-platform again; nothing else was installed",
        ) from None
    versions = postgres_versions(paths)
    if not versions:
        raise HostError(
            "apt-get installed postgresql, but no PostgreSQL server is in /usr/lib/postgresql",
            "check `apt-cache policy postgresql`, then run install-platform again",
        )
    lists = (
        f"; apt-get update failed ({why}), so from the package lists already here" if why else ""
    )
    return f"installed now with apt-get{lists}"


# What the platform needs of the host's PostgreSQL, in the pg_hba.conf of the one cluster it uses
# (the first line that matches decides, so our lines go first, and each matches only what is
# ours): root bootstraps the platform's role and databases as the postgres role in the postgres
# database, by peer through the clawdie_admin map (root and postgres), the way the image allows
# it (iso/pg_hba.conf); the platform's role reaches its own databases by password (scram), which
# is how first boot checks the role and how the platform connects. No line names another role
# or database, so the owner's lines for them (a stricter `postgres` line, a `reject`) stay
# effective; other clusters are never read or written.
HBA_BEGIN = "# BEGIN clawdie (install-platform): the platform's access; edit above or below\n"
HBA_END = "# END clawdie\n"
PLATFORM_DATABASES = "system_ops,system_brain,system_skills"
IDENT_LINES = (
    "clawdie_admin    root             postgres\n",
    "clawdie_admin    postgres         postgres\n",
)
DEFAULT_PG_PORT = 5432
_CONF_SETTING = re.compile(r"^\s*(port|hba_file|ident_file)\s*=?\s*'?([^'#\s]+)'?", re.MULTILINE)


def render_hba_block(role: str) -> str:
    def line(kind: str, databases: str, user: str, address: str, method: str) -> str:
        return f"{kind:<8}{databases:<39}{user:<10}{address:<15}{method}\n".replace(" \n", "\n")

    return (
        HBA_BEGIN
        + line("local", "postgres", "postgres", "", "peer map=clawdie_admin")
        + line("local", PLATFORM_DATABASES, role, "", "scram-sha-256")
        + line("host", PLATFORM_DATABASES, role, "127.0.0.1/32", "scram-sha-256")
        + line("host", PLATFORM_DATABASES, role, "::1/128", "scram-sha-256")
        + HBA_END
    )


def render_pg_hba(text: str, role: str = SERVICE_NAME) -> str:
    """The cluster's pg_hba.conf with our block first (replacing an older one of ours)."""
    if HBA_BEGIN in text and HBA_END in text:
        head, _, rest = text.partition(HBA_BEGIN)
        _, _, tail = rest.partition(HBA_END)
        text = head + tail
    return render_hba_block(role) + text


def render_pg_ident(text: str) -> str:
    missing = [line for line in IDENT_LINES if line not in text.splitlines(keepends=True)]
    if not missing:
        return text
    return text + ("" if not text or text.endswith("\n") else "\n") + "".join(missing)


@dataclass(frozen=True)
class PgAccess:
    """The cluster the platform uses and the two files install-platform edits there."""

    cluster: Path
    hba: Path
    ident: Path

    @property
    def unit(self) -> str:
        """Debian's unit for this one cluster (postgresql@15-main.service)."""
        return f"postgresql@{self.cluster.parent.name}-{self.cluster.name}.service"


def _cluster_settings(cluster: Path) -> dict[str, str]:
    conf = cluster / "postgresql.conf"
    text = conf.read_text(encoding="utf-8", errors="replace") if conf.is_file() else ""
    return {key: value for key, value in _CONF_SETTING.findall(text)}


def _in_root(paths: TargetPaths, value: str | None, default: Path) -> Path:
    if not value:
        return default
    return in_root(paths.root, value) if value.startswith("/") else default.parent / value


def find_platform_cluster(paths: TargetPaths, port: int) -> PgAccess:
    """The one cluster under /etc/postgresql/VERSION/NAME whose postgresql.conf listens on
    `port` (Debian's 5432 when it sets none), with its pg_hba.conf and pg_ident.conf (where its
    hba_file and ident_file say). Neither file may be a link: root edits the file it names, not
    whatever a link points to. A worded HostError otherwise; nothing is written here."""
    found = []
    for cluster in sorted((paths.root / "etc/postgresql").glob("*/*")):
        if not cluster.is_dir() or cluster.is_symlink():
            continue
        settings = _cluster_settings(cluster)
        if settings.get("port", str(DEFAULT_PG_PORT)) == str(port):
            found.append((cluster, settings))
    where = f"/{(paths.root / 'etc/postgresql').relative_to(paths.root)}"
    if not found:
        raise HostError(
            f"no PostgreSQL cluster in {where} listens on port {port}",
            "give the port of the cluster the platform should use with --db-port "
            "(`pg_lsclusters` lists them)",
        )
    if len(found) > 1:
        names = ", ".join(f"/{c.relative_to(paths.root)}" for c, _ in found)
        raise HostError(
            f"several PostgreSQL clusters are set to port {port}: {names}",
            "give each its own port in its postgresql.conf, or the one meant with --db-port",
        )
    cluster, settings = found[0]
    access = PgAccess(
        cluster,
        _in_root(paths, settings.get("hba_file"), cluster / "pg_hba.conf"),
        _in_root(paths, settings.get("ident_file"), cluster / "pg_ident.conf"),
    )
    for path in (access.hba, access.ident):
        shown = f"/{path.relative_to(paths.root)}"
        if path.is_symlink():
            raise HostError(
                f"{shown} is a symbolic link (to {os.readlink(path)}); install-platform edits "
                "only the file itself",
                f"replace the link with the file it points to (`cp --remove-destination "
                f'"$(readlink -f {shown})" {shown}`), then run install-platform again; '
                "nothing was installed",
            )
        if not path.is_file():
            raise HostError(
                f"{shown} is missing or not a regular file",
                "check the cluster with `pg_lsclusters`; nothing was installed",
            )
    return access


def ensure_postgres_access(access: PgAccess, role: str = SERVICE_NAME) -> int:
    """Our lines in the platform's cluster's pg_hba.conf and pg_ident.conf (only there);
    returns how many files changed (PostgreSQL must then reload them)."""
    changed = 0
    for path, render in (
        (access.hba, lambda text: render_pg_hba(text, role)),
        (access.ident, render_pg_ident),
    ):
        old = read_bytes_nofollow(path).decode("utf-8")
        new = render(old)
        if new != old:
            info = path.lstat()
            changed += write_atomic(
                path, new, mode=info.st_mode & 0o7777, uid=info.st_uid, gid=info.st_gid
            )
    return changed


def host_record(
    facts: HostFacts,
    operator: str,
    changed: int,
    postgres_installed: str = "",
    *,
    packages: tuple[str, ...] = (),
    payload_how: str = "",
) -> StepRecord:
    """The summary's words for the host and the operator login; `postgres_installed` is what
    install_postgresql said when it installed PostgreSQL in this run, `packages` the payload's
    Debian packages installed in this run, `payload_how` where the payload came from."""
    release = facts.os_release.get("PRETTY_NAME", "Debian 12")
    arch = ARCHITECTURES.get(facts.machine, facts.machine)
    pg = ", ".join(facts.postgres_versions)
    how = f" ({postgres_installed})" if postgres_installed else ""
    source = f" ({payload_how})" if payload_how else ""
    added = (
        (f"the platform's Debian packages installed now with apt-get: {', '.join(packages)}",)
        if packages
        else ()
    )
    return StepRecord(
        created=(
            f"existing host: {release}, {arch}, PostgreSQL {pg}{how}",
            *added,
            f"platform payload in {PLATFORM_DIR}{source}, units {', '.join(UNITS)} "
            + (f"({changed} file(s) written)" if changed else "(already in place)"),
            f"operator login {operator}: checked, left as it is (never renamed, recreated or "
            "given keys)",
        ),
        facts={"operator_login": operator},
    )
