"""The value rules of the keys that keep a box going for years (DESIGN §9): the update window,
unattended security updates on or off, the owner's backup keys and the backup directory. Pure,
like `installer.seed.rules` (whose `SeedValueError` they raise): `check`, the wizard and first
boot run the very same rule, and the check page (installer/media/check_page.js) mirrors it.

Decisions documented here (DESIGN leaves them open):
- UPDATE_WINDOW is `HH:MM-HH:MM` in the box's local time (TIMEZONE); it may cross midnight
  (`23:30-00:30`), lasts at least 30 minutes and less than a day. Hours may have one digit;
  the normalised form has two (`4:00-5:00` → `04:00-05:00`).
- UPDATES is `on` (the default) or `off`; `security` (DESIGN's first word for it) means `on`.
- UPDATE_CHANNEL is where the box asks daily for a newer platform release: an `https://` (or
  `http://`: the publisher's signature protects a release, not the address) address by the one
  rule of installer.update_channel, or `off` (any case): no channel at all. Not set: the box
  keeps the channel it has (the image's default, or install-platform's). Set, it replaces it.
- BACKUP_RECIPIENT is one or more age X25519 public keys (`age1…`, 62 characters), separated
  by commas or spaces, at most 16; a key written in capitals is the same key. Each is parsed
  by pyrage, the very parser the backup uses; a secret key (`AGE-SECRET-KEY-1…`) is refused
  without echoing it.
- BACKUP_DIR is an absolute path of the box, written in its normalised form (no `//`, no `.`,
  no trailing `/`; `..` is refused), never `/` itself nor under /tmp, /run, /proc, /sys or
  /dev (gone at reboot, or not files at all).
"""

from __future__ import annotations

import re

from installer.seed.rules import SeedValueError
from installer.update_channel import OFF, ChannelUrlError, parse_channel_url

WINDOW_MINIMUM_MIN = 30
DEFAULT_WINDOW = "04:00-05:00"
MAX_RECIPIENTS = 16
BACKUP_DIR_REFUSED = ("/tmp", "/run", "/proc", "/sys", "/dev")  # noqa: S108 - names to refuse
MAX_PATH = 4095

_WINDOW_RE = re.compile(r"([0-9]{1,2}):([0-9]{2})[ \t]*-[ \t]*([0-9]{1,2}):([0-9]{2})")
_WINDOW_HINT = "write the window as HH:MM-HH:MM in local time, e.g. 04:00-05:00 or 23:30-00:30"
CHANNEL_HINT = (
    "copy the address of the update channel the publisher gives, beginning with https, or "
    "write off for no update channel"
)
_RECIPIENT_RE = re.compile(r"age1[02-9ac-hj-np-z]{58}")
_RECIPIENT_HINT = (
    "give the owner's public key: the line `age1…` that `age-keygen` prints (never the "
    "AGE-SECRET-KEY line); several keys are separated by commas or spaces"
)


def window_minutes(window: str) -> tuple[int, int]:
    """A normalised window's start and end, in minutes after midnight."""
    start, end = window.split("-")
    return _minutes(start), _minutes(end)


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def window_length(start: int, end: int) -> int:
    """Minutes from `start` to `end`, across midnight when `end` comes first."""
    return (end - start) % (24 * 60)


def check_update_window(value: str) -> str:
    """HH:MM-HH:MM, local time, at least 30 minutes; the normalised form."""
    found = _WINDOW_RE.fullmatch(value)
    if found is None:
        raise SeedValueError("not a time window", _WINDOW_HINT)
    h1, m1, h2, m2 = (int(part) for part in found.groups())
    for hours, minutes in ((h1, m1), (h2, m2)):
        if hours > 23 or minutes > 59:
            raise SeedValueError(
                f"{hours}:{minutes:02d} is not a time of day",
                "hours run from 00 to 23 and minutes from 00 to 59, e.g. 04:00-05:00",
            )
    length = window_length(h1 * 60 + m1, h2 * 60 + m2)
    if length < WINDOW_MINIMUM_MIN:
        raise SeedValueError(
            f"the window lasts {length} minutes; it needs at least {WINDOW_MINIMUM_MIN}",
            "give the updates and the reboot they may need some room, e.g. 04:00-05:00 (a "
            "window may cross midnight: 23:30-00:30)",
        )
    return f"{h1:02d}:{m1:02d}-{h2:02d}:{m2:02d}"


