"""The repository walk: index-N → snapshots → global/index metadata → shard readers.

Everything is read on demand and cached per Repository object; nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mactl.snapshot_reader.blobs import BlobStore, blob_store_for
from mactl.snapshot_reader.directory import FileInfo, ShardDirectory
from mactl.snapshot_reader.errors import CorruptFileError, SnapshotReaderError, UnsupportedFormatError
from mactl.snapshot_reader.framing import decode_metadata_blob, inflate_compressed_xcontent
from mactl.snapshot_reader.model import Cursor, Document, GlobalMetadata, IndexMetadata, SnapshotInfo
from mactl.snapshot_reader.shard import ShardReader
from mactl.snapshot_reader.shardpaths import FIXED, shard_folder
from mactl.snapshot_reader.versions import release_from_id, snapshot_release

if TYPE_CHECKING:  # the reader does not load the config models (pydantic) at run time
    from mactl.schema.common import SnapshotRepository

# index-N stores SnapshotState as a byte. Real ES 7.10 bytes say PARTIAL is 3 (the format map
# said 4); ES's enum: IN_PROGRESS 0, SUCCESS 1, FAILED 2, PARTIAL 3, INCOMPATIBLE 4.
_STATES = {0: "IN_PROGRESS", 1: "SUCCESS", 2: "FAILED", 3: "PARTIAL", 4: "INCOMPATIBLE"}


def nest_settings(flat: dict[str, Any]) -> dict[str, Any]:
    """`{"index.number_of_shards": "1"}` → `{"index": {"number_of_shards": "1"}}` (GET _settings shape)."""
    out: dict[str, Any] = {}
    for key in sorted(flat):
        node = out
        parts = key.split(".")
        ok = True
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                ok = False
                break
            node = nxt
        if ok and not isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = flat[key]
        else:  # a key that is both a value and a prefix: keep it flat at the top
            out[key] = flat[key]
    return out


class Repository:
    """A snapshot repository opened for reading."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self._data: dict[str, Any] | None = None
        self._snap_cache: dict[str, dict[str, Any]] = {}
        self._index_meta_cache: dict[tuple[str, str], IndexMetadata] = {}
        self._shard_cache: dict[tuple[str, str, int], ShardReader] = {}

    # --- repository data ----------------------------------------------------------------
    @property
    def generation(self) -> int:
        gens = []
        for name in self.store.list(""):
            if name.startswith("index-") and name[6:].isdigit():
                gens.append(int(name[6:]))
        if not gens:
            raise SnapshotReaderError(f"{self.store.description} is not a snapshot repository: no index-N file in it")
        return max(gens)

    def repository_data(self) -> dict[str, Any]:
        if self._data is None:
            gen = self.generation
            if self.store.exists("index.latest"):
                latest = int.from_bytes(self.store.read("index.latest")[:8], "big")
                if latest > gen and self.store.exists(f"index-{latest}"):
                    gen = latest
            raw = self.store.read(f"index-{gen}")
            if raw[:1] != b"{":
                raise UnsupportedFormatError(f"{self.store.description}/index-{gen}: repository data is not JSON")
            where = f"{self.store.description}/index-{gen}"
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError) as err:
                raise CorruptFileError(f"{where}: repository data is damaged: {str(err)[:200]}") from None
            _check_repository_data(data, where)
            self._data = data
            self._data["__generation"] = gen
        return self._data

    def snapshots(self) -> list[SnapshotInfo]:
        return [self._info(s) for s in self.repository_data().get("snapshots", [])]

    def _info(self, entry: dict[str, Any]) -> SnapshotInfo:
        uuid = entry["uuid"]
        data = self.repository_data()
        indices = sorted(n for n, v in data.get("indices", {}).items() if uuid in v.get("snapshots", []))
        state = entry.get("state")
        state_name = _STATES.get(state, str(state)) if isinstance(state, int) else str(state)
        start, end, version = entry.get("start_time_millis"), entry.get("end_time_millis"), snapshot_release(entry)
        failures: list[dict[str, Any]] = []
        if start is None or version is None or state_name != "SUCCESS":
            snap = self._snapshot_blob(uuid)
            start = start if start is not None else snap.get("start_time")
            end = end if end is not None else snap.get("end_time")
            if version is None and isinstance(snap.get("version_id"), int):
                version = release_from_id(snap["version_id"])
            failures = list(snap.get("failures") or [])
        return SnapshotInfo(entry["name"], uuid, state_name, indices, start, end, version, failures)

    def _snapshot_blob(self, uuid: str) -> dict[str, Any]:
        if uuid not in self._snap_cache:
            name = f"snap-{uuid}.dat"
            if not self.store.exists(name):
                self._snap_cache[uuid] = {}
            else:
                root = decode_metadata_blob(self.store.read(name), f"{self.store.description}/{name}", "snapshot")
                self._snap_cache[uuid] = root.get("snapshot", root)
        return self._snap_cache[uuid]

    def snapshot(self, name: str | SnapshotInfo) -> SnapshotInfo:
        if isinstance(name, SnapshotInfo):
            return name
        entries = self.repository_data().get("snapshots", [])
        for entry in entries:
            if entry.get("name") == name:
                return self._info(entry)
        names = ", ".join(sorted(e.get("name", "?") for e in entries)) or "none"
        raise SnapshotReaderError(f"no snapshot named {name!r} in {self.store.description}; snapshots there: {names}")

    # --- metadata -----------------------------------------------------------------------
    def global_metadata(self, snapshot: str | SnapshotInfo) -> GlobalMetadata:
        snap = self.snapshot(snapshot)
        blob = f"meta-{snap.uuid}.dat"
        if not self.store.exists(blob):
            return GlobalMetadata({}, {}, {})
        root = decode_metadata_blob(self.store.read(blob), f"{self.store.description}/{blob}", "metadata")
        meta = root.get("meta-data", root)
        templates = {}
        for name, body in (meta.get("templates") or {}).items():
            body = dict(body)
            if "settings" in body and isinstance(body["settings"], dict):
                body["settings"] = nest_settings(body["settings"])
            if isinstance(body.get("mappings"), (list, dict)):
                body["mappings"] = _template_mappings(body["mappings"], f"template {name}")
            templates[name] = body
        index_templates = dict((meta.get("index_template") or {}).get("index_template") or {})
        components = dict((meta.get("component_template") or {}).get("component_template") or {})
        return GlobalMetadata(templates, index_templates, components, raw=meta)

    def includes_global_state(self, snapshot: str | SnapshotInfo) -> bool | None:
        """Whether the snapshot kept the cluster's global state (templates, ingest pipelines...).

        None when its `snap-*.dat` does not say. Without the global state, `global_metadata`
        is empty: an empty list of templates or pipelines then means "not recorded", not "none".
        """
        snap = self.snapshot(snapshot)
        value = self._snapshot_blob(snap.uuid).get("include_global_state")
        return value if isinstance(value, bool) else None

    def _index_entry(self, index: str) -> dict[str, Any]:
        # index-N (JSON): "indices" maps each index name to {"id": ..., "snapshots": [...], ...}
        entry: dict[str, Any] | None = self.repository_data().get("indices", {}).get(index)
        if entry is None:
            raise SnapshotReaderError(f"no index named {index!r} in repository {self.store.description}")
        return entry

    def index_metadata(self, snapshot: str | SnapshotInfo, index: str) -> IndexMetadata:
        snap = self.snapshot(snapshot)
        key = (snap.uuid, index)
        if key in self._index_meta_cache:
            return self._index_meta_cache[key]
        if index not in snap.indices:
            raise SnapshotReaderError(
                f"snapshot {snap.name!r} has no index {index!r}; its indices: {', '.join(snap.indices) or 'none'}"
            )
        index_id = self._index_entry(index)["id"]
        data = self.repository_data()
        entry = next(s for s in data["snapshots"] if s["uuid"] == snap.uuid)
        blob_id = snap.uuid
        lookup = entry.get("index_metadata_lookup") or {}
        if index_id in lookup:
            blob_id = data.get("index_metadata_identifiers", {}).get(lookup[index_id], blob_id)
        path = f"indices/{index_id}/meta-{blob_id}.dat"
        root = decode_metadata_blob(self.store.read(path), f"{self.store.description}/{path}", "index-metadata")
        if len(root) != 1:
            raise SnapshotReaderError(f"{path}: expected one index in the metadata blob, found {len(root)}")
        (raw,) = root.values()
        flat = raw.get("settings") or {}
        try:
            shards = int(flat["index.number_of_shards"])
        except (KeyError, ValueError):
            raise SnapshotReaderError(f"{path}: index.number_of_shards is missing") from None
        mappings, types = _index_mappings(raw.get("mappings"), path)
        im = IndexMetadata(index, nest_settings(flat), mappings, dict(raw.get("aliases") or {}), shards, types, raw)
        self._index_meta_cache[key] = im
        return im

    def shard_count(self, snapshot: str | SnapshotInfo, index: str) -> int:
        return self.index_metadata(snapshot, index).number_of_shards

    # --- shards -------------------------------------------------------------------------
    def _shard(self, snapshot: str | SnapshotInfo, index: str, shard: int) -> ShardReader:
        snap = self.snapshot(snapshot)
        key = (snap.uuid, index, shard)
        if key in self._shard_cache:
            return self._shard_cache[key]
        meta = self.index_metadata(snap, index)
        if not 0 <= shard < meta.number_of_shards:
            raise SnapshotReaderError(f"index {index!r} has shards 0..{meta.number_of_shards - 1}, not {shard}")
        entry = self._index_entry(index)
        index_id = entry["id"]
        path_type = entry.get("shard_path_type", FIXED)
        shard_path = shard_folder(index_id, shard, int(path_type), getattr(self.store, "prefix", ""))
        blob = f"{shard_path}/snap-{snap.uuid}.dat"
        if not self.store.exists(blob):
            if snap.state != "SUCCESS":
                missing = self.missing_shards(snap)
                raise SnapshotReaderError(
                    f"snapshot {snap.name!r} is {snap.state}: shard {index}[{shard}] was not snapshotted"
                    + (f" (missing shards: {', '.join(missing)})" if missing else "")
                )
            raise SnapshotReaderError(f"{self.store.description}/{blob} is missing")
        where = f"{self.store.description}/{shard_path}"
        root = decode_metadata_blob(self.store.read(blob), f"{self.store.description}/{blob}", "snapshot")
        files = [FileInfo.from_snapshot(f) for f in root.get("files", [])]
        _refuse_remote_store(root, where)
        directory = ShardDirectory(self.store, shard_path, files, f"{index}[{shard}]")
        doc_type = None
        if meta.types and meta.types != ["_doc"]:
            doc_type = meta.types[0] if len(meta.types) == 1 else None
        elif meta.types == ["_doc"] and _created_before_7(meta):
            doc_type = "_doc"
        reader = ShardReader(directory, index, shard, doc_type)
        self._shard_cache = {key: reader}  # keep one: shard readers hold file bytes
        return reader

    def missing_shards(self, snapshot: str | SnapshotInfo) -> list[str]:
        snap = self.snapshot(snapshot)
        failures = snap.failures or self._snapshot_blob(snap.uuid).get("failures") or []
        failures = sorted(failures, key=lambda f: (str(f.get("index")), int(f.get("shard_id") or 0)))
        return [f"{f.get('index')}[{f.get('shard_id')}]: {f.get('reason', 'failed')}" for f in failures]

    def live_doc_count(self, snapshot: str | SnapshotInfo, index: str, shard: int) -> int:
        return self._shard(snapshot, index, shard).live_doc_count()

    def top_level_doc_count(self, snapshot: str | SnapshotInfo, index: str, shard: int) -> int:
        """Live top-level documents of a shard (nested children excluded), `_source` or not.

        Lucene's live count includes the hidden child documents of `nested` fields; an index
        whose mappings have no `nested` field has none, so its count comes from the commit
        alone. Otherwise every live document's stored fields are read for a stored `_id`.
        """
        if not has_nested_fields(self.index_metadata(snapshot, index).mappings):
            return self.live_doc_count(snapshot, index, shard)
        reader = self._shard(snapshot, index, shard)
        return sum(1 for _ in _guarded(reader.documents(with_sourceless=True), index, shard))

    def documents(
        self,
        snapshot: str | SnapshotInfo,
        index: str,
        shard: int,
        *,
        after: Cursor | None = None,
        with_sourceless: bool = False,
    ) -> Iterator[Document]:
        """Live top-level documents; `with_sourceless` also yields those the snapshot holds
        no `_source` for (with `source == b""`): they exist but cannot be rebuilt."""
        reader = self._shard(snapshot, index, shard)  # eager: a bad name fails at the call
        return _guarded(reader.documents(after, with_sourceless=with_sourceless), index, shard)

    def shard_size(self, snapshot: str | SnapshotInfo, index: str, shard: int) -> int:
        return sum(f.length for f in self._shard(snapshot, index, shard).dir.files.values())


