"""Building blocks for seed tests: valid values, a way to write them as an editor would, and
the place a first-boot test keeps its seed."""

from __future__ import annotations

from pathlib import Path

from installer.dev.sandbox import make_sandbox_root

TOKEN = "7012345678:AAHdemoDemoDemoDemoDemoDemoDemo1234"
ADMIN = "123456789"
OPENROUTER = "sk-or-v1-" + "0123456789abcdef" * 4
PASSWORD = "correct horse battery"
ED25519 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm1Q6Xq2H3rXk0mWbX9cP0nB7y7bqvRZ4m7bYVJ3p9E demo@laptop"
)
RSA_BLOB = "AAAAB3NzaC1yc2EAAAADAQABAAABAQC7"
# Real keys made once with ssh-keygen (-t rsa -b 1024 / -b 2048, -t ecdsa -b 256); private halves
# thrown away.
RSA_1024 = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDj8zsh4bmmKmzpE03XSANBWx0+BauoRSQtWBaF//wvJC7a2U/lGC+X"
    "YzNDsQbBapBkUay6eLsUFtvhgcIGriL4Br+TvlPQ++a4Ih+mZx/x2sn2p6yWiaZEkXkXKnx2F1OT9zEi8APwAPQcMAOgox"
    "U3b2nCm74XHeHdmGLMZwOoJQ== weak@laptop"
)
RSA_2048 = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCZ7+j1FNprKTbGKWWyjTGAIE8QLKLo9nqE7GYogrdO8LcNko/TGb3V"
    "jHH+UhZmMb47LSsI5VKslhUtSts7+Zpg2SJtVGENkLCHTI2nq1sLWdQQ4J1S6hds63/TsluV0tFGbbR7jKqrkMuCN0XEw9"
    "c9xv+lgTBEznuee69ZuIM5F5ffM1amC1RF5uV6Kyu0k52g7CyJbz5fFnuOSpfjkOkZoD+FbsgzQiKvmTsoGyJl/XNuOtRI"
    "jQMtZCTiGKABDfQcegkKMkIRgo13ELFDHjwK2194l4GsrRUX/iUJQk8DNQv8MQ5wS5D+zPwanKA+6M7XSqbZ49q9FIHZAT"
    "OwZnnv demo@laptop"
)
ECDSA_256 = (
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFknWqZ0aOyf1lLqdZZh"
    "wVZUzdiJjHbon6K5uv9kwyau4jIjtsrzIyjb8rP7KfXllKE7d3m9YGkLBe2AQYuXIdI= demo@laptop"
)

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


def firstboot_box(where: Path, text: str) -> Path:
    """`where` laid out as first boot sees the world: a sandbox target root in `root/`, the seed
    `text` in `setup.txt` and a stand-in for the stick in `stick/`. Returns `where`."""
    make_sandbox_root(where / "root")
    (where / "setup.txt").write_text(text)
    (where / "stick").mkdir()
    return where
