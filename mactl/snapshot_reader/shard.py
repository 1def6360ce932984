"""One shard of one snapshot: its segments, which docs are live, and its ES documents.

Documents come out segment by segment in commit order, doc ids ascending, so a
(segment ordinal, doc) cursor is a stable resume point. It must not re-encode `_source`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from mactl.snapshot_reader import softdeletes
from mactl.snapshot_reader.datainput import codec_is_little_endian
from mactl.snapshot_reader.directory import ShardDirectory
from mactl.snapshot_reader.errors import CorruptFileError, SnapshotReaderError, UnsupportedFormatError
from mactl.snapshot_reader.framing import read_index_header, verify_footer
from mactl.snapshot_reader.model import Cursor, Document
from mactl.snapshot_reader.segments import (
    FieldInfo,
    SegmentCommitInfo,
    SegmentInfo,
    base36,
    parse_cfe,
    parse_fnm,
    parse_liv,
    parse_segments,
    parse_si,
)
from mactl.snapshot_reader.storedfields import ES_FIELDS, ID, ROUTING, SOURCE, StoredFieldsFile
from mactl.snapshot_reader.uid import decode_id


@dataclass
class Segment:
    """A segment's files resolved (compound or not) and what it needs for reading."""

    ordinal: int
    commit: SegmentCommitInfo
    info: SegmentInfo
    files: dict[str, bytes | memoryview]  # full file name → bytes (sub-files of a .cfs included)
    fields: dict[int, FieldInfo]


