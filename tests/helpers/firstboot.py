"""First boot as its tests run it: the seed every field is set in (secrets from the sentinel
set), `clawdie-setup firstboot` in a new process on a box, and what a run leaves (files,
database) in a form two runs can be compared by."""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import psycopg

from tests.helpers import fake_platform
from tests.helpers.pg import PgCluster, db_cli_args
from tests.helpers.seeds import ED25519
from tests.helpers.sentinels import (
    OPENROUTER,
    OPERATOR_PASSWORD,
    TOKEN,
    USER_PASSWORD,
    WIFI_PASSWORD,
)

ROOT = Path(__file__).resolve().parents[2]  # the checkout


SEED = f"""\
TELEGRAM_BOT_TOKEN={TOKEN}
TELEGRAM_ADMIN_ID=123456789
OPENROUTER_API_KEY={OPENROUTER}
ASSISTANT_NAME=Zoë's Helper
PROFILE=economy
TIMEZONE=Europe/Berlin
LOCALE=de_DE
KEYMAP=de
OPERATOR_EMAIL=ops@example.com
OPERATOR_PASSWORD={OPERATOR_PASSWORD}
SSH_AUTHORIZED_KEY={ED25519}
CLAWDIE_USER_PASSWORD={USER_PASSWORD}
WIFI_SSID=Zoë's Wi-Fi
WIFI_PASSWORD={WIFI_PASSWORD}
WIFI_COUNTRY=DE
"""


def libcrypt(password: str, setting: str) -> str:
    """The system's crypt(3) - what PAM uses at login - to cross-check passlib's hash."""
    lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return (lib.crypt(password.encode(), setting.encode()) or b"").decode()


def firstboot(
    box: Path,
    pg: PgCluster,
    *extra: str,
    fault: str | None = None,
    timeout_ms: int = 20000,
    telegram_api: str | None = None,
    start_platform: bool = True,
    openrouter_api: str | None = None,
    seed_file: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `clawdie-setup firstboot` on the box as the systemd unit would (a new process);
    `seed_file=False` leaves out --seed: the seed copy in the root is read."""
    unset = ("CLAWDIE_FIRSTBOOT_FAULT", "CLAWDIE_TELEGRAM_API", "CLAWDIE_OPENROUTER_API")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    if fault:
        env["CLAWDIE_FIRSTBOOT_FAULT"] = fault
    env[fake_platform.ROOT_ENV] = str(box / "root")
    argv = [
        sys.executable,
        "-m",
        "installer.cli",
        "firstboot",
        "--root",
        str(box / "root"),
        *(["--seed", str(box / "setup.txt")] if seed_file else []),
        *db_cli_args(pg, timeout_ms),
        *(
            ["--platform-start", fake_platform.COMMAND]
            if start_platform
            else ["--no-platform-start"]
        ),
        *(["--telegram-api", telegram_api] if telegram_api else ["--no-telegram"]),
        *(["--openrouter-api", openrouter_api] if openrouter_api else []),
        "--receipt-dir",
        str(box / "stick"),
        "--wizard",
        "never",
        *extra,
    ]
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=ROOT, env=env, check=False, timeout=120
    )


def snapshot(root: Path, pg: PgCluster) -> dict[str, tuple[str, int, str]]:
    """Every file under root: mode, owner and content, with run-specific parts normalised
    (salts, times, the random database password, and where this run's box and server are)."""
    box, out = root.parent, {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel == "run" or rel.startswith("run/"):
            continue  # memory on a real box (a refused adopt's login-screen notice): not kept
        st = path.lstat()
        if path.is_symlink():
            out[rel] = ("link", st.st_uid, os.readlink(path))
        elif path.is_dir():
            out[rel] = (oct(stat.S_IMODE(st.st_mode)), st.st_uid, "dir")
        else:
            text = path.read_bytes().decode(errors="replace")
            text = text.replace(str(box), "BOX").replace(str(pg.sockdir), "SOCK")
            text = text.replace(quote(str(pg.sockdir), safe=""), "SOCK")
            text = re.sub(rf"\b{pg.port}\b", "PORT", text)
            text = re.sub(r"\$6\$[^:\n]+", "$6$HASH", text)  # salted hashes
            text = re.sub(r"\$scrypt\$[^\n]+", "$scrypt$HASH", text)  # the adopt code's
            text = re.sub(r'"finished_at": "[^"]+"', '"finished_at": "T"', text)
            text = re.sub(r"\(\d+\.\d s\)( over \d+ runs)?", "(N s)", text)
            text = re.sub(r'\{"seconds": [\d.]+, "runs": \d+\}', "{TIME}", text)  # firstboot-time
            text = re.sub(r"PLATFORM_DB_PASSWORD=\"[^\"]+\"", "PLATFORM_DB_PASSWORD=P", text)
            text = re.sub(r"BETTER_AUTH_SECRET=\"[^\"]+\"", "BETTER_AUTH_SECRET=S", text)
            text = re.sub(r"postgresql://([^:]+):[^@]+@", r"postgresql://\1:P@", text)
            text = re.sub(r":\d{5}:", ":DAYS:", text)  # shadow's last-change day
            digest = hashlib.sha256(text.encode()).hexdigest()[:16]
            out[rel] = (oct(stat.S_IMODE(st.st_mode)), st.st_uid, digest)
    return out


def db_state(pg: PgCluster) -> dict[str, object]:
    with psycopg.connect(pg.admin_conninfo()) as conn:
        roles = conn.execute(
            "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'clawdie'"
        ).fetchall()
        dbs = conn.execute(
            "SELECT datname, pg_get_userbyid(datdba) FROM pg_database "
            "WHERE datname LIKE 'system_%' ORDER BY 1"
        ).fetchall()
    with psycopg.connect(pg.admin_conninfo("system_ops")) as conn:
        users = conn.execute('SELECT email FROM "user" ORDER BY 1').fetchall()
        accounts = conn.execute('SELECT "providerId" FROM account').fetchall()
    return {"roles": roles, "dbs": dbs, "users": users, "accounts": accounts}
