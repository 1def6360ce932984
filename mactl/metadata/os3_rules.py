"""What OpenSearch 3 refuses that an OpenSearch 1.x/2.x (or Elasticsearch) index may hold.

Found by creating each construct on OpenSearch 3.5 with the k-NN plugin (see the table in
`docs/providers.md`): OpenSearch 3 refuses the `nmslib` k-NN engine for new indices
("nmslib engine is deprecated … cannot be used for new index creation") and settings
2.x still took (`unknown setting [index.store.hybrid.mmap.extensions]`). nmslib fields
move to the `lucene` engine: the same HNSW graph and parameters, every space type nmslib
and a 3.x target share (l2, cosinesimil, innerproduct), in Java (no native library to
load, filters applied during the search). A user transform can choose `faiss` instead.

OpenSearch 1.x also took k-NN defaults as index settings (`index.knn.space_type`,
`index.knn.algo_param.m`, `…ef_construction`) for fields without a `method`; 2.x/3.x
refuse them ("unknown setting"), so they move into those fields' `method`, keeping the
space and graph the source built.
"""

from __future__ import annotations

from typing import Any

from mactl.metadata.items import Item
from mactl.metadata.version_transforms import (
    ItemFailed,
    Notes,
    TargetProfile,
    VersionTransform,
    _field_maps,
    _mappings,
    _settings,
)

# Space types the lucene engine (the one that replaces nmslib) can score.
LUCENE_SPACES = frozenset({"l2", "innerproduct", "cosinesimil"})

# Settings OpenSearch 3 refuses by name, and what replaced them.
REMOVED_IN_OS3 = {
    "index.store.hybrid.mmap.extensions": "removed in 3.0 (replaced by index.store.hybrid.nio.extensions)",
}

# OpenSearch 3's switch for rebuilding k-NN vectors in `_source` from the vector index.
DERIVED_SOURCE_SETTING = "index.knn.derived_source.enabled"

# OpenSearch 1.x index-level k-NN defaults → the `method` keys they stood for.
KNN_INDEX_SETTINGS = {
    "index.knn.space_type": "space_type",
    "index.knn.algo_param.m": "m",
    "index.knn.algo_param.ef_construction": "ef_construction",
}


def _targets_os3(profile: TargetProfile) -> bool:
    return profile.target_distribution == "opensearch" and profile.target >= (3,)


def nmslib_to_lucene(item: Item, profile: TargetProfile) -> Notes:
    """`method.engine: nmslib` → `lucene`, same graph parameters; spaces lucene lacks refuse."""
    if not _targets_os3(profile):
        return []
    changed: list[str] = []
    for mapping in _mappings(item):
        for path, spec in _field_maps(mapping):
            method = spec.get("method")
            if spec.get("type") != "knn_vector" or not isinstance(method, dict) or method.get("engine") != "nmslib":
                continue
            space = str(method.get("space_type") or "l2")
            if space not in LUCENE_SPACES:
                raise ItemFailed(
                    f"knn_vector '{path}' uses nmslib with space type '{space}'; OpenSearch 3 has no nmslib and "
                    "neither lucene nor faiss scores that space: re-embed for l2/innerproduct/cosinesimil "
                    "and map it with a user transform"
                )
            method["engine"] = "lucene"
            params = method.get("parameters")
            if isinstance(params, dict):
                params.pop("ef_search", None)  # nmslib-only; lucene takes ef_search per query
            changed.append(f"{path} ({space})")
    return [f"nmslib→lucene (OpenSearch 3 refuses nmslib): {', '.join(changed)}"] if changed else []


