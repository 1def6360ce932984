"""Unit tests of the capture proxy's incremental HTTP/1.1 framing (`mactl.capture.http1`).

The proxy trusts `BodyFramer` to say exactly where a message ends, whatever way the
bytes are split across arrivals, so most tests feed the same message whole, one byte at
a time and in awkward splits and demand the same answer every time.
"""

from __future__ import annotations

import random

import pytest

from mactl.capture.http1 import (
    BodyFramer,
    Head,
    ProtocolError,
    header_list,
    parse_head,
    serialize_head,
)

NEXT = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"  # the pipelined request after the body


def _head(*headers: str, start: str = "POST /i/_bulk HTTP/1.1") -> Head:
    return parse_head((start + "\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode())


def _feed_in_pieces(framer: BodyFramer, data: bytes, cuts: list[int]) -> int:
    """Feed `data` as the proxy does: each arrival is appended to what was not consumed
    yet, and feeding resumes where the framer stopped. Returns the end of the body in
    `data` (the framer's answer translated back to an absolute offset)."""
    cuts = sorted({c for c in cuts if 0 < c < len(data)}) + [len(data)]
    start = 0
    consumed = 0
    for cut in cuts:
        piece = data[start:cut]
        start = cut
        pos = framer.feed(piece, 0)
        assert 0 <= pos <= len(piece), f"framer returned {pos} for a piece of {len(piece)}"
        if framer.done:
            return consumed + pos
        assert pos == len(piece), "an unfinished body must consume everything it is given"
        consumed += pos
    return -1


def _splits(data: bytes) -> list[list[int]]:
    """Whole, byte by byte, and a few deterministic random splittings."""
    rnd = random.Random(len(data))
    out = [[], list(range(1, len(data)))]
    for _ in range(5):
        out.append([rnd.randrange(1, len(data)) for _ in range(rnd.randrange(1, 12))])
    return out


# --------------------------------------------------------------------- Content-Length
def test_content_length_body_ends_exactly_at_its_length_however_split() -> None:
    body = b'{"index":{}}\n{"n":1}\n'
    head = _head(f"Content-Length: {len(body)}")
    data = body + NEXT
    for cuts in _splits(data):
        framer = BodyFramer(head, until_eof=False, collect=True)
        assert not framer.done
        assert _feed_in_pieces(framer, data, cuts) == len(body), cuts
        assert bytes(framer.body) == body


def test_content_length_one_byte_at_a_time_reports_each_byte() -> None:
    head = _head("Content-Length: 3")
    framer = BodyFramer(head, until_eof=False, collect=False)
    assert framer.feed(b"a", 0) == 1 and not framer.done
    assert framer.feed(b"xb", 1) == 2 and not framer.done  # feeding from an offset
    assert framer.feed(b"cGET", 0) == 1 and framer.done  # stops at the body's end
    assert framer.feed(b"more", 0) == 0  # a finished framer takes nothing
    assert framer.body == b""  # collect=False keeps nothing


def test_zero_length_and_no_framing_are_done_at_once() -> None:
    assert BodyFramer(_head("Content-Length: 0"), until_eof=False, collect=True).done
    assert BodyFramer(_head(start="GET / HTTP/1.1"), until_eof=False, collect=True).done  # request: no body
    assert BodyFramer(None, until_eof=True, collect=True).done  # HEAD / 204 / 304 answers
    framer = BodyFramer(_head("Content-Length: 0"), until_eof=False, collect=True)
    assert framer.feed(NEXT, 0) == 0


# --------------------------------------------------------------------- chunked
CHUNKED_PARTS = [b"Wiki", b"pedia in\r\n\r\nchunks.", b"x" * 300, b"\r\n", b"A"]


def _chunked_wire() -> bytes:
    """Chunked encoding with upper- and lower-case hex, extensions, and trailers."""
    out = b""
    for i, part in enumerate(CHUNKED_PARTS):
        size = b"%x" % len(part) if i % 2 else b"%X" % len(part)
        ext = b";name=value" if i == 1 else (b' ; quoted="a;b"' if i == 2 else b"")
        out += size + ext + b"\r\n" + part + b"\r\n"
    return out + b"0;last\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"


def test_chunked_with_extensions_and_trailers_however_split() -> None:
    wire = _chunked_wire()
    head = _head("Transfer-Encoding: chunked")
    data = wire + NEXT
    for cuts in _splits(data):
        framer = BodyFramer(head, until_eof=False, collect=True)
        assert _feed_in_pieces(framer, data, cuts) == len(wire), cuts
        assert bytes(framer.body) == b"".join(CHUNKED_PARTS)  # de-chunked


def test_chunked_one_byte_at_a_time_is_done_only_after_the_final_crlf() -> None:
    wire = _chunked_wire()
    framer = BodyFramer(_head("Transfer-Encoding: chunked"), until_eof=False, collect=True)
    for i in range(len(wire) - 1):
        assert framer.feed(wire[i : i + 1], 0) == 1
        assert not framer.done, f"done too early, after byte {i}"
    assert framer.feed(wire[-1:] + NEXT, 0) == 1 and framer.done
    assert bytes(framer.body) == b"".join(CHUNKED_PARTS)


def test_chunked_without_trailers_and_collect_false() -> None:
    wire = b"3\r\nabc\r\n0\r\n\r\n"
    framer = BodyFramer(_head("Transfer-Encoding: chunked"), until_eof=False, collect=False)
    assert framer.feed(wire + NEXT, 0) == len(wire) and framer.done
    assert framer.body == b""


@pytest.mark.timeout(5)
@pytest.mark.parametrize(
    ("size_line", "payload"),
    [
        (b"zz", b"hello"),
        (b"", b"hello"),
        (b"  ", b"hello"),
        (b"5 5", b"hello"),
        (b"\xff", b"hello"),
        # what Python's int(x, 16) accepts but HTTP (and Elasticsearch's Netty) do not;
        # each payload is exactly as long as int() would read the size
        (b"-6", b"hello!"),
        (b"-1", b"h"),
        (b"+5", b"hello"),
        (b"0x5", b"hello"),
        (b"1_0", b"0123456789abcdef"),
    ],
)
def test_bad_chunk_size_raises(size_line: bytes, payload: bytes) -> None:
    """Only hex digits (then an optional extension) make a chunk size. A negative size
    (`-6`) sent the framer backwards into an endless loop, which hung the proxy's whole
    event loop on one client's request (fixed in http1.py)."""
    wire = size_line + b"\r\n" + payload + b"\r\n0\r\n\r\n" + NEXT
    for cuts in ([], list(range(1, len(wire)))):
        framer = BodyFramer(_head("Transfer-Encoding: chunked"), until_eof=False, collect=True)
        with pytest.raises(ProtocolError):
            _feed_in_pieces(framer, wire, cuts)


def test_bad_chunk_size_raises_when_split_too() -> None:
    framer = BodyFramer(_head("Transfer-Encoding: chunked"), until_eof=False, collect=True)
    framer.feed(b"-", 0)
    with pytest.raises(ProtocolError):
        framer.feed(b"6\r\n\r\n", 0)


@pytest.mark.parametrize("cuts", [[], [7], [8]])
def test_chunk_data_must_end_with_crlf(cuts: list[int]) -> None:
    """A chunk size that does not match its data shows as a missing CRLF, even when the
    bytes after the data arrive separately."""
    framer = BodyFramer(_head("Transfer-Encoding: chunked"), until_eof=False, collect=True)
    with pytest.raises(ProtocolError, match="CRLF"):
        _feed_in_pieces(framer, b"3\r\nabcd\r\n0\r\n\r\n", cuts)


def test_endless_chunk_size_line_is_refused() -> None:
    framer = BodyFramer(_head("Transfer-Encoding: chunked"), until_eof=False, collect=True)
    with pytest.raises(ProtocolError):
        for _ in range(100):
            framer.feed(b"1" + b";x" * 100, 0)


# --------------------------------------------------------------------- until EOF
def test_until_eof_takes_everything_until_the_peer_closes() -> None:
    head = parse_head(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
    framer = BodyFramer(head, until_eof=True, collect=True)
    assert framer.until_eof and not framer.done
    body = b"no length given\r\n\r\nHTTP/1.1 200 OK\r\n"  # looks like a message: still body
    for i in range(len(body)):
        assert framer.feed(body[i : i + 1], 0) == 1
        assert not framer.done
    framer.finish_at_eof()
    assert framer.done and bytes(framer.body) == body


def test_until_eof_only_for_answers_without_framing() -> None:
    # A request without framing has no body; it never reads to EOF.
    assert not BodyFramer(_head(start="PUT /i HTTP/1.1"), until_eof=False, collect=True).until_eof
    # An answer with a length is framed by it even if EOF framing is allowed.
    framer = BodyFramer(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"), until_eof=True, collect=True)
    assert not framer.until_eof
    framer.feed(b"a", 0)
    with pytest.raises(ProtocolError):  # the peer closed one byte short
        framer.finish_at_eof()
    chunked = BodyFramer(
        parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), until_eof=True, collect=True
    )
    chunked.feed(b"5\r\nab", 0)
    with pytest.raises(ProtocolError):
        chunked.finish_at_eof()


# --------------------------------------------------------------------- parse_head
def test_duplicate_equal_content_length_is_accepted() -> None:
    assert _head("Content-Length: 5", "Content-Length: 5").content_length == 5


@pytest.mark.parametrize(
    "headers",
    [
        ("Content-Length: 5", "Content-Length: 6"),
        ("Content-Length: abc",),
        ("Content-Length: -1",),
        ("Content-Length: +5",),
        ("Content-Length: 0x5",),
        ("Content-Length:",),
        ("Content-Length: 5 5",),
        ("Content-Length: 5", "Content-Length: 6", "Transfer-Encoding: chunked"),
    ],
)
def test_bad_or_conflicting_content_length_raises(headers: tuple[str, ...]) -> None:
    with pytest.raises(ProtocolError):
        _head(*headers)


def test_content_length_tolerates_surrounding_whitespace() -> None:
    assert _head("Content-Length:\t 12 \t").content_length == 12


def test_transfer_encoding_chunked_overrides_content_length() -> None:
    for headers in (
        ("Content-Length: 100", "Transfer-Encoding: chunked"),
        ("Transfer-Encoding: chunked", "Content-Length: 100"),
        ("Transfer-Encoding: gzip, chunked", "Content-Length: 100"),
    ):
        head = _head(*headers)
        assert head.chunked and head.content_length is None, headers
        framer = BodyFramer(head, until_eof=False, collect=True)
        assert framer.feed(b"2\r\nhi\r\n0\r\n\r\n" + b"x" * 100, 0) == 12  # not 100 bytes


def test_header_names_in_odd_case_and_values_in_odd_case() -> None:
    head = _head("cOnTeNt-LeNgTh: 7", "CONNECTION: Keep-Alive", "eXpEcT: 100-Continue")
    assert head.content_length == 7 and head.connection == "keep-alive" and head.expect_continue
    head = _head("TRANSFER-ENCODING: CHUNKED")
    assert head.chunked
    # the raw bytes and the start line are kept as received, not lower-cased
    raw = b"PUT /Idx/_doc/A HTTP/1.1\r\ncOnTeNt-LeNgTh: 7\r\n\r\n"
    head = parse_head(raw)
    assert head.raw == raw and head.start_line == "PUT /Idx/_doc/A HTTP/1.1"


def test_headers_that_only_contain_a_framing_name_do_not_count() -> None:
    head = _head(
        "X-Content-Length: 5",
        "Content-Length-Foo: 9",
        "Proxy-Connection: close",
        "X-Transfer-Encoding: chunked",
        "X-Expect: 100-continue",
    )
    assert head.content_length is None and not head.chunked
    assert head.connection == "" and not head.expect_continue


def test_connection_values() -> None:
    assert _head().connection == ""
    assert _head("Connection: close").connection == "close"
    assert _head("Connection: Keep-Alive").connection == "keep-alive"
    both = _head("Connection: keep-alive", "Connection: Close").connection
    assert "close" in both and "keep-alive" in both  # several Connection headers add up


def test_expect_continue() -> None:
    assert _head("Expect: 100-continue", "Content-Length: 5").expect_continue
    assert not _head("Content-Length: 5").expect_continue
    assert not _head("Expect: 200-ok").expect_continue


def test_header_list_and_serialize_round_trip() -> None:
    raw = (
        b"PUT /i/_doc/1 HTTP/1.1\r\nHost: es:9200\r\ncontent-type:application/json\r\n"
        b"X-Dup: a\r\nX-Dup: b\r\nX-Empty:\r\n\r\n"
    )
    headers = header_list(raw)
    assert headers == [
        ("Host", "es:9200"),
        ("content-type", "application/json"),
        ("X-Dup", "a"),
        ("X-Dup", "b"),
        ("X-Empty", ""),
    ]
    again = serialize_head("PUT /i/_doc/1 HTTP/1.1", headers)
    assert header_list(again) == headers and again.endswith(b"\r\n\r\n")
    with pytest.raises(ProtocolError):
        header_list(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