def _check_repository_data(data: Any, where: str) -> None:
    """Refuse repository data whose shape the reader relies on is wrong, naming the file and field."""

    def bad(what: str) -> CorruptFileError:
        return CorruptFileError(f"{where}: repository data is damaged: {what}")

    if not isinstance(data, dict):
        raise bad("it is not a JSON object")
    snapshots = data.get("snapshots", [])
    if not isinstance(snapshots, list):
        raise bad("`snapshots` is not a list")
    for i, entry in enumerate(snapshots):
        if not isinstance(entry, dict):
            raise bad(f"snapshots[{i}] is not an object")
        for key in ("name", "uuid"):
            if not isinstance(entry.get(key), str):
                raise bad(f"snapshots[{i}].{key} is not a string")
    indices = data.get("indices", {})
    if not isinstance(indices, dict):
        raise bad("`indices` is not an object")
    for name, entry in indices.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise bad(f"indices.{name[:100]} has no string `id`")
        snaps = entry.get("snapshots", [])
        if not isinstance(snaps, list) or not all(isinstance(s, str) for s in snaps):
            raise bad(f"indices.{name[:100]}.snapshots is not a list of snapshot ids")


def _guarded(docs: Iterator[Document], index: str, shard: int) -> Iterator[Document]:
    try:
        yield from docs
    except (IndexError, ValueError, OverflowError) as err:
        # every CRC passed, so this is a format variant the parsers do not know: say where
        raise UnsupportedFormatError(
            f"{index}[{shard}]: cannot parse the Lucene files ({type(err).__name__}: {err}); "
            "an unsupported format variant?"
        ) from None