def knn_index_settings_to_method(item: Item, profile: TargetProfile) -> Notes:
    """OpenSearch 1.x index-level k-NN defaults → the `method` of each field that relied on them."""
    if profile.target_distribution != "opensearch" or profile.target < (2,):
        return []
    defaults: dict[str, Any] = {}
    for settings in _settings(item):
        for key, name in KNN_INDEX_SETTINGS.items():
            if key in settings:
                defaults[name] = settings.pop(key)
    if not defaults:
        return []
    engine = "lucene" if _targets_os3(profile) else "nmslib"  # nmslib was 1.x's engine
    space = str(defaults.get("space_type", "l2"))
    parameters = {k: int(defaults[k]) for k in ("m", "ef_construction") if k in defaults}
    moved: list[str] = []
    for mapping in _mappings(item):
        for path, spec in _field_maps(mapping):
            if spec.get("type") == "knn_vector" and "method" not in spec and not spec.get("model_id"):
                if engine == "lucene" and space not in LUCENE_SPACES:
                    raise ItemFailed(f"knn_vector '{path}' uses space type '{space}', which OpenSearch 3 cannot score")
                spec["method"] = {"name": "hnsw", "engine": engine, "space_type": space, "parameters": dict(parameters)}
                moved.append(path)
    listed = ", ".join(f"{k}={v}" for k, v in sorted(defaults.items()))
    return [f"index-level k-NN settings ({listed}) → method of {', '.join(moved) or 'no field'} ({engine})"]


def refuse_knn_models(item: Item, profile: TargetProfile) -> Notes:
    """A `model_id` field needs a model trained on the target first; mactl does not move models."""
    models: list[str] = []
    for mapping in _mappings(item):
        for path, spec in _field_maps(mapping):
            if spec.get("type") == "knn_vector" and spec.get("model_id"):
                models.append(f"'{path}' (model {spec['model_id']})")
    if models:
        raise ItemFailed(
            f"knn_vector fields built from a trained model: {', '.join(models)}; train the model on the "
            "target (POST _plugins/_knn/models/<id>/_train) before migrating, or map a method with a user transform"
        )
    return []


def drop_removed_in_os3(item: Item, profile: TargetProfile) -> Notes:
    if not _targets_os3(profile):
        return []
    dropped: list[str] = []
    for settings in _settings(item):
        for key in [k for k in settings if k in REMOVED_IN_OS3]:
            value: Any = settings.pop(key)
            dropped.append(f"{key}={value} ({REMOVED_IN_OS3[key]})")
    return [f"dropped {', '.join(dropped)}"] if dropped else []


def note_derived_vectors(item: Item, profile: TargetProfile) -> Notes:
    """Name the k-NN fields whose `_source` an OpenSearch 3 target will rebuild as float32s.

    OpenSearch 3 keeps `knn_vector` values out of the stored `_source` of a k-NN index and
    rebuilds them from the vector index on read (`index.knn.derived_source.enabled`, on by
    default): a vector written with double precision reads back at float32. mactl keeps the
    target's default (it saves the vectors' share of the storage) and says so here, at plan;
    validation compares those fields as float32s. A settings transform that sets the setting
    to false keeps the original values (and silences this note)."""
    if not _targets_os3(profile):
        return []
    knn_on = any(str(settings.get("index.knn", "")).lower() == "true" for settings in _settings(item))
    kept = any(str(settings.get(DERIVED_SOURCE_SETTING, "")).lower() == "false" for settings in _settings(item))
    if not knn_on or kept:
        return []
    fields = [
        path for mapping in _mappings(item) for path, spec in _field_maps(mapping) if spec.get("type") == "knn_vector"
    ]
    if not fields:
        return []
    return [
        f"{', '.join(fields)}: OpenSearch 3 rebuilds them in _source from its float32 k-NN index "
        f"({DERIVED_SOURCE_SETTING}, its default), so they read back at float32 precision; set it to "
        "false with a settings transform to keep the original values"
    ]


OS3_RULES: tuple[VersionTransform, ...] = (
    VersionTransform(
        "knn-index-settings-to-method", "OpenSearch 1.x index-level k-NN defaults", knn_index_settings_to_method
    ),
    VersionTransform("os3-nmslib-to-lucene", "OpenSearch 3 refuses the nmslib k-NN engine", nmslib_to_lucene),
    VersionTransform("os3-drop-removed-settings", "settings OpenSearch 3 refuses", drop_removed_in_os3),
    VersionTransform(
        "refuse-knn-models", "k-NN fields from trained models need the model on the target", refuse_knn_models
    ),
    VersionTransform(
        "os3-knn-derived-source", "OpenSearch 3 rebuilds k-NN vectors in _source at float32", note_derived_vectors
    ),
)
