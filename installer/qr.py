"""A QR code for a text console: the dashboard's address as block characters, two modules a
character cell (upper and lower half), so a phone can read it off the login screen.

The Linux console is light on dark: the code's light modules (and its quiet zone) are drawn
with the block characters and its dark modules are the screen's own background, so the code
reads dark on light, as a phone expects. Only four characters are used: U+2588 full block,
U+2580 upper half, U+2584 lower half and the space. The image's console font
(iso/overlay/etc/default/console-setup: Uni2-VGA14) has all of them; Debian's default
Uni2-Fixed16 and every Lat15 font lack the two half blocks.

Pure: text in, lines out (segno makes the code).
"""

from __future__ import annotations

from collections.abc import Sequence

import segno

FULL, UPPER, LOWER, EMPTY = "\u2588", "\u2580", "\u2584", " "
CHARACTERS = frozenset((FULL, UPPER, LOWER, EMPTY))
QUIET_ZONE = 4  # modules of light border around the code (ISO/IEC 18004)
SMALL_QUIET_ZONE = 2  # still read by phones; used where the standard one does not fit

# (top module light, bottom module light) -> the character that draws it
_CELLS = {(True, True): FULL, (True, False): UPPER, (False, True): LOWER, (False, False): EMPTY}


def make_modules(text: str) -> list[list[bool]]:
    """The code's modules (True: dark), without a border: the smallest QR version that holds
    `text` at error level L, with the level raised as far as that version allows."""
    code = segno.make(text, error="L", boost_error=True, micro=False)
    return [[bool(m) for m in row] for row in code.matrix_iter(scale=1, border=0)]


def render_blocks(modules: Sequence[Sequence[bool]], border: int = QUIET_ZONE) -> list[str]:
    """The modules as console lines, `border` light modules around them, two module rows per
    line. Every line has the same width: modules + 2 * border."""
    width = len(modules[0]) + 2 * border if modules else 0
    light_row = [True] * width
    rows = [light_row] * border
    rows += [[True] * border + [not m for m in row] + [True] * border for row in modules]
    rows += [light_row] * border
    if len(rows) % 2:  # an odd count: the last line's lower half is the background
        rows.append([False] * width)
    return [
        "".join(_CELLS[top, bottom] for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(rows[::2], rows[1::2], strict=True)
    ]


def render_qr(text: str, border: int = QUIET_ZONE) -> list[str]:
    """`text` as a QR code in console lines (see render_blocks)."""
    return render_blocks(make_modules(text), border)
