"""Encryption to the owner with age (the `pyrage` bindings: the identity never leaves this
process, never in an argument, a file or another program's environment).

A backup is encrypted to one or more X25519 recipients (`age1…`, the owner's public keys): the
box holds no identity, so it cannot read its own old backups. Decryption streams, 64 KiB chunks
each authenticated by age; a changed byte or a cut file fails, but only when the chunk is
reached, so a restore reads the whole file once before it changes anything.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

import pyrage  # type: ignore[import-untyped]  # no stubs: used only here, behind typed functions

from installer import redact
from installer.errors import InstallerError

if TYPE_CHECKING:  # pydantic loads with a restore, not with every backup
    from pydantic import SecretStr

AGE_MAGIC = b"age-encryption.org/v1\n"
RECIPIENT_PREFIX = "age1"
IDENTITY_PREFIX = "AGE-SECRET-KEY-1"
MAX_HEADER = 64 * 1024  # an age header of a few recipients is a few hundred bytes
MAX_IDENTITY_FILE = 64 * 1024


class BackupKeyError(InstallerError):
    """A recipient or identity that is not an age X25519 key."""


class DecryptRefusedError(InstallerError):
    """The backup cannot be opened with this identity, or was changed or cut."""


def parse_recipients(values: Sequence[str]) -> list[Any]:
    """`age1…` public keys (one a value; `#` comment lines and blank ones skipped)."""
    found = []
    for value in values:
        for line in value.splitlines():
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                found.append(pyrage.x25519.Recipient.from_str(text))
            except pyrage.RecipientError:
                raise BackupKeyError(
                    f"{text[:12]}… is not an age public key",
                    "a recipient is the owner's public key: the line `age1…` that age-keygen "
                    "prints (never the AGE-SECRET-KEY line)",
                ) from None
    if not found:
        raise BackupKeyError(
            "no recipient: a backup is encrypted to the owner's public key",
            "make a key pair with `age-keygen -o owner-key.txt` on your own computer and pass "
            "its public key: --recipient age1…",
        )
    return found


def parse_identities(secret: SecretStr) -> list[Any]:
    """The `AGE-SECRET-KEY-1…` lines of an identity file (its comments skipped)."""
    found = []
    for line in secret.get_secret_value().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        redact.register(text)
        try:
            found.append(pyrage.x25519.Identity.from_str(text))
        except pyrage.IdentityError:
            raise BackupKeyError(
                "the identity holds a line that is not an age secret key",
                "give the file age-keygen wrote (its AGE-SECRET-KEY-1… line)",
            ) from None
    if not found:
        raise BackupKeyError(
            "the identity holds no AGE-SECRET-KEY-1… line",
            "give the file age-keygen wrote for the public key the backups are encrypted to",
        )
    return found


def public_keys(identities: Sequence[Any]) -> list[str]:
    return [str(identity.to_public()) for identity in identities]


class _Counting:
    """A writer that counts what goes through it (the file's length, checked after writing)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.count = 0

    def write(self, data: bytes) -> int:
        self.out.write(data)
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        self.out.flush()


def encrypt_stream(
    produce: Callable[[IO[bytes]], None], out: IO[bytes], recipients: list[Any]
) -> int:
    """Encrypt what `produce` writes (in a thread, through a pipe) to `out`; returns the bytes
    written. A failure of `produce` is raised here (the output is then incomplete)."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def producer() -> None:
        with os.fdopen(write_fd, "wb", buffering=1 << 20) as sink:
            try:
                produce(sink)
            except BaseException as err:  # noqa: BLE001 - handed to the caller, raised there
                failure.append(err)

    thread = threading.Thread(target=producer, name="backup-producer", daemon=True)
    counting = _Counting(out)
    with os.fdopen(read_fd, "rb", buffering=1 << 20) as source:
        thread.start()
        try:
            pyrage.encrypt_io(source, counting, recipients)
        finally:
            source.close()
            thread.join()
    if failure:
        raise failure[0]
    return counting.count


def decrypt_stream(
    source: IO[bytes], identities: list[Any], consume: Callable[[IO[bytes]], None]
) -> None:
    """Decrypt `source` (in a thread) and give the plaintext to `consume` as a stream. A wrong
    identity, a changed byte or a cut file is a DecryptRefusedError; what `consume` raises is
    raised as it is, unless decryption failed first (its error says why the stream ended)."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def decrypter() -> None:
        with os.fdopen(write_fd, "wb", buffering=1 << 20) as sink:
            try:
                pyrage.decrypt_io(source, sink, identities)
            except BaseException as err:  # noqa: BLE001 - handed to the caller, raised there
                failure.append(err)

    thread = threading.Thread(target=decrypter, name="backup-decrypter", daemon=True)
    consumed: BaseException | None = None
    with os.fdopen(read_fd, "rb", buffering=1 << 20) as plain:
        thread.start()
        try:
            consume(plain)
            while plain.read(1 << 20):  # drain: the decrypter finishes (and checks the end)
                pass
        except BaseException as err:  # noqa: BLE001 - raised below, after the join
            consumed = err
        finally:
            plain.close()
            thread.join()
    if isinstance(consumed, InstallerError):  # the consumer's own verdict on what it read
        raise consumed
    if failure:
        raise DecryptRefusedError(
            "the backup cannot be opened: it is not encrypted to this identity, or it was "
            "changed or cut short after it was written",
            "give the identity (AGE-SECRET-KEY-1…) that belongs to a recipient of this backup, "
            "and a complete copy of the file; nothing was changed",
        ) from None
    if consumed is not None:
        raise consumed


def check_header(head: bytes, size: int, written: int, recipients: int) -> str | None:
    """What is wrong with a backup file just written, read without decrypting: the age header,
    one stanza per recipient, the header's MAC line, and the length that was written. None
    when it is right."""
    if size != written:
        return f"the file holds {size} bytes, {written} were written"
    if not head.startswith(AGE_MAGIC):
        return "the file does not start with the age header"
    lines = head.split(b"\n")
    stanzas = sum(1 for line in lines if line.startswith(b"-> X25519 "))
    if stanzas != recipients:
        return f"the header names {stanzas} recipient(s), not {recipients}"
    if not any(line.startswith(b"--- ") for line in lines):
        return "the header has no MAC line (cut short)"
    return None