def has_nested_fields(mappings: Any) -> bool:
    """Whether a mappings body (typeless or `{type: body}`) declares any `nested` field."""
    if isinstance(mappings, dict):
        if mappings.get("type") == "nested":
            return True
        return any(has_nested_fields(v) for v in mappings.values())
    if isinstance(mappings, list):
        return any(has_nested_fields(v) for v in mappings)
    return False


def source_disabled(mappings: Any, types: list[str] | None = None) -> bool:
    """Whether the mappings turn `_source` off (`_source.enabled: false`, for any mapping type)."""
    if not isinstance(mappings, dict):
        return False
    bodies = [mappings.get(t) for t in types or []] if types and len(types) > 1 else [mappings]
    for body in bodies:
        if isinstance(body, dict):
            src = body.get("_source")
            if isinstance(src, dict) and str(src.get("enabled", True)).lower() == "false":
                return True
    return False


#: index.mode values whose `_source` is synthetic unless `index.mapping.source.mode: stored` says otherwise.
_SYNTHETIC_BY_DEFAULT = ("logsdb", "time_series")

_SYNTHETIC_WHY = (
    "the snapshot holds no document bodies, only the indexed fields and doc values from which "
    "Elasticsearch makes up an approximate _source (sorted and de-duplicated arrays, normalised dates "
    "and numbers, other field order); mactl does not rebuild it, because the result would not be the "
    "original documents: copy this index from the live cluster (e.g. _reindex from remote) instead"
)


