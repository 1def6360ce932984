"""What OpenSearch 3 refuses that an OpenSearch 1.x/2.x (or Elasticsearch) index may hold.

Found by creating each construct on OpenSearch 3.x with the k-NN plugin (see the table in
`docs/providers.md`): OpenSearch 3 refuses the `nmslib` k-NN engine for new indices
("nmslib engine is deprecated … cannot be used for new index creation") and some
settings that 2.x still took. The rules only fire for a 3.x target.
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

# Space types faiss (the engine that replaces nmslib) can score.
FAISS_SPACES = frozenset({"l2", "innerproduct", "cosinesimil", "hamming"})

# Settings OpenSearch 3 refuses by name, and what replaced them.
REMOVED_IN_OS3: dict[str, str] = {}


def _targets_os3(profile: TargetProfile) -> bool:
    return profile.target_distribution == "opensearch" and profile.target >= (3,)


def nmslib_to_faiss(item: Item, profile: TargetProfile) -> Notes:
    """`method.engine: nmslib` → `faiss`, same graph parameters; spaces faiss lacks refuse."""
    if not _targets_os3(profile):
        return []
    changed: list[str] = []
    for mapping in _mappings(item):
        for path, spec in _field_maps(mapping):
            method = spec.get("method")
            if spec.get("type") != "knn_vector" or not isinstance(method, dict) or method.get("engine") != "nmslib":
                continue
            space = str(method.get("space_type") or spec.get("space_type") or "l2")
            if space not in FAISS_SPACES:
                raise ItemFailed(
                    f"knn_vector '{path}' uses nmslib with space type '{space}'; OpenSearch 3 has no nmslib and "
                    "neither faiss nor lucene scores that space: re-embed for l2/innerproduct/cosinesimil "
                    "and map it with a user transform"
                )
            method["engine"] = "faiss"
            changed.append(f"{path} ({space})")
    return [f"nmslib→faiss (OpenSearch 3 refuses nmslib): {', '.join(changed)}"] if changed else []


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


OS3_RULES: tuple[VersionTransform, ...] = (
    VersionTransform("os3-nmslib-to-faiss", "OpenSearch 3 refuses the nmslib k-NN engine", nmslib_to_faiss),
    VersionTransform("os3-drop-removed-settings", "settings OpenSearch 3 refuses", drop_removed_in_os3),
    VersionTransform(
        "refuse-knn-models", "k-NN fields from trained models need the model on the target", refuse_knn_models
    ),
)
