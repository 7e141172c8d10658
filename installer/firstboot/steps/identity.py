"""Step 3, identity: host name (/etc/hostname, /etc/hosts), time zone, locale, keyboard."""

from __future__ import annotations

import re
import shutil

from installer.firstboot.context import StepContext, log
from installer.fsutil import symlink_atomic, write_atomic
from installer.paths import TargetPaths
from installer.run import run
from installer.stamps import StepRecord
from installer.steps import Step

NAME = "identity"
LABEL = "host name, time zone, locale, keyboard"  # what the receipt and the console say
DEADLINE_S = 60.0

_DEFAULT_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\t\tlocalhost ip6-localhost ip6-loopback\n"
    "ff02::1\t\tip6-allnodes\n"
    "ff02::2\t\tip6-allrouters\n"
)


def render_hosts(current: str, hostname: str, domain: str) -> str:
    """/etc/hosts with the Debian `127.0.1.1` line naming this host; other lines kept."""
    line = f"127.0.1.1\t{domain}\t{hostname}" if domain != hostname else f"127.0.1.1\t{hostname}"
    lines = [entry for entry in (current or _DEFAULT_HOSTS).splitlines() if entry.strip()]
    kept = [entry for entry in lines if not entry.split() or entry.split()[0] != "127.0.1.1"]
    after_localhost = next((i + 1 for i, e in enumerate(kept) if e.startswith("127.0.0.1")), 0)
    kept.insert(after_localhost, line)
    return "\n".join(kept) + "\n"


def render_keyboard(current: str, layout: str) -> str:
    """/etc/default/keyboard with XKBLAYOUT set; other settings kept."""
    lines = (
        current.splitlines()
        if current
        else [
            'XKBMODEL="pc105"',
            'XKBVARIANT=""',
            'XKBOPTIONS=""',
            'BACKSPACE="guess"',
        ]
    )
    lines = [entry for entry in lines if not entry.startswith("XKBLAYOUT=")]
    return "\n".join([f'XKBLAYOUT="{layout}"', *lines]) + "\n"


def render_locale_gen(current: str, locale: str) -> str:
    """/etc/locale.gen with `locale UTF-8` enabled (uncommented or appended)."""
    wanted = f"{locale} UTF-8"
    lines = current.splitlines()
    for i, entry in enumerate(lines):
        if re.fullmatch(rf"#?\s*{re.escape(wanted)}\s*", entry):
            lines[i] = wanted
            return "\n".join(lines) + "\n"
    return "\n".join([*lines, wanted]) + "\n"


def apply(ctx: StepContext) -> StepRecord:
    paths = ctx.paths
    host = ctx.seed.host
    hostname, domain, zone = host.hostname, host.domain, host.timezone
    locale, keymap = host.locale, host.keymap
    write_atomic(paths.hostname, f"{hostname}\n")
    current_hosts = paths.hosts.read_text() if paths.hosts.exists() else ""
    write_atomic(paths.hosts, render_hosts(current_hosts, hostname, domain))
    write_atomic(paths.timezone, f"{zone}\n")
    symlink_atomic(paths.localtime, f"/usr/share/zoneinfo/{zone}")
    write_atomic(paths.default_locale, f"LANG={locale}\n")
    if paths.locale_gen.exists():
        write_atomic(paths.locale_gen, render_locale_gen(paths.locale_gen.read_text(), locale))
    current_keyboard = paths.default_keyboard.read_text() if paths.default_keyboard.exists() else ""
    write_atomic(paths.default_keyboard, render_keyboard(current_keyboard, keymap))
    # The record states what holds now (the same after a resumed run as after a clean one).
    done = [
        f"host name {hostname} ({domain})",
        f"time zone {zone}",
        f"locale {locale}, console keyboard {keymap}",
    ]
    notes = _apply_live(paths, hostname, locale)
    log.info("identity: %s", "; ".join(done))
    return StepRecord(created=tuple(done), notes=tuple(notes))


def _apply_live(paths: TargetPaths, hostname: str, locale: str) -> list[str]:
    """On the running system, make the new identity take effect now."""
    if not paths.is_live_system:
        return []
    notes = []
    if shutil.which("hostname"):
        run(["hostname", hostname])
    # The image ships en_US.UTF-8 compiled (iso/build.py): only another locale is generated,
    # and only that one (--keep-existing leaves the archive's other locales alone).
    if shutil.which("locale-gen") and paths.locale_gen.exists() and not locale_available(locale):
        run(["locale-gen", "--keep-existing"], timeout=600)
        notes.append(f"generated locale {locale}")
    return notes


def locale_available(name: str) -> bool:
    """Whether the C library can load locale `name` now (it is compiled on this system)."""
    import locale

    saved = locale.setlocale(locale.LC_CTYPE)
    try:
        locale.setlocale(locale.LC_CTYPE, name)
    except locale.Error:
        return False
    finally:
        locale.setlocale(locale.LC_CTYPE, saved)
    return True


STEP = Step(NAME, LABEL, DEADLINE_S, apply)
