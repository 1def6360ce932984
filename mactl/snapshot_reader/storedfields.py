"""Stored fields (.fdt): walk every chunk in order and pull out the fields ES needs.

This is the hot path of a backfill. A chunk is decompressed in one go with the C LZ4 block
decoder (with its dictionary support), zlib, or zstd (Elasticsearch 8.14+'s
`ZstdStoredFields814`: Lucene 9's chunk layout, each block a vint length and one zstd frame,
no dictionary; its BEST_SPEED and BEST_COMPRESSION modes differ only in level and chunk size,
so one decoder reads both), its per-doc counts and lengths are decoded
at once, and each doc's fields are parsed straight from the decompressed bytes. It yields
raw values only; turning them into ES documents (id decoding, filtering) is `shard`'s job.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator

import lz4.block
import zstandard

from mactl.snapshot_reader.datainput import DataInput
from mactl.snapshot_reader.errors import CorruptFileError, UnsupportedFormatError
from mactl.snapshot_reader.framing import read_index_header

# what a stored field is to ES: index into the per-segment `codes` list
OTHER, ID, SOURCE, ROUTING, UID = 0, 1, 2, 3, 4
ES_FIELDS = {"_id": ID, "_source": SOURCE, "_routing": ROUTING, "_uid": UID}

FAST, HIGH, FAST_DICT, HIGH_DICT, ZSTD = "lz4", "deflate", "lz4-dict", "deflate-dict", "zstd"

_FDT_FORMATS = {
    # codec name -> (compression, Lucene 9 layout?)
    "Lucene50StoredFieldsFastData": (FAST, False),
    "Lucene50StoredFieldsHighData": (HIGH, False),
    "Lucene87StoredFieldsFastData": (FAST_DICT, False),
    "Lucene87StoredFieldsHighData": (HIGH_DICT, False),
    "Lucene90StoredFieldsFastData": (FAST_DICT, True),
    "Lucene90StoredFieldsHighData": (HIGH_DICT, True),
    "ZstdStoredFields814": (ZSTD, True),  # Elasticsearch 8.14+ (index.codec default and best_compression)
}


def describe_unsupported_fdt(codec: str) -> str:
    """The one-line reason a stored-fields codec cannot be read."""
    if "zstd" in codec.lower():
        return f"zstd stored fields ({codec}, e.g. OpenSearch's zstd codecs plugin) are not supported yet"
    return f"stored fields codec {codec!r} is not supported"


class StoredFieldsFile:
    """One segment's .fdt (+ .fdm) with its framing understood."""

    def __init__(self, fdt: bytes | memoryview, fdt_name: str, fdm: bytes | None, fdm_name: str, max_doc: int) -> None:
        codec, version, _id, _suffix, pos = read_index_header(fdt, fdt_name)
        if codec not in _FDT_FORMATS:
            raise UnsupportedFormatError(f"{fdt_name}: {describe_unsupported_fdt(codec)}")
        self.codec = codec
        self.mode, self.lucene9 = _FDT_FORMATS[codec]
        # Lucene 8.10+ (format version 4) already writes the Lucene 9 chunk token (docs << 2)
        self.token_shift = 2 if (self.lucene9 or version >= 4) else 1
        self.name = fdt_name
        self.data = memoryview(fdt)
        self.max_doc = max_doc
        self.chunk_size = 1 << 30
        if codec.startswith("Lucene50") and version < 3:
            inp = DataInput(fdt, pos, name=fdt_name)
            self.chunk_size = inp.vint()
            inp.vint()
            pos = inp.pos
        elif fdm is not None:
            _c, _v, _i, _s, mpos = read_index_header(fdm, fdm_name)
            inp = DataInput(fdm, mpos, name=fdm_name)
            self.chunk_size = inp.vint()
        else:
            raise CorruptFileError(f"{fdt_name}: the segment's .fdm file is missing")
        self.start = pos

    # --- decompression -----------------------------------------------------------------
    def _decompress(self, pos: int, n: int) -> tuple[bytes, int]:
        """Decompress n bytes starting at pos (consuming the full framing); return (data, new pos)."""
        mode = self.mode
        if mode == FAST_DICT:
            return _lz4_dict(self.data, pos, n, self.name)
        if mode == HIGH_DICT:
            return _deflate_dict(self.data, pos, n, self.name)
        if mode == ZSTD:
            return _zstd_block(self.data, pos, n, self.name)
        if mode == FAST:
            return _lz4_plain(self.data, pos, n, self.name)
        return _deflate_plain(self.data, pos, n, self.name)

    # --- chunk walk --------------------------------------------------------------------
    def chunks(self) -> Iterator[tuple[int, list[int], list[int], bytes]]:
        """Yield (docBase, numStoredFields[], lengths[], decompressed bytes) per chunk."""
        data = self.data
        pos = self.start
        doc_count = 0
        max_doc = self.max_doc
        lucene9 = self.lucene9
        token_shift = self.token_shift
        end_limit = len(data) - 16
        while doc_count < max_doc:
            if pos >= end_limit:
                raise CorruptFileError(f"{self.name} is corrupt: stored fields end after {doc_count} of {max_doc} docs")
            doc_base, pos = _vint(data, pos)
            token, pos = _vint(data, pos)
            if doc_base != doc_count:
                raise CorruptFileError(f"{self.name} is corrupt: chunk starts at doc {doc_base}, expected {doc_count}")
            chunk_docs = token >> token_shift
            sliced = token & 1
            if chunk_docs <= 0 or doc_base + chunk_docs > max_doc:
                raise CorruptFileError(f"{self.name} is corrupt: bad chunk of {chunk_docs} docs at doc {doc_base}")
            if chunk_docs == 1:
                nf, pos = _vint(data, pos)
                ln, pos = _vint(data, pos)
                nfields, lengths = [nf], [ln]
            elif lucene9:
                nfields, pos = _sf_ints(data, pos, chunk_docs)
                lengths, pos = _sf_ints(data, pos, chunk_docs)
            else:
                nfields, pos = _packed_ints(data, pos, chunk_docs)
                lengths, pos = _packed_ints(data, pos, chunk_docs)
            total = sum(lengths)
            if sliced:
                parts = []
                done = 0
                while done < total:
                    piece = min(self.chunk_size, total - done)
                    out, pos = self._decompress(pos, piece)
                    parts.append(out)
                    done += piece
                buf = b"".join(parts)
            else:
                buf, pos = self._decompress(pos, total)
            if len(buf) != total:
                raise CorruptFileError(
                    f"{self.name} is corrupt: chunk at doc {doc_base} decompressed to {len(buf)} bytes, expected {total}"
                )
            yield doc_base, nfields, lengths, buf
            doc_count += chunk_docs
        if pos > end_limit:
            raise CorruptFileError(f"{self.name} is corrupt: stored fields run into the footer")


