"""The Teams app package: three files at the zip's root, valid icons, identical bytes every build."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.teams.icons import ACCENT_COLOR, MARK_COLOR, encode_png
from adapters.teams.manifest import PLACEHOLDER_APP_ID, build_package, manifest_json

APP_ID = "8f2c6f9e-3b1a-4d5e-9c7b-2a1f0e6d4c3b"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

Pixel = tuple[int, int, int, int]


def decode_png(data: bytes) -> tuple[int, int, list[list[Pixel]]]:
    """An independent reader for 8-bit RGBA PNGs: checks the framing, CRCs and all five filters."""
    assert data[:8] == PNG_SIGNATURE
    offset, chunks = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        offset += 12 + length
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1] == (b"IEND", b"")
    width, height, depth, colour_type, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1]
    )
    assert (depth, colour_type, compression, filtering, interlace) == (8, 6, 0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * 4
    assert len(raw) == (stride + 1) * height
    previous = bytearray(stride)
    rows = []
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        filter_type, row = line[0], bytearray(line[1:])
        for i in range(stride):
            left = row[i - 4] if i >= 4 else 0
            up = previous[i]
            up_left = previous[i - 4] if i >= 4 else 0
            if filter_type == 1:
                row[i] = (row[i] + left) & 0xFF
            elif filter_type == 2:
                row[i] = (row[i] + up) & 0xFF
            elif filter_type == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xFF
            elif filter_type == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                row[i] = (row[i] + pred) & 0xFF
            else:
                assert filter_type == 0, f"unknown filter {filter_type}"
        rows.append([(row[i], row[i + 1], row[i + 2], row[i + 3]) for i in range(0, stride, 4)])
        previous = row
    return width, height, rows


def rgb(hex_color: str) -> tuple[int, int, int]:
    return (int(hex_color[1:3], 16), int(hex_color[3:5], 16), int(hex_color[5:7], 16))


def package_files(app_id: str = APP_ID) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(build_package(app_id=app_id))) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def test_the_package_holds_exactly_the_manifest_and_two_icons_at_its_root() -> None:
    files = package_files()
    assert sorted(files) == ["color.png", "manifest.json", "outline.png"]
    assert files["manifest.json"].decode("utf-8") == manifest_json(app_id=APP_ID)


def test_the_package_is_for_the_public_url_it_was_built_for() -> None:
    zipped = build_package(app_id=PLACEHOLDER_APP_ID, public_url="https://sales.acme.test")
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        manifest = archive.read("manifest.json").decode("utf-8")
    assert manifest == manifest_json(
        app_id=PLACEHOLDER_APP_ID, public_url="https://sales.acme.test"
    )


def test_two_builds_are_byte_identical_because_the_timestamps_are_fixed() -> None:
    first = build_package(app_id=APP_ID)
    assert first == build_package(app_id=APP_ID)
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert first != build_package(app_id=PLACEHOLDER_APP_ID)


def test_the_colour_icon_is_a_full_bleed_192_square_with_a_lighter_mark_in_the_safe_area() -> None:
    width, height, rows = decode_png(package_files()["color.png"])
    assert (width, height) == (192, 192)
    assert {pixel[3] for row in rows for pixel in row} == {255}  # Teams masks it; no transparency
    accent, mark = (*rgb(ACCENT_COLOR), 255), (*rgb(MARK_COLOR), 255)
    assert rows[0][0] == rows[0][191] == rows[191][0] == rows[191][191] == accent
    marked = [(x, y) for y, row in enumerate(rows) for x, pixel in enumerate(row) if pixel == mark]
    assert marked
    assert all(36 <= x < 156 and 36 <= y < 156 for x, y in marked)  # the 120×120 safe area
    assert sum(mark[:3]) > sum(accent[:3])
    assert {pixel for row in rows for pixel in row} == {accent, mark}


def test_the_outline_icon_is_32_square_and_only_white_on_full_transparency() -> None:
    width, height, rows = decode_png(package_files()["outline.png"])
    assert (width, height) == (32, 32)
    pixels = {pixel for row in rows for pixel in row}
    assert all(pixel[:3] == (255, 255, 255) or pixel[3] == 0 for pixel in pixels)
    assert any(pixel[3] == 0 for pixel in pixels)
    assert any(pixel[3] == 255 for pixel in pixels)  # something is drawn
    assert rows[0][0][3] == 0  # the background is transparent, not white


@settings(deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda w: st.integers(1, 6).flatmap(
            lambda h: st.tuples(
                st.just(w), st.just(h), st.binary(min_size=w * h * 4, max_size=w * h * 4)
            )
        )
    )
)
def test_any_rgba_image_comes_back_pixel_for_pixel(image: tuple[int, int, bytes]) -> None:
    width, height, rgba = image
    decoded_width, decoded_height, rows = decode_png(encode_png(width, height, rgba))
    assert (decoded_width, decoded_height) == (width, height)
    assert bytes(channel for row in rows for pixel in row for channel in pixel) == rgba


@pytest.mark.parametrize(("width", "height", "size"), [(2, 2, 15), (0, 1, 0)])
def test_pixels_that_do_not_fill_the_image_are_refused(width: int, height: int, size: int) -> None:
    with pytest.raises(ValueError, match=r"PNG|bytes"):
        encode_png(width, height, bytes(size))
