"""Lucene's CodecUtil framing (header, footer, CRC32) and ES metadata blob payloads.

Every ES metadata blob and every Lucene file is framed the same way; checking the CRC here
is what turns a flipped bit into a clear "file X is corrupt" instead of garbage.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from mactl.snapshot_reader import smile
from mactl.snapshot_reader.errors import CorruptFileError, UnsupportedFormatError

CODEC_MAGIC = 0x3FD76C17
FOOTER_MAGIC = 0xC02893E8
_FOOTER_MAGIC_BYTES = FOOTER_MAGIC.to_bytes(4, "big")
_HEADER_MAGIC_BYTES = CODEC_MAGIC.to_bytes(4, "big")


def verify_footer(data: bytes | memoryview, name: str) -> int:
    """Check the 16-byte Lucene footer and CRC32 of a whole file; return the checksum."""
    data = memoryview(data)  # slicing a view does not copy the (possibly huge) file
    if len(data) < 16 or bytes(data[-16:-12]) != _FOOTER_MAGIC_BYTES:
        raise CorruptFileError(f"{name} is corrupt: no Lucene checksum footer at its end")
    algo = int.from_bytes(data[-12:-8], "big")
    if algo != 0:
        raise CorruptFileError(f"{name} is corrupt: unknown checksum algorithm {algo}")
    expected = int.from_bytes(data[-8:], "big")
    actual = zlib.crc32(data[:-8])
    if expected != actual:
        raise CorruptFileError(
            f"{name} is corrupt: checksum mismatch (footer says {expected:08x}, content gives {actual:08x})"
        )
    return expected


def read_header(data: bytes | memoryview, name: str) -> tuple[str, int, int]:
    """Parse a CodecUtil header: (codec name, version, offset after the header)."""
    if bytes(data[:4]) != _HEADER_MAGIC_BYTES:
        raise CorruptFileError(f"{name} is corrupt: no Lucene codec header")
    n = data[4]
    codec = bytes(data[5 : 5 + n]).decode("ascii", "replace")
    version = int.from_bytes(data[5 + n : 9 + n], "big")
    return codec, version, 9 + n


def read_index_header(data: bytes | memoryview, name: str) -> tuple[str, int, bytes, str, int]:
    """Parse an IndexHeader: (codec, version, object id, suffix, offset after it)."""
    codec, version, pos = read_header(data, name)
    object_id = bytes(data[pos : pos + 16])
    pos += 16
    slen = data[pos]
    suffix = bytes(data[pos + 1 : pos + 1 + slen]).decode("ascii", "replace")
    return codec, version, object_id, suffix, pos + 1 + slen


def decode_metadata_blob(data: bytes, name: str, expected_codec: str | None = None) -> Any:
    """Decode a ChecksumBlobStoreFormat blob (snap-*.dat, meta-*.dat) into Python values."""
    verify_footer(data, name)
    codec, version, pos = read_header(data, name)
    if expected_codec is not None and codec != expected_codec:
        raise UnsupportedFormatError(f"{name}: expected a {expected_codec!r} blob, found codec {codec!r}")
    if version != 1:
        raise UnsupportedFormatError(f"{name}: metadata blob format version {version} is not supported")
    payload = data[pos:-16]
    if payload[:4] == b"DFL\x00":
        try:
            payload = zlib.decompressobj(-15).decompress(payload[4:])
        except zlib.error as err:
            raise CorruptFileError(f"{name} is corrupt: bad deflate data ({err})") from None
    elif payload[:2] == b"ZV":
        raise UnsupportedFormatError(f"{name}: LZF-compressed metadata (Elasticsearch 1.x) is not supported")
    return decode_document(payload, name)


def decode_document(payload: bytes, name: str) -> Any:
    """SMILE or JSON bytes → Python values."""
    if payload[:3] == smile.HEADER:
        try:
            return smile.decode(payload)
        except smile.SmileError as err:
            raise CorruptFileError(f"{name} is corrupt: {err}") from None
    stripped = payload.lstrip()
    if stripped[:1] in (b"{", b"["):
        return json.loads(payload)
    raise UnsupportedFormatError(f"{name}: metadata payload is neither SMILE nor JSON (starts {bytes(payload[:4])!r})")


def inflate_compressed_xcontent(value: Any, name: str) -> Any:
    """ES CompressedXContent: bytes `DFL\\0` + raw deflate of JSON/SMILE → Python values."""
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        if raw[:4] == b"DFL\x00":
            raw = zlib.decompressobj(-15).decompress(raw[4:])
        return decode_document(raw, name)
    return value