class ShardReader:
    def __init__(self, directory: ShardDirectory, index: str, shard: int, doc_type: str | None) -> None:
        self.dir = directory
        self.index = index
        self.shard = shard
        self.doc_type = doc_type
        seg_files = [n for n in directory.names() if n.startswith("segments_")]
        if len(seg_files) != 1:
            raise CorruptFileError(f"{directory.where}: expected one segments_N file, found {seg_files or 'none'}")
        self.segments_file = seg_files[0]
        self.commit = parse_segments(directory.read(self.segments_file), f"{directory.where}/{self.segments_file}")
        self.skipped_no_source = 0

    # --- segment opening ----------------------------------------------------------------
    def _open(self, ordinal: int, sci: SegmentCommitInfo) -> Segment:
        d = self.dir
        where = d.where
        si_name = f"{sci.name}.si"
        info = parse_si(d.read(si_name), f"{where}/{si_name}", sci.codec)
        files: dict[str, bytes | memoryview] = {}
        if info.is_compound:
            cfe_name, cfs_name = f"{sci.name}.cfe", f"{sci.name}.cfs"
            entries, _le = parse_cfe(d.read(cfe_name), f"{where}/{cfe_name}")
            cfs = d.read(cfs_name, keep=False)
            view = memoryview(cfs)
            for suffix, (off, length) in entries.items():
                if off < 0 or off + length > len(cfs) - 16:
                    raise CorruptFileError(f"{where}/{cfs_name} is corrupt: entry {suffix} lies outside the file")
                files[sci.name + suffix] = view[off : off + length]
        else:
            for name in info.files:
                if name in d:
                    files[name] = d.read(name, keep=False)
        if sci.field_infos_gen != -1:
            fnm_name = f"{sci.name}_{base36(sci.field_infos_gen)}.fnm"
            fnm = d.read(fnm_name, keep=False)
        else:
            fnm_name = f"{sci.name}.fnm"
            if fnm_name not in files:
                raise CorruptFileError(f"{where}: segment {sci.name} has no field infos ({fnm_name})")
            fnm = files[fnm_name]
        fields = parse_fnm(fnm, f"{where}/{fnm_name}")
        return Segment(ordinal, sci, info, files, fields)

    def _live(self, seg: Segment) -> bytearray | None:
        """A bytearray with 1 for live docs, or None when every doc is live."""
        sci, max_doc = seg.commit, seg.info.max_doc
        where = self.dir.where
        live: bytearray | None = None
        if sci.del_gen != -1 and sci.del_count > 0:
            liv_name = f"{sci.name}_{base36(sci.del_gen)}.liv"
            bits = parse_liv(self.dir.read(liv_name, keep=False), f"{where}/{liv_name}", max_doc)
            live = bytearray(max_doc)
            for k, byte in enumerate(bits):
                if byte:
                    base = k * 8
                    for j in range(8):
                        if (byte >> j) & 1 and base + j < max_doc:
                            live[base + j] = 1
            if max_doc - sum(live) != sci.del_count:
                raise CorruptFileError(
                    f"{where}/{liv_name}: {max_doc - sum(live)} deleted docs, segments_N says {sci.del_count}"
                )
        if sci.soft_del_count > 0:
            soft = self._soft_deleted(seg)
            if live is None:
                live = bytearray(b"\x01") * max_doc
            for d in soft:
                if d < max_doc:
                    live[d] = 0
        return live

    def _soft_deleted(self, seg: Segment) -> set[int] | range:
        sci = seg.commit
        where = self.dir.where
        field = next((f for f in seg.fields.values() if f.soft_deletes), None)
        if field is None:
            return set()
        fmt = field.attributes.get("PerFieldDocValuesFormat.format")
        suffix = field.attributes.get("PerFieldDocValuesFormat.suffix")
        if fmt is None or suffix is None:
            raise UnsupportedFormatError(
                f"{where}: soft-deletes field of segment {sci.name} has no doc-values format attributes"
            )
        if field.dv_gen == -1:
            base = f"{sci.name}_{fmt}_{suffix}"
            dvm = seg.files.get(base + ".dvm")
            dvd = seg.files.get(base + ".dvd")
            if dvm is None:
                dvm = self.dir.read(base + ".dvm", keep=False)
                dvd = self.dir.read(base + ".dvd", keep=False)
        else:
            base = f"{sci.name}_{base36(field.dv_gen)}_{fmt}_{suffix}"
            dvm = self.dir.read(base + ".dvm", keep=False)
            dvd = self.dir.read(base + ".dvd", keep=False)
        if dvd is None:
            raise CorruptFileError(f"{where}: {base}.dvd is missing")
        verify_footer(dvm, f"{where}/{base}.dvm")
        skip_fields = {n for n, f in seg.fields.items() if f.skip_index}
        attrs = {n: f.attributes for n, f in seg.fields.items()}
        found = softdeletes.find_soft_deletes(dvm, dvd, f"{where}/{base}.dvm", field.number, skip_fields, attrs)
        if isinstance(found, str):
            return range(seg.info.max_doc) if found == softdeletes.ALL else set()
        off, length, drp = found
        codec = read_index_header(dvd, f"{where}/{base}.dvd")[0]
        docs = softdeletes.disi_docs(dvd, off, length, codec_is_little_endian(codec), drp)
        return docs

    # --- public -------------------------------------------------------------------------
    def live_doc_count(self) -> int:
        """Live Lucene docs per the commit (nested children and tombstones excluded only on a full read)."""
        total = 0
        for sci in self.commit.segments:
            info = parse_si(self.dir.read(f"{sci.name}.si"), f"{self.dir.where}/{sci.name}.si", sci.codec)
            total += info.max_doc - sci.del_count - sci.soft_del_count
        return total

    def top_level_doc_count(self) -> int:
        """Live top-level documents: every live doc with a stored `_id` (or `_uid`).

        Nested child documents have no stored `_id`, so unlike `live_doc_count` this is the
        number of documents a user indexed (and sees in `_count`), `_source` or not. It reads
        every stored field block, so callers use it only when the index has nested fields.
        """
        return sum(1 for _ in self.documents(with_sourceless=True))

    def documents(self, after: Cursor | None = None, *, with_sourceless: bool = False) -> Iterator[Document]:
        """Live top-level documents after `after`. With `with_sourceless`, those without a
        stored `_source` (`_source` disabled) come out too, with an empty `source` (b"")."""
        index, shard, doc_type = self.index, self.shard, self.doc_type
        segs = self.commit.segments
        start_ordinal = 0
        if after is not None:
            if after.segment_ordinal >= len(segs) or (
                after.segment and segs[after.segment_ordinal].name != after.segment
            ):
                raise SnapshotReaderError(
                    f"{self.dir.where}: cursor {after.to_json()} does not belong to this shard's snapshot"
                )
            start_ordinal = after.segment_ordinal
        for ordinal in range(start_ordinal, len(segs)):
            sci = segs[ordinal]
            first_doc = after.doc + 1 if (after is not None and ordinal == after.segment_ordinal) else 0
            seg = self._open(ordinal, sci)
            max_doc = seg.info.max_doc
            if first_doc >= max_doc or max_doc == 0:
                continue
            live = self._live(seg)
            if live is not None and not any(live[first_doc:]):
                continue
            codes = [0] * (max(seg.fields) + 1 if seg.fields else 1)
            for number, f in seg.fields.items():
                codes[number] = ES_FIELDS.get(f.name, 0)
            fdt_name = f"{sci.name}.fdt"
            fdt = seg.files.get(fdt_name)
            if fdt is None:
                raise CorruptFileError(f"{self.dir.where}: segment {sci.name} has no stored fields file")
            fdm = seg.files.get(f"{sci.name}.fdm")
            sf = StoredFieldsFile(
                fdt,
                f"{self.dir.where}/{fdt_name}",
                bytes(fdm) if fdm is not None else None,
                f"{self.dir.where}/{sci.name}.fdm",
                max_doc,
            )
            seg_name = sci.name
            for doc_base, nfields, lengths, buf in sf.chunks():
                n = len(lengths)
                if doc_base + n <= first_doc:
                    continue
                off = 0
                for i in range(n):
                    length = lengths[i]
                    doc = doc_base + i
                    start = off
                    off += length
                    if doc < first_doc or (live is not None and not live[doc]) or length == 0:
                        continue
                    id_raw = source = routing = uid = None
                    p = start
                    # Hot loop: the vInts (field info, value length) are decoded inline, not via
                    # storedfields._vint, to avoid a call per field (see bench/snapshot_read.py).
                    for _ in range(nfields[i]):
                        info = buf[p]
                        p += 1
                        if info >= 128:
                            info &= 0x7F
                            shift = 7
                            while True:
                                b = buf[p]
                                p += 1
                                info |= (b & 0x7F) << shift
                                if b < 128:
                                    break
                                shift += 7
                        typ = info & 7
                        if typ <= 1:
                            ln = buf[p]
                            p += 1
                            if ln >= 128:
                                ln &= 0x7F
                                shift = 7
                                while True:
                                    b = buf[p]
                                    p += 1
                                    ln |= (b & 0x7F) << shift
                                    if b < 128:
                                        break
                                    shift += 7
                            number = info >> 3
                            code = codes[number] if number < len(codes) else 0
                            if code:
                                if code == SOURCE:
                                    source = buf[p : p + ln]
                                elif code == ID:
                                    id_raw = buf[p : p + ln]
                                elif code == ROUTING:
                                    routing = buf[p : p + ln].decode("utf-8")
                                else:
                                    uid = buf[p : p + ln].decode("utf-8")
                            p += ln
                        else:
                            p = _skip_numeric(buf, p, typ, sf.lucene9)
                    if id_raw is not None:
                        doc_id = decode_id(id_raw)
                        typ_name = doc_type
                    elif uid is not None:
                        typ_name, _, doc_id = uid.partition("#")
                    else:
                        continue  # nested child doc (no stored _id)
                    if source is None:
                        self.skipped_no_source += 1  # _source disabled (tombstones are never live)
                        if not with_sourceless:
                            continue
                        source = b""
                    yield Document(index, shard, doc_id, typ_name, routing, source, ordinal, doc, seg_name)


def _skip_numeric(buf: bytes, p: int, typ: int, lucene9: bool) -> int:
    if typ == 2:  # zInt
        while buf[p] >= 128:
            p += 1
        return p + 1
    if typ == 3:  # ZFloat
        b = buf[p]
        return p + 5 if b == 0xFF else (p + 1 if b & 0x80 else p + 4)
    if typ == 4:  # TLong
        h = buf[p]
        p += 1
        if h & 0x20:
            while buf[p] >= 128:
                p += 1
            p += 1
        return p
    if typ == 5:  # ZDouble
        b = buf[p]
        if b == 0xFF:
            return p + 9
        if b == 0xFE:
            return p + 5
        return p + 1 if b & 0x80 else p + 8
    raise CorruptFileError(f"stored field of unknown type {typ}")
