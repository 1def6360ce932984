"""Vector fields across engines: Elastic `dense_vector` → OpenSearch k-NN `knn_vector`.

Elasticsearch 8 indexes a `dense_vector` into Lucene's HNSW graph (optionally scalar or
binary quantized); OpenSearch's k-NN plugin offers the same graph through its `lucene`
engine, and binary vectors through `faiss`. Every parameter either has a counterpart
here or refuses the item by field name, so a vector field never arrives searchable in a
different way than it was. The mapping rules (checked by creating the result on
OpenSearch 2.19 and 3.x with the k-NN plugin):

- `dims` → `dimension` (missing `dims` — no vector indexed yet — refuses: the target needs it);
- `similarity` → `space_type`: `cosine` → `cosinesimil`, `l2_norm` → `l2`,
  `dot_product`/`max_inner_product` → `innerproduct` (same ranking);
- `element_type`: `float` (default), `byte` → `data_type: byte`, `bit` → `data_type: binary`
  with `hamming` (Elastic ranks bits by l2 on bits, i.e. by Hamming distance: the same
  order, tried on ES 8.19 → OS 3.5) on `lucene` for a 3.x target, `faiss` for 2.x;
- `index_options.type`: `hnsw` → method `hnsw` on `lucene` (`m`, `ef_construction` kept);
  `int8_hnsw` (ES 8.14+'s default) → the same with the Lucene scalar quantizer
  (`encoder: sq`, `confidence_interval` kept); `int4_hnsw` refuses (OpenSearch's Lucene
  quantizer is 7-bit only); `bbq_hnsw` refuses (no Lucene BBQ in OpenSearch; `faiss`
  binary quantization ranks differently); the `*_flat` types (exact search on the source)
  refuse: the target would answer approximately;
- `index: false` → a `knn_vector` without a graph (doc values only, like the source:
  usable by scripts, not by k-NN queries); `index.knn` is set only when a field is indexed,
  and then an unindexed one gets an explicit lucene graph rather than the engine default.
  An absent `index` means true from Elasticsearch 8.11 and false before (ES 7's x-pack
  `dense_vector` never had a graph).
"""

from __future__ import annotations

from typing import Any

from mactl.metadata.items import Item
from mactl.metadata.version_transforms import ItemFailed, Notes, TargetProfile, _field_maps, _mappings, _settings

SPACE_TYPES = {
    "cosine": "cosinesimil",
    "l2_norm": "l2",
    "dot_product": "innerproduct",
    "max_inner_product": "innerproduct",
}
DATA_TYPES = {"float": None, "byte": "byte", "bit": "binary"}

# index_options types and why they cannot be carried (suggestion included).
_REFUSED_INDEX_OPTIONS = {
    "int4_hnsw": "OpenSearch's Lucene scalar quantizer is 7-bit only; map it as int8_hnsw (more memory, same or better recall) with a user transform",
    "bbq_hnsw": "OpenSearch has no Lucene BBQ and faiss binary quantization ranks differently; map it as int8_hnsw or hnsw with a user transform",
    "flat": "`flat` searches exactly; an OpenSearch graph answers approximately: map it as hnsw with a user transform if that is acceptable",
    "int8_flat": "`int8_flat` searches exactly; an OpenSearch graph answers approximately: map it as int8_hnsw with a user transform if that is acceptable",
    "int4_flat": "`int4_flat` searches exactly and OpenSearch has no 4-bit quantizer: map it as int8_hnsw with a user transform if that is acceptable",
    "bbq_flat": "`bbq_flat` searches exactly with binary quantization, which OpenSearch lacks: map it as hnsw with a user transform",
}
_HNSW_TYPES = {"hnsw", "int8_hnsw"}


def _options(spec: dict[str, Any]) -> dict[str, Any]:
    options = spec.get("index_options")
    return dict(options) if isinstance(options, dict) else {}


