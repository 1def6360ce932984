"""The source's metadata as a flat list of items, read live or from a snapshot.

Every template and index becomes one `Item` (kind, name, JSON body in the shape the
target's create API takes), so transforms, evaluation, conflict checks and rollback all
work on one shape. Aliases travel inside their index's body: they are created with the
index and go away with it, which is what per-index rollback needs.
Index settings are kept flat (`index.number_of_shards`), the form GET returns with
`flat_settings` and the form the create API accepts, so transforms address them simply.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, TransportError

from mactl.errors import ProviderError

Kind = Literal["pipeline", "component_template", "index_template", "legacy_template", "index"]

# Order of kinds in reports and among templates on the target (components before the
# composable templates that use them). The provider creates ingest pipelines first (the
# indices and templates name them), then indices, then templates.
KIND_ORDER: dict[str, int] = {
    "pipeline": -1,
    "component_template": 0,
    "index_template": 1,
    "legacy_template": 2,
    "index": 3,
}


@dataclass
class Item:
    """One thing to create on the target. `body` is what the create API receives."""

    kind: Kind
    name: str
    body: dict[str, Any]

    def copy(self) -> Item:
        return Item(self.kind, self.name, copy.deepcopy(self.body))

    def as_context(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "body": copy.deepcopy(self.body)}


@dataclass
class SourceMetadata:
    """Everything read from the source: its version and all its items, unselected."""

    distribution: str  # "elasticsearch" | "opensearch"
    version: str
    items: list[Item] = field(default_factory=list)
    origin: str = "live"  # "live" | "snapshot <name>"
    # Where the ingest pipelines among `items` came from ("snapshot <name>" / "live"), or
    # None when they are not read yet (a snapshot without the global state).
    pipelines_origin: str | None = None

    def of_kind(self, kind: Kind) -> list[Item]:
        return [i for i in self.items if i.kind == kind]


def flatten_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"index": {"number_of_shards": "1"}} → {"index.number_of_shards": "1"}."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_settings(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def normalise_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    """Flat settings with an `index.` prefix on every key (templates may omit it)."""
    flat = flatten_settings(settings or {})
    return {(k if k.startswith("index.") else f"index.{k}"): v for k, v in flat.items()}


def index_body(settings: dict[str, Any] | None, mappings: Any, aliases: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "settings": normalise_settings(settings),
        "mappings": copy.deepcopy(mappings) if mappings else {},
        "aliases": copy.deepcopy(aliases) if aliases else {},
    }


# --- live source -----------------------------------------------------------------------


def load_live(client: OpenSearch, distribution: str, version: str) -> SourceMetadata:
    """Read templates and all open indices from a running source."""
    meta = SourceMetadata(distribution, version, origin="live")
    try:
        legacy = client.indices.get_template(flat_settings=True)
    except TransportError as exc:
        raise ProviderError(f"cannot read legacy templates from the source: {exc.error}") from None
    for name, body in sorted(legacy.items()):
        meta.items.append(Item("legacy_template", name, legacy_template_body(body)))
    for kind, path, key, inner in (
        ("component_template", "/_component_template", "component_templates", "component_template"),
        ("index_template", "/_index_template", "index_templates", "index_template"),
    ):
        try:
            found = client.transport.perform_request("GET", path, params={"flat_settings": "true"})
        except NotFoundError:
            found = {key: []}
        except TransportError as exc:
            if exc.status_code in (400, 405):  # the source predates composable templates
                continue
            raise ProviderError(f"cannot read {kind.replace('_', ' ')}s from the source: {exc.error}") from None
        for entry in sorted(found.get(key) or [], key=lambda e: e["name"]):
            body = entry[inner]
            tmpl = body.get("template")
            if isinstance(tmpl, dict) and "settings" in tmpl:
                tmpl["settings"] = normalise_settings(tmpl["settings"])
            meta.items.append(Item(kind, entry["name"], body))  # type: ignore[arg-type]
    meta.items.extend(live_pipelines(client))
    meta.pipelines_origin = "live"
    indices = client.indices.get(index="*", expand_wildcards="open,hidden", flat_settings=True)
    for name, body in sorted(indices.items()):
        meta.items.append(
            Item("index", name, index_body(body.get("settings"), body.get("mappings"), body.get("aliases")))
        )
    return meta


def live_pipelines(client: OpenSearch) -> list[Item]:
    """Every ingest pipeline of a running cluster (`GET _ingest/pipeline`)."""
    try:
        found = client.transport.perform_request("GET", "/_ingest/pipeline")
    except NotFoundError:  # a cluster without any pipeline answers 404
        return []
    except TransportError as exc:
        raise ProviderError(f"cannot read ingest pipelines from the source: {exc.error}") from None
    return [Item("pipeline", name, copy.deepcopy(body)) for name, body in sorted((found or {}).items())]


def snapshot_pipelines(raw_global: dict[str, Any]) -> list[Item]:
    """The ingest pipelines of a snapshot's global state (the cluster metadata's `ingest` custom).

    Elasticsearch and OpenSearch store them as `{"pipeline": [{"id": ..., "config": {...}}]}`.
    """
    entries = (raw_global.get("ingest") or {}).get("pipeline") or []
    items = []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str) and isinstance(entry.get("config"), dict):
            items.append(Item("pipeline", entry["id"], copy.deepcopy(entry["config"])))
    return sorted(items, key=lambda i: i.name)


def legacy_template_body(raw: dict[str, Any]) -> dict[str, Any]:
    """A legacy template as PUT _template takes it (ES 5's `template` pattern kept for transforms)."""
    body: dict[str, Any] = {}
    if "index_patterns" in raw:
        body["index_patterns"] = list(raw["index_patterns"])
    elif "template" in raw:
        body["template"] = raw["template"]
    body["order"] = raw.get("order", 0)
    if raw.get("version") is not None:
        body["version"] = raw["version"]
    body["settings"] = normalise_settings(raw.get("settings"))
    body["mappings"] = copy.deepcopy(raw.get("mappings") or {})
    body["aliases"] = copy.deepcopy(raw.get("aliases") or {})
    return body


# --- snapshot ----------------------------------------------------------------------------


def load_from_snapshot(repository: Any, snapshot_name: str, distribution: str, version: str) -> SourceMetadata:
    """Read templates and the snapshot's indices through `mactl.snapshot_reader`.

    `repository` is an opened reader repository. Works with the source cluster gone.
    """
    meta = SourceMetadata(distribution, version, origin=f"snapshot {snapshot_name}")
    snap = repository.snapshot(snapshot_name)
    glob = repository.global_metadata(snap)
    for name, raw in sorted((getattr(glob, "templates", None) or {}).items()):
        meta.items.append(Item("legacy_template", name, legacy_template_body(_plain(raw))))
    for kind, attr in (("component_template", "component_templates"), ("index_template", "index_templates")):
        for name, raw in sorted((getattr(glob, attr, None) or {}).items()):
            body = _plain(raw)
            tmpl = body.get("template")
            if isinstance(tmpl, dict) and "settings" in tmpl:
                tmpl["settings"] = normalise_settings(tmpl["settings"])
            meta.items.append(Item(kind, name, body))  # type: ignore[arg-type]
    raw_global = getattr(glob, "raw", None) or {}
    has_global = getattr(repository, "includes_global_state", None)
    if raw_global and callable(has_global) and has_global(snap) is True:
        # the snapshot kept the global state: its pipelines are the source's, even when none
        meta.items.extend(snapshot_pipelines(raw_global))
        meta.pipelines_origin = f"snapshot {snapshot_name}"
    for index in sorted(_index_names(snap)):
        im = repository.index_metadata(snap, index)
        meta.items.append(Item("index", index, index_body(im.settings, im.mappings, im.aliases)))
    return meta


def _index_names(snap: Any) -> list[str]:
    names = snap.indices
    if isinstance(names, dict):
        return list(names)
    return [n if isinstance(n, str) else n.name for n in names]


def _plain(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return copy.deepcopy(raw)
    for attr in ("to_dict", "as_dict", "model_dump"):
        fn = getattr(raw, attr, None)
        if callable(fn):
            return dict(fn())
    return dict(vars(raw))
