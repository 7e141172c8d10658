"""Write an image to a block device fast and verify it by reading it back.

Large aligned blocks through O_DIRECT (no gigabytes of dirty page cache, so the progress is the
device's real pace and the final fsync is short); a reader thread hashes the next block while the
current one is written. An all-zero block is not written when the device already reads zeros
there (checked by reading it, which is much cheaper than writing on flash media) or, with
`sparse`, at all. Verification reads the device back with O_DIRECT and compares each block's
SHA-256 with the image's.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import hashlib
import mmap
import os
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from installer.errors import InstallerError

BLOCK = 4 << 20
_QUEUE_DEPTH = 4


class VerifyError(InstallerError):
    """The device does not read back what was written (or the image fails its checksum)."""


class Progress(Protocol):
    """Where the writer reports: a phase with a total, then bytes done."""

    def start(self, phase: str, total: int) -> None: ...

    def advance(self, done: int) -> None: ...

    def finish(self) -> None: ...


@dataclass
class WriteResult:
    """Per-block digests (None: not written, not verified), the image's SHA-256 and counts."""

    digests: list[bytes | None] = field(default_factory=list)
    image_sha256: str = ""
    written: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class _Block:
    index: int
    length: int
    buffer: mmap.mmap
    digest: bytes


@functools.cache
def _zero_digest(length: int) -> bytes:
    return hashlib.sha256(bytes(length)).digest()


def open_device(node: str, *, write: bool) -> tuple[int, bool]:
    """Open `node` exclusively with O_DIRECT when the device allows it; the fd and whether direct.

    O_EXCL on a block device fails with EBUSY while anything has it mounted or claimed.
    """
    flags = (os.O_WRONLY | os.O_EXCL) if write else os.O_RDONLY
    try:
        return os.open(node, flags | os.O_DIRECT | os.O_CLOEXEC), True
    except OSError as err:
        if err.errno != errno.EINVAL:
            raise
    return os.open(node, flags | os.O_CLOEXEC), False


def _read_blocks(
    image: Path, out: queue.Queue[_Block | None], stop: threading.Event, whole: hashlib._Hash | None
) -> None:
    """Reader thread: fill aligned buffers from the image, hash them, queue them in order."""
    pool = [mmap.mmap(-1, BLOCK) for _ in range(_QUEUE_DEPTH + 2)]
    with image.open("rb", buffering=0) as handle:
        index = 0
        while not stop.is_set():
            buffer = pool[index % len(pool)]
            length = handle.readinto(buffer)
            if not length:
                break
            view = memoryview(buffer)[:length]
            if whole is not None:
                whole.update(view)
            out.put(_Block(index, length, buffer, hashlib.sha256(view).digest()))
            view.release()
            index += 1
    out.put(None)


@functools.cache
def _zeros(length: int) -> bytes:
    return bytes(length)


def _device_reads_zero(fd: int, offset: int, length: int, scratch: mmap.mmap) -> bool:
    """Whether the device already holds zeros at [offset, offset + length)."""
    got = os.preadv(fd, [memoryview(scratch)[:length]], offset)
    return got == length and scratch[:length] == _zeros(length)


def _write_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        done = os.pwrite(fd, data, offset)
        data, offset = data[done:], offset + done


def write_image(
    image: Path, node: str, progress: Progress, *, sparse: bool = False, whole_hash: bool = False
) -> WriteResult:
    """Write `image` to the device `node`; fsync; return what verification needs."""
    total = image.stat().st_size
    result = WriteResult()
    whole = hashlib.sha256() if whole_hash else None
    blocks: queue.Queue[_Block | None] = queue.Queue(_QUEUE_DEPTH)
    stop = threading.Event()
    reader = threading.Thread(target=_read_blocks, args=(image, blocks, stop, whole), daemon=True)
    fd, direct = open_device(node, write=True)
    check_fd, _ = open_device(node, write=False)
    scratch = mmap.mmap(-1, BLOCK)
    progress.start("write", total)
    reader.start()
    try:
        while (block := blocks.get()) is not None:
            offset = block.index * BLOCK
            zero = block.length == BLOCK and block.digest == _zero_digest(BLOCK)
            if zero and (sparse or _device_reads_zero(check_fd, offset, BLOCK, scratch)):
                result.digests.append(None if sparse else block.digest)
                result.skipped += 1
            else:
                _write_block(fd, node, block, offset, direct)
                result.digests.append(block.digest)
                result.written += 1
            progress.advance(offset + block.length)
        os.fsync(fd)
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                blocks.get_nowait()
        os.close(fd)
        os.close(check_fd)
    reader.join()
    progress.finish()
    result.image_sha256 = whole.hexdigest() if whole is not None else ""
    return result


def _write_block(fd: int, node: str, block: _Block, offset: int, direct: bool) -> None:
    """Write one block; a short tail that O_DIRECT cannot take goes through a buffered fd."""
    view = memoryview(block.buffer)[: block.length]
    if not direct or block.length % 4096 == 0:
        _write_all(fd, view, offset)
        return
    aligned = block.length - block.length % 4096
    if aligned:
        _write_all(fd, view[:aligned], offset)
    tail_fd = os.open(node, os.O_WRONLY | os.O_CLOEXEC)
    try:
        _write_all(tail_fd, view[aligned:], offset + aligned)
        os.fsync(tail_fd)
    finally:
        os.close(tail_fd)


def _read_device_blocks(
    node: str, total: int, wanted: list[bytes | None]
) -> Iterator[tuple[int, int, Future[bytes]]]:
    """Yield (index, length, digest future) for each wanted block, read back with O_DIRECT.

    Hashing runs in a second thread (hashlib releases the GIL) and each block is handed out only
    after the next one has been read, so reading and hashing overlap; a ring of buffers, larger
    than what is in flight, keeps a buffer from being reused while it is hashed.
    """
    fd, direct = open_device(node, write=False)
    ring = [mmap.mmap(-1, BLOCK) for _ in range(_QUEUE_DEPTH)]
    pending: collections.deque[tuple[int, int, Future[bytes]]] = collections.deque()
    try:
        with ThreadPoolExecutor(max_workers=1) as hasher:
            slot = 0
            for index, expected in enumerate(wanted):
                if expected is None:
                    continue
                offset = index * BLOCK
                length = min(BLOCK, total - offset)
                span = length if not direct else -(-length // 4096) * 4096
                buffer = ring[slot % len(ring)]
                slot += 1
                got = os.preadv(fd, [memoryview(buffer)[:span]], offset)
                if got < length:
                    raise VerifyError(f"{node} ended at byte {offset + got:,} while reading back")
                pending.append((index, length, hasher.submit(_digest, buffer, length)))
                if len(pending) > 1:
                    yield pending.popleft()
            yield from pending
    finally:
        os.close(fd)


def _digest(buffer: mmap.mmap, length: int) -> bytes:
    with memoryview(buffer) as view:
        return hashlib.sha256(view[:length]).digest()


def verify_device(node: str, total: int, result: WriteResult, progress: Progress) -> None:
    """Read the device back and compare every written block's digest; VerifyError on mismatch."""
    progress.start("verify", total)
    for index, length, job in _read_device_blocks(node, total, result.digests):
        if job.result() != result.digests[index]:
            raise VerifyError(
                f"{node} does not read back what was written "
                f"(bytes {index * BLOCK:,} to {index * BLOCK + length:,} differ)",
                "the stick may be failing or fake: try another one",
            )
        progress.advance(index * BLOCK + length)
    progress.finish()
