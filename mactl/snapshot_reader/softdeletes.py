"""Soft deletes: which docs carry a value in the `__soft_deletes` numeric doc-values field.

Only enough of the .dvm grammar (Lucene70/80/90) is implemented to walk past the other
fields' entries to the soft-deletes entry, then the IndexedDISI doc-id set in the .dvd is
decoded. It must not try to read doc-values *values*.
"""

from __future__ import annotations

from typing import Final, Literal

from mactl.snapshot_reader.datainput import DataInput, codec_is_little_endian
from mactl.snapshot_reader.errors import CorruptFileError, UnsupportedFormatError
from mactl.snapshot_reader.framing import read_index_header

ALL: Final = "all"
NONE: Final = "none"
#: what `find_soft_deletes` found: the docs-with-field set's (offset, length, dense rank power) in the .dvd, ALL or NONE
SoftDeletes = tuple[int, int, int] | Literal["all", "none"]


def _dm(inp: DataInput, count: int, shift: int) -> None:
    blocks = (count + (1 << shift) - 1) >> shift if count > 0 else 0
    inp.pos += 21 * blocks


def _numeric(inp: DataInput, fmt: int) -> tuple[int, int, int]:
    off = inp.long()
    length = inp.long()
    drp = -1
    if fmt >= 80:
        inp.short()
        drp = inp.byte()
    inp.long()  # numValues
    table = inp.int()
    if table > 0:
        inp.pos += 8 * table
    inp.byte(), inp.long(), inp.long(), inp.long(), inp.long()
    if fmt >= 80:
        inp.long()
    return off, length, drp


def _termdict(inp: DataInput, fmt: int) -> None:
    size = inp.vlong()
    if fmt == 70:
        td_shift = inp.int()
        shift = inp.int()
        _dm(inp, (size + (1 << td_shift) - 1) >> td_shift, shift)
        inp.int()
    elif fmt == 80:
        code = inp.int()
        shift = inp.int()
        compressed = code == 0x00060001
        td_shift = 6 if compressed else code
        _dm(inp, (size + (1 << td_shift) - 1) >> td_shift, shift)
        inp.int()
        if compressed:
            inp.int()
    else:
        shift = inp.int()
        _dm(inp, (size + 63) >> 6, shift)
        inp.int(), inp.int()
    inp.pos += 32
    idx_shift = inp.int()
    _dm(inp, 1 + ((size + (1 << idx_shift) - 1) >> idx_shift), shift)
    inp.pos += 32


def find_soft_deletes(
    dvm: bytes | memoryview,
    dvd: bytes | memoryview,
    dvm_name: str,
    field_number: int,
    skip_index_fields: set[int],
    attributes_by_field: dict[int, dict[str, str]],
) -> SoftDeletes:
    """Locate the soft-deletes field's docs-with-field set: (offset, length) in .dvd, ALL or NONE."""
    codec, version, _id, _s, pos = read_index_header(dvm, dvm_name)
    fmts = {"Lucene70DocValuesMetadata": 70, "Lucene80DocValuesMetadata": 80, "Lucene90DocValuesMetadata": 90}
    if codec not in fmts:
        raise UnsupportedFormatError(f"{dvm_name}: doc-values metadata codec {codec!r} is not supported")
    fmt = fmts[codec]
    inp = DataInput(dvm, pos, little_endian=codec_is_little_endian(codec), name=dvm_name)
    while True:
        number = inp.int()
        if number == -1:
            break
        kind = inp.byte()
        if fmt == 90 and number in skip_index_fields:
            inp.pos += 8 * 4 + 4 * 2
            if version >= 2:
                inp.int()
        if kind == 0:  # NUMERIC
            off, length, drp = _numeric(inp, fmt)
            if number == field_number:
                return _docs_with_field(off, length, drp)
        elif kind == 1:  # BINARY
            if number == field_number:
                raise UnsupportedFormatError(f"{dvm_name}: soft-deletes field is BINARY doc values")
            _binary(inp, fmt, version, attributes_by_field.get(number, {}))
        elif kind == 2:  # SORTED
            _sorted(inp, fmt)
        elif kind == 3:  # SORTED_SET
            multi = inp.byte()
            if multi == 0:
                _sorted(inp, fmt)
            elif fmt == 90:
                _sorted_numeric(inp, fmt)
                _termdict(inp, fmt)
            else:
                inp.long(), inp.long()
                if fmt == 80:
                    inp.short(), inp.byte()
                inp.byte(), inp.long(), inp.long()
                ndocs = inp.int()
                inp.long()
                shift = inp.vint()
                _dm(inp, ndocs + 1, shift)
                inp.long()
                _termdict(inp, fmt)
        elif kind == 4:  # SORTED_NUMERIC
            off, length, drp = _sorted_numeric(inp, fmt)
            if number == field_number:
                return _docs_with_field(off, length, drp)
        else:
            raise CorruptFileError(f"{dvm_name} is corrupt: unknown doc-values type {kind}")
    return NONE


