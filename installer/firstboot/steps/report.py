"""Step 8, report: the install summary (0600), the console issue file, the receipt on the stick
and a Telegram message to the admin. Never a secret value: only masked settings are shown."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from installer.firstboot.stamps import StepRecord
from installer.fsutil import write_atomic
from installer.paths import TargetPaths
from installer.seed.messages import render_problem_line
from installer.seed.resolve import SeedCheck, mask_secret
from installer.seed.resolved import ResolvedSeed


@dataclass(frozen=True)
class Outcome:
    """How first boot ended, for the report."""

    ok: bool
    headline: str
    error: str | None = None
    hint: str | None = None
    platform: str = "not started yet"


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
) -> list[str]:
    """Send, then write, every report; return what happened to each (for the caller's log)."""
    results: list[str] = []
    extra: list[str] = []
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
    if check is not None and check.resolved is not None:
        host = check.resolved.host
        head = f"Host {host.hostname}, assistant {host.assistant_name}"
    write_atomic(paths.issue_file, render_issue(head, outcome, paths), mode=0o644)
    return results
