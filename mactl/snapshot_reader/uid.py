"""Elasticsearch's `_id` byte encoding (ES >= 6 `Uid.encodeId`) back to the id string."""

from __future__ import annotations

import base64
import binascii

_URLSAFE = bytes.maketrans(b"+/", b"-_")

_NUMERIC, _UTF8, _BASE64_ESCAPE = 0xFE, 0xFF, 0xFD


def decode_id(raw: bytes) -> str:
    """Stored `_id` bytes → the id the user gave (or ES generated)."""
    if not raw:
        raise ValueError("empty _id")
    b0 = raw[0]
    if b0 == _UTF8:
        return raw[1:].decode("utf-8")
    if b0 == _NUMERIC:
        digits = raw[1:].hex()  # each byte holds two decimal digits, high nibble first
        return digits[:-1] if digits.endswith("f") else digits
    if b0 == _BASE64_ESCAPE:
        raw = raw[1:]
    return binascii.b2a_base64(raw, newline=False).rstrip(b"=").translate(_URLSAFE).decode("ascii")


def encode_id(id_: str) -> bytes:
    """The inverse (what ES writes); used by tests to check round trips."""
    if not id_:
        raise ValueError("empty _id")
    if id_.isascii() and id_.isdigit():
        digits = id_ + ("f" if len(id_) % 2 else "")
        return bytes([_NUMERIC]) + bytes.fromhex(digits)
    if len(id_) % 4 != 1 and all(c.isascii() and (c.isalnum() or c in "-_") for c in id_):
        last_ok = True
        if len(id_) % 4 == 2:
            last_ok = id_[-1] in "AQgw"
        elif len(id_) % 4 == 3:
            last_ok = id_[-1] in "AEIMQUYcgkosw048"
        if last_ok:
            raw = base64.urlsafe_b64decode(id_ + "=" * (-len(id_) % 4))
            if raw and raw[0] >= _BASE64_ESCAPE:
                return bytes([_BASE64_ESCAPE]) + raw
            return raw
    return bytes([_UTF8]) + id_.encode("utf-8")
