"""A small SMILE (binary JSON) decoder for Elasticsearch's snapshot metadata blobs.

Written from the Jackson Smile format specification. It decodes one document to plain
Python values (dict, list, str, int, float, bool, None, bytes for binary). It must not be
used as a general-purpose SMILE library: it covers what ES/OpenSearch write and fails
loudly on anything else.
"""

from __future__ import annotations

import struct
from decimal import Decimal
from typing import Any

HEADER = b":)\n"


class SmileError(ValueError):
    """The bytes are not valid SMILE (position included)."""


class _Decoder:
    def __init__(self, data: bytes) -> None:
        if data[:3] != HEADER:
            raise SmileError("missing SMILE header ':)\\n'")
        flags = data[3]
        if flags >> 4:
            raise SmileError(f"unsupported SMILE version {flags >> 4}")
        self.data = data
        self.pos = 4
        self.shared_names_on = bool(flags & 1)
        self.shared_values_on = bool(flags & 2)
        self.names: list[str] = []
        self.values: list[str] = []

    # --- primitives -------------------------------------------------------------------
    def _vint(self) -> int:
        data, pos, value = self.data, self.pos, 0
        while True:
            b = data[pos]
            pos += 1
            if b & 0x80:
                value = (value << 6) | (b & 0x3F)
                break
            value = (value << 7) | b
        self.pos = pos
        return value

    @staticmethod
    def _zigzag(v: int) -> int:
        return (v >> 1) ^ -(v & 1)

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise SmileError(f"truncated SMILE data at byte {self.pos}")
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def _until_fc(self) -> bytes:
        end = self.data.index(b"\xfc", self.pos)
        out = self.data[self.pos : end]
        self.pos = end + 1
        return out

    def _seven_bit(self, raw_len: int) -> bytes:
        out = bytearray()
        full, rest = divmod(raw_len, 7)
        for _ in range(full):
            v = 0
            for b in self._take(8):
                v = (v << 7) | (b & 0x7F)
            out += v.to_bytes(7, "big")
        if rest:
            grp = self._take(rest + 1)
            v = 0
            for b in grp[:-1]:
                v = (v << 7) | (b & 0x7F)
            v = (v << rest) | (grp[-1] & ((1 << rest) - 1))
            out += v.to_bytes(rest, "big")
        return bytes(out)

    def _fold(self, n: int) -> int:
        v = 0
        for b in self._take(n):
            v = (v << 7) | (b & 0x7F)
        return v

    def _remember_name(self, name: str) -> None:
        if self.shared_names_on:
            if len(self.names) >= 1024:
                self.names.clear()
            self.names.append(name)

    def _remember_value(self, value: str, nbytes: int) -> None:
        if self.shared_values_on and nbytes <= 64:
            if len(self.values) >= 1024:
                self.values.clear()
            self.values.append(value)

    # --- values -------------------------------------------------------------------------
    def value(self) -> Any:
        b = self.data[self.pos]
        self.pos += 1
        if b == 0xFA:
            return self._object()
        if b == 0xF8:
            out = []
            while self.data[self.pos] != 0xF9:
                out.append(self.value())
            self.pos += 1
            return out
        if 0x40 <= b <= 0xBF:
            if b < 0x60:
                n = (b & 0x1F) + 1
            elif b < 0x80:
                n = (b & 0x1F) + 33
            elif b < 0xA0:
                n = (b & 0x1F) + 2
            else:
                n = (b & 0x1F) + 34
            raw = self._take(n)
            text = raw.decode("utf-8")
            self._remember_value(text, n)
            return text
        if 0xC0 <= b <= 0xDF:
            return self._zigzag(b & 0x1F)
        if b == 0x20:
            return ""
        if b == 0x21:
            return None
        if b == 0x22:
            return False
        if b == 0x23:
            return True
        if b in (0x24, 0x25):
            return self._zigzag(self._vint())
        if b == 0x26:
            raw = self._seven_bit(self._vint())
            return int.from_bytes(raw, "big", signed=True)
        if b == 0x28:
            return struct.unpack(">f", self._fold(5).to_bytes(4, "big"))[0]
        if b == 0x29:
            return struct.unpack(">d", self._fold(10).to_bytes(8, "big"))[0]
        if b == 0x2A:
            scale = self._zigzag(self._vint())
            unscaled = int.from_bytes(self._seven_bit(self._vint()), "big", signed=True)
            return Decimal(unscaled).scaleb(-scale)
        if b == 0xE0 or b == 0xE4:
            return self._until_fc().decode("utf-8")
        if b == 0xE8:
            return self._seven_bit(self._vint())
        if b == 0xFD:
            return self._take(self._vint())
        if 0x01 <= b <= 0x1F:
            return self.values[b - 1]
        if 0xEC <= b <= 0xEF:
            idx = ((b & 3) << 8) | self.data[self.pos]
            self.pos += 1
            return self.values[idx]
        raise SmileError(f"unexpected SMILE value token 0x{b:02x} at byte {self.pos - 1}")

    def _object(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        data = self.data
        while True:
            b = data[self.pos]
            self.pos += 1
            if b == 0xFB:
                return out
            if 0x40 <= b <= 0x7F:
                name = self.names[b & 0x3F]
            elif 0x80 <= b <= 0xBF:
                name = self._take((b & 0x3F) + 1).decode("ascii")
                self._remember_name(name)
            elif 0xC0 <= b <= 0xF7:
                name = self._take((b & 0x3F) + 2).decode("utf-8")
                self._remember_name(name)
            elif 0x30 <= b <= 0x33:
                name = self.names[((b & 3) << 8) | data[self.pos]]
                self.pos += 1
            elif b == 0x34:
                name = self._until_fc().decode("utf-8")
                self._remember_name(name)
            elif b == 0x20:
                name = ""
            else:
                raise SmileError(f"unexpected SMILE key token 0x{b:02x} at byte {self.pos - 1}")
            out[name] = self.value()


def decode(data: bytes) -> Any:
    """Decode one SMILE document (header included) into Python values."""
    try:
        dec = _Decoder(bytes(data))
        return dec.value()
    except (IndexError, UnicodeDecodeError) as err:
        raise SmileError(f"malformed SMILE data: {err}") from None
