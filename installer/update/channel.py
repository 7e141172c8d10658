"""An update channel (DESIGN §9): a folder on a web server where the publisher offers its newest
release. Its `latest.json` names the release, `{"name": …, "version": …, "file": …}`; the file
and its `.minisig` lie beside it. The box asks daily, inside its update window, and applies a
newer release of the platform it runs like any other (`UpdateRun.apply`).

The channel is not trusted: what it says is bounded and checked (a plain file name, a version,
the platform's own name) and only decides whether to download; the publisher's signature, checked
by the update run, decides whether anything changes. No answer is `not checked`, not an error:
a box offline keeps running what it has. Each check leaves one line in root's state
(`channel.txt`), which the box's status reads.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from installer.errors import InstallerError
from installer.fsutil import ensure_dir, read_bytes_nofollow, write_atomic
from installer.online.httpclient import NoAnswer, clean_reason, download
from installer.update.manifest import is_version, version_key
from installer.update.run import Outcome, UpdateRun
from installer.update.signed import BUNDLE_LIMIT, SIGNATURE_LIMIT, SIGNATURE_SUFFIX

INDEX = "latest.json"
INDEX_LIMIT = 64 << 10
STALL_S = 30.0  # a receive that takes longer ends the download
CHANNEL_FILE = "update-channel"  # in /etc/clawdie: the image's default or install-platform's
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


class ChannelError(InstallerError):
    """What a channel offers cannot be a release for this box."""


@dataclass(frozen=True)
class Offer:
    """The release a channel offers."""

    name: str
    version: str
    file: str


def parse_offer(data: bytes) -> Offer:
    """`latest.json`'s offer, checked: a name, a version, and a plain file name beside it."""
    try:
        index = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ChannelError(f"the channel's {INDEX} is not JSON") from None
    if not isinstance(index, dict):
        raise ChannelError(f'the channel\'s {INDEX} is not an object {{"name", "version", "file"}}')
    name, version, file = (index.get(key) for key in ("name", "version", "file"))
    if not all(isinstance(value, str) for value in (name, version, file)):
        raise ChannelError(f"the channel's {INDEX} needs name, version and file as strings")
    assert isinstance(name, str) and isinstance(version, str) and isinstance(file, str)  # noqa: S101, PT018
    if not is_version(version):
        raise ChannelError(
            f"the channel offers version {clean_reason(version)[:40]!r}: not a version"
        )
    if not _FILE_NAME.match(file) or file.endswith(SIGNATURE_SUFFIX):
        raise ChannelError(f"the channel offers {clean_reason(file)[:40]!r}: not a plain file name")
    return Offer(name, version, file)


def check_channel_url(text: str) -> str:
    """A channel's URL: http or https, a host, nothing that would end the line; ValueError else."""
    url = text.strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or any(c.isspace() for c in url):
        raise ValueError(f"{text!r} is not an https:// address of a channel")
    return url.rstrip("/")


def install_channel(config_dir: Path, url: str, origin: str) -> bool:
    """The box's channel in root's /etc/clawdie (`origin` says where it came from); False when
    it was set so already. An existing folder keeps its mode and owner (first boot's 0750)."""
    if not config_dir.is_dir():
        ensure_dir(config_dir, 0o755)
    text = f"# The update channel ({origin})\n{url}\n"
    return write_atomic(config_dir / CHANNEL_FILE, text, mode=0o644)


def channel_url(config_dir: Path, given: str | None) -> str | None:
    """The channel to ask: `given`, else the box's own setting (root's /etc/clawdie), else none."""
    if given:
        return given.rstrip("/")
    try:
        text = read_bytes_nofollow(config_dir / CHANNEL_FILE, 4096, trusted=True).decode()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise InstallerError(f"cannot read {config_dir / CHANNEL_FILE}: {err}") from None
    lines = [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]
    return lines[0].rstrip("/") if lines else None


def _fetch(url: str, into: Path, limit: int) -> Path:
    """`url` downloaded to `into` (root's folder) through a temporary file."""
    temp = into.with_name(into.name + ".part")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            download(url, out, limit=limit, timeout=STALL_S)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, into)
    finally:
        temp.unlink(missing_ok=True)
    return into


@dataclass
class ChannelCheck:
    """One check of the channel at `url` for the box `run` updates."""

    run: UpdateRun
    url: str
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)

    @property
    def downloads(self) -> Path:
        return self.run.directory / "download"

    @property
    def record(self) -> Path:
        """The last check, one line (the box's status reads it)."""
        return self.run.directory / "channel.txt"

    def check(self) -> Outcome:
        """Ask, and apply a newer release; the outcome is also kept in `record`."""
        try:
            outcome = self._check()
        except InstallerError as err:
            self._keep(f"refused: {err.message}")
            raise
        self._keep(outcome.line)
        return outcome

    def _check(self) -> Outcome:
        try:
            offer = self._offer()
        except NoAnswer as err:
            return Outcome("not checked", f"not checked: the update channel: {err}")
        current = self.run.layout.current()
        name = self.run.layout.release(current).name
        if offer.name != name:
            raise ChannelError(
                f"the channel offers {clean_reason(offer.name)[:40]!r}, this box runs {name}",
                f"give the channel of {name} (clawdie-setup update --channel URL)",
            )
        if version_key(offer.version) <= version_key(current):
            return Outcome(
                "nothing to do",
                f"up to date: the channel offers {offer.version}, this box runs {current}",
            )
        try:
            bundle = self._download(offer)
        except NoAnswer as err:
            return Outcome("not checked", f"not checked: release {offer.version}: {err}")
        return self.run.apply(bundle)

    def _offer(self) -> Offer:
        ensure_dir(self.downloads, 0o700)
        index = _fetch(f"{self.url}/{INDEX}", self.downloads / INDEX, INDEX_LIMIT)
        return parse_offer(read_bytes_nofollow(index, INDEX_LIMIT, trusted=True))

    def _download(self, offer: Offer) -> Path:
        for stale in self.downloads.iterdir():
            if stale.name != INDEX:
                stale.unlink()
        bundle = self.downloads / offer.file
        _fetch(
            f"{self.url}/{offer.file}{SIGNATURE_SUFFIX}",
            Path(f"{bundle}{SIGNATURE_SUFFIX}"),
            SIGNATURE_LIMIT,
        )
        return _fetch(f"{self.url}/{offer.file}", bundle, BUNDLE_LIMIT)

    def _keep(self, line: str) -> None:
        stamp = self.now().astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ensure_dir(self.run.directory, 0o700)
        write_atomic(self.record, f"{stamp} {line}\n", mode=0o600)
