"""Read Elasticsearch/OpenSearch snapshot repositories without a cluster (RFS).

Lists snapshots, reads global and per-index metadata, and yields every live document of a
shard straight from the snapshot's Lucene files (ES 6.8/7.x, OpenSearch 1.x/2.x). It only
reads: it must never write to a repository, and it must not re-encode `_source`.
"""

from __future__ import annotations

from mactl.snapshot_reader.errors import CorruptFileError, SnapshotReaderError, UnsupportedFormatError
from mactl.snapshot_reader.model import Cursor, Document, GlobalMetadata, IndexMetadata, SnapshotInfo
from mactl.snapshot_reader.repository import Repository, open_repository

__all__ = [
    "open_repository",
    "Repository",
    "SnapshotInfo",
    "IndexMetadata",
    "GlobalMetadata",
    "Document",
    "Cursor",
    "SnapshotReaderError",
    "CorruptFileError",
    "UnsupportedFormatError",
]
