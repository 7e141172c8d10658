"""Where the database commands (`wait-db`, `set-operator`) find their connection string.

`--conninfo STR` (a libpq string or postgresql:// URI; prefer one without a password, since a
command line is visible to other users) or `--env-file PATH` (default: the platform's
/etc/clawdie/system.env under `--root`), from which a `DATABASE_URL`-style key is read.
Nothing here imports psycopg.

Not a command: the command layer's private helper for the two commands' argparse options and
their usage errors (exit 2), which is why it stays in installer/commands.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from installer.errors import UsageError
from installer.fsutil import UnsafePathError
from installer.paths import TargetPaths


def add_connection_arguments(parser: argparse.ArgumentParser, *, key: str) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--conninfo",
        metavar="STR",
        help="libpq connection string or postgresql:// URI (avoid putting a password here)",
    )
    source.add_argument(
        "--env-file",
        type=Path,
        metavar="PATH",
        help=f"KEY=VALUE file holding {key} (default: /etc/clawdie/system.env under --root)",
    )
    parser.add_argument(
        "--root", type=Path, default=Path("/"), metavar="DIR", help="target root (default /)"
    )


def env_file_path(root: Path, given: Path | None) -> Path:
    """`given` (absolute paths hang off `root`), else the platform's system.env under `root`."""
    if given is None:
        return TargetPaths(root).system_env
    return root / given.relative_to("/") if given.is_absolute() else given


def conninfo_from_args(args: argparse.Namespace, *, key: str) -> str:
    """The connection string the options name; a `UsageError` (exit 2) when there is none."""
    if args.conninfo:
        return str(args.conninfo)
    from installer.envfile import read_env_file

    path = env_file_path(Path(args.root), args.env_file)
    try:
        env = read_env_file(path)
    except FileNotFoundError:
        raise UsageError(
            f"{path} does not exist",
            "first boot writes it; or give --conninfo / --env-file",
        ) from None
    except UnsafePathError as err:
        raise UsageError(
            f"{path} is not trusted: {err.strerror}",
            "first boot writes it as a regular file owned by root, mode 0640; make it so with "
            "`chown root:SERVICE-ACCOUNT FILE` and `chmod 0640 FILE`, or give --conninfo",
        ) from None
    except OSError as err:
        raise UsageError(
            f"cannot read {path}: {err.strerror}", "run as root or as the service account"
        ) from None
    except ValueError:
        raise UsageError(
            f"{path} is not UTF-8 text", "first boot writes it; run it again"
        ) from None
    value = env.get(key, "").strip()
    if not value:
        raise UsageError(f"{path} has no {key}", "first boot writes it; or give --conninfo")
    return value


def dashboard_url_from_args(args: argparse.Namespace) -> str | None:
    """The dashboard's URL from the platform's environment (its AGENT_DOMAIN), when the
    options name an env file that has one; None otherwise (a bare --conninfo)."""
    if args.conninfo:
        return None
    from installer.envfile import parse_env_file

    try:
        text = env_file_path(Path(args.root), args.env_file).read_text(encoding="utf-8")
    except OSError:
        return None
    domain = parse_env_file(text).get("AGENT_DOMAIN", "").strip()
    return f"https://{domain}/" if domain else None
