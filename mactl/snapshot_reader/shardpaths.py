"""Where a shard's files live in the repository: the fixed layout, or OpenSearch's hashed ones.

Up to OpenSearch 2.x (and in every Elasticsearch) a shard's blobs are under
`indices/<index-id>/<shard>/`. OpenSearch 2.17+ can spread them over hashed key prefixes, and
OpenSearch 3 does so by default: `index-N` then says `"shard_path_type": 1` (HASHED_PREFIX) or
`2` (HASHED_INFIX) for the index, and the folder gets a 15-character prefix computed from
`<shard><index-id>` — 64-bit FNV-1a over its UTF-8 bytes, whose top 6 bits become one URL-safe
base64 character and the next 14 bits are written out as `0`/`1` digits (OpenSearch's
FNV_1A_COMPOSITE_1). HASHED_PREFIX puts that prefix above the repository's base path (the
bucket root on S3), HASHED_INFIX between the base path and `indices/`. Spreading keys this way
is what lets S3 scale request rates per prefix; for a reader it is only an address.
"""

from __future__ import annotations

from mactl.snapshot_reader.errors import UnsupportedFormatError

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = (1 << 64) - 1
_URL_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

FIXED, HASHED_PREFIX, HASHED_INFIX = 0, 1, 2


def fnv1a_64(text: str) -> int:
    value = _FNV_OFFSET
    for byte in text.encode():
        value = ((value ^ byte) * _FNV_PRIME) & _MASK
    return value


def composite_prefix(index_id: str, shard: int) -> str:
    """The hashed folder name for a snapshot shard (FNV_1A_COMPOSITE_1 over `<shard><index-id>`)."""
    value = fnv1a_64(f"{shard}{index_id}")
    return _URL_BASE64[value >> 58] + format((value >> 44) & 0x3FFF, "014b")


def shard_folder(index_id: str, shard: int, path_type: int, base_path: str) -> str:
    """The shard's folder relative to the repository root (its base path).

    A path starting with `/` is relative to the store's top instead (the bucket root): that is
    where HASHED_PREFIX puts shards when the repository has a base path.
    """
    fixed = f"indices/{index_id}/{shard}"
    if path_type == FIXED:
        return fixed
    if path_type == HASHED_PREFIX:
        prefix = composite_prefix(index_id, shard)
        return f"/{prefix}/{base_path}/{fixed}" if base_path else f"{prefix}/{fixed}"
    if path_type == HASHED_INFIX:
        return f"{composite_prefix(index_id, shard)}/{fixed}"
    raise UnsupportedFormatError(f"shard_path_type {path_type} of index {index_id} is not a known layout (0, 1, 2)")
