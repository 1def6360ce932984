"""Built-in transforms that make a source's metadata acceptable to the target's version.

Each transform has a stable name that the report shows whenever it fires, so a user can
see exactly what mactl changed and why. They run before the user's own transforms, in
the order of `VERSION_TRANSFORMS`. A transform that cannot keep an item's meaning on the
target raises `ItemFailed`: that item fails with the reason, the others go on.
Several rules here were found by creating the source's metadata on a real OpenSearch
2.19 and reading its refusals (see `docs/providers.md`).
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mactl.cluster import version_tuple
from mactl.metadata.items import Item


class ItemFailed(Exception):
    """This item cannot be migrated as it is; `reason` says why (shown in the report)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TargetProfile:
    """What the source and target are, and what the target can do (modules, plugins)."""

    source_distribution: str
    source_version: str
    target_distribution: str
    target_version: str
    target_components: frozenset[str] = frozenset()  # module and plugin names on the target
    multi_type_mode: str = "union"

    @property
    def source(self) -> tuple[int, ...]:
        return version_tuple(self.source_version)

    @property
    def target(self) -> tuple[int, ...]:
        return version_tuple(self.target_version)

    @property
    def source_is_es(self) -> bool:
        return self.source_distribution == "elasticsearch"

    @property
    def target_is_os2(self) -> bool:
        return self.target_distribution == "opensearch" and self.target >= (2,)


Notes = list[str]
TransformFn = Callable[[Item, TargetProfile], Notes]


@dataclass(frozen=True)
class VersionTransform:
    name: str
    why: str
    run: TransformFn
    kinds: frozenset[str] = field(
        default_factory=lambda: frozenset({"index", "legacy_template", "component_template", "index_template"})
    )


# --- where settings and mappings sit in each kind of body ---------------------------------


def _parts(item: Item) -> Iterator[dict[str, Any]]:
    """The dicts holding `settings`/`mappings` for this item's kind."""
    if item.kind in ("index", "legacy_template"):
        yield item.body
    else:
        tmpl = item.body.get("template")
        if isinstance(tmpl, dict):
            yield tmpl


def _settings(item: Item) -> Iterator[dict[str, Any]]:
    for part in _parts(item):
        if isinstance(part.get("settings"), dict):
            yield part["settings"]


def _mappings(item: Item) -> Iterator[dict[str, Any]]:
    for part in _parts(item):
        if isinstance(part.get("mappings"), dict) and part["mappings"]:
            yield part["mappings"]


