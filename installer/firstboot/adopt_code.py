"""The adopt code (DESIGN §10): whose box it is. The fingerprint says which box a stick is for
and is public (the login screen shows it); the code proves the stick's maker owns the box.

- made on the box (first boot's report, or `clawdie-setup adopt-code --new`), never at image
  build: 16 characters from an alphabet without look-alikes (no 0/O, 1/I/L), in four groups of
  four, e.g. `K7QD-M4XP-R9TW-3HNE`: 16 x log2(31) = 79 bits;
- kept only as a slow hash (scrypt, through passlib) in root's state directory
  (`adopt-code.hash`, 0600); the plain code lives in memory only, and goes to the owner once: the
  first-boot receipt on the stick and the Telegram report (while that waits offline, its queue
  file holds it; the retry timer removes the file when it is sent);
- typed in any case, with or without dashes or spaces;
- wrong codes are counted in `/run/clawdie-setup` (root, 0700, a tmpfs: a reboot clears it);
  after `MAX_WRONG` of them every stick is refused until the next reboot, even with the right
  code.
"""

from __future__ import annotations

import secrets

from pydantic import SecretStr

from installer.fsutil import ensure_dir, read_bytes_nofollow, write_atomic
from installer.paths import TargetPaths
from installer.seed.rules import (
    ADOPT_CODE_ALPHABET,
    ADOPT_CODE_GROUP_LEN,
    ADOPT_CODE_GROUPS,
    normalise_adopt_code,
)

MAX_WRONG = 5
SCRYPT_ROUNDS = 15  # log2(N): 32 MiB and a fraction of a second per check
KEY = "ADOPT_CODE"
REFUSED = "refused: wrong or missing ADOPT_CODE"
NEW_CODE_COMMAND = "clawdie-setup adopt-code --new"


def make_code() -> SecretStr:
    """A new code from the kernel's random source, grouped for typing."""
    size, step = ADOPT_CODE_GROUPS * ADOPT_CODE_GROUP_LEN, ADOPT_CODE_GROUP_LEN
    chars = "".join(secrets.choice(ADOPT_CODE_ALPHABET) for _ in range(size))
    return SecretStr("-".join(chars[i : i + step] for i in range(0, size, step)))


def hash_code(code: SecretStr) -> str:
    from passlib.hash import scrypt

    hasher = scrypt.using(rounds=SCRYPT_ROUNDS)  # type: ignore[no-untyped-call]
    return str(hasher.hash(code.get_secret_value()))


def store_code(paths: TargetPaths, code: SecretStr) -> None:
    """Keep `code`'s hash in root's state (replacing the one before: that code is refused
    from now on)."""
    ensure_dir(paths.setup_state_dir, 0o700, 0, 0)
    write_atomic(paths.adopt_code_hash, hash_code(code) + "\n", mode=0o600, uid=0, gid=0)


def new_code(paths: TargetPaths) -> SecretStr:
    """Make a code and keep its hash; the plain code is returned, to be shown once."""
    code = make_code()
    store_code(paths, code)
    return code


def has_code(paths: TargetPaths) -> bool:
    return paths.adopt_code_hash.is_file()


def code_matches(paths: TargetPaths, typed: str | None) -> bool:
    """Whether `typed` is this box's code (False without a code on the box, or none typed)."""
    from passlib.hash import scrypt

    if not typed:
        return False
    code = normalise_adopt_code(typed)
    try:
        stored = read_bytes_nofollow(paths.adopt_code_hash, 4096).decode("ascii").strip()
    except (OSError, UnicodeError):
        return False
    if code is None or not stored.startswith("$scrypt$"):
        return False
    try:
        return bool(scrypt.verify(code, stored))
    except ValueError:  # a damaged hash: no code matches it
        return False


def wrong_codes(paths: TargetPaths) -> int:
    """Wrong codes seen since the box started."""
    try:
        text = read_bytes_nofollow(paths.adopt_failures, 64).decode("ascii").strip()
    except (OSError, UnicodeError):
        return 0
    return int(text) if text.isdigit() else MAX_WRONG  # a damaged counter keeps adopt closed


def count_wrong_code(paths: TargetPaths) -> int:
    """One more wrong code; returns how many now."""
    count = wrong_codes(paths) + 1
    ensure_dir(paths.runtime_dir, 0o700, 0, 0)
    write_atomic(paths.adopt_failures, f"{count}\n", mode=0o600, uid=0, gid=0)
    return count


def is_closed(paths: TargetPaths) -> bool:
    return wrong_codes(paths) >= MAX_WRONG


def closed_message() -> str:
    return (
        f"refused: {MAX_WRONG} wrong ADOPT_CODE attempts since the box started; adopt refuses "
        "every stick until the next reboot"
    )


def render_code_lines(code: SecretStr) -> list[str]:
    """The code as the owner is shown it, once: what it is for and how to replace it."""
    return [
        "Adopt code (shown only here and in the first-boot Telegram report; keep it):",
        f"  ADOPT_CODE={code.get_secret_value()}",
        "  A stick that changes this box (INSTALL_MODE=adopt) needs it next to "
        "INSTALL_FINGERPRINT;",
        f"  lost or seen by others: `{NEW_CODE_COMMAND}` as root on the box makes a new one.",
    ]
