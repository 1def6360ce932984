"""Unit tests on hand-built bytes: SMILE, _id encoding, int arrays, compression framing, errors."""

from __future__ import annotations

import struct
import zlib

import lz4.block
import pytest
import zstandard

from mactl.snapshot_reader import smile
from mactl.snapshot_reader.errors import CorruptFileError, UnsupportedFormatError
from mactl.snapshot_reader.framing import decode_metadata_blob
from mactl.snapshot_reader.shardpaths import composite_prefix, shard_folder
from mactl.snapshot_reader.storedfields import (
    StoredFieldsFile,
    _deflate_dict,
    _lz4_dict,
    _packed_ints,
    _sf_ints,
    _zstd_block,
)
from mactl.snapshot_reader.uid import decode_id, encode_id
from mactl.snapshot_reader.versions import release_from_id, snapshot_release


def _vint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _header(codec: str, version: int) -> bytes:
    return struct.pack(">I", 0x3FD76C17) + bytes([len(codec)]) + codec.encode() + struct.pack(">I", version)


def _footer(body: bytes) -> bytes:
    body += struct.pack(">II", 0xC02893E8, 0)
    return body + struct.pack(">Q", zlib.crc32(body))


# --- SMILE ---------------------------------------------------------------------------------


def test_smile_values_and_shared_names():
    # {"a": 5, "bb": [true, null, -3, "x"], "a": "ü"} with the second "a" a back-reference
    doc = (
        b":)\n\x05"
        + b"\xfa"
        + b"\x80a"
        + b"\xca"
        + b"\x81bb"
        + b"\xf8\x23\x21\xc5\x40x\xf9"
        + b"\x40"
        + b"\x80\xc3\xbc"
        + b"\xfb"
    )
    assert smile.decode(doc) == {"a": "ü", "bb": [True, None, -3, "x"]}


def test_smile_vint_ints_and_raw_binary():
    # int token 0x24 with vint 24 09 53 62 86 → 5061699 (the ES 5.6.16 version id); raw binary 0xFD
    doc = b":)\n\x05\xfa\x80v\x24\x09\x53\x62\x86\x80b\xfd\x83\x01\x02\x03\xfb"
    assert smile.decode(doc) == {"v": 5061699, "b": b"\x01\x02\x03"}


def test_smile_seven_bit_binary():
    raw = bytes(range(200, 209))  # 9 bytes: one full 7-byte group + 2
    bits = int.from_bytes(raw[:7], "big")
    enc = bytes((bits >> (7 * (7 - i))) & 0x7F for i in range(8))
    tail = int.from_bytes(raw[7:], "big")  # 16 bits → 3 bytes: 7, 7, then 2
    enc += bytes([(tail >> 9) & 0x7F, (tail >> 2) & 0x7F, tail & 0x03])
    doc = b":)\n\x05\xfa\x80b\xe8\x89" + enc + b"\xfb"
    assert smile.decode(doc) == {"b": raw}


def test_smile_shared_name_table_wraps_at_1024():
    names = [f"k{i}" for i in range(1030)]
    body = b""
    for n in names:
        body += bytes([0x80 + len(n) - 1]) + n.encode() + b"\xc2"  # value 1
    body += b"\x41" + b"\xc4"  # reference index 1 after the wrap: names[1025]; value 2
    out = smile.decode(b":)\n\x05\xfa" + body + b"\xfb")
    assert out["k1025"] == 2 and len(out) == 1030


# --- _id -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "id_",
    [
        "1",
        "0012",
        "12345",
        "AE0-Zo4B7T-RS_C5iG5e",
        "complexdoc",
        "unchangeddoc",
        "héllo wörld",
        "a",
        "ab",
        "abcd",
        "_-_-",
        "///",
        "doc#1",
        "😀",
    ],
)
def test_id_round_trip(id_):
    assert decode_id(encode_id(id_)) == id_


def test_id_known_encodings():
    assert decode_id(bytes.fromhex("fe123f")) == "123"
    assert decode_id(b"\xffcomplexdoc") == "complexdoc"
    assert decode_id(bytes.fromhex("ba77216a781e75da1c")) == "unchangeddoc"
    assert decode_id(b"\xfd\xfe\x00\x01") == "_gAB"


# --- int arrays ------------------------------------------------------------------------------


