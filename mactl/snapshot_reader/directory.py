"""A shard's Lucene directory rebuilt from its snapshot file list (parts, `v__` files, checks).

Files are read lazily and each one's CRC32 footer is checked against both its own footer
and the checksum the snapshot recorded, so a damaged blob is named, not mis-decoded.
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from mactl.snapshot_reader.blobs import BlobStore
from mactl.snapshot_reader.errors import CorruptFileError, SnapshotReaderError
from mactl.snapshot_reader.framing import verify_footer

_UNLIMITED = 9223372036854775807
#: files at least this big are memory-mapped instead of read into memory (segments reach GBs)
MAP_THRESHOLD = 8 << 20


@dataclass(frozen=True)
class FileInfo:
    blob: str
    physical_name: str
    length: int
    checksum: str | None
    part_size: int
    meta_hash: bytes | None

    @property
    def num_parts(self) -> int:
        if self.part_size <= 0 or self.part_size >= _UNLIMITED:
            return 1
        return max(1, -(-self.length // self.part_size))

    @classmethod
    def from_snapshot(cls, raw: dict[str, Any]) -> FileInfo:
        meta_hash = raw.get("meta_hash")
        return cls(
            blob=str(raw["name"]),
            physical_name=str(raw["physical_name"]),
            length=int(raw["length"]),
            checksum=raw.get("checksum"),
            part_size=int(raw.get("part_size") or _UNLIMITED),
            meta_hash=bytes(meta_hash) if isinstance(meta_hash, (bytes, bytearray)) else None,
        )


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


class ShardDirectory:
    """physical file name → verified bytes, for one shard of one snapshot."""

    def __init__(self, store: BlobStore, shard_path: str, files: list[FileInfo], where: str) -> None:
        self.store = store
        self.shard_path = shard_path
        self.files = {f.physical_name: f for f in files}
        self.where = where
        self._cache: dict[str, bytes | memoryview] = {}

    def names(self) -> list[str]:
        return sorted(self.files)

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def read(self, name: str, *, keep: bool = True) -> bytes | memoryview:
        if name in self._cache:
            return self._cache[name]
        info = self.files.get(name)
        if info is None:
            raise SnapshotReaderError(f"{self.where}: Lucene file {name} is not in the snapshot's file list")
        label = f"{self.where}/{name} (blob {info.blob})"
        data: bytes | memoryview
        if info.blob.startswith("v__"):
            if info.meta_hash is None:
                raise CorruptFileError(f"{label} is corrupt: virtual file without inline content (meta_hash)")
            data = info.meta_hash
        elif info.length >= MAP_THRESHOLD:
            data = self._mapped(info)
        elif info.num_parts == 1:
            data = self.store.read(f"{self.shard_path}/{info.blob}")
        else:
            data = b"".join(self.store.read(f"{self.shard_path}/{info.blob}.part{i}") for i in range(info.num_parts))
        if len(data) != info.length:
            raise CorruptFileError(f"{label} is corrupt: {len(data)} bytes, the snapshot says {info.length}")
        crc = verify_footer(data, label)
        if info.checksum and _base36(crc) != str(info.checksum).lower():
            raise CorruptFileError(
                f"{label} is corrupt: checksum {_base36(crc)} does not match the snapshot's {info.checksum}"
            )
        if keep:
            self._cache[name] = data
        return data

    def _mapped(self, info: FileInfo) -> memoryview:
        """Map a big file read-only; multi-part files are first joined into an unlinked temp file."""
        paths = (
            [self.store.local_path(f"{self.shard_path}/{info.blob}")]
            if info.num_parts == 1
            else [self.store.local_path(f"{self.shard_path}/{info.blob}.part{i}") for i in range(info.num_parts)]
        )
        if len(paths) == 1:
            with open(paths[0], "rb") as fh:
                return memoryview(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))
        with tempfile.TemporaryFile(prefix="mactl-lucene-") as out:  # gone from disk once unmapped
            for part in paths:
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out, 4 << 20)
            out.flush()
            os.fsync(out.fileno())
            return memoryview(mmap.mmap(out.fileno(), 0, access=mmap.ACCESS_READ))

    def drop(self, name: str) -> None:
        self._cache.pop(name, None)
