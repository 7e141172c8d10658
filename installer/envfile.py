"""The platform's environment file format: `KEY="value"` lines in systemd EnvironmentFile syntax
(/etc/clawdie/system.env, the wizard's stored answers). Written by first boot, read back by first
boot, `wait-db`, `set-operator` and the demo."""

from __future__ import annotations

from collections.abc import Mapping

from installer import __version__


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


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_env_file(values: Mapping[str, str]) -> str:
    """KEY="value" lines in systemd EnvironmentFile syntax."""
    lines = [
        f"# Written by clawdie-setup {__version__} first boot. Holds secrets: keep it 0600.",
        *(f"{key}={_quote(value)}" for key, value in values.items()),
    ]
    return "\n".join(lines) + "\n"
