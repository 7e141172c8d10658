"""Adopt, the plan (pure): what an `INSTALL_MODE=adopt` seed does to an existing installation,
key by key, before anything is touched.

Each key the seed sets is `applied`, `kept` (the box already has that value, or the key is an
instruction for this run) or `refused` (with the reason and the fix):

- safe to change: the profile and the model overrides, their providers' keys, time zone,
  locale, keyboard;
- filled only when blank: the dashboard operator (OPERATOR_EMAIL with its password) and the
  service account's fallback password; an SSH key is added next to the keys already there,
  never in their place;
- identity (host name, dashboard domain, assistant name, Telegram bot and admin): refused when
  different, unless ALLOW_IDENTITY_CHANGE=yes;
- the service account is never renamed;
- the Wi-Fi password is not kept on the box, its key (the PSK) is: that key stands for
  WIFI_PASSWORD while the box stays on its network, so a seed may leave the Wi-Fi lines out; a
  seed that names another network gives that network's password too (`wifi_key_problem`).

`merged_values` is then what first boot's own steps apply: the installation's values, with the
applied keys of the seed in their place. Reasons never quote a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from installer.seed.model import DECLARATIONS, FIELD_NAMES, SECRET_KEYS, keys_where
from installer.seed.profiles import Source
from installer.seed.reader import Problem
from installer.seed.resolve import Given, SeedCheck

Outcome = Literal["applied", "kept", "refused"]

# The adopt classes, as each key declares (`installer.seed.model.KeyFacts.adopt`).
# Instructions for this run, not settings of the box.
RUN_KEYS = keys_where(lambda s: s.adopt == "run")
IDENTITY_KEYS = keys_where(lambda s: s.adopt == "identity")
PROVIDER_KEYS = keys_where(lambda s: s.group == "provider")
NETWORK_KEYS = keys_where(lambda s: s.tier == "network")
# DESIGN §6: moving a box to another network is not a new identity
SAFE_KEYS = keys_where(lambda s: s.adopt == "safe")
# Who can reach or control the box, or whose accounts it spends: listed under their own heading
# in the receipt and the admin's message (DESIGN §10).
ACCESS_KEYS = keys_where(lambda s: s.access)
_IDENTITY_WORDS = {key: DECLARATIONS[key].words for key in IDENTITY_KEYS}
# Kept by the box itself, not its record: the operator in the database (its password only as a
# hash), the fallback password in /etc/shadow, the authorized keys in the service account's home
# (the record names them all, one a line). The steps leave what exists alone; the record keeps
# them (installer/adopt/record.py).
_KEPT_ELSEWHERE = keys_where(lambda s: s.adopt == "kept")
# Keys whose kept value is written back as the seed gives it (the same value, now explicit).
_PINNED = SAFE_KEYS | IDENTITY_KEYS


@dataclass(frozen=True)
class InstalledSetting:
    """One resolved setting of the installation as its record keeps it: the value (the secret's
    value from system.env, WIFI_PASSWORD's the PSK from the supplicant's configuration, or None
    when the box does not keep it) and whether setup.txt or the console gave it (`given`)
    rather than a default, a profile or a derivation."""

    key: str
    value: str | None = field(repr=False)
    given: bool
    secret: bool


@dataclass(frozen=True)
class Installation:
    """What an adopt run compares the seed against (read by `installer.adopt.run`)."""

    fingerprint: str
    settings: Mapping[str, InstalledSetting]
    ssh_keys: tuple[str, ...] = ()
    user_password_hash: str | None = field(default=None, repr=False)
    operator_email: str | None = None

    def value(self, key: str) -> str | None:
        setting = self.settings.get(key)
        return setting.value if setting is not None else None


@dataclass(frozen=True)
class KeyOutcome:
    key: str
    outcome: Outcome
    reason: str

    def render(self) -> str:
        return f"{self.key}: {self.outcome} ({self.reason})"


@dataclass(frozen=True)
class AdoptPlan:
    entries: tuple[KeyOutcome, ...]

    @property
    def applied(self) -> tuple[str, ...]:
        return tuple(e.key for e in self.entries if e.outcome == "applied")

    def outcome(self, key: str) -> KeyOutcome | None:
        return next((e for e in self.entries if e.key == key), None)


def ssh_key_id(line: str) -> tuple[str, ...]:
    """An authorized key's type and blob (its comment and options aside)."""
    return tuple(line.split()[:2])


def _shown(key: str, value: str | None) -> str:
    if value is None:
        return "not set"
    return "a secret (not shown)" if key in SECRET_KEYS else value


def _password_matches(password: str, hashed: str) -> bool:
    from passlib.hash import sha512_crypt

    return hashed.startswith("$6$") and bool(sha512_crypt.verify(password, hashed))


def _wifi_key_matches(password: str, key: str, ssid: str | None) -> bool:
    """Whether `key`, the PSK the box keeps (never its Wi-Fi password), is `password`'s."""
    from installer.seed.hashes import derive_psk

    return ssid is not None and derive_psk(password, ssid) == key


