"""The failure's log bundle on the stick's FAT seed partition, written so that a power cut at any
moment leaves a consistent file system and a whole bundle (the previous one or the new one): the
rule SETUP-RESULT.txt follows (receipt_file.py), for a file a person opens with an archive tool.

Two files of one fixed size, `clawdie-logs-1.tar.gz` and `clawdie-logs-2.tar.gz`, made once and
afterwards rewritten in place in their own clusters (the FAT tables and the directory never change
during a rewrite). A new bundle goes into the file that does not hold the newest whole one, so a
cut leaves that one untouched. Each file is an ordinary gzip file of two members: the bundle
(a tar.gz as the disk keeps it), then an empty member whose comment pads the file to its size and
ends with the bundle's number, its length and a check of everything before it. Every gzip reader
decompresses both members to the bundle's tar (the second adds nothing); `read_bundle_file`
takes a file only when its check holds, and the newest of the whole ones is the bundle.
"""

from __future__ import annotations

import gzip
import logging
import re
import zlib
from collections.abc import Mapping
from pathlib import Path

from installer.errors import InstallerError
from installer.media.receipt_file import make_file, read_file_bytes, rewrite_range

log = logging.getLogger("clawdie.seed")

FILE_BYTES = 4 * 1024 * 1024
NAMES = ("clawdie-logs-1.tar.gz", "clawdie-logs-2.tar.gz")
# a gzip member header: magic, deflate, FCOMMENT, no time, no extra flags, OS unknown
_PAD_HEAD = b"\x1f\x8b\x08\x10\x00\x00\x00\x00\x00\xff"
_PAD_NOTE = b"clawdie: padding to a fixed size, so that the stick is rewritten in place "
# the comment's end, the empty deflate block, its CRC-32 and length (both 0)
_PAD_END = b"\x00\x03\x00" + bytes(8)
_TAIL = re.compile(rb" bundle (\d{8}) size (\d{8}) check ([0-9a-f]{8})" + re.escape(_PAD_END))
_TAIL_BYTES = len(" bundle 00000000 size 00000000 check 00000000") + len(_PAD_END)
# an empty tar.gz: what a file made before any bundle holds
_EMPTY_TAR_GZ = gzip.compress(bytes(10240), mtime=0)


class BundleTooLargeError(InstallerError):
    """A bundle larger than the stick's bundle file."""


def render_bundle_file(number: int, bundle: bytes, file_bytes: int = FILE_BYTES) -> bytes:
    """The file holding bundle `number`: the bundle, the padding member, the tail (pure)."""
    fill = file_bytes - len(bundle) - len(_PAD_HEAD) - len(_PAD_NOTE) - _TAIL_BYTES
    if fill < 0:
        raise BundleTooLargeError(
            f"the log bundle ({len(bundle):,} bytes) is larger than the stick's bundle file "
            f"({file_bytes:,} bytes)",
            "the whole bundle is on the disk, in the state directory",
        )
    body = bundle + _PAD_HEAD + _PAD_NOTE + b" " * fill
    marker = f" bundle {number:08d} size {len(bundle):08d} check ".encode()
    check = zlib.crc32(body + marker)
    return body + marker + f"{check:08x}".encode() + _PAD_END


def read_bundle_file(data: bytes | None, file_bytes: int = FILE_BYTES) -> tuple[int, bytes] | None:
    """(number, bundle) of a whole bundle file; None for a file torn by a cut, blank, not ours
    or missing (pure)."""
    if data is None or len(data) != file_bytes:
        return None
    tail = _TAIL.fullmatch(data[-_TAIL_BYTES:])
    if tail is None:
        return None
    number, size, check = int(tail.group(1)), int(tail.group(2)), tail.group(3).decode()
    if size > file_bytes or f"{zlib.crc32(data[: -len(check) - len(_PAD_END)]):08x}" != check:
        return None
    return number, data[:size]


def newest_bundle(files: Mapping[str, bytes | None], file_bytes: int = FILE_BYTES) -> bytes | None:
    """The newest whole bundle among the bundle files' bytes (None: none is whole) (pure)."""
    whole = [r for name in NAMES if (r := read_bundle_file(files.get(name), file_bytes))]
    return max(whole)[1] if whole else None


def write_bundle_in_place(
    node: str, bundle: bytes, staging: Path, file_bytes: int = FILE_BYTES
) -> str:
    """Write `bundle` on the FAT volume `node` into the bundle file not holding the newest whole
    bundle: in place, or made once (both files, at their fixed size) with mtools. Returns the
    name it went to."""
    files = {name: read_file_bytes(node, name, staging, 2 * file_bytes) for name in NAMES}
    whole = [(r[0], name) for name in NAMES if (r := read_bundle_file(files[name], file_bytes))]
    number, newest = max(whole) if whole else (0, NAMES[1])
    target = NAMES[1 - NAMES.index(newest)]
    data = render_bundle_file(number + 1, bundle, file_bytes)
    for name in NAMES:  # made once: the second holds an empty archive until it is needed
        if name != target and (files[name] is None or len(files[name] or b"") != file_bytes):
            make_file(node, name, render_bundle_file(0, _EMPTY_TAR_GZ, file_bytes), staging)
    current = files[target]
    if current is None or len(current) != file_bytes:
        make_file(node, target, data, staging)
    else:
        rewrite_range(node, target, 0, data)
    log.debug("seed: log bundle %d written to %s", number + 1, target)
    return target
