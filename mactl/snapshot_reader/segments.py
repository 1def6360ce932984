"""Lucene commit and per-segment metadata: segments_N, .si, compound .cfe, .fnm, .liv.

Each parser checks the header name/version it knows and must end exactly at the footer:
that is the cheap guard against a format it silently misreads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mactl.snapshot_reader.datainput import DataInput, codec_is_little_endian
from mactl.snapshot_reader.errors import CorruptFileError, UnsupportedFormatError
from mactl.snapshot_reader.framing import read_index_header

B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def base36(n: int) -> str:
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(B36[r])
    return "".join(reversed(out))


def _end_at_footer(inp: DataInput, what: str) -> None:
    if inp.pos != len(inp.data) - 16:
        raise CorruptFileError(
            f"{inp.name}: {what} parse ended at byte {inp.pos}, expected {len(inp.data) - 16} (unknown format variant?)"
        )


@dataclass
class SegmentCommitInfo:
    name: str
    segment_id: bytes
    codec: str
    del_gen: int
    del_count: int
    field_infos_gen: int
    dv_gen: int
    soft_del_count: int
    field_infos_files: list[str]
    dv_update_files: dict[int, list[str]]


@dataclass
class SegmentInfos:
    generation: str
    lucene_version: tuple[int, int, int]
    segments: list[SegmentCommitInfo]
    user_data: dict[str, str]


def parse_segments(data: bytes | memoryview, name: str) -> SegmentInfos:
    codec, fmt, _id, suffix, pos = read_index_header(data, name)
    if codec != "segments":
        raise UnsupportedFormatError(f"{name}: expected a segments_N commit, found codec {codec!r}")
    if fmt < 6:
        raise UnsupportedFormatError(
            f"{name}: segments format {fmt} (Lucene 5 or older, Elasticsearch 2.x era) is not supported"
        )
    if fmt > 10:
        raise UnsupportedFormatError(f"{name}: segments format {fmt} (Lucene 10.x or newer) is not supported yet")
    inp = DataInput(data, pos, name=name)  # segments_N is big-endian in every version
    version = (inp.vint(), inp.vint(), inp.vint())
    if fmt >= 7:
        inp.vint()  # index created major
    inp.long()
    if fmt <= 7:
        inp.int()
    else:
        inp.vlong()
    n = inp.int()
    if n < 0:
        raise CorruptFileError(f"{name} is corrupt: negative segment count")
    if n > 0:
        inp.vint(), inp.vint(), inp.vint()
    segs = []
    for _ in range(n):
        seg_name = inp.string()
        if fmt <= 6:
            has_id = inp.byte()
            seg_id = inp.bytes(16) if has_id == 1 else b""
        else:
            seg_id = inp.bytes(16)
        seg_codec = inp.string()
        del_gen = inp.long()
        del_count = inp.int()
        fi_gen = inp.long()
        dv_gen = inp.long()
        soft = inp.int() if fmt >= 9 else 0
        if fmt >= 10:
            marker = inp.byte()
            if marker == 1:
                inp.bytes(16)
            elif marker != 0:
                raise CorruptFileError(f"{name} is corrupt: bad segment-commit id marker {marker}")
        fi_files = inp.set_of_strings()
        updates: dict[int, list[str]] = {}
        for _ in range(inp.int()):
            field_no = inp.int()
            updates[field_no] = inp.set_of_strings()
        segs.append(
            SegmentCommitInfo(seg_name, seg_id, seg_codec, del_gen, del_count, fi_gen, dv_gen, soft, fi_files, updates)
        )
    user = inp.map_of_strings()
    _end_at_footer(inp, "segments_N")
    return SegmentInfos(suffix, version, segs, user)


@dataclass
class SegmentInfo:
    max_doc: int
    is_compound: bool
    files: list[str]
    attributes: dict[str, str]
    version: tuple[int, int, int]


_SI_CODECS = {
    "Lucene50SegmentInfo",
    "Lucene62SegmentInfo",
    "Lucene70SegmentInfo",
    "Lucene86SegmentInfo",
    "Lucene90SegmentInfo",
}


def parse_si(data: bytes | memoryview, name: str, segment_codec: str) -> SegmentInfo:
    codec, version, _id, _suffix, pos = read_index_header(data, name)
    if codec not in _SI_CODECS:
        raise UnsupportedFormatError(f"{name}: segment info codec {codec!r} is not supported")
    inp = DataInput(data, pos, little_endian=codec_is_little_endian(codec), name=name)
    ver = (inp.int(), inp.int(), inp.int())
    if codec != "Lucene50SegmentInfo" and codec != "Lucene62SegmentInfo":
        if inp.byte() == 1:
            inp.int(), inp.int(), inp.int()
    max_doc = inp.int()
    compound = inp.byte() == 1
    if codec == "Lucene90SegmentInfo" and _has_blocks_flag(segment_codec):
        inp.byte()
    inp.map_of_strings()  # diagnostics
    files = inp.set_of_strings()
    attrs = inp.map_of_strings()
    # the index-sort section follows (not needed; its variable layout is why we stop here)
    return SegmentInfo(max_doc, compound, files, attrs, ver)


def _has_blocks_flag(segment_codec: str) -> bool:
    digits = "".join(c for c in segment_codec[6:] if c.isdigit())
    if not segment_codec.startswith("Lucene") or not digits:
        return True  # non-Lucene codec names (custom codecs) on Lucene 9.9+: assume the newer layout
    if digits.startswith("9") and len(digits) == 2:
        return int(digits) >= 99
    return True  # Lucene912, Lucene100, ...


def parse_cfe(data: bytes | memoryview, name: str) -> tuple[dict[str, tuple[int, int]], bool]:
    codec, _v, _id, _s, pos = read_index_header(data, name)
    if codec not in ("Lucene50CompoundEntries", "Lucene90CompoundEntries"):
        raise UnsupportedFormatError(f"{name}: compound entries codec {codec!r} is not supported")
    le = codec_is_little_endian(codec)
    inp = DataInput(data, pos, little_endian=le, name=name)
    out = {}
    for _ in range(inp.vint()):
        suffix = inp.string()
        off = inp.long()
        out[suffix] = (off, inp.long())
    _end_at_footer(inp, ".cfe")
    return out, le


@dataclass
class FieldInfo:
    name: str
    number: int
    soft_deletes: bool
    dv_type: int
    dv_gen: int
    attributes: dict[str, str] = field(default_factory=dict)
    skip_index: bool = False


def parse_fnm(data: bytes | memoryview, name: str) -> dict[int, FieldInfo]:
    codec, version, _id, _s, pos = read_index_header(data, name)
    if codec not in ("Lucene60FieldInfos", "Lucene90FieldInfos", "Lucene94FieldInfos"):
        raise UnsupportedFormatError(f"{name}: field infos codec {codec!r} is not supported")
    if codec == "Lucene94FieldInfos" and version > 2:
        raise UnsupportedFormatError(f"{name}: field infos {codec} version {version} is not supported yet")
    inp = DataInput(data, pos, little_endian=codec_is_little_endian(codec), name=name)
    out: dict[int, FieldInfo] = {}
    for _ in range(inp.vint()):
        fname = inp.string()
        number = inp.vint()
        bits = inp.byte()
        inp.byte()  # index options
        dv = inp.byte()
        skip = False
        if codec == "Lucene94FieldInfos" and version >= 2:
            skip = inp.byte() != 0  # doc-values skip index type
        dv_gen = inp.long()
        attrs = inp.map_of_strings()
        dims = inp.vint()
        if dims:
            if codec == "Lucene60FieldInfos" and version < 2:
                inp.vint()
            else:
                inp.vint(), inp.vint()
        if codec == "Lucene90FieldInfos":
            inp.vint(), inp.byte()
        elif codec == "Lucene94FieldInfos":
            inp.vint(), inp.byte(), inp.byte()
        out[number] = FieldInfo(fname, number, bool(bits & 0x08), dv & 0x0F, dv_gen, attrs, skip)
    _end_at_footer(inp, ".fnm")
    return out


def parse_liv(data: bytes | memoryview, name: str, max_doc: int) -> bytes:
    """Return a bitmap (bytes, little-endian bit order per byte) of LIVE docs."""
    codec, _v, _id, _s, pos = read_index_header(data, name)
    if codec not in ("Lucene50LiveDocs", "Lucene90LiveDocs"):
        raise UnsupportedFormatError(f"{name}: live docs codec {codec!r} is not supported")
    words = (max_doc + 63) // 64
    body = data[pos : pos + words * 8]
    if pos + words * 8 != len(data) - 16:
        raise CorruptFileError(f"{name}: live-docs length does not match maxDoc {max_doc}")
    if codec == "Lucene90LiveDocs":
        return bytes(body)  # LE longs: byte k holds docs 8k..8k+7, bit j = doc 8k+j
    out = bytearray(len(body))
    for w in range(words):  # BE longs → reverse each word's bytes to get LE bit order
        out[w * 8 : (w + 1) * 8] = body[w * 8 : (w + 1) * 8][::-1]
    return bytes(out)
