"""The Linux console as a picture: the console font the image configures (a PSF file from
Debian's console-setup-linux), which characters it has, and a captured screen drawn with it into
a PNG, the way the machine's screen shows it. Also the pixels of the block characters alone, for
a QR reader."""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FONT_DIR = Path("/usr/share/consolefonts")
CONSOLE_SETUP = ROOT / "iso/overlay/etc/default/console-setup"
FOREGROUND, BACKGROUND = 0xAA, 0x00  # the VGA palette's light grey on black

PSF1_MAGIC = b"\x36\x04"
PSF2_MAGIC = 0x864AB572


@dataclass(frozen=True)
class ConsoleFont:
    width: int
    height: int
    glyphs: list[bytes]
    index: dict[str, int]  # character -> glyph

    def has(self, char: str) -> bool:
        return char in self.index

    def glyph_rows(self, char: str) -> list[list[bool]]:
        """The character's pixels (True: ink); a missing one is drawn as the font's `?`."""
        glyph = self.glyphs[self.index.get(char, self.index.get("?", 0))]
        row_bytes = (self.width + 7) // 8
        rows = []
        for y in range(self.height):
            bits = glyph[y * row_bytes : (y + 1) * row_bytes]
            rows.append([bool(bits[x // 8] & (0x80 >> (x % 8))) for x in range(self.width)])
        return rows


def read_psf(path: Path) -> ConsoleFont:
    """A PSF1 or PSF2 console font with its Unicode table."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    index: dict[str, int] = {}
    if data[:2] == PSF1_MAGIC:
        mode, height = data[2], data[3]
        count, width, start = (512 if mode & 1 else 256), 8, 4
        glyphs = [data[start + i * height : start + (i + 1) * height] for i in range(count)]
        table, glyph, offset = data[start + count * height :], 0, 0
        while offset + 1 < len(table) and glyph < count:
            (value,) = struct.unpack_from("<H", table, offset)
            offset += 2
            if value == 0xFFFF:
                glyph += 1
            elif value != 0xFFFE:
                index.setdefault(chr(value), glyph)
        return ConsoleFont(width, height, glyphs, index)
    magic, _version, header, _flags, count, size, height, width = struct.unpack_from("<8I", data)
    if magic != PSF2_MAGIC:
        raise ValueError(f"{path} is not a PSF font")
    glyphs = [data[header + i * size : header + (i + 1) * size] for i in range(count)]
    for glyph, entry in enumerate(data[header + count * size :].split(b"\xff")[:count]):
        single = entry.split(b"\xfe")[0]  # the characters before any sequence
        for char in single.decode("utf-8", errors="ignore"):
            index.setdefault(char, glyph)
    return ConsoleFont(width, height, glyphs, index)


def configured_font_path(config: Path = CONSOLE_SETUP, fonts: Path = FONT_DIR) -> Path:
    """The font setupcon loads for the image's /etc/default/console-setup (CODESET, FONTFACE,
    FONTSIZE as console-setup(5) names the file: `8x14` is `14`, `16x32` is `32x16`)."""
    settings = dict(re.findall(r'^([A-Z]+)="?([^"\n]*)"?$', config.read_text(), re.M))
    width, height = settings["FONTSIZE"].split("x")
    size = height if width == "8" else f"{height}x{width}"
    return fonts / f"{settings['CODESET']}-{settings['FONTFACE']}{size}.psf.gz"


def render_rows(
    lines: Sequence[str], font: ConsoleFont, columns: int = 80, rows: int = 25
) -> list[bytes]:
    """The screen as the console draws it: light grey on black, one font cell a character;
    one greyscale byte a pixel, a bytes object a pixel row."""
    grid = [line.ljust(columns)[:columns] for line in [*lines, *[""] * rows][:rows]]
    pixels = []
    for line in grid:
        cells = [font.glyph_rows(char) for char in line]
        for y in range(font.height):
            pixels.append(
                bytes(FOREGROUND if ink else BACKGROUND for cell in cells for ink in cell[y])
            )
    return pixels


def render_png(lines: Sequence[str], font: ConsoleFont) -> bytes:
    return encode_png(render_rows(lines, font))


LIGHT_CELLS = {"\u2588": (True, True), "\u2580": (True, False), "\u2584": (False, True)}


def block_pixels(lines: Sequence[str], scale: int = 4) -> tuple[bytes, int, int]:
    """The block characters of a captured screen as a greyscale image for a QR reader: each
    cell is two modules high and one wide, light where the block is, dark elsewhere (the
    console's background, and any text). Returns (pixels, width, height)."""
    width = max(len(line) for line in lines)
    out = bytearray()
    for line in lines:
        halves = [LIGHT_CELLS.get(char, (False, False)) for char in line.ljust(width)]
        for half in (0, 1):
            row = b"".join(bytes([255 if cell[half] else 0]) * scale for cell in halves)
            out += row * scale
    return bytes(out), width * scale, len(lines) * 2 * scale


def encode_png(rows: Sequence[bytes]) -> bytes:
    """Greyscale rows (one byte a pixel) as a PNG file."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", len(rows[0]), len(rows), 8, 0, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