def sourceless_reason(meta: IndexMetadata) -> str | None:
    """Why the snapshot of this index holds no `_source` to migrate, or None when it does.

    `_source.enabled: false`, and Elasticsearch 8's synthetic source: `_source.mode: synthetic`
    in the mappings, `index.mapping.source.mode: synthetic|disabled` (8.17+), or an
    `index.mode` of logsdb/time_series, whose default is synthetic. An explicit `stored` wins.
    """
    if source_disabled(meta.mappings, meta.types):
        return "_source is disabled (mappings._source.enabled: false): the snapshot holds no documents' bodies"
    index_settings = meta.settings.get("index") if isinstance(meta.settings, dict) else None
    index_settings = index_settings if isinstance(index_settings, dict) else {}
    mapping = index_settings.get("mapping")
    source = mapping.get("source") if isinstance(mapping, dict) else None
    setting_mode = source.get("mode") if isinstance(source, dict) else None
    mapping_source = meta.mappings.get("_source") if isinstance(meta.mappings, dict) else None
    mapping_mode = mapping_source.get("mode") if isinstance(mapping_source, dict) else None
    for where, mode in (("index.mapping.source.mode", setting_mode), ("mappings._source.mode", mapping_mode)):
        if mode is None:
            continue
        mode = str(mode).lower()
        if mode == "stored":
            return None
        if mode == "disabled":
            return f"_source is disabled ({where}: disabled): the snapshot holds no documents' bodies"
        if mode == "synthetic":
            return f"_source is synthetic ({where}: synthetic): {_SYNTHETIC_WHY}"
    index_mode = str(index_settings.get("mode") or "").lower()
    if index_mode in _SYNTHETIC_BY_DEFAULT:
        return f"_source is synthetic (index.mode: {index_mode}, whose default is synthetic source): {_SYNTHETIC_WHY}"
    return None


