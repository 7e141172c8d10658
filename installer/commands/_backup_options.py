"""The options `backup`, `restore` and `factory-reset` share: the target root, the admin's
database connection, the owner's keys (a recipient is public and may be an argument; an identity
is a secret and is read from a file or standard input, never an argument).

Not a command: the command layer's private helper.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from installer.errors import UsageError

if TYPE_CHECKING:  # pydantic loads with the command that runs, not with `--help`
    from collections.abc import Callable

    from pydantic import SecretStr

    from installer.firstboot.config import FirstbootConfig

MAX_KEY_FILE = 64 * 1024
ADMIN_DEFAULT = "host=/run/postgresql user=postgres dbname=postgres"


def add_box_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path("/"), help="target root (default /)")
    db = parser.add_argument_group("database")
    db.add_argument(
        "--db-admin", default=ADMIN_DEFAULT, help="libpq connection string of the admin"
    )
    db.add_argument("--db-host", default="/run/postgresql", help="socket dir or host")
    db.add_argument("--db-port", type=int, default=5432)
    db.add_argument("--db-timeout-ms", type=int, default=None, help="readiness wait bound")


def require_root(command: str) -> None:
    if os.geteuid() != 0:
        raise UsageError(f"{command} needs root", f"run it as root: sudo clawdie-setup {command}")


def read_key_file(path: str, what: str) -> str:
    """A key file (`-`: standard input), a regular file within the size bound, not a link."""
    if path == "-":
        data = sys.stdin.buffer.read(MAX_KEY_FILE + 1)
    else:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as err:
            raise UsageError(f"cannot read the {what} {path}: {err.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UsageError(f"the {what} {path} is not a regular file")
            data = handle.read(MAX_KEY_FILE + 1)
    if len(data) > MAX_KEY_FILE:
        raise UsageError(f"the {what} is larger than {MAX_KEY_FILE} bytes: not a key file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"the {what} is not text: not a key file") from None


def read_identity(path: str) -> SecretStr:
    from pydantic import SecretStr

    from installer import redact

    text = read_key_file(path, "identity")
    redact.register(*(line.strip() for line in text.splitlines()))
    return SecretStr(text)


def resetter(stop: tuple[str, ...] | None) -> Callable[[FirstbootConfig], list[str]]:
    """The backup room's one factory reset, stopping the platform with `stop` first."""

    def reset(config: FirstbootConfig) -> list[str]:
        from installer.backup.reset import ResetConfig, factory_reset

        return factory_reset(ResetConfig(config.root, config.db.admin_conninfo, stop=stop))

    return reset
