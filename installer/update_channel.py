"""The box's update channel setting (DESIGN §9): the one rule for a channel's address, and
the one file that holds the box's channel, `/etc/clawdie/update-channel`.

The rule is shared by the seed's `UPDATE_CHANNEL` (installer.seed.maint_rules, mirrored by the
check page), the image build's `--update-channel`, `install-platform --update-channel` and the
channel check (installer.update.channel); its words never repeat the value.

A channel is `http://` or `https://`, a host (a port may follow), an optional path; printable
ASCII only (a space or a control character would end the line the box keeps it on), no user or
password (the release's signature protects it, not the address; and the address is shown on the
status lines), no query nor fragment. Its normalised form has no `/` at the end.
"""

from __future__ import annotations

import re
from pathlib import Path

from installer.fsutil import ensure_dir, remove_durably, write_atomic

CHANNEL_FILE = "update-channel"  # in /etc/clawdie: the image's default, install-platform's or
# setup.txt's UPDATE_CHANNEL (which overrides the other two)
OFF = "off"

_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([^?#]*)")
_PRINTABLE = re.compile(r"[\x21-\x7e]*")


class ChannelUrlError(ValueError):
    """Why a text is not a channel's address, in words that do not repeat it."""


def parse_channel_url(text: str) -> str:
    """`text` (surrounding blanks aside) as a channel's address, normalised; ChannelUrlError."""
    url = text.strip(" \t")
    if not _PRINTABLE.fullmatch(url):
        raise ChannelUrlError("the address holds a space, a control or a non-ASCII character")
    if "?" in url or "#" in url:
        raise ChannelUrlError("a channel's address has no ? or # part")
    found = _URL.fullmatch(url)
    if found is None:
        raise ChannelUrlError(
            "not a whole web address: it begins with https, then ://, then the host"
        )
    scheme, host, path = found.groups()
    if scheme.lower() not in ("https", "http"):
        raise ChannelUrlError(f"a channel is reached over https or http, not {scheme.lower()}")
    if not host or host.startswith(":"):
        raise ChannelUrlError("the address names no host")
    if "@" in host:
        raise ChannelUrlError("the address holds a user name or password")
    return f"{scheme.lower()}://{host}{path.rstrip('/')}"


def channel_host(url: str) -> str:
    """The host (and port) of a normalised channel address: what the status lines show."""
    found = _URL.fullmatch(url)
    return found.group(2) if found else "?"


def install_channel(config_dir: Path, url: str, origin: str) -> bool:
    """The box's channel in root's /etc/clawdie (`origin` says where it came from); False when
    it was set so already. An existing folder keeps its mode and owner (first boot's 0750)."""
    if not config_dir.is_dir():
        ensure_dir(config_dir, 0o755)
    text = f"# The update channel ({origin})\n{url}\n"
    return write_atomic(config_dir / CHANNEL_FILE, text, mode=0o644)


def apply_seed_channel(config_dir: Path, value: str | None) -> str | None:
    """setup.txt's UPDATE_CHANNEL on the box: not set, the channel stays as it is (the image's
    default, or install-platform's); an address replaces it; `off` removes it (the daily check
    then does not start). Returns what changed, in words (None: nothing)."""
    if value is None:
        return None
    if value == OFF:
        if remove_durably(config_dir / CHANNEL_FILE):
            return "update channel removed (UPDATE_CHANNEL=off)"
        return None
    if install_channel(config_dir, value, "setup.txt UPDATE_CHANNEL"):
        return f"update channel {channel_host(value)} (UPDATE_CHANNEL)"
    return None
