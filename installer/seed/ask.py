"""Step 2's judgement, shared by the disk installer and first boot: a seed checked, and what is
missing or invalid asked for on the console (the wizard answers through an `Asker`), or a
worded refusal naming the seed's first problem."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from installer import redact
from installer.errors import InstallerError
from installer.seed.messages import render_problem_head
from installer.seed.resolve import SeedCheck, apply_answers, check_seed_bytes, keys_to_ask

log = logging.getLogger("clawdie.firstboot")

# What the operator's answers look like when a console wizard asks for missing fields:
# given the seed and its problems, return answers (key -> typed text), or None to give up.
Asker = Callable[[SeedCheck], "Mapping[str, str] | None"]


class SeedInvalidError(InstallerError):
    """The seed has problems and nobody could answer them; `check` says which."""

    def __init__(self, message: str, hint: str | None = None, check: SeedCheck | None = None):
        super().__init__(message, hint)
        self.check = check


def register_secrets(check: SeedCheck) -> None:
    """Every secret value the seed holds (valid or not) is masked in logs and messages."""
    from installer.seed.model import SECRET_KEYS

    redact.register(*(g.value for key, g in check.given.items() if key in SECRET_KEYS))
    redact.register(*(s.reveal() for s in check.settings if s.secret))


FIRST_BOOT_AGAIN = "restart the machine: first boot runs again"
INSTALL_AGAIN = "restart the machine from the stick to install again"


def render_cause(check: SeedCheck) -> str:
    """The seed's first problem as the cause (`setup.txt:1: KEY: message`), and how many more."""
    if not check.problems:
        return f"{check.name} is not valid"
    first = render_problem_head(check.problems[0], check.name)
    more = len(check.problems) - 1
    return first + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def resolve_seed(
    data: bytes,
    name: str,
    asker: Asker | None,
    again: str = FIRST_BOOT_AGAIN,
    *,
    sealed: bool = False,
) -> tuple[SeedCheck, dict[str, str]]:
    """Step 2: validate the seed; ask the console for what is missing or invalid.

    Returns the valid, resolved seed and the operator's answers ({} when none were needed).
    Raises SeedInvalidError when nobody can or does answer: its message names the seed's first
    problem (the cause) before what followed from it; `again` ends the hint (installer or first
    boot). Shared with the disk installer. `sealed`: `data` is the installer's own copy.
    """
    check = check_seed_bytes(data, name=name, sealed=sealed)
    register_secrets(check)
    if check.valid:
        return check, {}
    keys = keys_to_ask(check)
    log.warning("seed: %d problem(s); asking for: %s", len(check.problems), ", ".join(keys))
    if asker is None or not keys:
        raise SeedInvalidError(
            f"{render_cause(check)}; there is no console to ask on",
            f"fix {name} (clawdie-setup check shows every problem), then {again}",
            check,
        )
    given = asker(check)
    if given is None:
        raise SeedInvalidError(
            f"{render_cause(check)}; the questions on the console were not answered",
            f"fix {name} or answer on the console, then {again}",
            check,
        )
    answers = {k: v for k, v in given.items() if v}
    redact.register(*answers.values())  # an answer to any question may be a secret
    check = apply_answers(check, answers)
    if not check.valid:
        raise SeedInvalidError(
            f"{render_cause(check)}; the answers on the console left it",
            f"fix {name}, then {again}",
            check,
        )
    return check, answers
