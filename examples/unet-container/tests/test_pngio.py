"""The stdlib PNG fallback that train.py uses when Pillow is absent."""

from __future__ import annotations

import struct
import sys
import tempfile
import unittest
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pngio  # noqa: E402


def raw_png(width: int, height: int, depth: int, color: int, rows: list, extra=b"") -> bytes:
    """A PNG with the given already-filtered rows (each starting with its filter byte)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (pngio.SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0))
            + extra + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


class PngTest(unittest.TestCase):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self._tmp.name)

    def tearDown(self) -> None:
        self._tmp.cleanup()

    def test_round_trip(self) -> None:
        for channels in (1, 2, 3, 4):
            pixels = bytes((i * 37 + channels) % 256 for i in range(5 * 3 * channels))
            path = self.dir / f"c{channels}.png"
            pngio.write_png(path, 5, 3, channels, pixels)
            self.assertEqual(pngio.read_png(path), (5, 3, channels, pixels))

    def test_filters(self) -> None:
        # gray 3x4, one row per filter type; expected rows computed by hand
        rows = [b"\x00\x0a\x14\x1e", b"\x01\x05\x01\x01", b"\x02\x01\x01\x01",
                b"\x03\x02\x02\x02", b"\x04\x01\x01\x01"]
        path = self.dir / "f.png"
        path.write_bytes(raw_png(3, 5, 8, 0, rows))
        _, _, _, px = pngio.read_png(path)
        self.assertEqual(list(px), [10, 20, 30, 5, 6, 7, 6, 7, 8, 5, 8, 10, 6, 9, 11])

    def test_one_bit_gray_and_palette(self) -> None:
        path = self.dir / "bits.png"
        path.write_bytes(raw_png(10, 1, 1, 0, [b"\x00\xa0\x40"]))
        self.assertEqual(list(pngio.read_png(path)[3]), [255, 0, 255, 0, 0, 0, 0, 0, 0, 255])
        path.write_bytes(raw_png(2, 1, 8, 3, [b"\x00\x01\x00"],
                                 extra=struct.pack(">I", 6) + b"PLTE" + b"\x00\x00\x00\xff\x00\x00"
                                 + struct.pack(">I", zlib.crc32(b"PLTE\x00\x00\x00\xff\x00\x00"))))
        self.assertEqual(pngio.read_png(path), (2, 1, 3, b"\xff\x00\x00\x00\x00\x00"))

    def test_not_png(self) -> None:
        path = self.dir / "x.png"
        path.write_bytes(b"GIF89a")
        with self.assertRaises(pngio.PNGError):
            pngio.read_png(path)


if __name__ == "__main__":
    unittest.main()