def _created_before_7(meta: IndexMetadata) -> bool:
    created = (meta.raw.get("settings") or {}).get("index.version.created")
    if created is None:
        return False
    try:
        return int(created) < 7000099
    except (TypeError, ValueError):
        return False


def _refuse_remote_store(root: dict[str, Any], where: str) -> None:
    if root.get("remote_store_index_shallow_copy") or "remote_store_repository" in root:
        raise UnsupportedFormatError(
            f"{where}: OpenSearch remote-store shallow snapshots are not supported (no data in the repository)"
        )


def _index_mappings(raw: Any, where: str) -> tuple[dict[str, Any], list[str]]:
    entries: list[dict[str, Any]] = []
    for item in raw or []:
        item = inflate_compressed_xcontent(item, where)
        if isinstance(item, dict):
            entries.append(item)
    if isinstance(raw, dict):
        entries = [raw]
    merged: dict[str, Any] = {}
    for e in entries:
        merged.update(e)
    types = list(merged)
    if len(merged) == 1:
        return dict(next(iter(merged.values())) or {}), types
    return merged, types


def _template_mappings(raw: Any, where: str) -> dict[str, Any]:
    if isinstance(raw, dict):
        return {k: inflate_compressed_xcontent(v, where) for k, v in raw.items()}
    merged: dict[str, Any] = {}
    for item in raw:
        item = inflate_compressed_xcontent(item, where)
        if isinstance(item, dict):
            merged.update(item)
    return merged


def open_repository(
    location: str | Path | SnapshotRepository,
    *,
    s3_endpoint: str | None = None,
    s3_region: str | None = None,
    cache_dir: str | Path | None = None,
    quick: bool = False,
) -> Repository:
    """Open a repository: a folder path, `s3://bucket/prefix`, or a config `SnapshotRepository`.

    `quick` gives an S3 repository short timeouts and one attempt: for looks `plan` takes on
    the side, which must not hang on an unreachable endpoint."""
    where: str | Path
    if isinstance(location, (str, Path)):
        where = location
    elif location.type == "s3":
        prefix = (location.basePath or "").strip("/")
        s3_endpoint = s3_endpoint or location.endpoint
        s3_region = s3_region or location.region
        where = f"s3://{location.bucket}/{prefix}"
    else:
        where = str(location.location)  # the config model requires `location` for an fs repository
    return Repository(
        blob_store_for(where, s3_endpoint=s3_endpoint, s3_region=s3_region, cache_dir=cache_dir, quick=quick)
    )