def knn_vector_for(
    path: str, spec: dict[str, Any], indexed_by_default: bool = True, target: tuple[int, ...] = (3,)
) -> tuple[dict[str, Any], bool]:
    """The `knn_vector` definition equivalent to the `dense_vector` `spec`, and whether it is indexed.

    `indexed_by_default`: what an absent `index` means (false before Elasticsearch 8.11);
    `target`: the target's version (which engine scores bits).

    Raises `ItemFailed` naming `path` when a parameter has no faithful counterpart.
    """
    dims = spec.get("dims")
    if dims is None:
        raise ItemFailed(
            f"dense_vector '{path}' has no `dims` (Elasticsearch sets them at the first vector); "
            "the target needs a dimension: set `dims` with a user transform"
        )
    element = str(spec.get("element_type", "float"))
    if element not in DATA_TYPES:
        raise ItemFailed(f"dense_vector '{path}': element_type '{element}' has no OpenSearch counterpart")
    out: dict[str, Any] = {"type": "knn_vector", "dimension": int(dims)}
    data_type = DATA_TYPES[element]
    if data_type:  # 3.x writes it back upper-case (tried on 3.5): say it the way it will read
        out["data_type"] = data_type.upper() if target >= (3,) else data_type
    indexed = str(spec.get("index", indexed_by_default)).lower() == "true"
    if not indexed:
        return out, False
    similarity = str(spec.get("similarity") or ("l2_norm" if element == "bit" else "cosine"))
    space = SPACE_TYPES.get(similarity)
    if space is None:
        raise ItemFailed(f"dense_vector '{path}': similarity '{similarity}' has no OpenSearch space type")
    options = _options(spec)
    kind = str(options.get("type", "hnsw"))
    if kind in _REFUSED_INDEX_OPTIONS:
        raise ItemFailed(f"dense_vector '{path}': index_options.type '{kind}': {_REFUSED_INDEX_OPTIONS[kind]}")
    if kind not in _HNSW_TYPES:
        raise ItemFailed(f"dense_vector '{path}': index_options.type '{kind}' is unknown to mactl; refusing to guess")
    parameters: dict[str, Any] = {}
    for key in ("m", "ef_construction"):
        if key in options:
            parameters[key] = int(options[key])
    if element == "bit":
        if kind != "hnsw":
            raise ItemFailed(f"dense_vector '{path}': bit vectors with '{kind}' have no OpenSearch counterpart")
        engine = "lucene" if target >= (3,) else "faiss"  # lucene scores hamming from 3.x (tried on 3.5)
        out["method"] = {"name": "hnsw", "engine": engine, "space_type": "hamming", "parameters": parameters}
        return out, True
    if kind == "int8_hnsw":
        if element != "float":
            raise ItemFailed(f"dense_vector '{path}': int8_hnsw on {element} vectors has no OpenSearch counterpart")
        encoder: dict[str, Any] = {"name": "sq", "parameters": {}}  # as the target echoes it back
        if options.get("confidence_interval") is not None:
            encoder["parameters"]["confidence_interval"] = float(options["confidence_interval"])
        parameters["encoder"] = encoder
    out["method"] = {"name": "hnsw", "engine": "lucene", "space_type": space, "parameters": parameters}
    return out, True


def dense_vector_to_knn_vector(item: Item, profile: TargetProfile) -> Notes:
    changed: list[str] = []
    any_indexed = False
    for mapping in _mappings(item):
        for path, spec in _field_maps(mapping):
            if spec.get("type") != "dense_vector":
                continue
            new, indexed = knn_vector_for(
                path, spec, indexed_by_default=profile.source >= (8, 11), target=profile.target
            )
            any_indexed |= indexed
            options = _options(spec)
            spec.clear()
            spec.update(new)
            method = new.get("method") or {}
            how = (
                f"{method.get('engine')} {method.get('name')} {method.get('space_type')}"
                + (" sq" if "encoder" in (method.get("parameters") or {}) else "")
                if method
                else "no graph (index: false)"
            )
            changed.append(f"{path} ({options.get('type', 'hnsw') if method else 'index: false'} → {how})")
    if not changed:
        return []
    note = f"dense_vector→knn_vector: {', '.join(changed)}"
    if any_indexed:
        # In a k-NN index a field without a method gets the engine default (faiss on 3.x):
        # an unindexed vector beside indexed ones gets the lucene graph, named in the note.
        graphed: list[str] = []
        for mapping in _mappings(item):
            for path, spec in _field_maps(mapping):
                if spec.get("type") == "knn_vector" and "method" not in spec and not spec.get("model_id"):
                    space = "hamming" if str(spec.get("data_type")).lower() == "binary" else "l2"
                    spec["method"] = {"name": "hnsw", "engine": "lucene", "space_type": space, "parameters": {}}
                    graphed.append(path)
        if graphed:
            note += f"; {', '.join(graphed)} (index: false) get a lucene graph: the index has k-NN on"
        settings_parts = list(_settings(item))
        for settings in settings_parts:
            settings["index.knn"] = "true"
        if not settings_parts:
            if item.kind in ("index", "legacy_template"):
                item.body["settings"] = {"index.knn": "true"}
            elif isinstance(item.body.get("template"), dict):
                item.body["template"]["settings"] = {"index.knn": "true"}
        note += " (index.knn=true)"
    return [note]
