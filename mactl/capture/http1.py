"""Incremental HTTP/1.1 message framing for the capture proxy.

The proxy never needs a full HTTP parser on its hot path: to forward a read it only has
to know where each message ends. `parse_head` finds the start line and the four headers
that decide framing and connection handling; `BodyFramer` consumes a body as it arrives
(Content-Length, chunked, or until the connection closes), telling the caller how many
bytes belong to the current message so the rest can be passed on untouched. Header lists
are built (`header_list`) only when a request is recorded or its head is rewritten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CRLF = b"\r\n"
HEAD_END = b"\r\n\r\n"
MAX_HEAD_BYTES = 256 * 1024
_MAX_CHUNK_LINE = 4096
# chunk-size = 1*HEXDIG (RFC 9112 7.1); int(x, 16) alone would also take "-6", "+5",
# "0x5" and "1_0", and a negative size walked the framer backwards into an endless loop.
_CHUNK_SIZE_RE = re.compile(rb"[ \t]*([0-9A-Fa-f]{1,16})[ \t]*\Z")


class ProtocolError(Exception):
    """The client or the upstream spoke something that is not HTTP/1.x."""


@dataclass(slots=True)
class Head:
    """One message head: the bytes as received and what framing needs from them."""

    raw: bytes
    start_line: str
    content_length: int | None
    chunked: bool
    connection: str  # the Connection header, lower-cased ("" when absent)
    expect_continue: bool


# The only headers framing and connection handling need; one C-level scan finds them all.
_FRAMING_HEADERS = re.compile(rb"\r\n(content-length|transfer-encoding|connection|expect)[ \t]*:[ \t]*([^\r\n]*)")


def parse_head(raw: bytes) -> Head:
    """`raw` is a complete head including its final CRLF CRLF."""
    start_line = raw[: raw.find(CRLF)].decode("latin-1")
    content_length: int | None = None
    chunked = False
    connection = ""
    expect_continue = False
    for name, value in _FRAMING_HEADERS.findall(raw.lower()):
        value = value.rstrip()
        if name == b"content-length":
            if not value.isdigit() or (content_length is not None and int(value) != content_length):
                raise ProtocolError(f"bad Content-Length {value[:40].decode('latin-1')!r}")
            content_length = int(value)
        elif name == b"transfer-encoding":
            chunked = chunked or b"chunked" in value
        elif name == b"connection":
            connection = f"{connection}, {value.decode('latin-1')}" if connection else value.decode("latin-1")
        else:
            expect_continue = value == b"100-continue"
    return Head(raw, start_line, None if chunked else content_length, chunked, connection, expect_continue)


def header_list(raw_head: bytes) -> list[tuple[str, str]]:
    """Every header of a head, in order, as (name, value) strings."""
    lines = raw_head.decode("latin-1").split("\r\n")
    out: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"bad header line {line[:60]!r}")
        out.append((name.strip(), value.strip()))
    return out


def serialize_head(start_line: str, headers: list[tuple[str, str]]) -> bytes:
    return (start_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("latin-1")


_LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER, _EOF, _DONE = range(7)


class BodyFramer:
    """Consumes one message body incrementally and says where it ends.

    `feed(data, pos)` looks at `data[pos:]` and returns the index just past the bytes that
    belong to this body; `done` turns true at the body's end. With `collect=True` the
    de-chunked body accumulates in `body` (for the capture record); otherwise nothing is
    kept and the caller forwards the consumed slice as it is.
    """

    __slots__ = ("_line", "_remaining", "_state", "body", "collect", "done")

    def __init__(self, head: Head | None, *, until_eof: bool, collect: bool) -> None:
        self.collect = collect
        self.body = bytearray()
        self._line = bytearray()
        self._remaining = 0
        self.done = False
        if head is None:
            self._state = _DONE
        elif head.chunked:
            self._state = _CHUNK_SIZE
        elif head.content_length is not None:
            self._state = _LENGTH
            self._remaining = head.content_length
        elif until_eof:
            self._state = _EOF
        else:
            self._state = _DONE
        self.done = self._state == _DONE or (self._state == _LENGTH and self._remaining == 0)

    @property
    def until_eof(self) -> bool:
        return self._state == _EOF

    def finish_at_eof(self) -> None:
        """The peer closed the connection: a close-delimited body is complete now."""
        if self._state != _EOF:
            raise ProtocolError("connection closed inside a message body")
        self.done = True

    def feed(self, data: bytes | bytearray, pos: int) -> int:
        end = len(data)
        while pos < end and not self.done:
            state = self._state
            if state == _LENGTH or state == _CHUNK_DATA:
                take = min(self._remaining, end - pos)
                if self.collect:
                    self.body += data[pos : pos + take]
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    if state == _LENGTH:
                        self.done = True
                    else:
                        self._state = _CHUNK_CRLF
                        self._remaining = 2
            elif state == _CHUNK_CRLF:  # the CRLF after a chunk's data, maybe split
                expected = b"\r\n"[2 - self._remaining]
                if data[pos] != expected:
                    raise ProtocolError("chunk data not followed by CRLF")
                pos += 1
                self._remaining -= 1
                if self._remaining == 0:
                    self._state = _CHUNK_SIZE
            elif state == _EOF:
                if self.collect:
                    self.body += data[pos:end]
                pos = end
            else:  # _CHUNK_SIZE or _TRAILER: a line at a time
                nl = data.find(b"\n", pos, end)
                if nl < 0:
                    self._line += data[pos:end]
                    if len(self._line) > _MAX_CHUNK_LINE:
                        raise ProtocolError("chunk-size or trailer line too long")
                    return end
                self._line += data[pos : nl + 1]
                pos = nl + 1
                line = bytes(self._line).rstrip(b"\r\n")
                self._line.clear()
                if state == _TRAILER:
                    if not line:
                        self.done = True
                    continue
                m = _CHUNK_SIZE_RE.match(line.split(b";", 1)[0])
                if m is None:
                    raise ProtocolError(f"bad chunk size line {line[:40].decode('latin-1')!r}")
                size = int(m.group(1), 16)
                if size == 0:
                    self._state = _TRAILER
                else:
                    self._state = _CHUNK_DATA
                    self._remaining = size
        return pos
