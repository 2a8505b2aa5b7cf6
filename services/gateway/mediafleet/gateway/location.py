"""Originals served back without the position they record (``GATEWAY_STRIP_LOCATION``).

Lossless: no pixel or sample is decoded or re-encoded, and every other byte stays where it was.

- **JPEG**: in the EXIF APP1 segment (a TIFF structure, EXIF 2.32 / TIFF 6.0) the GPS IFD that
  IFD0's ``GPSInfo`` (tag 0x8825) points to is emptied: each entry's value bytes are zeroed,
  then the entries themselves, and its entry count set to 0 (an empty IFD is valid, so every
  reader still opens the file). An XMP APP1 segment that names a GPS property is left out
  whole (XMP: ISO 16684-1; ``exif:GPSLatitude`` and the like).
- **MP4 / MOV**: inside the ``moov`` box (ISO/IEC 14496-12), a ``loci`` box (3GPP TS 26.244)
  or ``©xyz`` atom (QuickTime, Android) becomes a ``free`` box of the same size with its
  payload zeroed (readers skip ``free`` boxes), and every other ISO 6709 position string
  (``+48.8584+002.2945+035.000/``: Apple's ``com.apple.quicktime.location.ISO6709`` value) is
  overwritten with spaces of the same length. No size or offset changes.

Other formats are served as stored (PNG, TIFF, WebP and HEIC rarely carry a position; named
in docs/security.md).
"""

from __future__ import annotations

import re
import shutil
import struct
from pathlib import Path
from typing import BinaryIO

#: ISO 6709 decimal-degree positions as phones write them, with optional altitude and CRS.
ISO6709 = re.compile(rb"[+-]\d{2}(?:\.\d+)?[+-]\d{3}(?:\.\d+)?(?:[+-]\d+(?:\.\d+)?)?(?:CRS[A-Za-z0-9_]*)?/")
#: TIFF field type -> bytes per value (TIFF 6.0 section 2; 13: IFD, from TIFF/EP).
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_GPS_INFO = 0x8825
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
#: Boxes that hold a position: 3GPP's ``loci`` (TS 26.244: binary 16.16 longitude, latitude,
#: altitude; FFmpeg's MP4 muxer writes it) and QuickTime's ``©xyz`` (an ISO 6709 string).
POSITION_BOXES = (b"loci", b"\xa9xyz")
#: A moov box larger than this is not searched (a normal one is a few hundred KiB).
MAX_MOOV_BYTES = 64 << 20


def empty_gps_ifd(tiff: bytearray) -> bool:
    """Empty the GPS IFD of the TIFF structure ``tiff`` (an EXIF APP1 payload after ``Exif\\0\\0``)
    in place. Returns whether there was one. Offsets outside ``tiff`` are left alone."""
    if len(tiff) < 8 or bytes(tiff[:2]) not in (b"II", b"MM"):
        return False
    order = "<" if tiff[:2] == b"II" else ">"

    def u16(at: int) -> int:
        return int(struct.unpack_from(order + "H", tiff, at)[0])

    def u32(at: int) -> int:
        return int(struct.unpack_from(order + "I", tiff, at)[0])

    ifd0 = u32(4)
    if ifd0 + 2 > len(tiff):
        return False
    gps = None
    for i in range(u16(ifd0)):
        entry = ifd0 + 2 + 12 * i
        if entry + 12 > len(tiff):
            break
        if u16(entry) == _GPS_INFO:
            gps = u32(entry + 8)
    if gps is None or gps + 2 > len(tiff):
        return False
    count = u16(gps)
    for i in range(count):
        entry = gps + 2 + 12 * i
        if entry + 12 > len(tiff):
            break
        size = _TYPE_SIZE.get(u16(entry + 2), 1) * u32(entry + 4)
        if size > 4:  # the value lives elsewhere: zero it there
            at = u32(entry + 8)
            if at + size <= len(tiff):
                tiff[at : at + size] = bytes(size)
    end = min(len(tiff), gps + 2 + 12 * count + 4)
    tiff[gps:end] = bytes(end - gps)  # count 0, entries and the next-IFD pointer gone
    return True