def _field_maps(mapping: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted path, field definition) for every field, sub-field and dynamic template mapping."""

    def walk(props: dict[str, Any], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for name, spec in props.items():
            if not isinstance(spec, dict):
                continue
            path = f"{prefix}{name}"
            yield path, spec
            if isinstance(spec.get("properties"), dict):
                yield from walk(spec["properties"], f"{path}.")
            if isinstance(spec.get("fields"), dict):
                yield from walk(spec["fields"], f"{path}.")

    yield from walk(mapping.get("properties") or {}, "")
    for entry in mapping.get("dynamic_templates") or []:
        for tname, tspec in (entry or {}).items():
            if isinstance(tspec, dict) and isinstance(tspec.get("mapping"), dict):
                yield f"dynamic_templates.{tname}", tspec["mapping"]


# --- mapping types --------------------------------------------------------------------------

_TYPELESS_KEYS = {
    "properties",
    "dynamic",
    "_source",
    "_routing",
    "_meta",
    "dynamic_templates",
    "date_detection",
    "numeric_detection",
    "dynamic_date_formats",
    "_field_names",
    "_all",
    "enabled",
    "_size",
    "runtime",
}


def _type_names(mappings: dict[str, Any]) -> list[str]:
    """The mapping type names when `mappings` is typed ({"doc": {...}}), else []."""
    if not mappings or any(k in _TYPELESS_KEYS for k in mappings):
        return []
    if all(isinstance(v, dict) for v in mappings.values()):
        return list(mappings)
    return []


def _merge_fields(into: dict[str, Any], other: dict[str, Any], where: str) -> None:
    for name, spec in other.items():
        if name not in into:
            into[name] = copy.deepcopy(spec)
            continue
        mine = into[name]
        if isinstance(mine, dict) and isinstance(spec, dict) and "properties" in mine and "properties" in spec:
            _merge_fields(mine["properties"], spec["properties"], f"{where}{name}.")
        elif mine != spec:
            raise ItemFailed(
                f"mapping types disagree on field '{where}{name}': {mine} vs {spec}; "
                "they cannot be merged into one type"
            )


def remove_mapping_types(item: Item, profile: TargetProfile) -> Notes:
    if item.kind not in ("index", "legacy_template"):
        return []
    mappings = item.body.get("mappings") or {}
    types = _type_names(mappings)
    if not types:
        return []
    notes: Notes = []
    if "_default_" in types:
        types.remove("_default_")
        notes.append("dropped the `_default_` mapping")
    if not types:
        item.body["mappings"] = {}
        return notes
    if len(types) == 1:
        item.body["mappings"] = mappings[types[0]]
        if types[0] != "_doc" or profile.source < (7,):
            notes.append(f"mapping type '{types[0]}' removed (typeless mappings)")
        return notes
    if profile.multi_type_mode == "fail":
        raise ItemFailed(
            f"index has {len(types)} mapping types ({', '.join(types)}); the target allows one. "
            "Set `multiTypeMode: union` to merge them, or split the index with a transform"
        )
    merged: dict[str, Any] = copy.deepcopy(mappings[types[0]])
    merged.setdefault("properties", {})
    for t in types[1:]:
        other = mappings[t]
        _merge_fields(merged["properties"], other.get("properties") or {}, "")
        for key, value in other.items():
            if key != "properties" and key not in merged:
                merged[key] = copy.deepcopy(value)
    item.body["mappings"] = merged
    notes.append(f"merged mapping types {', '.join(types)} into one")
    return notes


# --- settings --------------------------------------------------------------------------------

# Settings the cluster sets itself or that belong to features the target lacks. Creating an
# index with them fails ("unknown setting", "private setting") or silently does the wrong thing.
INTERNAL_SETTINGS = (
    "index.version.*",
    "index.uuid",
    "index.creation_date",
    "index.creation_date_string",
    "index.provided_name",
    "index.history.uuid",
    "index.routing.allocation.initial_recovery.*",
    "index.routing.allocation.include._tier*",
    "index.routing.allocation.require._tier*",
    "index.resize.*",
    "index.shrink.*",
    "index.lifecycle.*",
    "index.xpack.*",
    "index.frozen",
    "index.search.throttled",
    "index.verified_before_close",
    "index.blocks.read_only_allow_delete",
    "index.ccr.*",
    "index.plugins.index_state_management.*",
    "index.opendistro.index_state_management.*",
    "index.hidden_by_plugin",
    "index.data_path",
    "xpack.*",
    "index.format",
)

# Settings later versions removed; the target refuses them by name.
REMOVED_SETTINGS = {
    "index.mapper.dynamic": "removed after 6.0",
    "index.mapping.single_type": "removed in 7.0 (one type per index)",
    "index.max_adjacency_matrix_filters": "removed in 8/OS 2",
    "index.merge.policy.max_merge_at_once_explicit": "removed in OpenSearch 2 (2.19 refuses it)",
    "index.optimize_auto_generated_id": "removed in 7.0",
    "index.queries.cache.term_filter.enabled": "removed",
}


def drop_internal_settings(item: Item, profile: TargetProfile) -> Notes:
    dropped: list[str] = []
    for settings in _settings(item):
        for key in list(settings):
            if any(fnmatch.fnmatchcase(key, pattern) for pattern in INTERNAL_SETTINGS):
                del settings[key]
                dropped.append(key)
    return [f"dropped {', '.join(sorted(dropped))}"] if dropped else []


def drop_removed_settings(item: Item, profile: TargetProfile) -> Notes:
    dropped: list[str] = []
    for settings in _settings(item):
        for key, why in REMOVED_SETTINGS.items():
            if key in settings:
                del settings[key]
                dropped.append(f"{key} ({why})")
    return [f"dropped {', '.join(dropped)}"] if dropped else []


def drop_soft_deletes_disabled(item: Item, profile: TargetProfile) -> Notes:
    """OpenSearch 2.x refuses `index.soft_deletes.enabled: false` (found by trying, 2.19)."""
    if not profile.target_is_os2:
        return []
    notes: Notes = []
    for settings in _settings(item):
        if str(settings.get("index.soft_deletes.enabled", "true")).lower() == "false":
            del settings["index.soft_deletes.enabled"]
            notes.append("index.soft_deletes.enabled=false dropped: OpenSearch 2.x always uses soft deletes")
    return notes


# --- field types ------------------------------------------------------------------------------


def string_to_text_keyword(item: Item, profile: TargetProfile) -> Notes:
    """ES 5 `string`: analyzed → `text` with a `keyword` sub-field; not_analyzed → `keyword`."""
    changed: list[str] = []
    for mapping in _mappings(item):
        for path, spec in list(_field_maps(mapping)):
            if spec.get("type") != "string":
                continue
            index = spec.pop("index", None)
            if index in ("not_analyzed", "no") or index is False:
                spec["type"] = "keyword"
                if index == "no":
                    spec["index"] = False
            else:
                spec["type"] = "text"
                spec.setdefault("fields", {})["keyword"] = {"type": "keyword", "ignore_above": 256}
            changed.append(f"{path}→{spec['type']}")
    return [f"string fields: {', '.join(changed)}"] if changed else []


def drop_all_field(item: Item, profile: TargetProfile) -> Notes:
    """ES 5/6 `_all` and `include_in_all` no longer exist (7.0+); use copy_to instead."""
    notes: list[str] = []
    for mapping in _mappings(item):
        if "_all" in mapping:
            del mapping["_all"]
            notes.append("removed _all")
        for path, spec in _field_maps(mapping):
            if "include_in_all" in spec:
                del spec["include_in_all"]
                notes.append(f"removed include_in_all on {path}")
    return notes


def flattened_to_flat_object(item: Item, profile: TargetProfile) -> Notes:
    changed: list[str] = []
    for mapping in _mappings(item):
        for path, spec in _field_maps(mapping):
            if spec.get("type") != "flattened":
                continue
            if profile.target < (2, 7):
                raise ItemFailed(f"field '{path}' is `flattened`; the target has no flat_object before OpenSearch 2.7")
            for key in [k for k in spec if k != "type"]:
                del spec[key]  # flat_object takes no parameters
            spec["type"] = "flat_object"
            changed.append(path)
    return [f"flattened→flat_object: {', '.join(changed)}"] if changed else []


def legacy_template_patterns(item: Item, profile: TargetProfile) -> Notes:
    """ES 5 templates have one `template` pattern; since 6.0 it is `index_patterns`."""
    if item.kind != "legacy_template" or "template" not in item.body or "index_patterns" in item.body:
        return []
    pattern = item.body.pop("template")
    item.body["index_patterns"] = [pattern] if isinstance(pattern, str) else list(pattern)
    return [f"`template: {pattern}` → index_patterns"]


def classic_similarity_to_bm25(item: Item, profile: TargetProfile) -> Notes:
    """The `classic` (TF/IDF) similarity is gone since 7.0; BM25 is the default."""
    changed: list[str] = []
    for mapping in _mappings(item):
        for path, spec in _field_maps(mapping):
            if spec.get("similarity") == "classic":
                del spec["similarity"]
                changed.append(path)
    for settings in _settings(item):
        for key in [
            k
            for k, v in settings.items()
            if k.startswith("index.similarity.") and k.endswith(".type") and v == "classic"
        ]:
            settings[key] = "BM25"
            changed.append(key)
    return [f"classic similarity → BM25 on {', '.join(changed)}"] if changed else []


# --- what the target can run -----------------------------------------------------------------

# Field types that live outside the server core: the target needs the component.
FIELD_TYPE_COMPONENT = {
    "scaled_float": "mapper-extras",
    "token_count": "mapper-extras",
    "rank_feature": "mapper-extras",
    "rank_features": "mapper-extras",
    "search_as_you_type": "mapper-extras",
    "knn_vector": "opensearch-knn",
    "murmur3": "mapper-murmur3",
    "annotated_text": "mapper-annotated-text",
    "join": "parent-join",
    "percolator": "percolator",
    "icu_collation_keyword": "analysis-icu",
    "geo_shape": "geo",
    "xy_point": "geo",
    "xy_shape": "geo",
}


def check_target_supports(item: Item, profile: TargetProfile) -> Notes:
    """Fail the item (not the run) when it uses a field type whose component the target lacks."""
    if not profile.target_components:
        return []
    missing: list[str] = []
    for mapping in _mappings(item):
        for path, spec in _field_maps(mapping):
            component = FIELD_TYPE_COMPONENT.get(str(spec.get("type")))
            if component and component not in profile.target_components:
                missing.append(f"'{path}' ({spec['type']} needs {component})")
    if missing:
        raise ItemFailed(f"the target lacks what these fields need: {', '.join(missing)}")
    return []


VERSION_TRANSFORMS: tuple[VersionTransform, ...] = (
    VersionTransform("legacy-template-patterns", "ES 5 `template` → `index_patterns`", legacy_template_patterns),
    VersionTransform(
        "remove-mapping-types", "one mapping type per index since 7.0; multi-type merge or fail", remove_mapping_types
    ),
    VersionTransform(
        "drop-internal-settings", "cluster-managed and x-pack settings the target rejects", drop_internal_settings
    ),
    VersionTransform("drop-removed-settings", "settings removed in later versions", drop_removed_settings),
    VersionTransform(
        "drop-soft-deletes-disabled", "OpenSearch 2.x refuses soft_deletes.enabled=false", drop_soft_deletes_disabled
    ),
    VersionTransform("drop-all-field", "`_all`/`include_in_all` removed in 7.0", drop_all_field),
    VersionTransform("string-to-text-keyword", "ES 5 `string` → `text`+`keyword`", string_to_text_keyword),
    VersionTransform("classic-similarity-to-bm25", "`classic` similarity removed in 7.0", classic_similarity_to_bm25),
    VersionTransform(
        "flattened-to-flat_object", "Elastic `flattened` → OpenSearch `flat_object`", flattened_to_flat_object
    ),
)

# Run after the user's transforms, so a user transform can rewrite what they would refuse.
CHECK_TARGET_SUPPORTS = VersionTransform(
    "check-target-supports", "field types whose module/plugin the target lacks", check_target_supports
)


def all_version_transforms() -> tuple[VersionTransform, ...]:
    """The rewrites in the order they run: the general ones, then each version pair's rules.

    The pair rules live in their own modules (`vector_rules`, `es8_rules`, `os3_rules`),
    which build on the helpers above, hence the import here rather than at the top.
    """
    from mactl.metadata.es8_rules import ES8_REWRITES
    from mactl.metadata.os3_rules import OS3_RULES
    from mactl.metadata.vector_rules import dense_vector_to_knn_vector

    vectors = VersionTransform(
        "dense_vector-to-knn_vector",
        "Elastic `dense_vector` → OpenSearch k-NN `knn_vector`",
        dense_vector_to_knn_vector,
    )
    return VERSION_TRANSFORMS + ES8_REWRITES + (vectors,) + OS3_RULES


def final_checks() -> tuple[VersionTransform, ...]:
    """The refusals, run after the user's transforms (a refusal suggests a user transform)."""
    from mactl.metadata.es8_rules import ES8_REFUSALS

    return ES8_REFUSALS + (CHECK_TARGET_SUPPORTS,)


def apply_version_transforms(item: Item, profile: TargetProfile, fired: list[str]) -> None:
    """Run every built-in transform on `item` in place, appending "name: note" to `fired`.

    `fired` is filled as it goes so that, when a later transform fails the item, the
    report still shows what fired before it.
    """
    _run(all_version_transforms(), item, profile, fired)


def apply_final_checks(item: Item, profile: TargetProfile, fired: list[str]) -> None:
    """Refuse (raise `ItemFailed`) what no rule and no user transform made acceptable."""
    _run(final_checks(), item, profile, fired)


def _run(transforms: tuple[VersionTransform, ...], item: Item, profile: TargetProfile, fired: list[str]) -> None:
    for transform in transforms:
        if item.kind not in transform.kinds:
            continue
        for note in transform.run(item, profile):
            fired.append(f"{transform.name}: {note}")