def _docs_with_field(off: int, length: int, drp: int) -> SoftDeletes:
    if off == -2:
        return NONE
    if off == -1:
        return ALL
    return off, length, drp


def _sorted_numeric(inp: DataInput, fmt: int) -> tuple[int, int, int]:
    # NUMERIC body, then numDocsWithField and (if multi-valued) addresses. numValues is
    # inside the NUMERIC body, so re-read it here.
    start = inp.pos
    inp.pos += 16 + (3 if fmt >= 80 else 0)
    num_values = inp.long()
    inp.pos = start
    off, length, drp = _numeric(inp, fmt)
    ndocs = inp.int()
    if ndocs != num_values:
        inp.long()
        shift = inp.vint()
        _dm(inp, ndocs + 1, shift)
        inp.long()
    return off, length, drp


def _binary(inp: DataInput, fmt: int, version: int, attrs: dict[str, str]) -> None:
    inp.long(), inp.long(), inp.long(), inp.long()
    if fmt >= 80:
        inp.short(), inp.byte()
    ndocs = inp.int()
    min_len = inp.int()
    max_len = inp.int()
    compressed = fmt == 80 and (
        version == 1 or (version >= 2 and attrs.get("Lucene80DocValuesFormat.mode") == "BEST_COMPRESSION")
    )
    if (compressed and ndocs > 0) or min_len < max_len:
        inp.long()
        count = ndocs + 1
        if compressed:
            count = inp.vint()
            inp.vint(), inp.vint()
        shift = inp.vint()
        _dm(inp, count, shift)
        inp.long()


def _sorted(inp: DataInput, fmt: int) -> None:
    if fmt == 90:
        _numeric(inp, fmt)
    else:
        inp.long(), inp.long()
        if fmt == 80:
            inp.short(), inp.byte()
        inp.int(), inp.byte(), inp.long(), inp.long()
    _termdict(inp, fmt)


def disi_docs(
    dvd: bytes | memoryview, offset: int, length: int, little_endian: bool, dense_rank_power: int
) -> set[int]:
    """Decode an IndexedDISI doc-id set (SPARSE, DENSE and ALL blocks)."""
    inp = DataInput(dvd, offset, little_endian=little_endian)
    end = offset + length
    docs: set[int] = set()
    while inp.pos < end:
        block = inp.ushort()
        card = inp.ushort() + 1
        if block == 0x7FFF:
            break
        base = block << 16
        if card == 65536:
            docs.update(range(base, base + 65536))
        elif card > 4095:
            if 7 <= dense_rank_power <= 15:
                inp.pos += 2 * (65536 >> dense_rank_power)  # rank table: one short per 2^p docs
            raw = bytes(dvd[inp.pos : inp.pos + 8192])
            inp.pos += 8192
            if not little_endian:
                raw = b"".join(raw[i : i + 8][::-1] for i in range(0, 8192, 8))
            bits = int.from_bytes(raw, "little")
            d = 0
            while bits:
                low = bits & -bits
                d = low.bit_length() - 1
                docs.add(base + d)
                bits ^= low
        else:
            for _ in range(card):
                docs.add(base + inp.ushort())
    return docs
