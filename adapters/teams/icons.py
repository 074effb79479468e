"""The two icons a Teams app package must carry, drawn and PNG-encoded in pure Python.

Teams asks for a full-bleed 192×192 colour icon (it applies its own mask, so the square is
filled edge to edge and the mark stays inside the central 120×120 safe area) and a 32×32
outline icon that is white on a fully transparent background
(https://learn.microsoft.com/en-us/microsoftteams/platform/concepts/design/design-teams-app-icon-store-appbar).
The mark is three rising bars. Drawing them here rather than checking in binary files keeps
the package reproducible from source and needs no imaging library.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Sequence

ACCENT_COLOR = "#1f3a5f"
MARK_COLOR = "#e3ecf7"  # a light tint of the accent: the mark reads as part of the same brand

COLOR_SIZE = 192
OUTLINE_SIZE = 32

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")  # what the manifest's accentColor accepts
_RGBA = 6  # PNG colour type: truecolour with alpha
_TRANSPARENT = (0, 0, 0, 0)
_WHITE = (255, 255, 255, 255)

Pixel = tuple[int, int, int, int]
Rect = tuple[int, int, int, int]  # left, top, right, bottom; right and bottom exclusive

# Bars as (left, top, right, bottom). Colour icon: 3 bars of 28 px with 18 px gaps span exactly
# the 120 px safe area (x 36..156). Outline icon: the same shape at 32 px, 4 px clear of the edges.
_COLOR_BARS: tuple[Rect, ...] = ((36, 108, 64, 150), (82, 78, 110, 150), (128, 42, 156, 150))
_OUTLINE_BARS: tuple[Rect, ...] = ((4, 19, 10, 28), (13, 12, 19, 28), (22, 4, 28, 28))


def color_icon(accent: str = ACCENT_COLOR, mark: str = MARK_COLOR) -> bytes:
    return _draw(COLOR_SIZE, _opaque(accent), _COLOR_BARS, _opaque(mark))


def outline_icon() -> bytes:
    """Only pure white and full transparency: Teams rejects any other colour in the outline."""
    return _draw(OUTLINE_SIZE, _TRANSPARENT, _OUTLINE_BARS, _WHITE)


def encode_png(width: int, height: int, rgba: bytes) -> bytes:
    """An 8-bit RGBA, non-interlaced PNG; the same pixels always give the same bytes."""
    if width <= 0 or height <= 0:
        raise ValueError(f"A PNG needs a positive size, not {width}×{height}.")
    stride = width * 4
    if len(rgba) != stride * height:
        raise ValueError(
            f"A {width}×{height} RGBA image has {stride * height} bytes of pixels, not {len(rgba)}."
        )
    # Filter type 0 (None) on every row: the images are flat colour, and zlib does the rest.
    raw = b"".join(b"\x00" + rgba[row * stride : (row + 1) * stride] for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, _RGBA, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def _draw(size: int, background: Pixel, rects: Sequence[Rect], foreground: Pixel) -> bytes:
    back, fore = bytes(background), bytes(foreground)
    rows = []
    for y in range(size):
        row = bytearray(back * size)
        for left, top, right, bottom in rects:
            if top <= y < bottom:
                row[left * 4 : right * 4] = fore * (right - left)
        rows.append(bytes(row))
    return encode_png(size, size, b"".join(rows))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _opaque(hex_color: str) -> Pixel:
    if not _HEX_COLOR.fullmatch(hex_color):
        raise ValueError(f"Colours are written #rrggbb; {hex_color!r} is not.")
    red, green, blue = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return (red, green, blue, 255)
