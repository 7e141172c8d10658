"""The platform's environment file format: `KEY="value"` lines in systemd EnvironmentFile syntax
(/etc/clawdie/system.env, the wizard's stored answers). Written by first boot, read back by first
boot, adopt, `wait-db`, `set-operator` and the demo: root reads system.env only through
`read_env_file`, which trusts nothing another account could have written."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from installer import __version__
from installer.fsutil import read_bytes_nofollow

# system.env holds a few dozen lines; anything much larger is not one.
MAX_ENV_BYTES = 256 * 1024


def parse_env_file(text: str) -> dict[str, str]:
    """Read a file written by `render_env_file` (systemd EnvironmentFile syntax)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, raw = line.split("=", 1)
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        values[key] = raw
    return values


def read_env_file(path: Path) -> dict[str, str]:
    """An environment file root relies on (system.env): never through a link, a regular file of
    at most MAX_ENV_BYTES, owned by root and writable by root only (DESIGN §4: root:<service
    group> 0640), else an OSError (`UnsafePathError` says why) and nothing is read. A file
    that is not UTF-8 is a ValueError."""
    return parse_env_file(read_bytes_nofollow(path, MAX_ENV_BYTES, trusted=True).decode("utf-8"))


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_env_file(values: Mapping[str, str]) -> str:
    """KEY="value" lines in systemd EnvironmentFile syntax."""
    lines = [
        f"# Written by clawdie-setup {__version__} first boot. Holds secrets; only root writes it.",
        *(f"{key}={_quote(value)}" for key, value in values.items()),
    ]
    return "\n".join(lines) + "\n"
