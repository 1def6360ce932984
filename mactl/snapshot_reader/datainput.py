"""Lucene DataInput primitives over an in-memory buffer (fixed-width BE or LE, vInt, strings).

The byte order is chosen per file from its codec name (Lucene >= 9 codecs write LE bodies);
headers and footers are always big-endian and are parsed in `framing`.
"""

from __future__ import annotations

import builtins
from typing import Literal

from mactl.snapshot_reader.errors import CorruptFileError


def codec_is_little_endian(codec: str) -> bool:
    """Lucene 9+ codecs (`Lucene9x…`, `Lucene1xx…`) write little-endian file bodies."""
    if codec.startswith("Lucene"):
        rest = codec[6:]
        return rest[:1] == "9" or (rest[:1] == "1" and rest[1:3].isdigit())
    return False


class DataInput:
    """A cursor over bytes; `name` is only for error messages.

    The methods `int` and `bytes` shadow the builtins inside this class body, so the
    annotations after them spell out `builtins.int` / `builtins.bytes`.
    """

    __slots__ = ("data", "pos", "order", "name")

    def __init__(self, data: bytes | memoryview, pos: int = 0, *, little_endian: bool = False, name: str = "") -> None:
        self.data = data
        self.pos = pos
        self.order: Literal["little", "big"] = "little" if little_endian else "big"
        self.name = name

    def _fixed(self, n: int, signed: bool = True) -> int:
        end = self.pos + n
        if end > len(self.data):
            raise CorruptFileError(f"{self.name} is corrupt: read past its end")
        v = int.from_bytes(self.data[self.pos : end], self.order, signed=signed)
        self.pos = end
        return v

    def byte(self) -> int:
        b = self.data[self.pos]
        self.pos += 1
        return b

    def short(self) -> int:
        return self._fixed(2)

    def ushort(self) -> int:
        return self._fixed(2, signed=False)

    def int(self) -> int:
        return self._fixed(4)

    def long(self) -> builtins.int:
        return self._fixed(8)

    def be_int(self) -> builtins.int:
        v = int.from_bytes(self.data[self.pos : self.pos + 4], "big", signed=True)
        self.pos += 4
        return v

    def be_long(self) -> builtins.int:
        v = int.from_bytes(self.data[self.pos : self.pos + 8], "big", signed=True)
        self.pos += 8
        return v

    def vint(self) -> builtins.int:
        data, pos = self.data, self.pos
        b = data[pos]
        pos += 1
        v = b & 0x7F
        shift = 7
        while b & 0x80:
            b = data[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            shift += 7
        self.pos = pos
        if shift > 28 and v >= 1 << 31:  # negative vInt: 5 bytes, keep 32 bits, sign-extend
            v &= 0xFFFFFFFF
            if v >= 1 << 31:
                v -= 1 << 32
        return v

    vlong = vint  # same wire form; vLongs are never negative in the files we read

    def zlong(self) -> builtins.int:
        v = self.vint()
        return (v >> 1) ^ -(v & 1)

    def bytes(self, n: builtins.int) -> builtins.bytes:
        end = self.pos + n
        if end > len(self.data):
            raise CorruptFileError(f"{self.name} is corrupt: read past its end")
        out = bytes(self.data[self.pos : end])
        self.pos = end
        return out

    def string(self) -> str:
        return self.bytes(self.vint()).decode("utf-8")

    def set_of_strings(self) -> list[str]:
        return [self.string() for _ in range(self.vint())]

    def map_of_strings(self) -> dict[str, str]:
        out = {}
        for _ in range(self.vint()):
            k = self.string()
            out[k] = self.string()
        return out
