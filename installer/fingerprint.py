"""The installation fingerprint: an app-specific id derived from the machine id.

systemd's recommendation (`sd_id128_get_machine_app_specific`, machine-id(5)): never show or send
the machine id itself; derive a per-application id with HMAC-SHA256 keyed by the machine id over
a fixed application id, shaped as a UUID v4. The operator sees the first 8 hex digits (the login
screen, the summary, the receipt) and types them as `INSTALL_FINGERPRINT` to adopt a box.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from installer.errors import InstallerError
from installer.paths import TargetPaths

# Fixed for the product: changing it changes every box's fingerprint.
APP_ID = uuid.UUID("8f0a5e2c-4b1d-4e7f-9a3c-6b2d1e0f4a5b")
SHOWN_DIGITS = 8


class NoMachineIdError(InstallerError):
    """The system has no machine id yet, so it has no fingerprint."""


def installation_id(machine_id: str) -> uuid.UUID:
    """The app-specific id of `machine_id` (32 hex digits), as `systemd-id128 machine-id
    --app-specific=APP_ID` prints it."""
    try:
        key = bytes.fromhex(machine_id.strip())
    except ValueError:
        key = b""
    if len(key) != 16:
        raise NoMachineIdError(
            "the machine id is not 32 hex digits", "boot the installed system once to make it"
        )
    digest = hmac.new(key, APP_ID.bytes, hashlib.sha256).digest()[:16]
    return uuid.UUID(bytes=digest, version=4)


def short_fingerprint(full: uuid.UUID) -> str:
    """What the operator reads and types: the first 8 hex digits."""
    return full.hex[:SHOWN_DIGITS]


def read_installation_id(paths: TargetPaths) -> uuid.UUID:
    """The installation's id: its record when there is one (a restored box keeps the old box's),
    else derived from the machine id."""
    try:
        return uuid.UUID(paths.fingerprint_record.read_text(encoding="ascii").strip())
    except (OSError, UnicodeDecodeError, ValueError):
        pass
    try:
        machine_id = paths.machine_id.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as err:
        raise NoMachineIdError(
            f"cannot read {paths.machine_id}: {getattr(err, 'strerror', None) or err}",
            "boot the installed system once to make it",
        ) from None
    return installation_id(machine_id)


def read_fingerprint(paths: TargetPaths) -> str:
    """The installation fingerprint of the system at `paths` (8 hex digits)."""
    return short_fingerprint(read_installation_id(paths))


def matches(given: str, actual: str) -> bool:
    """`INSTALL_FINGERPRINT` as typed (any case, dashes allowed) against the actual one."""
    typed = given.strip().lower().replace("-", "")
    return len(typed) >= SHOWN_DIGITS and actual.startswith(typed[:SHOWN_DIGITS])
