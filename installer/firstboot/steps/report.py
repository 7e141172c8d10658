"""Step 8, report: the install summary (0600), the console issue file, the receipt on the stick
and a Telegram message to the admin, each opening with the status word (installer.status).
Never a secret value: only masked settings, key states and public facts are shown."""

from __future__ import annotations

import json
import re
import textwrap
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from installer.envfile import parse_env_file
from installer.fsutil import read_bytes_nofollow, write_atomic
from installer.machine import (
    read_installation_fingerprint,
    read_interfaces,
    read_ssh_fingerprints,
    read_tls_fingerprint,
    render_machine_lines,
)
from installer.online.checks import Findings
from installer.paths import TargetPaths
from installer.qr import QUIET_ZONE, SMALL_QUIET_ZONE, render_qr
from installer.seed.messages import render_problem_line
from installer.seed.resolve import SeedCheck, mask_secret, seed_key_states
from installer.seed.resolved import ResolvedSeed
from installer.stamps import TO_FIX, StepRecord
from installer.status import Status, settle
from installer.upkeep import degrade, read_upkeep


@dataclass(frozen=True)
class Outcome:
    """How first boot ended, for the report."""

    ok: bool
    headline: str
    error: str | None = None
    hint: str | None = None
    platform: str = "not started yet"

    def status(self, to_fix: Sequence[str] = ()) -> Status:
        """failed, else degraded when something is left to fix (`to_fix`), else ok."""
        return settle(not self.ok, len(to_fix))


def dashboard_url(seed: ResolvedSeed) -> str:
    return f"https://{seed.host.domain}/"


