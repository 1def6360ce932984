"""What an Elasticsearch 8 index needs to become an OpenSearch 2.x/3.x one.

Found by creating each construct on OpenSearch 2.19 and 3.x and reading the refusal
(see the table in `docs/providers.md`). Two kinds of rule live here:

- *rewrites* (`ES8_REWRITES`) run with the other version transforms, before the user's:
  a construct OpenSearch lacks but whose data and queries keep their meaning under a
  documented substitute (`version` → `keyword`, `sparse_vector` → `rank_features`,
  `index.mode` dropped, …), or an ES-only parameter that changes nothing OpenSearch
  can store (`time_series_dimension`);
- *refusals* (`ES8_REFUSALS`) run after the user's transforms, so a user transform can
  rewrite a refused field (the refusal names the field and suggests that transform):
  `semantic_text`, `histogram`, fields computed by a `script`, and any field type the
  target does not know.
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

# --- settings ---------------------------------------------------------------------------------

# ES 8 settings OpenSearch does not have ("unknown setting"): what they did and why dropping
# them keeps the documents (their effect on the source is recorded in the note).
ES8_ONLY_SETTINGS = {
    "index.mode": "index mode (time_series/logsdb/lookup); the target index is a standard one",
    "index.routing_path": "time-series routing by dimensions; the target routes by _id",
    "index.time_series.start_time": "time-series bounds",
    "index.time_series.end_time": "time-series bounds",
    "index.look_ahead_time": "time-series bounds",
    "index.look_back_time": "time-series bounds",
    "index.dimensions_tsid_strategy_enabled": "time-series _tsid",
    "index.mapping.source.mode": "_source mode (the target always stores _source)",
    "index.mapping.synthetic_source_keep": "synthetic _source",
    "index.mapping.dimension_fields.limit": "time-series dimensions",
    "index.mapping.total_fields.ignore_dynamic_beyond_limit": "ES 8.13 dynamic-field limit behaviour",
    "index.mapping.ignore_above": "ES 8.x index-wide ignore_above",
    "index.logsdb.sort_on_host_name": "logsdb sorting",
    "index.logsdb.add_host_name_field": "logsdb sorting",
    "index.downsample.source.uuid": "downsampling bookkeeping",
    "index.downsample.source.name": "downsampling bookkeeping",
    "index.downsample.status": "downsampling bookkeeping",
    "index.downsample.origin.uuid": "downsampling bookkeeping",
    "index.downsample.origin.name": "downsampling bookkeeping",
    "index.semantic_text.usage": "semantic_text bookkeeping",
    "index.recovery.use_synthetic_source": "synthetic _source",
}

# ES 8.14+ codec names; the OpenSearch names of the same codecs.
CODEC_NAMES = {"legacy_default": "default", "legacy_best_compression": "best_compression"}


def drop_es8_settings(item: Item, profile: TargetProfile) -> Notes:
    dropped: list[str] = []
    for settings in _settings(item):
        for key in list(settings):
            if key in ES8_ONLY_SETTINGS:
                value = settings.pop(key)
                dropped.append(f"{key}={value}")
        codec = settings.get("index.codec")
        if isinstance(codec, str) and codec in CODEC_NAMES:
            settings["index.codec"] = CODEC_NAMES[codec]
            dropped.append(f"index.codec {codec}→{CODEC_NAMES[codec]}")
    return [f"ES 8-only settings: {', '.join(dropped)}"] if dropped else []


# --- mapping parameters -----------------------------------------------------------------------

# Field parameters OpenSearch refuses ("unknown parameter") that only steer ES 8 features:
# dropping them loses nothing the target can hold.
ES8_FIELD_PARAMETERS = ("time_series_dimension", "time_series_metric", "synthetic_source_keep", "store_array_source")


def drop_es8_mapping_parameters(item: Item, profile: TargetProfile) -> Notes:
    notes: Notes = []
    for mapping in _mappings(item):
        source = mapping.get("_source")
        if isinstance(source, dict) and "mode" in source:
            notes.append(f"_source.mode={source.pop('mode')} dropped (the target stores _source)")
            if not source:
                del mapping["_source"]
        if "subobjects" in mapping:
            value = mapping.pop("subobjects")
            notes.append(f"subobjects={value} dropped (dotted field names become object paths)")
        if mapping.get("dynamic") == "runtime":
            mapping["dynamic"] = "false"
            notes.append("dynamic: runtime → false (new fields stay in _source, unindexed, as runtime ones were)")
        if "runtime" in mapping:
            names = sorted(mapping.pop("runtime") or {})
            notes.append(f"runtime fields dropped (OpenSearch has none): {', '.join(names) or '(empty)'}")
        stripped: list[str] = []
        for path, spec in _field_maps(mapping):
            for key in ES8_FIELD_PARAMETERS:
                if key in spec:
                    del spec[key]
                    stripped.append(f"{path}.{key}")
            if "subobjects" in spec:
                del spec["subobjects"]
                stripped.append(f"{path}.subobjects")
        if stripped:
            notes.append(f"ES 8-only field parameters dropped: {', '.join(stripped)}")
        for entry in mapping.get("dynamic_templates") or []:
            for tname, tspec in (entry or {}).items():
                if isinstance(tspec, dict) and "runtime" in tspec and "mapping" not in tspec:
                    raise ItemFailed(
                        f"dynamic template '{tname}' makes runtime fields, which OpenSearch lacks; "
                        "drop it or give it a `mapping` with a user transform"
                    )
    return notes


# --- field types ------------------------------------------------------------------------------


def _metric_object(spec: dict[str, Any]) -> dict[str, Any]:
    metrics = [str(m) for m in spec.get("metrics") or ["min", "max", "sum", "value_count"]]
    return {"properties": {m: {"type": "long" if m == "value_count" else "double"} for m in metrics}}


def es8_field_types(item: Item, profile: TargetProfile) -> Notes:
    """Field types OpenSearch lacks, replaced where the data and its queries survive."""
    changed: list[str] = []
    for mapping in _mappings(item):
        for path, spec in _field_maps(mapping):
            kind = spec.get("type")
            if kind == "version" and profile.target < (3, 5):
                spec["type"] = "keyword"
                changed.append(f"{path} version→keyword (sorts and ranges compare as strings)")
            elif kind == "version":
                spec.setdefault("index", True)  # as 3.5 writes it back
            elif kind == "wildcard" and profile.target >= (2, 15):
                spec.setdefault("doc_values", True)  # Elastic's always has them (aggregations, sorting)
            elif kind == "sparse_vector":
                spec.clear()
                spec["type"] = "rank_features"
                changed.append(f"{path} sparse_vector→rank_features (same token→weight documents)")
            elif kind == "aggregate_metric_double":
                new = _metric_object(spec)
                spec.clear()
                spec.update(new)
                changed.append(f"{path} aggregate_metric_double→object of {', '.join(new['properties'])}")
            elif kind == "counted_keyword":
                spec.clear()
                spec["type"] = "keyword"
                changed.append(f"{path} counted_keyword→keyword (aggregations count each value once)")
            elif kind == "passthrough":
                for key in ("priority", "time_series_dimension", "type"):
                    spec.pop(key, None)
                changed.append(f"{path} passthrough→object (sub-fields are no longer aliased at the top level)")
            elif kind in ("point", "shape"):
                spec["type"] = f"xy_{kind}"
                changed.append(f"{path} {kind}→xy_{kind}")
            elif kind == "match_only_text" and profile.target < (2, 12):
                spec["type"] = "text"
                spec.setdefault("index_options", "docs")
                spec.setdefault("norms", False)
                changed.append(f"{path} match_only_text→text (index_options: docs, no norms)")
            elif kind == "wildcard" and profile.target < (2, 15):
                spec["type"] = "keyword"
                changed.append(f"{path} wildcard→keyword (the target has no wildcard before 2.15)")
            elif kind == "constant_keyword" and profile.target < (2, 14):
                raise ItemFailed(
                    f"field '{path}' is constant_keyword, which the target has only from OpenSearch 2.14; "
                    "map it as keyword with a user transform (documents without it no longer match)"
                )
            elif kind == "constant_keyword" and "value" not in spec:
                spec["type"] = "keyword"
                changed.append(f"{path} constant_keyword without a value→keyword (OpenSearch requires the value)")
    return [f"ES 8 field types: {', '.join(changed)}"] if changed else []


# --- refusals (after the user's transforms) -----------------------------------------------------

# Types no rule maps, with the transform that would make the item acceptable.
REFUSED_TYPES = {
    "semantic_text": "it needs an Elastic inference endpoint; map it as `text` (and a knn_vector filled by a neural ingest pipeline) with a user transform",
    "histogram": "OpenSearch has no pre-aggregated histograms; map it as `{type: object, enabled: false}` to carry it in _source only",
    "exponential_histogram": "OpenSearch has no pre-aggregated histograms; map it as `{type: object, enabled: false}` to carry it in _source only",
    "rank_vectors": "OpenSearch has no late-interaction vectors; map it as `{type: object, enabled: false}` to carry it in _source only",
}

# Every field type an OpenSearch 2.x/3.x cluster knows (core, its modules and the plugins mactl checks).
OPENSEARCH_TYPES = frozenset(
    {
        "object", "nested", "flat_object", "text", "keyword", "match_only_text", "wildcard", "constant_keyword",
        "long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long",
        "date", "date_nanos", "boolean", "binary", "ip", "integer_range", "long_range", "float_range",
        "double_range", "date_range", "ip_range", "alias", "geo_point", "geo_shape", "xy_point", "xy_shape",
        "completion", "search_as_you_type", "token_count", "rank_feature", "rank_features", "percolator",
        "join", "knn_vector", "murmur3", "annotated_text", "icu_collation_keyword", "semantic", "star_tree",
        "derived", "version",
    }
)  # fmt: skip


def refuse_unmappable_fields(item: Item, profile: TargetProfile) -> Notes:
    refused: list[str] = []
    for mapping in _mappings(item):
        for path, spec in _field_maps(mapping):
            kind = spec.get("type")
            if "script" in spec and kind is not None:
                refused.append(
                    f"'{path}' is computed by a script at index time, which OpenSearch mappings cannot do "
                    "(remove `script` with a user transform and compute the value in an ingest pipeline)"
                )
            if not isinstance(kind, str) or "{" in kind:  # dynamic templates' {dynamic_type}
                continue
            if kind in REFUSED_TYPES:
                refused.append(f"'{path}' is {kind}: {REFUSED_TYPES[kind]}")
            elif kind not in OPENSEARCH_TYPES:
                refused.append(
                    f"'{path}' has type {kind}, which OpenSearch does not know "
                    "(map it to a known type with a user transform)"
                )
    if refused:
        raise ItemFailed("; ".join(refused))
    return []


ES8_REWRITES: tuple[VersionTransform, ...] = (
    VersionTransform("es8-drop-settings", "ES 8-only index settings (index.mode, time series, …)", drop_es8_settings),
    VersionTransform(
        "es8-drop-mapping-parameters",
        "ES 8-only mapping parameters (_source.mode, subobjects, runtime, time_series_*)",
        drop_es8_mapping_parameters,
    ),
    VersionTransform(
        "es8-field-types", "ES 8 field types OpenSearch lacks, by documented substitutes", es8_field_types
    ),
)

ES8_REFUSALS: tuple[VersionTransform, ...] = (
    VersionTransform(
        "refuse-unmappable-fields",
        "field types and parameters no rule carries, by field name, with a suggested transform",
        refuse_unmappable_fields,
    ),
)
