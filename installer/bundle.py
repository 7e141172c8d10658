"""The failure bundle: `clawdie-logs-<host>-<time>.tar.gz`, written next to the receipt when an
install or a first boot fails, so a box without a screen still hands over what happened.

It holds the journal of our units, the kernel log's tail, the block devices and our own log,
each cleaned of every secret this process knows (installer.redact). Before it is kept, it is read
back and searched for each of those secrets; a bundle that still holds one is not kept, and the
report says so. It goes on the stick when one is there and always on the disk, in root's state
directory (0700), the file itself 0600.
"""

from __future__ import annotations

import collections
import gzip
import io
import logging
import re
import tarfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from installer import redact
from installer.errors import InstallerError
from installer.fsutil import ensure_dir, write_atomic
from installer.run import run

log = logging.getLogger("clawdie.bundle")

PREFIX = "clawdie-logs-"
UNITS = ("clawdie-installer.service", "clawdie-firstboot.service", "clawdie.service")
JOURNAL_LINES = 5000
KERNEL_LINES = 300
COMMAND_TIMEOUT_S = 30.0
LOG_LINES = 20000  # our own log, newest kept

# Puts a file (name, bytes) on the stick; returns (written, what happened).
FileWriter = Callable[[str, bytes], tuple[bool, str]]


class LogBuffer(logging.Handler):
    """Our own log of this run, kept in memory for the bundle (redacted as it is recorded)."""

    def __init__(self, limit: int = LOG_LINES, also: tuple[str, ...] = ()) -> None:
        """Records of the `clawdie` loggers, and of the loggers named in `also` (the
        installer's console lines, which do not propagate)."""
        super().__init__(logging.DEBUG)
        self.also = also
        self.lines: collections.deque[str] = collections.deque(maxlen=limit)
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        redact.add_filter(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 (a log line that cannot be formatted is not fatal)
            self.handleError(record)

    def text(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.lines else "")

    def __enter__(self) -> LogBuffer:
        for name in self.also:
            logging.getLogger(name).addHandler(self)
        logger = logging.getLogger("clawdie")
        logger.addHandler(self)
        if logger.getEffectiveLevel() > logging.DEBUG:
            self._level: int | None = logger.level
            logger.setLevel(logging.DEBUG)
        else:
            self._level = None
        return self

    def __exit__(self, *_: object) -> None:
        for name in self.also:
            logging.getLogger(name).removeHandler(self)
        logger = logging.getLogger("clawdie")
        logger.removeHandler(self)
        if self._level is not None:
            logger.setLevel(self._level)


def bundle_name(host: str, when: float) -> str:
    """`clawdie-logs-<host>-<UTC time>.tar.gz`; the host name reduced to safe characters."""
    safe = re.sub(r"[^A-Za-z0-9-]+", "-", host).strip("-") or "unnamed"
    return f"{PREFIX}{safe}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(when))}.tar.gz"


def _command_text(argv: list[str]) -> str:
    try:
        result = run(argv, check=False, timeout=COMMAND_TIMEOUT_S)
    except InstallerError as err:
        return f"$ {' '.join(argv)}\n(not available: {err.message})\n"
    out = result.stdout.decode(errors="replace")
    err_text = result.stderr.decode(errors="replace")
    status = f"(exit {result.returncode})\n" if result.returncode else ""
    return f"$ {' '.join(argv)}\n{out}{err_text}{status}"


def collect_parts(own_log: str, *, live: bool, receipt: str | None = None) -> list[tuple[str, str]]:
    """The bundle's files as (name, text). The journal and the kernel log are read only on the
    running system (`live`): a sandbox root's are not this machine's."""
    parts = [("clawdie-setup.log", own_log)]
    if receipt is not None:
        parts.append(("SETUP-RESULT.txt", receipt))
    if live:
        units = [arg for unit in UNITS for arg in ("-u", unit)]
        parts.append(
            (
                "journal.txt",
                _command_text(
                    [
                        "journalctl",
                        "--no-pager",
                        "-b",
                        "-o",
                        "short-iso-precise",
                        "-n",
                        str(JOURNAL_LINES),
                        *units,
                    ]
                ),
            )
        )
        parts.append(
            (
                "kernel.txt",
                _command_text(["journalctl", "--no-pager", "-k", "-b", "-n", str(KERNEL_LINES)]),
            )
        )
    else:
        absent = "not read: this run's root is not the running system (a sandbox)\n"
        parts += [("journal.txt", absent), ("kernel.txt", absent)]
    parts.append(
        (
            "block-devices.txt",
            _command_text(["lsblk", "-o", "NAME,SIZE,TYPE,MODEL,SERIAL,FSTYPE,LABEL,MOUNTPOINTS"]),
        )
    )
    return parts


def build_bundle(
    parts: Sequence[tuple[str, str]], when: float, clean: Callable[[str], str] = redact.redact
) -> bytes:
    """A tar.gz of `parts`, each text passed through `clean` first (the redaction)."""
    raw = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=int(when)) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, text in parts:
            data = clean(text).encode("utf-8", errors="replace")
            info = tarfile.TarInfo(f"clawdie-logs/{name}")
            info.size, info.mtime, info.mode = len(data), int(when), 0o600
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def secrets_in(bundle: bytes, secrets: Sequence[str]) -> int:
    """How many of `secrets` the bundle still holds, read back as a reader would open it.
    A bundle that cannot be opened counts as holding them all (it is not kept)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
            texts = []
            for member in tar.getmembers():
                handle = tar.extractfile(member)
                if handle is not None:
                    texts.append(handle.read().decode("utf-8", errors="replace"))
    except (tarfile.TarError, OSError, EOFError):
        return len(secrets) or 1
    whole = "\n".join(texts)
    return sum(1 for secret in secrets if secret in whole)


def write_failure_bundle(
    state_dir: Path,
    host: str,
    parts: Sequence[tuple[str, str]],
    stick: FileWriter | None,
    *,
    when: float | None = None,
    clean: Callable[[str], str] = redact.redact,
    shown_dir: str | None = None,
) -> list[str]:
    """Write the bundle on the disk (`state_dir`, root only) and the stick; return what
    happened, in words, for the report (`shown_dir`: `state_dir` as the box names it). Never
    raises for a place that cannot be written."""
    when = time.time() if when is None else when
    name = bundle_name(host, when)
    bundle = build_bundle(parts, when, clean)
    leaked = secrets_in(bundle, redact.registered())
    if leaked:
        log.error("bundle: %s still held %d secret(s) after redaction; not kept", name, leaked)
        return [f"log bundle not kept: it still held {leaked} secret(s) after redaction"]
    done = []
    try:
        ensure_dir(state_dir, 0o700, 0, 0)
        write_atomic(state_dir / name, bundle, mode=0o600)
        done.append(f"log bundle on the disk: {shown_dir or state_dir}/{name}")
    except (OSError, InstallerError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        done.append(f"log bundle not written on the disk ({reason})")
    if stick is not None:
        written, why = stick(name, bundle)
        done.append(
            f"log bundle on the stick: {why}" if written else f"no log bundle on the stick: {why}"
        )
    for line in done:
        log.info("bundle: %s", line)
    return done
