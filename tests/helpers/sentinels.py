"""The one set of sentinel secrets. A test plants these and greps every output, file, log,
receipt and bundle for them: if one shows up, a secret leaked.

Every secret below but the two whose alphabet cannot hold it carries the stem `SENTINEL`, so
one `SENTINEL not in text` catches any of them, even percent-encoded (the stem has only letters
and digits, which encoding leaves alone). Each one also has the shape its field's rule
accepts, so a seed holding them is valid.
"""

from __future__ import annotations

# The stem: letters and digits only, so it fits inside every secret field's shape.
SENTINEL = "SENTINELxSECRETx7f3a9c51"

# A secret for each secret field, built on the stem.
TOKEN = "7012345678:" + ("AAH" + SENTINEL + "abcdefghijklmnop")[:35]
NEW_TOKEN = "7099999999:" + ("BBH" + SENTINEL + "qrstuvwxyzabcdef")[:35]  # a token replaced
OPENROUTER = f"sk-or-v1-{SENTINEL}0123456789abcdef"
OPERATOR_PASSWORD = f"op {SENTINEL} pass"
USER_PASSWORD = f"fallback-{SENTINEL}"
WIFI_PASSWORD = f"wifi {SENTINEL}"
DB_PASSWORD = f"Db/{SENTINEL}+%&="  # URL-special characters on purpose (a database URL)

# Two whose alphabet cannot hold the stem: grep for these by name.
# Shaped like a word of a key, for a secret typed after a key without its '='
# (`OPERATOR_PASSWORD Qz7Sentinel=…`): a reader that echoes key-like text would print it.
ROW = "SENTINELxROWx8e21c4d0"  # a row the platform writes (backup, factory reset)
DROPPED_ROW = "SENTINELxDROPPEDx5c7e20a1"  # a row of a database dropped before a factory reset
SENTINEL_WORD = "Qz7Sentinel"
# In the adopt code's own alphabet (no I, L, O, 0, 1).
SENTINEL_CODE = "ZQ7K-SENT-XNEW-7F3A"
# A real age identity (bech32 has no I or O): the owner's key a restore seed carries
# (BACKUP_IDENTITY); BACKUP_RECIPIENT is its public half, what a box's backups are made for.
BACKUP_IDENTITY = "AGE-SECRET-KEY-15XW29UPAVS0THGD0RLRX0UYPMU9JTJKHTQVVVEA6YPMHP7EY4AYSFVF3HM"
BACKUP_RECIPIENT = "age12wxuy0txkxhpcv50jtzd969qnapyesapujvjcknk5pzc6y87kcksfu82qy"

ALL = (SENTINEL, SENTINEL_WORD, SENTINEL_CODE, BACKUP_IDENTITY)


def leaked(text: str) -> list[str]:
    """The sentinels `text` holds (none: nothing leaked)."""
    return [sentinel for sentinel in ALL if sentinel in text]
