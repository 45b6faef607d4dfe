"""Example media files built byte by byte: PNG, JPEG, MP4 and PDF, all valid and tiny.

Every file is derived from its label and bytes drawn from the caller's seeded random
stream, so two builds with one seed write identical files.
"""

from __future__ import annotations

import random
import struct
import zlib

__all__ = ["media_file"]


def _png(label: str, colour_seed: bytes, width: int = 24, height: int = 16) -> bytes:
    """A real RGB PNG: a two-colour gradient, ``label`` in a tEXt chunk."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    r0, g0, b0, r1, g1, b1 = colour_seed[:6]
    scanlines = bytearray()
    for y in range(height):
        scanlines.append(0)  # filter type: none
        for x in range(width):
            t = (x + y) / (width + height - 2)
            scanlines += bytes((round(r0 + (r1 - r0) * t), round(g0 + (g1 - g0) * t), round(b0 + (b1 - b0) * t)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    text = b"Comment\x00" + label.encode("latin-1", "replace")
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"tEXt", text)
        + chunk(b"IDAT", zlib.compress(bytes(scanlines), 9))
        + chunk(b"IEND", b"")
    )


# Annex K's luminance DC table: code lengths 1..16, then the categories in code order.
_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_VALS = tuple(range(12))
# Every block is flat, so the only AC symbol ever written is end-of-block (0x00).
_AC_BITS = (1,) + (0,) * 15
_AC_VALS = (0x00,)
_QUANT = 8


def _huffman_codes(bits: tuple[int, ...], vals: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    """Canonical Huffman codes (JPEG Annex C): symbol -> (code, length)."""
    codes: dict[int, tuple[int, int]] = {}
    code = 0
    k = 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[vals[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


def _jpeg(label: str, shades: bytes, blocks_x: int = 4, blocks_y: int = 2) -> bytes:
    """A real baseline grayscale JPEG of flat 8x8 blocks (one shade each), ``label`` as COM."""

    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload

    dc_codes = _huffman_codes(_DC_BITS, _DC_VALS)
    eob_code, eob_len = _huffman_codes(_AC_BITS, _AC_VALS)[0x00]

    acc = 0
    nbits = 0
    previous = 0
    for i in range(blocks_x * blocks_y):
        # A flat block of level p has DCT DC coefficient 8*(p-128); quantised by 8: p-128.
        dc = shades[i % len(shades)] - 128
        diff = dc - previous
        previous = dc
        category = abs(diff).bit_length()
        code, length = dc_codes[category]
        extra = diff if diff >= 0 else diff + (1 << category) - 1
        acc = (acc << length) | code
        nbits += length
        acc = (acc << category) | extra
        nbits += category
        acc = (acc << eob_len) | eob_code
        nbits += eob_len
    pad = (-nbits) % 8
    acc = (acc << pad) | ((1 << pad) - 1)  # pad with one-bits
    raw = acc.to_bytes((nbits + pad) // 8, "big")
    scan = raw.replace(b"\xff", b"\xff\x00")  # byte stuffing

    height, width = blocks_y * 8, blocks_x * 8
    return (
        b"\xff\xd8"
        + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + segment(0xFE, label.encode("utf-8"))
        + segment(0xDB, b"\x00" + bytes([_QUANT]) * 64)
        + segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
        + segment(0xC4, b"\x00" + bytes(_DC_BITS) + bytes(_DC_VALS))
        + segment(0xC4, b"\x10" + bytes(_AC_BITS) + bytes(_AC_VALS))
        + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
        + scan
        + b"\xff\xd9"
    )


def _mp4(label: str, payload: bytes) -> bytes:
    """A minimal ISO base media file: ftyp, free (the label), mdat, moov/mvhd."""

    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", 8 + len(body)) + kind + body

    created = 3_800_000_000  # seconds since 1904-01-01: in 2024
    matrix = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
    mvhd = (
        struct.pack(">B3xIIII", 0, created, created, 1000, 2000)
        + struct.pack(">IH", 0x00010000, 0x0100)
        + b"\x00" * 10
        + matrix
        + b"\x00" * 24
        + struct.pack(">I", 1)
    )
    return (
        box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41")
        + box(b"free", label.encode("utf-8"))
        + box(b"mdat", payload)
        + box(b"moov", box(b"mvhd", mvhd))
    )


_WIN_ANSI_EXTRA = {"–": 0x96, "—": 0x97, "’": 0x92, "“": 0x93, "”": 0x94, "€": 0x80}


def _pdf_text(text: str) -> bytes:
    out = bytearray()
    for ch in text:
        code = _WIN_ANSI_EXTRA.get(ch, ord(ch))
        if ch in "()\\":
            out += b"\\" + ch.encode("ascii")
        elif 32 <= code < 127:
            out.append(code)
        elif code < 256:
            out += b"\\%03o" % code  # WinAnsi: Latin-1 for å, ä, ö; the table above for dashes
        else:
            out.append(ord("?"))
    return bytes(out)


def _pdf(title: str, lines: list[str]) -> bytes:
    """A minimal valid one-page PDF 1.4 with correct cross-reference offsets."""
    content = bytearray(b"BT\n/F1 18 Tf\n72 770 Td\n(" + _pdf_text(title) + b") Tj\n/F1 11 Tf\n")
    for line in lines:
        content += b"0 -20 Td\n(" + _pdf_text(line) + b") Tj\n"
    content += b"ET\n"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + bytes(content) + b"endstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    return bytes(out)


def media_file(content_type: str, label: str, rng: random.Random) -> bytes:
    """A small valid file of ``content_type`` (PNG, JPEG, MP4 or PDF) labelled ``label``."""
    if content_type == "image/png":
        return _png(label, rng.randbytes(6))
    if content_type == "image/jpeg":
        return _jpeg(label, rng.randbytes(8))
    if content_type == "video/mp4":
        return _mp4(label, rng.randbytes(rng.randrange(512, 2048)))
    if content_type == "application/pdf":
        return _pdf(label, [f"Sida 1 av 1 – {label}", "Läs igenom kursplanen före första träffen."])
    raise ValueError(f"no generator for {content_type}")


# --------------------------------------------------------------------------- data pools
