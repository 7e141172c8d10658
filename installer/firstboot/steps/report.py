"""Step 8, report: the install summary (0600), the console issue file, the receipt on the stick
and a Telegram message to the admin. Never a secret value: only masked settings are shown."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from installer.firstboot.stamps import StepRecord
from installer.fsutil import write_atomic
from installer.paths import TargetPaths
from installer.seed.reader import Problem
from installer.seed.resolve import SeedCheck, mask


@dataclass(frozen=True)
class Outcome:
    """How first boot ended, for the report."""

    ok: bool
    headline: str
    error: str | None = None
    hint: str | None = None
    platform: str = "not started yet"


def _problem_line(problem: Problem, name: str) -> str:
    where = f"{name}:{problem.line}" if problem.line is not None else name
    key = f" {problem.key}:" if problem.key else ""
    hint = f" ({problem.hint})" if problem.hint else ""
    return f"  - {where}:{key} {problem.message}{hint}"


def render_summary(
    check: SeedCheck | None,
    records: Mapping[str, StepRecord],
    outcome: Outcome,
    extra_warnings: Sequence[str] = (),
) -> str:
    """The full report as plain text: identity, models, what was done and skipped, warnings."""
    status = "SUCCESS" if outcome.ok else "FAILED"
    out = [f"Clawdie first boot: {status}", f"{outcome.headline}", ""]
    if outcome.error:
        out += [f"Reason: {outcome.error}"]
        if outcome.hint:
            out += [f"What to do: {outcome.hint}"]
        out.append("")
    if check is not None and check.problems:
        out.append(f"Problems in {check.name}:")
        out += [_problem_line(p, check.name) for p in check.problems]
        out.append("")
    if check is not None and check.settings:
        v = check.value
        out += [
            f"Assistant:      {v('ASSISTANT_NAME')}",
            f"Host name:      {v('HOSTNAME')} (dashboard domain {v('AGENT_DOMAIN')})",
            f"Time zone:      {v('TIMEZONE')}, locale {v('LOCALE')}, keyboard {v('KEYMAP')}",
            f"Service account: {v('SERVICE_ACCOUNT')}",
            f"Telegram admin: {v('TELEGRAM_ADMIN_ID')}",
            f"Profile:        {v('PROFILE')} (profile mapping v{check.mapping_version})",
            f"  chat:         {v('PI_TUI_PROVIDER')} {v('PI_TUI_MODEL')}",
            f"  fallback:     {v('LLM_FALLBACK_PROVIDER')} {v('LLM_FALLBACK_MODEL')}",
            f"  compaction:   {v('AGENT_COMPACTION_PROVIDER')} {v('AGENT_COMPACTION_MODEL')}",
        ]
        keys = [s for s in check.settings if s.secret and s.key.endswith("_API_KEY")]
        out += [f"  {s.key}: {mask(s)}" for s in keys]
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
    out.append(f"Platform: {outcome.platform}")
    return "\n".join(out) + "\n"


def render_issue(summary_head: str, outcome: Outcome, paths: TargetPaths) -> str:
    """A short console login banner (agetty issue file); backslashes escaped for agetty."""
    where = f"/{paths.summary.relative_to(paths.root)}"
    lines = [
        "",
        f"  Clawdie first boot: {'SUCCESS' if outcome.ok else 'FAILED'} - {outcome.headline}",
        f"  {summary_head}" if summary_head else "",
        f"  Platform: {outcome.platform}",
        f"  Full report: {where}",
        "",
    ]
    return "\n".join(line for line in lines if line is not None).replace("\\", "\\\\") + "\n"


Notifier = Callable[[str], tuple[bool, str]]
ReceiptWriter = Callable[[str], tuple[bool, str]]


def write_reports(
    paths: TargetPaths,
    check: SeedCheck | None,
    records: Mapping[str, StepRecord],
    outcome: Outcome,
    *,
    notify: Notifier | None = None,
    receipt: ReceiptWriter | None = None,
    delivery: list[str] | None = None,
) -> list[str]:
    """Send, then write, every report; return what happened to each (for the caller's log).

    `delivery` collects what could not be delivered (the message, the receipt) and is shown in
    the summary: a later rewrite of the summary passes the same list, and keeps those lines.
    """
    results: list[str] = []
    extra: list[str] = delivery if delivery is not None else []
    summary = render_summary(check, records, outcome)
    if notify is not None:
        sent, why = notify(summary)
        results.append("Telegram message to the admin: " + ("sent" if sent else f"not sent: {why}"))
        if not sent:
            extra.append(f"Telegram message not sent: {why}")
    if receipt is not None:
        written, why = receipt(summary)
        results.append(f"receipt on the stick: {why}")
        if not written:
            extra.append(f"no receipt on the stick: {why}")
    summary = render_summary(check, records, outcome, extra)
    paths.summary.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(paths.summary, summary, mode=0o600)
    head = ""
    if check is not None and check.settings:
        head = f"Host {check.value('HOSTNAME')}, assistant {check.value('ASSISTANT_NAME')}"
    write_atomic(paths.issue_file, render_issue(head, outcome, paths), mode=0o644)
    return results
