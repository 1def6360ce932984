"""Which Elasticsearch/OpenSearch release wrote a snapshot, from the ids it records.

Up to Elasticsearch 8.10 and in every OpenSearch, a version id is the release itself:
`major * 1_000_000 + minor * 10_000 + revision * 100 + build` (OpenSearch sets bit 27, which
marks its ids apart from Elasticsearch's). From 8.11 on, Elasticsearch freezes the `version`
string it writes into `index-N` at "8.11.0" and records an *index version* instead
(`index_version`, and `version_id` in `snap-*.dat`): a counter bumped whenever the on-disk
format changes, not per release. Several releases share one index version, so the answer is
a minor line ("8.15.x"), found in `_FIRST_INDEX_VERSION`: the first index version of each
minor (from Elasticsearch's own IndexVersions table). It needs a row per new minor only; an id
past the last row is reported as "<last minor>.x or later", never as a wrong release.
"""

from __future__ import annotations

_OPENSEARCH_MASK = 0x08000000

#: minor line -> the lowest index version its releases write (Elasticsearch 8.11+).
_FIRST_INDEX_VERSION: tuple[tuple[str, int], ...] = (
    ("8.11", 8_500_003),
    ("8.12", 8_500_008),
    ("8.13", 8_503_000),
    ("8.14", 8_505_000),
    ("8.15", 8_512_000),
    ("8.16", 8_518_000),
    ("8.17", 8_521_000),
    ("8.18", 8_525_000),
    ("8.19", 8_536_000),  # the last 8.x minor
    ("9.0", 9_009_000),
    ("9.1", 9_033_000),
    ("9.2", 9_039_001),
    ("9.3", 9_060_000),
    ("9.4", 9_094_000),
)
_LAST_MINOR_OF_MAJOR = {8: "8.19"}

#: Elasticsearch's first index version of the 8.11 scheme (older ids are plain releases).
INDEX_VERSION_SCHEME_START = 8_500_000


def release_from_id(version_id: int) -> str:
    """`7100299` -> "7.10.2"; OpenSearch `136317827` -> "2.19.6"; ES `8512000` -> "8.15.x"."""
    if version_id & _OPENSEARCH_MASK:
        version_id ^= _OPENSEARCH_MASK
    elif version_id >= INDEX_VERSION_SCHEME_START:
        return _release_from_index_version(version_id)
    major, rest = divmod(version_id, 1_000_000)
    minor, rest = divmod(rest, 10_000)
    return f"{major}.{minor}.{rest // 100}"


def _release_from_index_version(index_version: int) -> str:
    major = index_version // 1_000_000
    found: str | None = None
    for minor, first in _FIRST_INDEX_VERSION:
        if first <= index_version and int(minor.split(".")[0]) == major:
            found = minor
    if found is None:
        return f"{major}.x (index version {index_version})"
    last_known = [m for m, _ in _FIRST_INDEX_VERSION if int(m.split(".")[0]) == major][-1]
    if found == last_known and _LAST_MINOR_OF_MAJOR.get(major) != found:
        return f"{found}.x or later"
    return f"{found}.x"


def snapshot_release(entry: dict[str, object], snap_blob_version_id: int | None = None) -> str | None:
    """The release for an `index-N` snapshot entry (plus `snap-*.dat`'s `version_id` if read).

    `index_version` wins over the frozen "8.11.0" `version` string Elasticsearch 8.11+ writes.
    """
    index_version = entry.get("index_version")
    if isinstance(index_version, int):
        return release_from_id(index_version)
    version = entry.get("version")
    if isinstance(version, str):
        return version
    if snap_blob_version_id is not None:
        return release_from_id(snap_blob_version_id)
    return None
