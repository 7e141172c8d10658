"""The existing host as its tests see it: the seed `install-platform` takes (secrets from the
sentinel set), the operator's login `ana` with her key, and everything of hers, to prove it is
left alone."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.seeds import ED25519, RSA_2048
from tests.helpers.sentinels import OPENROUTER, TOKEN

SEED = f"""\
TELEGRAM_BOT_TOKEN={TOKEN}
TELEGRAM_ADMIN_ID=123456789
OPENROUTER_API_KEY={OPENROUTER}
ASSISTANT_NAME=Ada
SSH_AUTHORIZED_KEY={ED25519}
"""


ANA_KEYS = f"{RSA_2048}\n"


def ana(root: Path) -> dict[str, object]:
    """Everything of ana's: her lines in the account files, her home's files byte for byte."""
    lines = {
        name: [x for x in (root / "etc" / name).read_text().splitlines() if x.startswith("ana:")]
        for name in ("passwd", "group", "shadow", "gshadow")
    }
    home = root / "home/ana"
    files = {
        str(p.relative_to(home)): (
            b"dir" if p.is_dir() else p.read_bytes(),
            p.stat().st_mode,
            p.stat().st_uid,
        )
        for p in sorted(home.rglob("*"))
    }
    return {"lines": lines, "files": files, "home": home.stat().st_mode}