def read_installed_disk(paths: TargetPaths) -> str | None:
    """The disk the installer wrote, as its record names it (model, serial, size)."""
    try:
        record = parse_env_file(paths.install_record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    node = record.get("TARGET_DISK", "?")
    if record.get("DISK_IDENTITY", "-") != "-":
        return f"{node}: {record['DISK_IDENTITY']}"
    details = [record.get("DISK_MODEL", "-"), f"serial {record.get('DISK_SERIAL', '-')}"]
    return f"{node}: {', '.join([*details, record.get('DISK_SIZE', '-')])}"


def render_key_states(check: SeedCheck | None) -> list[str]:
    """Each setup.txt key: applied, defaulted or not given (never a value)."""
    if check is None or check.resolved is None:
        return []
    states = seed_key_states(check)
    width = max(len(key) for key, _ in states) + 1
    return [f"Setup keys ({check.name}):", *(f"  {key + ':':<{width}} {s}" for key, s in states)]


def render_machine(paths: TargetPaths, check: SeedCheck | None) -> list[str]:
    """The box as the operator finds it: firmware, model, disk, network, dashboard, keys."""
    seed = check.resolved if check is not None else None
    return render_machine_lines(
        paths,
        disk=read_installed_disk(paths),
        dashboard=dashboard_url(seed) if seed is not None else None,
    )


def render_seed_lines(seed: ResolvedSeed) -> list[str]:
    """Who the box is and which models answer; API keys masked."""
    host, models = seed.host, seed.models
    choices = {"chat": models.primary, "fallback": models.fallback, "compaction": models.compaction}
    return [
        f"Assistant:      {host.assistant_name}",
        f"Host name:      {host.hostname} (dashboard domain {host.domain})",
        f"Time zone:      {host.timezone}, locale {host.locale}, keyboard {host.keymap}",
        f"Service account: {seed.accounts.service_account}",
        f"Telegram admin: {seed.telegram.admin_id}",
        f"Profile:        {models.profile} (profile mapping v{models.mapping_version})",
        *(f"  {role + ':':<14}{c.provider} {c.model}" for role, c in choices.items()),
        *(f"  {k.setup_key}: {mask_secret(k.setup_key, k.value)}" for k in models.keys),
    ]


def render_summary(  # noqa: C901 (11: one branch per optional line of the summary)
    check: SeedCheck | None,
    records: Mapping[str, StepRecord],
    outcome: Outcome,
    extra_warnings: Sequence[str] = (),
    machine: Sequence[str] = (),
    to_fix: Sequence[str] = (),
    findings: Findings | None = None,
) -> str:
    """The full report as plain text: status, identity, models, what was done and skipped,
    warnings, the network and credential checks, the machine. `to_fix` (also among the
    warnings) and the findings' own (no network, a refused credential) make a success
    `degraded`."""
    status = status_text(outcome, to_fix, findings)
    out = [f"Clawdie first boot: {status}", f"{outcome.headline}", ""]
    if outcome.error:
        out += [f"Reason: {outcome.error}"]
        if outcome.hint:
            out += [f"What to do: {outcome.hint}"]
        out.append("")
    if check is not None and check.problems:
        out.append(f"Problems in {check.name}:")
        out += [f"  - {render_problem_line(p, check.name)}" for p in check.problems]
        out.append("")
    seed = check.resolved if check is not None else None
    if seed is not None:
        out += render_seed_lines(seed)
        dashboard = next(
            (r.facts["dashboard"] for r in records.values() if "dashboard" in r.facts), None
        )
        if dashboard:
            out.append(f"Dashboard:      {dashboard}")
        out.append("")
    created = [item for r in records.values() for item in r.created]
    skipped = [item for r in records.values() for item in r.skipped]
    notes = [item for r in records.values() for item in r.notes]
    if created:
        out += ["Done:", *(f"  - {c}" for c in created), ""]
    if skipped:
        out += ["Skipped:", *(f"  - {s}" for s in skipped), ""]
    warnings = [*(w.message for w in (check.warnings if check else ())), *extra_warnings, *notes]
    if warnings:
        out += ["Warnings:", *(f"  - {w}" for w in warnings), ""]
    if findings is not None:
        out += [*findings.lines(), ""]
    out.append(f"Platform: {outcome.platform}")
    if machine:
        out += ["", *machine]
    return "\n".join(out) + "\n"


# The login screen: agetty prints a blank line and /etc/issue's two lines before our file and
# its prompt after it, so our file has 21 of the Linux console's 25 rows.
ISSUE_ROWS = 21
ISSUE_WIDTH = 80
_MARGIN = "  "
_GAP = " "  # between the code's quiet zone and the text beside it
_WIDEST_IPV4 = "255.255.255.255"  # the widest address agetty puts in for an interface


def render_issue(  # noqa: C901 (12: one branch per optional line of the login screen)
    summary_head: str,
    outcome: Outcome,
    paths: TargetPaths,
    status: Status | str | None = None,
    dashboard: str | None = None,
    upkeep: Sequence[str] = (),
) -> str:
    """The console login banner (agetty issue file): status, where the box is on the network,
    the dashboard (with a QR code of it when the box works and it fits the screen), the SSH host
    keys, the TLS certificate's SHA-256 (its first half: a browser's warning shows it whole), the
    installation fingerprint and how updates and backups went (`upkeep`, one line each); a
    failure's reason and what to do. Our text has its
    backslashes escaped for agetty; each interface's address is agetty's own `\\4{name}` escape
    (IPv4), so the screen shows the address the box has now."""
    status = status or outcome.status()
    where = f"/{paths.summary.relative_to(paths.root)}"
    about = [f"Clawdie first boot: {status} - {outcome.headline}"]
    if outcome.error and outcome.error not in outcome.headline:
        about.append(f"Reason: {outcome.error}")
    if outcome.error and outcome.hint:
        about.append(f"What to do: {outcome.hint}")
    if summary_head:
        about.append(summary_head)
    if dashboard:
        about.append(f"Dashboard: {dashboard}")
    networks = []
    for interface in read_interfaces(paths.root, {}):
        name = interface.name if re.fullmatch(r"[\w.-]+", interface.name) else ""
        networks.append((f"{interface.name[:16]} {interface.mac[:20]}", name))
    keys = [f"SSH host key: {key}" for key in read_ssh_fingerprints(paths)]
    tls = read_tls_fingerprint(paths)
    if tls is not None:  # beside the URL's QR code: what the browser's warning should show
        keys.append(f"TLS certificate: SHA-256 {tls.short}")
    after = [
        f"Installation fingerprint: {read_installation_fingerprint(paths)}",
        f"Platform: {outcome.platform}",
        *upkeep,
        f"Full report: {where}",
    ]
    if dashboard and status is not Status.FAILED:
        for border in (QUIET_ZONE, SMALL_QUIET_ZONE):
            listed = [f"  {line}" for line, _ in networks]
            beside = [*about, *(["Network:", *listed] if listed else []), *after]
            lines = render_beside_code(render_qr(dashboard, border), beside, networks, keys)
            if len(lines) <= ISSUE_ROWS:
                return "\n".join(lines) + "\n"
    lines = [""]
    for text in about:
        lines += wrap_for_agetty(text)
    for shown, name in networks:
        (line,) = wrap_for_agetty(f"Network: {shown}")
        lines.append(f"{line} {agetty_address(name)}")
    for text in [*keys, *after]:
        lines += wrap_for_agetty(text)
    return "\n".join([*lines, ""]) + "\n"


def wrap_for_agetty(
    text: str,
    width: int = ISSUE_WIDTH,
    indent: str = _MARGIN,
    whole_words: bool = False,
    more: str = "    ",
) -> list[str]:
    """`text` wrapped to `width` columns, backslashes escaped for agetty; lines after the first
    are indented by `more`. `whole_words`: a word longer than a line is left whole (and the line
    too long)."""
    wrapped = textwrap.wrap(
        text,
        width,
        initial_indent=indent,
        subsequent_indent=indent + more,
        break_on_hyphens=False,  # host names and paths stay whole where they can
        break_long_words=not whole_words,
    )
    return [escape_agetty(line) for line in wrapped]


def escape_agetty(text: str) -> str:
    """`text` as agetty shows it: its backslashes would start agetty's escapes."""
    return text.replace("\\", "\\\\")


def agetty_address(name: str) -> str:
    """agetty's escape for the interface's IPv4 address, where its name can be one."""
    return f"\\4{{{name}}}" if name else "(address unknown)"


def display_width(text: str) -> int:
    """Columns `text` takes on the console (wide East Asian characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def render_beside_code(
    code: Sequence[str],
    beside: Sequence[str],
    networks: Sequence[tuple[str, str]],
    below: Sequence[str],
) -> list[str]:
    """The code at the left margin with `beside` wrapped to its right (each interface's line
    `  <shown>` gets agetty's address escape), then `below` at full width and a blank line.

    A line that could be wider than the space beside the code (a long interface name once
    agetty has put the address in, wide characters, a path too long for a row) goes below it
    instead: the code's rows must stay whole, and a path or address is not cut in two."""
    code_width = max((len(line) for line in code), default=0)
    room = ISSUE_WIDTH - len(_MARGIN) - code_width - len(_GAP)
    escapes = {f"  {shown}": name for shown, name in networks}
    right: list[str] = []
    under: list[str] = []
    for text in beside:
        if text in escapes:
            address = agetty_address(escapes[text])
            widest = text + " " + (_WIDEST_IPV4 if escapes[text] else address)
            if display_width(widest) <= room:
                right.append(f"{escape_agetty(text)} {address}")
            else:
                under.append(f"{_MARGIN}Network: {escape_agetty(text.strip())} {address}")
            continue
        wrapped = wrap_for_agetty(text, room, indent="", whole_words=True, more="  ")
        if all(display_width(line) <= room for line in wrapped):
            right += wrapped
        else:
            under += wrap_for_agetty(text)
    lines = []
    for row in range(max(len(code), len(right))):
        left = code[row] if row < len(code) else ""
        text = right[row] if row < len(right) else ""
        lines.append(f"{_MARGIN}{left:<{code_width}}{_GAP}{text}".rstrip())
    for text in below:
        under += wrap_for_agetty(text)
    return [*lines, *under, ""]


Notifier = Callable[[str], tuple[bool, str]]


@dataclass
class Delivery:
    """What a report could not deliver, kept for a later rewrite of the same report: `extra`
    is shown among the warnings, `to_fix` (a message not sent; a stick not there is not)
    makes a success `degraded`."""

    extra: list[str] = field(default_factory=list)
    to_fix: list[str] = field(default_factory=list)


ReceiptWriter = Callable[[str], tuple[bool, str]]


def step_fixes(records: Mapping[str, StepRecord]) -> list[str]:
    """What the steps found left to fix (the Wi-Fi that did not join): each makes `degraded`."""
    return [line for r in records.values() for line in r.facts.get(TO_FIX, "").splitlines()]


def write_reports(
    paths: TargetPaths,
    check: SeedCheck | None,
    records: Mapping[str, StepRecord],
    outcome: Outcome,
    *,
    notify: Notifier | None = None,
    receipt: ReceiptWriter | None = None,
    delivery: Delivery | None = None,
    findings: Findings | None = None,
) -> list[str]:
    """Send, then write, every report; return what happened to each (for the caller's log).

    `delivery` collects what could not be delivered (the message, the receipt) and is shown in
    the summary: a later rewrite of the summary passes the same list, and keeps those lines.
    """
    results: list[str] = []
    delivery = Delivery() if delivery is None else delivery
    extra, to_fix = delivery.extra, delivery.to_fix
    for line in step_fixes(records):
        note_once(to_fix, line)
    upkeep = read_upkeep(paths)
    machine = [*upkeep.lines, *render_machine(paths, check)]
    keys = render_key_states(check)
    summary = render_summary(
        check,
        records,
        outcome,
        machine=machine,
        to_fix=_to_fix(step_fixes(records), findings),
        findings=findings,
    )
    if notify is not None:
        sent, why = notify(summary)
        results.append("Telegram message to the admin: " + ("sent" if sent else f"not sent: {why}"))
        if not sent:
            note_once(extra, f"Telegram message not sent: {why}")
            note_once(to_fix, f"Telegram message not sent: {why}")
    if receipt is not None:
        full = render_summary(
            check, records, outcome, extra, machine, _to_fix(to_fix, findings), findings
        )
        written, why = receipt(with_keys(full, keys))
        results.append(f"receipt on the stick: {why}")
        if not written:
            note_once(extra, f"no receipt on the stick: {why}")
    summary = render_summary(
        check, records, outcome, extra, machine, _to_fix(to_fix, findings), findings
    )
    paths.summary.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(paths.summary, with_keys(summary, keys), mode=0o600)
    head = ""
    if check is not None and check.resolved is not None:
        host = check.resolved.host
        head = f"Host {host.hostname}, assistant {host.assistant_name}"
    seed = check.resolved if check is not None else None
    url = dashboard_url(seed) if seed is not None else None
    status = status_text(outcome, _to_fix(to_fix, findings), findings)
    screen = LoginScreen(head, outcome.ok, outcome.headline, outcome.platform, status, url)
    screen = replace(screen, error=outcome.error, hint=outcome.hint)
    write_login_screen(paths, screen)
    return results


@dataclass(frozen=True)
class LoginScreen:
    """What the login screen shows of first boot, kept (root, 0600) so the screen can be drawn
    again with how updates and backups went since (`refresh_login_screen`)."""

    head: str
    ok: bool
    headline: str
    platform: str
    status: str
    dashboard: str | None
    error: str | None = None
    hint: str | None = None


def write_login_screen(paths: TargetPaths, screen: LoginScreen) -> None:
    """The issue file, with the upkeep's two lines; a problem they hold makes an `ok` box
    `degraded` with its reason."""
    upkeep = read_upkeep(paths)
    outcome = Outcome(screen.ok, screen.headline, screen.error, screen.hint, screen.platform)
    status = degrade(screen.status, upkeep.problems)
    issue = render_issue(screen.head, outcome, paths, status, screen.dashboard, upkeep.lines)
    write_atomic(paths.issue_file, issue, mode=0o644)
    write_atomic(_screen_record(paths), json.dumps(asdict(screen)) + "\n", mode=0o600)


def _screen_record(paths: TargetPaths) -> Path:
    return paths.setup_state_dir / "login-screen.json"


def refresh_login_screen(paths: TargetPaths) -> bool:
    """Draw the login screen again as first boot left it, with the upkeep's lines as they are
    now; False when first boot has not drawn it (nothing to refresh)."""
    try:
        doc = json.loads(read_bytes_nofollow(_screen_record(paths), trusted=True))
        screen = LoginScreen(**doc)
    except (OSError, ValueError, TypeError):
        return False
    write_login_screen(paths, screen)
    return True


def _to_fix(to_fix: Sequence[str], findings: Findings | None) -> list[str]:
    return [*to_fix, *(findings.to_fix() if findings is not None else ())]


def status_text(outcome: Outcome, to_fix: Sequence[str], findings: Findings | None) -> str:
    """The status word, with the cause for `degraded: no network (<reason>)`."""
    status = outcome.status(to_fix)
    detail = findings.status_detail() if findings is not None else None
    return f"{status}: {detail}" if status is Status.DEGRADED and detail else str(status)


def note_once(notes: list[str], note: str) -> None:
    if note not in notes:
        notes.append(note)


def with_keys(text: str, keys: Sequence[str]) -> str:
    return text + ("\n" + "\n".join(keys) + "\n" if keys else "")