def _copy_jpeg(src: BinaryIO, dst: BinaryIO) -> bool:
    """Copy a JPEG, its EXIF GPS emptied and GPS-bearing XMP left out. Returns whether a
    position was removed. The segments after SOS (the image data) are copied as they are."""
    if src.read(2) != b"\xff\xd8":
        raise ValueError("not a JPEG")
    dst.write(b"\xff\xd8")
    removed = False
    while True:
        marker = src.read(2)
        if len(marker) < 2 or marker[0] != 0xFF or marker[1] == 0xDA:  # SOS (or junk): the rest as is
            dst.write(marker)
            break
        if 0xD0 <= marker[1] <= 0xD9 or marker[1] == 0x01:  # standalone markers: no length
            dst.write(marker)
            continue
        length_bytes = src.read(2)
        (length,) = struct.unpack(">H", length_bytes)
        payload = bytearray(src.read(length - 2))
        if marker[1] == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            tiff = payload[6:]
            if empty_gps_ifd(tiff):
                payload[6:] = tiff
                removed = True
        elif marker[1] == 0xE1 and payload.startswith(_XMP) and b"GPS" in payload:
            removed = True
            continue  # the whole XMP packet left out
        dst.write(marker + length_bytes + payload)
    shutil.copyfileobj(src, dst, 1 << 20)
    return removed


def _moov_span(f: BinaryIO) -> tuple[int, int] | None:
    """(offset, size) of the top-level ``moov`` box of an ISO BMFF / QuickTime file, if any."""
    f.seek(0, 2)
    end = f.tell()
    at = 0
    while at + 8 <= end:
        f.seek(at)
        size, kind = struct.unpack(">I4s", f.read(8))
        if size == 1:  # 64-bit size follows
            (size,) = struct.unpack(">Q", f.read(8))
        elif size == 0:  # to the end of the file
            size = end - at
        if size < 8:
            return None
        if kind == b"moov":
            return at, size
        at += size
    return None


def _blank_mp4_positions(f: BinaryIO) -> bool:
    """Remove the positions inside the ``moov`` box of the open file ``f`` (r+b), in place."""
    span = _moov_span(f)
    if span is None or span[1] > MAX_MOOV_BYTES:
        return False
    f.seek(span[0])
    moov = bytearray(f.read(span[1]))
    found = False
    for kind in POSITION_BOXES:
        at = moov.find(kind, 4)
        while at != -1:
            (size,) = struct.unpack_from(">I", moov, at - 4)
            if 8 <= size <= len(moov) - (at - 4):  # a box header, not a coincidence in other data
                moov[at : at + 4] = b"free"
                moov[at + 4 : at - 4 + size] = bytes(size - 8)
                found = True
            at = moov.find(kind, at + 4)
    for m in ISO6709.finditer(moov):
        moov[m.start() : m.end()] = b" " * (m.end() - m.start())
        found = True
    if found:
        f.seek(span[0])
        f.write(moov)
    return found


def write_without_location(source: Path, target: Path, mime: str) -> bool:
    """Write ``source`` to ``target`` without the position it records (see the module's
    docstring for what is removed per format). Returns whether a position was found.
    Raises ValueError on a JPEG that is not one; OSError from the file system."""
    with source.open("rb") as src, target.open("wb") as dst:
        if mime == "image/jpeg":
            return _copy_jpeg(src, dst)
        shutil.copyfileobj(src, dst, 1 << 20)
    if mime in ("video/mp4", "audio/mp4"):  # MOV is probed as video/mp4 too (AV_FORMATS)
        with target.open("r+b") as f:
            return _blank_mp4_positions(f)
    return False
