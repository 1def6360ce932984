"""What a metadata stage would create, exactly, without writing anything.

`evaluate` reads the source's metadata (snapshot or live), selects items with the
stage's filters, lists what the built-in exclusions leave out, and runs the version and
user transforms. The result is plain data: the provider creates from it, `mactl
metadata evaluate` prints it, the plan can show it. It reads the target only to learn its
version and modules; it never writes to any cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch

from mactl.cluster import client_for, cluster_version, version_tuple
from mactl.errors import ConfigError, MactlError, ProviderError
from mactl.indexfilter import select as select_names
from mactl.indexfilter import split_builtin_exclusions
from mactl.metadata.items import KIND_ORDER, Item, SourceMetadata, load_from_snapshot, load_live
from mactl.metadata.user_transforms import UserTransforms
from mactl.metadata.version_transforms import (
    ItemFailed,
    TargetProfile,
    apply_final_checks,
    apply_version_transforms,
)
from mactl.schema.common import IndexFilter
from mactl.schema.metadata import MetadataInputs


@dataclass
class EvaluatedItem:
    """One item's fate: `create` with its final body, `skip` or `fail` with a reason."""

    kind: str
    name: str  # the name on the target (a user transform may rename)
    source_name: str
    action: str  # "create" | "skip" | "fail"
    body: dict[str, Any] | None = None
    transforms: list[str] = field(default_factory=list)
    reason: str = ""


@dataclass
class Exclusion:
    kind: str
    name: str
    reason: str


@dataclass
class Evaluation:
    source: dict[str, str]
    target: dict[str, str]
    origin: str
    items: list[EvaluatedItem]
    excluded: list[Exclusion]

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "origin": self.origin,
            "items": [asdict(i) for i in self.items],
            "excluded": [asdict(e) for e in self.excluded],
        }


def target_components(client: OpenSearch) -> frozenset[str]:
    """Names of the modules and plugins every target node has."""
    info = client.nodes.info(metric="plugins", filter_path="nodes.*.modules.name,nodes.*.plugins.name")
    per_node = [
        {m["name"] for m in node.get("modules", [])} | {p["name"] for p in node.get("plugins", [])}
        for node in (info.get("nodes") or {}).values()
    ]
    return frozenset(set.intersection(*per_node)) if per_node else frozenset()


def load_source(inputs: MetadataInputs, upstream: Mapping[str, Mapping[str, Any]] | None = None) -> SourceMetadata:
    """The source's metadata, from the snapshot (default) or live (`from: live`)."""
    if inputs.from_ == "live":
        client = client_for(inputs.source)
        distribution, version = cluster_version(client)
        return load_live(client, distribution, version)
    return _load_snapshot(inputs, upstream or {})


def _load_snapshot(inputs: MetadataInputs, upstream: Mapping[str, Mapping[str, Any]]) -> SourceMetadata:
    try:
        from mactl.snapshot_reader import open_repository
    except ImportError:
        raise ProviderError(
            "reading metadata from the snapshot needs mactl.snapshot_reader, which is not installed",
            hint="set `metadata.from: live` to read from the running source",
        ) from None
    snap_out = next((o for a, o in upstream.items() if a.split(".", 1)[0] == "snapshot"), {})
    try:
        repository = open_repository(inputs.repository)
        distribution, version = _snapshot_source_version(repository, inputs, snap_out)
        return load_from_snapshot(repository, inputs.snapshotName, distribution, version)
    except MactlError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise ProviderError(
            f"cannot read metadata of snapshot '{inputs.snapshotName}' from the repository: {type(exc).__name__}: {exc}"
        ) from None


def _snapshot_source_version(repository: Any, inputs: MetadataInputs, snap_out: Mapping[str, Any]) -> tuple[str, str]:
    """The source version: the snapshot stage's outputs, else the snapshot's own record."""
    if snap_out.get("sourceVersion"):
        return str(snap_out.get("sourceDistribution") or "elasticsearch"), str(snap_out["sourceVersion"])
    snap = repository.snapshot(inputs.snapshotName)
    version = getattr(snap, "version", None) or getattr(snap, "version_string", None)
    if version:
        text = str(version)
        number = text.split()[-1]
        # Snapshots record a bare version number; Elasticsearch 1.x-4.x snapshots are not
        # readable anyway, so a major below 5 means OpenSearch.
        distribution = getattr(snap, "distribution", None) or (
            "opensearch"
            if text.lower().startswith("opensearch") or version_tuple(number)[:1] < (5,)
            else "elasticsearch"
        )
        return str(distribution), number
    try:
        return cluster_version(client_for(inputs.source, retries=0, timeout=10, retry_for=0))
    except MactlError:
        raise ProviderError(
            f"cannot tell which version wrote snapshot '{inputs.snapshotName}' (the source is unreachable too)"
        ) from None


def builtin_exclusions(
    inputs: MetadataInputs, upstream: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Exclusion]:
    """What the built-in rules would leave out of this stage, for `plan` to list.

    Reads the source's metadata (snapshot or live) but not the target.
    """
    return _select(load_source(inputs, upstream), inputs)[1]


