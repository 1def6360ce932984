"""How one captured request/response pair is encoded in the capture log.

A record is binary so that bodies (NDJSON bulk, gzip, anything) round-trip byte for byte
without base64: a version byte, then three length-prefixed parts: the metadata as JSON
(orjson), the request body, the response body. Decoding checks every length, so a
truncated or foreign payload raises `RecordDecodeError` (the replayer dead-letters it)
instead of producing a half record.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import orjson

VERSION = 1
_U32 = struct.Struct(">I")

Headers = list[tuple[str, str]]


class RecordDecodeError(ValueError):
    """The bytes are not a capture record this version understands."""


@dataclass
class Record:
    """One mutating request as the source saw it, and the source's answer.

    `connection_id` is unique per client connection across proxy restarts; `seq` counts
    requests within that connection, so the replayer can keep their order. Times are
    epoch seconds taken by the proxy: `request_time` when the request head arrived,
    `response_time` when the source's response was complete.
    """

    connection_id: str
    seq: int
    request_time: float
    response_time: float
    method: str
    path: str
    headers: Headers
    body: bytes
    status: int
    response_headers: Headers = field(default_factory=list)
    response_body: bytes = b""
    proxy_id: str = ""

    def header(self, name: str) -> str | None:
        """The first request header named `name` (case-insensitive), if any."""
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)


def encode(rec: Record) -> bytes:
    meta = orjson.dumps(
        {
            "c": rec.connection_id,
            "s": rec.seq,
            "t0": rec.request_time,
            "t1": rec.response_time,
            "m": rec.method,
            "p": rec.path,
            "h": rec.headers,
            "st": rec.status,
            "rh": rec.response_headers,
            "x": rec.proxy_id,
        }
    )
    return b"".join(
        (
            bytes((VERSION,)),
            _U32.pack(len(meta)),
            meta,
            _U32.pack(len(rec.body)),
            rec.body,
            _U32.pack(len(rec.response_body)),
            rec.response_body,
        )
    )


def response_time_of(data: bytes) -> float | None:
    """The source response time of an encoded record, read from its metadata only (the
    replayer orders records by it before decoding them); None if the bytes are not a record."""
    if len(data) < 5 or data[0] != VERSION:
        return None
    (size,) = _U32.unpack_from(data, 1)
    try:
        return float(orjson.loads(data[5 : 5 + size])["t1"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def decode(data: bytes) -> Record:
    """Decode one record; `RecordDecodeError` names what is wrong with the bytes."""
    if not data or data[0] != VERSION:
        raise RecordDecodeError(f"unknown record version {data[:1]!r}")
    view = memoryview(data)
    pos = 1
    parts: list[bytes] = []
    for name in ("metadata", "request body", "response body"):
        if pos + 4 > len(data):
            raise RecordDecodeError(f"record truncated before its {name} length")
        (size,) = _U32.unpack_from(view, pos)
        pos += 4
        if pos + size > len(data):
            raise RecordDecodeError(f"record truncated inside its {name}")
        parts.append(bytes(view[pos : pos + size]))
        pos += size
    if pos != len(data):
        raise RecordDecodeError(f"{len(data) - pos} trailing bytes after the record")
    try:
        meta: dict[str, Any] = orjson.loads(parts[0])
        return Record(
            connection_id=str(meta["c"]),
            seq=int(meta["s"]),
            request_time=float(meta["t0"]),
            response_time=float(meta["t1"]),
            method=str(meta["m"]),
            path=str(meta["p"]),
            headers=[(str(k), str(v)) for k, v in meta["h"]],
            body=parts[1],
            status=int(meta["st"]),
            response_headers=[(str(k), str(v)) for k, v in meta.get("rh", [])],
            response_body=parts[2],
            proxy_id=str(meta.get("x", "")),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise RecordDecodeError(f"record metadata is invalid: {exc}") from None
