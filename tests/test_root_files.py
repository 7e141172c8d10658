"""Root trusts only root's files (DESIGN §4, issue 21): /etc/clawdie/system.env is root's, group
the service account's, 0640; root reads it never through a link, within a size bound, and only
when no other account can have written it. A system.env the service account owns or replaced
with a link is not trusted by adopt, `wait-db` or the Telegram retry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from installer.adopt.run import AdoptRefusedError, read_settings
from installer.envfile import MAX_ENV_BYTES, read_env_file
from installer.errors import InstallerError
from installer.fsutil import UnsafePathError
from installer.online.telegram_queue import read_bot_token
from installer.paths import TargetPaths

pytestmark = pytest.mark.root

SERVICE_UID = 4242
TOKEN = "123456:root-files-token"


def as_root_writes_it(env: Path) -> None:
    env.parent.mkdir(parents=True, exist_ok=True)
    env.write_text(f'TELEGRAM_BOT_TOKEN="{TOKEN}"\nPLATFORM_DB_ROLE="clawdie"\n')
    os.chown(env, 0, SERVICE_UID)
    env.chmod(0o640)


def make_untrusted(env: Path, how: str) -> None:
    """What the service account could do to system.env if it owned it or its folder."""
    if how == "owned by the account":
        os.chown(env, SERVICE_UID, SERVICE_UID)
    elif how == "group-writable":
        env.chmod(0o660)
    elif how == "a link":
        real = env.with_name("elsewhere.env")
        env.rename(real)
        env.symlink_to(real)
    elif how == "a FIFO":
        env.unlink()
        os.mkfifo(env)
    elif how == "too large":
        env.write_text("X=" + "x" * MAX_ENV_BYTES + "\n")


UNTRUSTED = [
    ("owned by the account", f"owned by uid {SERVICE_UID}, not root"),
    ("group-writable", "writable by others than its owner (mode 0660)"),
    ("a link", "a symbolic link, which root does not follow"),
    ("a FIFO", "not a regular file"),
    ("too large", f"larger than {MAX_ENV_BYTES} bytes"),
]


def test_roots_own_file_is_read(tmp_path: Path) -> None:
    env = tmp_path / "etc/clawdie/system.env"
    as_root_writes_it(env)
    assert read_env_file(env)["TELEGRAM_BOT_TOKEN"] == TOKEN


@pytest.mark.parametrize(("how", "words"), UNTRUSTED)
def test_system_env_another_account_could_write_is_not_read(
    tmp_path: Path, how: str, words: str
) -> None:
    env = tmp_path / "etc/clawdie/system.env"
    as_root_writes_it(env)
    make_untrusted(env, how)
    with pytest.raises(UnsafePathError) as caught:
        read_env_file(env)
    assert words in str(caught.value.strerror)


def sandbox_installation(root: Path) -> TargetPaths:
    """The two records adopt reads: setup.resolved.json and system.env, as first boot writes."""
    paths = TargetPaths(root)
    as_root_writes_it(paths.system_env)
    settings = [{"key": "TELEGRAM_BOT_TOKEN", "value": None, "secret": True, "source": "line 3"}]
    paths.resolved_json.write_text(json.dumps({"settings": settings}))
    return paths


@pytest.mark.parametrize(("how", "words"), UNTRUSTED[:3])
def test_adopt_does_not_read_an_installation_the_account_could_have_written(
    tmp_path: Path, how: str, words: str
) -> None:
    paths = sandbox_installation(tmp_path)
    assert read_settings(paths)["TELEGRAM_BOT_TOKEN"].value == TOKEN
    make_untrusted(paths.system_env, how)
    with pytest.raises(AdoptRefusedError) as caught:
        read_settings(paths)
    assert words in caught.value.message
    assert TOKEN not in caught.value.message


@pytest.mark.parametrize(("how", "words"), UNTRUSTED[:3])
def test_the_telegram_retry_takes_no_token_from_an_untrusted_file(
    tmp_path: Path, how: str, words: str
) -> None:
    paths = sandbox_installation(tmp_path)
    assert read_bot_token(paths) == TOKEN
    make_untrusted(paths.system_env, how)
    with pytest.raises(InstallerError) as caught:
        read_bot_token(paths)
    assert words in caught.value.message


@pytest.mark.parametrize(("how", "words"), UNTRUSTED[:3])
def test_wait_db_refuses_an_untrusted_system_env_in_words(
    tmp_path: Path, how: str, words: str
) -> None:
    paths = sandbox_installation(tmp_path)
    make_untrusted(paths.system_env, how)
    result = subprocess.run(
        [sys.executable, "-m", "installer.cli", "wait-db", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "system.env is not trusted" in result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
