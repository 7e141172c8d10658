"""Building blocks for seed tests: valid values and a way to write them as an editor would."""

from __future__ import annotations

TOKEN = "7012345678:AAHdemoDemoDemoDemoDemoDemoDemo1234"
ADMIN = "123456789"
OPENROUTER = "sk-or-v1-" + "0123456789abcdef" * 4
# A sentinel secret: if it ever shows up in output, a secret leaked.
SENTINEL = "Sentinel-Secret-7f3a9c51"
# A sentinel shaped like a word of a key, for a secret typed after a key without its '='
# (`OPERATOR_PASSWORD Qz7Sentinel=…`): a reader that echoes key-like text would print it.
SENTINEL_WORD = "Qz7Sentinel"
PASSWORD = "correct horse battery"
ED25519 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm1Q6Xq2H3rXk0mWbX9cP0nB7y7bqvRZ4m7bYVJ3p9E demo@laptop"
)
RSA_BLOB = "AAAAB3NzaC1yc2EAAAADAQABAAABAQC7"

REQUIRED = [
    f"TELEGRAM_BOT_TOKEN={TOKEN}",
    f"TELEGRAM_ADMIN_ID={ADMIN}",
    f"OPENROUTER_API_KEY={OPENROUTER}",
]


def seed(*lines: str, eol: str = "\n", encoding: str = "utf-8", bom: bytes = b"") -> bytes:
    """Lines joined with `eol` (and a final one), encoded, with an optional byte-order mark."""
    return bom + (eol.join(lines) + eol).encode(encoding)


def valid(*extra: str, eol: str = "\n", encoding: str = "utf-8", bom: bytes = b"") -> bytes:
    """The three required lines (lines 1-3), then `extra` from line 4 on."""
    return seed(*REQUIRED, *extra, eol=eol, encoding=encoding, bom=bom)
