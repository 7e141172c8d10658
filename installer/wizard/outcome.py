"""What the wizard hands back. No textual here: first boot imports this without paying for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from installer.errors import InstallerError

Status = Literal["done", "cancelled", "timeout"]


@dataclass(frozen=True)
class WizardOutcome:
    """The operator's answers.

    `status` is "done" when the operator confirmed a valid result, "cancelled" when they quit,
    "timeout" when nobody touched the keyboard in time. `answers` holds, for "done" only, every
    asked key with the text typed (edges trimmed; "" = leave the key unset); feed it to
    `resolve.apply_answers`. `repr` leaves the answers out: they hold passwords and keys.
    """

    status: Status
    answers: dict[str, str] = field(default_factory=dict, repr=False)


class NoConsoleError(InstallerError):
    """The wizard was asked to run without a terminal to run on."""
