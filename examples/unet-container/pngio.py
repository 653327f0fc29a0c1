"""Minimal PNG reader and writer, standard library only.

``train.py`` uses Pillow when it is installed and falls back to this module for ``.png``
files, so the image needs nothing beyond PyTorch. Supported: non-interlaced PNG, grayscale,
gray+alpha, RGB, RGBA and palette images, bit depths 1, 2, 4, 8 and 16 (16-bit samples are
reduced to their high byte). Pixels come back as 8-bit samples, row-major, interleaved.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Tuple, Union

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# color type -> samples per pixel
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


class PNGError(ValueError):
    pass


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> bytearray:
    out = bytearray(height * stride)
    prev = bytearray(stride)
    pos = 0
    for y in range(height):
        ftype = raw[pos]
        line = bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        if len(line) != stride:
            raise PNGError("truncated image data")
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                upleft = prev[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + _paeth(left, prev[i], upleft)) & 0xFF
        elif ftype != 0:
            raise PNGError(f"unknown filter type {ftype}")
        out[y * stride:(y + 1) * stride] = line
        prev = line
    return out


def read_png(path: Union[str, Path]) -> Tuple[int, int, int, bytes]:
    """(width, height, channels, pixels): 8-bit samples; channels 1 (gray), 2 (gray+alpha),
    3 (RGB) or 4 (RGBA); palette images come back as RGB (or RGBA with transparency)."""
    data = Path(path).read_bytes()
    if not data.startswith(SIGNATURE):
        raise PNGError(f"{path}: not a PNG file")
    pos = len(SIGNATURE)
    header = None
    palette = b""
    transparency = b""
    idat = bytearray()
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if ctype == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif ctype == b"PLTE":
            palette = body
        elif ctype == b"tRNS":
            transparency = body
        elif ctype == b"IDAT":
            idat += body
        elif ctype == b"IEND":
            break
    if header is None:
        raise PNGError(f"{path}: no IHDR chunk")
    width, height, depth, color, _comp, _filter, interlace = header
    if color not in _CHANNELS or depth not in (1, 2, 4, 8, 16):
        raise PNGError(f"{path}: unsupported color type {color} / bit depth {depth}")
    if depth < 8 and color not in (0, 3):
        raise PNGError(f"{path}: invalid bit depth {depth} for color type {color}")
    if interlace:
        raise PNGError(f"{path}: interlaced PNG is not supported without Pillow")
    samples = _CHANNELS[color]
    bits_per_pixel = samples * depth
    stride = (width * bits_per_pixel + 7) // 8
    bpp = max(1, bits_per_pixel // 8)
    try:
        raw = zlib.decompress(bytes(idat))
    except zlib.error as e:
        raise PNGError(f"{path}: corrupt image data ({e})") from e
    pixels = _unfilter(raw, height, stride, bpp)

    if depth == 16:
        pixels = pixels[0::2]
    elif depth < 8:
        per_byte = 8 // depth
        mask = (1 << depth) - 1
        scale = 255 // mask if color == 0 else 1
        unpacked = bytearray(width * height)
        for y in range(height):
            row = pixels[y * stride:(y + 1) * stride]
            for x in range(width):
                byte = row[x // per_byte]
                shift = 8 - depth * (x % per_byte + 1)
                unpacked[y * width + x] = ((byte >> shift) & mask) * scale
        pixels = unpacked

    if color == 3:
        if not palette:
            raise PNGError(f"{path}: palette image without PLTE chunk")
        channels = 4 if transparency else 3
        out = bytearray(width * height * channels)
        for i, index in enumerate(pixels):
            rgb = palette[3 * index:3 * index + 3]
            out[i * channels:i * channels + 3] = rgb
            if transparency:
                out[i * channels + 3] = transparency[index] if index < len(transparency) else 255
        return width, height, channels, bytes(out)
    return width, height, samples, bytes(pixels)


def write_png(path: Union[str, Path], width: int, height: int, channels: int,
              pixels: bytes) -> None:
    """Write 8-bit pixels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA channels) as a PNG."""
    color = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    stride = width * channels
    if len(pixels) != stride * height:
        raise ValueError(f"expected {stride * height} bytes, got {len(pixels)}")
    raw = b"".join(b"\x00" + bytes(pixels[y * stride:(y + 1) * stride]) for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    Path(path).write_bytes(
        SIGNATURE
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b""))