# C901 waived: one branch per adopt class of a key (16); it becomes a lookup when each key declares
# its class (issue 28, one declaration per key)
def plan_key(key: str, new: str, box: Installation, allow_identity: bool) -> KeyOutcome:  # noqa: C901
    """The outcome of setting `key` to `new` (normalised, as the seed resolves it) on `box`."""
    if key in RUN_KEYS:
        return KeyOutcome(key, "kept", "an instruction for this run, not a setting of the box")
    if key == "SSH_AUTHORIZED_KEY":
        if ssh_key_id(new) in {ssh_key_id(k) for k in box.ssh_keys}:
            return KeyOutcome(key, "kept", "the service account already has this key")
        kept = len(box.ssh_keys)
        return KeyOutcome(
            key, "applied", f"added; the {kept} key(s) already there stay" if kept else "added"
        )
    if key in {"OPERATOR_EMAIL", "OPERATOR_PASSWORD"}:
        email = box.operator_email
        if email is None:
            return KeyOutcome(key, "applied", "the dashboard had no operator yet")
        if key == "OPERATOR_EMAIL" and new.lower() == email.lower():
            return KeyOutcome(key, "kept", f"the dashboard operator is already {email}")
        if key == "OPERATOR_PASSWORD":
            return KeyOutcome(key, "kept", f"the dashboard operator {email} keeps its password")
        return KeyOutcome(
            key,
            "refused",
            f"the dashboard already has its operator {email}; adopt sets one only when there is "
            "none: change it in the dashboard",
        )
    if key == "CLAWDIE_USER_PASSWORD":
        hashed = box.user_password_hash or ""
        if not hashed.startswith("$"):
            return KeyOutcome(key, "applied", "the service account had no fallback password")
        if _password_matches(new, hashed):
            return KeyOutcome(key, "kept", "the fallback password is already this one")
        return KeyOutcome(
            key,
            "refused",
            "the service account has a fallback password already; change it on the box with passwd",
        )
    current = box.value(key)
    if current == new:
        return KeyOutcome(key, "kept", f"already {_shown(key, new)}")
    if (
        key == "WIFI_PASSWORD"
        and current
        and _wifi_key_matches(new, current, box.value("WIFI_SSID"))
    ):
        return KeyOutcome(key, "kept", "the box's Wi-Fi key is already this password's")
    was = f"was {_shown(key, current)}"
    if key == "SERVICE_ACCOUNT":
        return KeyOutcome(
            key,
            "refused",
            f"the platform runs as {current}; the service account is never renamed (its files "
            "and database role belong to it): remove the line",
        )
    if key in SAFE_KEYS or current is None:
        return KeyOutcome(key, "applied", "filled" if current is None else was)
    if key in IDENTITY_KEYS and allow_identity:
        return KeyOutcome(key, "applied", f"{was}; ALLOW_IDENTITY_CHANGE=yes")
    words = _IDENTITY_WORDS.get(key, key)
    return KeyOutcome(
        key,
        "refused",
        f"the box's {words} is different ({was}); to change who the box is, add "
        "ALLOW_IDENTITY_CHANGE=yes",
    )


def plan_adopt(box: Installation, seed: SeedCheck) -> AdoptPlan:
    """Every key `seed` sets, in setup.txt order of the model, with its outcome on `box`.

    `seed` is the adopt seed checked over the installation's values (so its resolved values are
    normalised as the model does)."""
    resolved = seed.require_resolved()
    text = {s.key: s.reveal() for s in resolved.settings}
    allow = resolved.install.allow_identity_change
    entries = []
    for key in FIELD_NAMES:
        given = seed.given.get(key)
        if given is None or given.source.kind != "line":
            continue
        entries.append(plan_key(key, text.get(key, given.value), box, allow))
    return AdoptPlan(tuple(entries))


def wifi_key_problem(box: Installation, given: Mapping[str, Given]) -> Problem | None:
    """A seed that moves the box to another Wi-Fi network without that network's password: the
    box keeps only the key of the network it is on (derived from its name, so it joins no other),
    which would otherwise fill WIFI_PASSWORD."""
    ssid = given.get("WIFI_SSID")
    current = box.value("WIFI_SSID")
    if ssid is None or current is None or ssid.value == current or "WIFI_PASSWORD" in given:
        return None
    return Problem(
        ssid.source.line,
        "WIFI_SSID",
        "another Wi-Fi network than the box's needs its password: the box keeps only the key "
        "of the network it is on, which joins no other",
        "add a WIFI_PASSWORD= line with the new network's password, or remove the WIFI_SSID "
        "line to keep the box's Wi-Fi as it is",
    )


def installed_values(box: Installation) -> dict[str, Given]:
    """The values the installation was set up with, as a seed would give them (the operator
    and the passwords, which the box keeps elsewhere, left out), plus its host name and domain
    pinned: a new assistant name must not rename the host by derivation."""
    kept = Source("installed")
    values = {
        key: Given(s.value, kept)
        for key, s in box.settings.items()
        if key in FIELD_NAMES
        and key not in RUN_KEYS | _KEPT_ELSEWHERE
        and s.given
        and s.value is not None
    }
    for key in ("ASSISTANT_NAME", "HOSTNAME", "AGENT_DOMAIN"):
        value = box.value(key)
        if value is not None:
            values[key] = Given(value, kept)
    return values


def merged_values(box: Installation, seed: SeedCheck, plan: AdoptPlan) -> dict[str, Given]:
    """What first boot's steps apply: the installation's values with the applied keys of the
    seed in their place (and its kept settings, the same values, as written). A changed host
    name takes a derived dashboard domain along."""
    values = installed_values(box)
    applied = set(plan.applied)
    if (
        "HOSTNAME" in applied
        and not box.settings.get("AGENT_DOMAIN", InstalledSetting("", None, False, False)).given
    ):
        values.pop("AGENT_DOMAIN", None)
    for entry in plan.entries:
        # a kept value is the box's already; taken as written it stays pinned (a model line
        # equal to the old profile's choice must survive a new PROFILE)
        if entry.outcome == "applied" or (entry.outcome == "kept" and entry.key in _PINNED):
            values[entry.key] = seed.given[entry.key]
    return values