def check_updates(value: str) -> str:
    """on or off (`security` is on)."""
    answer = value.lower()
    if answer == "security":
        return "on"
    if answer not in {"on", "off"}:
        raise SeedValueError(
            "write on or off",
            "on (the default): Debian's security fixes are applied in UPDATE_WINDOW; off: "
            "nothing is updated by itself",
        )
    return answer


def check_update_channel(value: str) -> str:
    """`off`, or a channel's address (normalised: no `/` at the end)."""
    if value.lower() == OFF:
        return OFF
    try:
        return parse_channel_url(value)
    except ChannelUrlError as err:
        raise SeedValueError(
            str(err),
            CHANNEL_HINT,
        ) from None


def split_recipients(value: str) -> list[str]:
    """The keys of a BACKUP_RECIPIENT value (commas or spaces between them)."""
    return [part for part in re.split(r"[ \t,]+", value) if part]


def check_backup_recipient(value: str) -> str:
    """One or more age public keys; the normalised form: lowercase, one space between."""
    import pyrage  # type: ignore[import-untyped]  # the backup's parser, loaded when needed

    keys = split_recipients(value)
    if not keys:
        raise SeedValueError("no key", _RECIPIENT_HINT)
    if len(keys) > MAX_RECIPIENTS:
        raise SeedValueError(f"{len(keys)} keys; at most {MAX_RECIPIENTS}", _RECIPIENT_HINT)
    found: list[str] = []
    for number, key in enumerate(keys, start=1):
        which = f"key {number}" if len(keys) > 1 else "the key"
        if key.upper().startswith("AGE-SECRET-KEY-"):
            raise SeedValueError(
                f"{which} is a secret key (AGE-SECRET-KEY-…): it must never be on the stick "
                "nor on the box, or the box could read its own backups",
                "remove it, keep it safe on your own computer, and give its public key: "
                "the `# public key: age1…` line age-keygen printed",
            )
        text = key.lower()
        if _RECIPIENT_RE.fullmatch(text) is None:
            raise SeedValueError(f"{which} is not an age public key (age1…)", _RECIPIENT_HINT)
        try:
            pyrage.x25519.Recipient.from_str(text)
        except pyrage.RecipientError:
            raise SeedValueError(
                f"{which} is not an age public key: a character is wrong or missing",
                "copy the whole `age1…` line again (its last characters are a checksum)",
            ) from None
        if text not in found:
            found.append(text)
    return " ".join(found)


def check_backup_dir(value: str) -> str:
    """An absolute path of the box, normalised; not `/`, not a place that is no disk."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value) or len(value) > MAX_PATH:
        raise SeedValueError(
            "not a path: it holds a control character or is too long",
            "write the directory as an absolute path, e.g. /srv/backup",
        )
    if not value.startswith("/"):
        raise SeedValueError(
            "not an absolute path",
            "write the whole path from /, e.g. /srv/backup or /mnt/second-disk/clawdie",
        )
    parts = [part for part in value.split("/") if part not in {"", "."}]
    if ".." in parts:
        raise SeedValueError("a path with .. in it", "write the directory it ends at, from /")
    if not parts:
        raise SeedValueError(
            "the whole disk (/) is not a backup directory",
            "name a directory of its own, e.g. /srv/backup, best on a second disk",
        )
    path = "/" + "/".join(parts)
    for refused in BACKUP_DIR_REFUSED:
        if path == refused or path.startswith(refused + "/"):
            raise SeedValueError(
                f"{refused} is not kept on a disk: a backup there is gone at the next reboot",
                "name a directory on a disk, e.g. /srv/backup, best on a second disk",
            )
    return path