def test_packed_ints_msb_first():
    values = [5, 0, 7, 3, 1, 6, 2]
    bits = "".join(format(v, "03b") for v in values)
    bits += "0" * (-len(bits) % 8)
    data = _vint(3) + int(bits, 2).to_bytes(len(bits) // 8, "big")
    assert _packed_ints(memoryview(data), 0, len(values)) == (values, len(data))
    assert _packed_ints(memoryview(b"\x00\x2a"), 0, 4) == ([42] * 4, 2)


@pytest.mark.parametrize("bpv", [8, 16, 32])
def test_stored_fields_ints_blocks(bpv):
    n = 300
    values = [(i * 2654435761) % (1 << bpv) for i in range(n)]
    out = bytearray([bpv])
    nwords, per = 2 * bpv, 64 // bpv
    k = 0
    while n - k >= 128:
        for i in range(nwords):
            w = 0
            for j in range(per):
                w |= values[k + nwords * j + i] << (64 - bpv * (j + 1))
            out += w.to_bytes(8, "little")
        k += 128
    for v in values[k:]:
        out += v.to_bytes(bpv // 8, "little")
    assert _sf_ints(memoryview(bytes(out)), 0, n) == (values, len(out))


# --- compression framing ----------------------------------------------------------------------


def test_lz4_with_preset_dict_framing():
    raw = (b"the quick brown fox jumps over the lazy dog " * 40)[:1500]
    dict_len = len(raw) // 160
    block_len = -(-(len(raw) - dict_len) // 10)
    d = lz4.block.compress(raw[:dict_len], store_size=False)
    blocks = [
        lz4.block.compress(raw[s : s + block_len], store_size=False, dict=raw[:dict_len])
        for s in range(dict_len, len(raw), block_len)
    ]
    data = (
        _vint(dict_len)
        + _vint(block_len)
        + _vint(len(d))
        + b"".join(_vint(len(b)) for b in blocks)
        + d
        + b"".join(blocks)
    )
    assert _lz4_dict(memoryview(data + b"tail"), 0, len(raw), "x") == (raw, len(data))
    assert _lz4_dict(memoryview(b"\x00\x00\x01\x00"), 0, 0, "x") == (b"", 4)  # zero-length chunk


def test_deflate_with_preset_dict_framing():
    raw = bytes(range(256)) * 10
    dict_len, block_len = len(raw) // 60, -(-(len(raw) - len(raw) // 60) // 10)

    def deflate(chunk, zdict=None):
        c = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=zdict) if zdict else zlib.compressobj(6, zlib.DEFLATED, -15)
        return c.compress(chunk) + c.flush()

    parts = [deflate(raw[:dict_len])]
    parts += [deflate(raw[s : s + block_len], raw[:dict_len]) for s in range(dict_len, len(raw), block_len)]
    data = _vint(dict_len) + _vint(block_len) + b"".join(_vint(len(p)) + p for p in parts)
    assert _deflate_dict(memoryview(data), 0, len(raw), "x") == (raw, len(data))


def test_unsupported_stored_fields_codec_is_named():
    fdt = _footer(_header("CustomZstdNoDictStoredFields", 0) + bytes(16) + b"\x00")
    with pytest.raises(
        UnsupportedFormatError, match=r"zstd stored fields \(CustomZstdNoDictStoredFields.* not supported yet"
    ):
        StoredFieldsFile(fdt, "_0.fdt", None, "_0.fdm", 1)


def test_zstd_blocks_empty_and_framed():
    """ES 8.14+'s ZstdStoredFields814: an empty block writes nothing, else vint length + one frame."""
    payload = b'{"a":"zstd"}' * 50
    frame = zstandard.ZstdCompressor(level=3).compress(payload)
    data = memoryview(b"\x07" + _vint(len(frame)) + frame + b"tail")
    assert _zstd_block(data, 0, 0, "_0.fdt") == (b"", 0)
    assert _zstd_block(data, 1, len(payload), "_0.fdt") == (payload, 1 + len(_vint(len(frame))) + len(frame))
    broken = memoryview(b"\x07" + _vint(len(frame)) + b"\x00" * len(frame))
    with pytest.raises(CorruptFileError, match="_0.fdt is corrupt: zstd data does not decode"):
        _zstd_block(broken, 1, len(payload), "_0.fdt")


# --- metadata blobs ----------------------------------------------------------------------------


def test_metadata_blob_deflated_and_checked():
    payload = b":)\n\x05\xfa\x80a\xc2\xfb"
    c = zlib.compressobj(3, zlib.DEFLATED, -15)
    blob = _footer(_header("snapshot", 1) + b"DFL\x00" + c.compress(payload) + c.flush())
    assert decode_metadata_blob(blob, "snap-x.dat", "snapshot") == {"a": 1}
    broken = bytearray(blob)
    broken[20] ^= 1
    with pytest.raises(CorruptFileError, match="snap-x.dat is corrupt: checksum mismatch"):
        decode_metadata_blob(bytes(broken), "snap-x.dat", "snapshot")


# --- versions and shard folders ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("version_id", "release"),
    [
        (7100299, "7.10.2"),  # a plain release id
        (1032099 ^ 0x08000000, "1.3.20"),  # OpenSearch sets bit 27
        (8512000, "8.15.x"),  # ES 8.11+ index versions name a minor line
        (8500010, "8.12.x"),
        (8537000, "8.19.x"),  # the last 8.x minor: no "or later"
        (9033000, "9.1.x"),
        (9100000, "9.4.x or later"),  # past the table's last 9.x row: never a wrong release
    ],
)
def test_release_from_version_ids(version_id, release):
    assert release_from_id(version_id) == release


def test_es8_frozen_version_string_loses_to_index_version():
    assert snapshot_release({"version": "8.11.0", "index_version": 8537000}) == "8.19.x"
    assert snapshot_release({"version": "2.19.6"}) == "2.19.6"


def test_opensearch_hashed_shard_folders():
    # prefixes seen on a real OpenSearch 3.5.0 fs repository (index id hRMmtKW3THuRAXEfmsSJvg)
    assert composite_prefix("hRMmtKW3THuRAXEfmsSJvg", 0) == "W11101111110010"
    assert composite_prefix("hRMmtKW3THuRAXEfmsSJvg", 2) == "w10110010001010"
    assert shard_folder("ix", 1, 0, "") == "indices/ix/1"
    prefix = composite_prefix("ix", 1)
    assert shard_folder("ix", 1, 1, "") == f"{prefix}/indices/ix/1"
    assert shard_folder("ix", 1, 1, "base/path") == f"/{prefix}/base/path/indices/ix/1"  # above the base path
    assert shard_folder("ix", 1, 2, "base/path") == f"{prefix}/indices/ix/1"  # inside it
    with pytest.raises(UnsupportedFormatError, match="shard_path_type 7"):
        shard_folder("ix", 1, 7, "")