def _vint(data: memoryview | bytes, pos: int) -> tuple[int, int]:
    b = data[pos]
    pos += 1
    if b < 128:
        return b, pos
    v = b & 0x7F
    shift = 7
    while True:
        b = data[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        if b < 128:
            return v, pos
        shift += 7


def _packed_ints(data: memoryview, pos: int, n: int) -> tuple[list[int], int]:
    """Lucene <= 8 `saveInts`: vInt bpv; 0 → one vInt for all; else MSB-first packed bits."""
    bpv, pos = _vint(data, pos)
    if bpv == 0:
        v, pos = _vint(data, pos)
        return [v] * n, pos
    if bpv > 32:
        raise CorruptFileError(f"stored fields: bad bits-per-value {bpv}")
    nbytes = (n * bpv + 7) >> 3
    big = int.from_bytes(data[pos : pos + nbytes], "big")
    pos += nbytes
    total_bits = nbytes * 8
    mask = (1 << bpv) - 1
    first_shift = total_bits - bpv
    return [(big >> (first_shift - i * bpv)) & mask for i in range(n)], pos


def _sf_ints(data: memoryview, pos: int, n: int) -> tuple[list[int], int]:
    """Lucene 9 `StoredFieldsInts`: byte bpv in {0, 8, 16, 32}; 128-value blocks of LE longs."""
    bpv = data[pos]
    pos += 1
    if bpv == 0:
        v, pos = _vint(data, pos)
        return [v] * n, pos
    if bpv not in (8, 16, 32):
        raise CorruptFileError(f"stored fields: bad StoredFieldsInts width {bpv}")
    out = [0] * n
    k = 0
    nwords = 2 * bpv  # 128 values * bpv bits / 64
    per = 64 // bpv
    mask = (1 << bpv) - 1
    while n - k >= 128:
        block = data[pos : pos + nwords * 8]
        pos += nwords * 8
        for i in range(nwords):
            w = int.from_bytes(block[i * 8 : i * 8 + 8], "little")
            for j in range(per):
                out[k + nwords * j + i] = (w >> (64 - bpv * (j + 1))) & mask
        k += 128
    width = bpv >> 3
    for idx in range(k, n):
        out[idx] = int.from_bytes(data[pos : pos + width], "little")
        pos += width
    return out, pos


def _lz4_end(data: memoryview, pos: int, n: int, name: str) -> int:
    """Walk an un-prefixed Lucene LZ4 block to find where it ends (no copying)."""
    produced = 0
    try:
        while True:
            token = data[pos]
            pos += 1
            lit = token >> 4
            if lit == 15:
                while True:
                    b = data[pos]
                    pos += 1
                    lit += b
                    if b != 255:
                        break
            pos += lit
            produced += lit
            if produced >= n:
                return pos
            pos += 2
            ml = token & 15
            if ml == 15:
                while True:
                    b = data[pos]
                    pos += 1
                    ml += b
                    if b != 255:
                        break
            produced += ml + 4
            if produced >= n:
                return pos
    except IndexError:
        raise CorruptFileError(f"{name} is corrupt: LZ4 data runs past the file end") from None


_SPARE = 32


def _lz4_block(src: memoryview, n: int, name: str, dictionary: bytes | None = None) -> bytes:
    if n == 0:
        return b""
    # Lucene lets a last match start closer to the block end than the LZ4 reference format
    # does (MFLIMIT); liblz4's safe decoder accepts that only with some spare output room.
    out: bytes  # lz4 is untyped; `lz4.block.decompress` returns bytes
    try:
        if dictionary:
            out = lz4.block.decompress(src, uncompressed_size=n + _SPARE, dict=dictionary)
        else:
            out = lz4.block.decompress(src, uncompressed_size=n + _SPARE)
    except lz4.block.LZ4BlockError as err:
        raise CorruptFileError(f"{name} is corrupt: LZ4 block does not decode ({err})") from None
    if len(out) != n:
        raise CorruptFileError(f"{name} is corrupt: LZ4 block gave {len(out)} bytes, expected {n}")
    return out


def _lz4_plain(data: memoryview, pos: int, n: int, name: str) -> tuple[bytes, int]:
    end = _lz4_end(data, pos, n, name)
    return _lz4_block(data[pos:end], n, name), end


def _lz4_dict(data: memoryview, pos: int, n: int, name: str) -> tuple[bytes, int]:
    dict_len, pos = _vint(data, pos)
    block_len, pos = _vint(data, pos)
    cdict, pos = _vint(data, pos)
    if n > dict_len and block_len <= 0:
        raise CorruptFileError(f"{name} is corrupt: LZ4 block length {block_len}")
    nblocks = 0 if n <= dict_len else (n - dict_len + block_len - 1) // block_len
    clens = []
    for _ in range(nblocks):
        c, pos = _vint(data, pos)
        clens.append(c)
    dictionary = _lz4_block(data[pos : pos + cdict], dict_len, name)
    pos += cdict
    parts = [dictionary]
    remaining = n - dict_len
    for c in clens:
        size = block_len if remaining > block_len else remaining
        parts.append(_lz4_block(data[pos : pos + c], size, name, dictionary))
        pos += c
        remaining -= size
    return b"".join(parts) if nblocks else dictionary, pos


def _inflate(src: memoryview, name: str, zdict: bytes | None = None) -> bytes:
    try:
        d = zlib.decompressobj(-15, zdict=zdict) if zdict else zlib.decompressobj(-15)
        out = d.decompress(src)
        return out + d.flush()
    except zlib.error as err:
        raise CorruptFileError(f"{name} is corrupt: deflate data does not decode ({err})") from None


def _deflate_plain(data: memoryview, pos: int, n: int, name: str) -> tuple[bytes, int]:
    clen, pos = _vint(data, pos)
    if clen == 0:
        return b"", pos
    return _inflate(data[pos : pos + clen], name), pos + clen


def _deflate_dict(data: memoryview, pos: int, n: int, name: str) -> tuple[bytes, int]:
    dict_len, pos = _vint(data, pos)
    block_len, pos = _vint(data, pos)
    clen, pos = _vint(data, pos)
    dictionary = _inflate(data[pos : pos + clen], name) if clen else b""
    pos += clen
    if len(dictionary) != dict_len:
        raise CorruptFileError(f"{name} is corrupt: deflate dictionary is {len(dictionary)} bytes, expected {dict_len}")
    parts = [dictionary]
    produced = dict_len
    while produced < n:
        clen, pos = _vint(data, pos)
        block = _inflate(data[pos : pos + clen], name, dictionary) if clen else b""
        pos += clen
        if not block:
            raise CorruptFileError(f"{name} is corrupt: empty deflate block")
        parts.append(block)
        produced += len(block)
    return b"".join(parts), pos


_ZSTD = threading.local()  # a ZstdDecompressor per thread: they must not be shared across threads


def _zstd_block(data: memoryview, pos: int, n: int, name: str) -> tuple[bytes, int]:
    """One zstd block: nothing at all for an empty one, else a vint length and one frame of n bytes."""
    if n == 0:
        return b"", pos
    clen, pos = _vint(data, pos)
    decompressor = getattr(_ZSTD, "d", None)
    if decompressor is None:
        decompressor = _ZSTD.d = zstandard.ZstdDecompressor()
    try:
        out = decompressor.decompress(data[pos : pos + clen], max_output_size=n)
    except zstandard.ZstdError as err:
        raise CorruptFileError(f"{name} is corrupt: zstd data does not decode ({err})") from None
    return out, pos + clen