def _template_filters(inputs: MetadataInputs) -> list[IndexFilter]:
    return list(getattr(inputs, "templateFilters", None) or [])


def evaluate(
    inputs: MetadataInputs,
    *,
    upstream: Mapping[str, Mapping[str, Any]] | None = None,
    target_client: OpenSearch | None = None,
    source: SourceMetadata | None = None,
    base_dir: Path | None = None,
) -> Evaluation:
    """Everything the stage would create, with bodies after all transforms."""
    target_client = target_client or client_for(inputs.target)
    t_dist, t_version = cluster_version(target_client)
    source = source or load_source(inputs, upstream)
    profile = TargetProfile(
        source_distribution=source.distribution,
        source_version=source.version,
        target_distribution=t_dist,
        target_version=t_version,
        target_components=target_components(target_client),
        multi_type_mode=inputs.multiTypeMode,
    )
    try:
        user = UserTransforms(inputs.transforms, base_dir=base_dir)
    except ConfigError as exc:
        raise ConfigError(f"metadata.transforms: {exc.message}") from None
    selected, excluded = _select(source, inputs)
    items = [_evaluate_one(item, profile, user) for item in selected]
    from mactl.metadata.pipelines import pipeline_items  # it builds on this module's classes

    items += pipeline_items(inputs, source, items, target_client, profile, user, excluded)
    items.sort(key=lambda i: (KIND_ORDER[i.kind], i.name))
    return Evaluation(
        source={"distribution": source.distribution, "version": source.version, "name": inputs.source.name},
        target={"distribution": t_dist, "version": t_version, "name": inputs.target.name},
        origin=source.origin,
        items=items,
        excluded=excluded,
    )


def template_exclusion_reason(item: Item) -> str | None:
    """Why a template is left out by default: it is a system template, or serves only system indices.

    Elasticsearch's x-pack ships templates such as `security-index-template` whose
    patterns (`.security-*`) only match system indices; recreating them on OpenSearch
    would shape indices that the target's own plugins own.
    """
    if item.name.startswith("."):
        return "system template (name starts with '.')"
    patterns = item.body.get("index_patterns") or (
        [item.body["template"]] if isinstance(item.body.get("template"), str) else []
    )
    if isinstance(patterns, str):
        patterns = [patterns]
    if patterns and all(str(p).startswith(".") for p in patterns):
        return f"template for system indices only (index_patterns {', '.join(map(str, patterns))})"
    return None


def _select(source: SourceMetadata, inputs: MetadataInputs) -> tuple[list[Item], list[Exclusion]]:
    excluded: list[Exclusion] = []
    chosen: list[Item] = []
    if inputs.templates:
        filters = _template_filters(inputs)
        for item in source.items:
            if item.kind in ("index", "pipeline") or not select_names([item.name], filters):
                continue
            reason = template_exclusion_reason(item)
            if reason and not any(f.mode == "include" and item.name in f.names for f in filters):
                excluded.append(Exclusion(item.kind, item.name, reason))
            else:
                chosen.append(item)
    by_name = {i.name: i for i in source.of_kind("index")}
    kept, dropped = split_builtin_exclusions(by_name, inputs.indices)
    excluded.extend(Exclusion("index", e.name, e.reason) for e in dropped)
    chosen.extend(by_name[n] for n in kept)
    return chosen, excluded


def _evaluate_one(original: Item, profile: TargetProfile, user: UserTransforms) -> EvaluatedItem:
    item = original.copy()
    fired: list[str] = []
    try:
        apply_version_transforms(item, profile, fired)
        if user:
            result, applied = user.run(
                item, source_version=profile.source_version, target_version=profile.target_version
            )
            fired.extend(applied)
            if result is None:
                return EvaluatedItem(
                    item.kind, item.name, original.name, "skip", None, fired, "dropped by a user transform"
                )
            item = result
        apply_final_checks(item, profile, fired)
    except ItemFailed as exc:
        return EvaluatedItem(original.kind, original.name, original.name, "fail", None, fired, exc.reason)
    return EvaluatedItem(item.kind, item.name, original.name, "create", item.body, fired)


def evaluate_for_plan(
    stage_inputs: Mapping[str, Any],
    upstream: Mapping[str, Mapping[str, Any]],
    *,
    base_dir: Path | None = None,
) -> tuple[Evaluation, str | None]:
    """Evaluate a planned metadata stage, for `plan --evaluate`.

    At plan time the snapshot this stage reads may not exist yet (its snapshot stage is
    planned too). Then the evaluation reads the live source instead and says so, because
    the snapshot will be taken from that same source; the second value is that note.
    """
    raw = dict(stage_inputs)
    note = None
    snapshot_taken = any(addr.split(".", 1)[0] == "snapshot" and out for addr, out in upstream.items())
    if raw.get("from", "snapshot") == "snapshot" and not snapshot_taken:
        raw["from"] = "live"
        note = "its snapshot is not taken yet: evaluated from the live source"
    return evaluate(MetadataInputs.model_validate(raw), upstream=upstream, base_dir=base_dir), note
