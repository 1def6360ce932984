"""Ingest pipelines in the metadata stage: which come along, and what they would break.

An index or template naming a pipeline in `index.default_pipeline` / `index.final_pipeline`
makes every document written to it go through that pipeline; when the pipeline is not on
the target, every such write is rejected (the backfill would dead-letter all of them). So
the evaluation:

- selects the source's pipelines (`pipelines.include`: the referenced ones and the ones
  they call with a `pipeline` processor, all of them, or none; `pipelines.filters` by
  name) and runs the user transforms on them like on any other item;
- fails a pipeline that uses a processor the target does not have, naming the processor
  (read from `GET _nodes/ingest`);
- fails an index or template that names a pipeline which will be neither on the target nor
  created by this stage, before anything is written.

The source's pipelines come from the snapshot's global state when it was kept, else from
the live source.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, TransportError

from mactl.cluster import client_for
from mactl.errors import MactlError, ProviderError
from mactl.indexfilter import select as select_names
from mactl.metadata.items import Item, SourceMetadata, live_pipelines
from mactl.metadata.user_transforms import UserTransforms
from mactl.metadata.version_transforms import TargetProfile
from mactl.schema.metadata import MetadataInputs

if TYPE_CHECKING:
    from mactl.metadata.evaluate import EvaluatedItem, Exclusion

PIPELINE_SETTINGS = ("index.default_pipeline", "index.final_pipeline")
NO_PIPELINE = "_none"


def settings_of(kind: str, body: dict[str, Any] | None) -> dict[str, Any]:
    """The flat settings of an index or template body ({} for anything else)."""
    if not body:
        return {}
    if kind in ("index", "legacy_template"):
        settings = body.get("settings")
    else:
        tmpl = body.get("template")
        settings = tmpl.get("settings") if isinstance(tmpl, dict) else None
    return settings if isinstance(settings, dict) else {}


def references(kind: str, body: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(setting, pipeline name) pairs an index or template body names."""
    if kind == "pipeline":
        return []
    settings = settings_of(kind, body)
    found = []
    for key in PIPELINE_SETTINGS:
        value = settings.get(key)
        if isinstance(value, str) and value and value != NO_PIPELINE:
            found.append((key, value))
    return found


def _processors(entries: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (type, config) in a processor list, nested ones included (on_failure, foreach)."""
    if not isinstance(entries, list):
        return
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        for ptype, config in entry.items():
            yield ptype, config if isinstance(config, dict) else {}
            if isinstance(config, dict):
                yield from _processors(config.get("on_failure"))
                inner = config.get("processor")
                if isinstance(inner, dict):
                    yield from _processors([inner])


def processor_types(body: dict[str, Any]) -> set[str]:
    types = {t for t, _ in _processors(body.get("processors"))}
    return types | {t for t, _ in _processors(body.get("on_failure"))}


def called_pipelines(body: dict[str, Any]) -> set[str]:
    """Pipelines a pipeline calls with the `pipeline` processor."""
    found = set()
    for source in (body.get("processors"), body.get("on_failure")):
        for ptype, config in _processors(source):
            if ptype == "pipeline" and isinstance(config.get("name"), str):
                found.add(config["name"])
    return found


def target_processors(client: OpenSearch) -> frozenset[str]:
    """The processor types every target node has (`GET _nodes/ingest`)."""
    info = client.transport.perform_request(
        "GET", "/_nodes/ingest", params={"filter_path": "nodes.*.ingest.processors"}
    )
    per_node = [
        {p["type"] for p in (node.get("ingest") or {}).get("processors") or []}
        for node in ((info or {}).get("nodes") or {}).values()
    ]
    return frozenset(set.intersection(*per_node)) if per_node else frozenset()


def target_pipeline_names(client: OpenSearch) -> set[str]:
    try:
        found = client.transport.perform_request("GET", "/_ingest/pipeline")
    except NotFoundError:
        return set()
    except TransportError as exc:
        raise ProviderError(f"cannot read the target's ingest pipelines: {exc.error}") from None
    return set(found or {})


def _source_pipelines(inputs: MetadataInputs, source: SourceMetadata) -> tuple[dict[str, Item], str | None]:
    """The source's pipelines by name, and why they could not be read (None when they were)."""
    if source.pipelines_origin is not None:
        return {i.name: i for i in source.of_kind("pipeline")}, None
    try:
        items = live_pipelines(client_for(inputs.source, retries=0, timeout=10))
    except MactlError as exc:
        return {}, f"the snapshot has no global state and the source is unreachable ({exc.message})"
    source.items.extend(items)
    source.pipelines_origin = "live"
    return {i.name: i for i in items}, None


def _closure(start: Iterable[str], available: dict[str, Item]) -> list[str]:
    """`start` plus every pipeline they call, transitively, among `available`."""
    seen: list[str] = []
    todo = list(start)
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.append(name)
        if name in available:
            todo.extend(sorted(called_pipelines(available[name].body)))
    return seen


def pipeline_items(
    inputs: MetadataInputs,
    source: SourceMetadata,
    items: list[EvaluatedItem],
    target_client: OpenSearch,
    profile: TargetProfile,
    user: UserTransforms,
    excluded: list[Exclusion],
) -> list[EvaluatedItem]:
    """The pipeline items to create; marks the indices/templates whose pipelines will be missing.

    `items` are the evaluated indices and templates (changed in place: one naming a
    pipeline that will not exist becomes a failure); `excluded` gets the pipelines the
    filters leave out.
    """
    from mactl.metadata.evaluate import Exclusion, _evaluate_one

    selection = inputs.pipelines
    referencing = [
        (item, refs) for item in items if item.action == "create" for refs in [references(item.kind, item.body)] if refs
    ]
    if selection.include != "all" and not referencing:
        return []  # nothing to bring and nothing to check: no need to read any cluster
    on_target = target_pipeline_names(target_client)
    available: dict[str, Item] = {}
    unreadable: str | None = None
    if selection.include != "none":
        available, unreadable = _source_pipelines(inputs, source)
    referenced = sorted({name for _, refs in referencing for _, name in refs})
    if selection.include == "all":
        wanted = _closure(sorted(available), available)
    elif selection.include == "referenced":
        wanted = _closure(referenced, available)
    else:
        wanted = []
    chosen: list[str] = []
    why_not: dict[str, str] = {}
    for name in wanted:
        if name not in available:
            why_not[name] = unreadable or f"it is not on the source ({source.pipelines_origin})"
        elif selection.filters and not select_names([name], selection.filters):
            why_not[name] = "pipelines.filters leave it out"
            excluded.append(Exclusion("pipeline", name, "left out by pipelines.filters"))
        else:
            chosen.append(name)
    processors = target_processors(target_client) if chosen else frozenset()
    result: list[EvaluatedItem] = []
    for name in chosen:
        evaluated = _evaluate_one(available[name], profile, user)
        if evaluated.action == "create" and evaluated.body is not None:
            lacking = sorted(processor_types(evaluated.body) - processors)
            if lacking:
                evaluated.action = "fail"
                evaluated.reason = (
                    f"uses processor(s) the target does not have: {', '.join(lacking)}"
                    f" (the target has: {', '.join(sorted(processors)) or 'none'}); install the plugin"
                    " on the target or change the pipeline with a transform"
                )
                evaluated.body = None
        result.append(evaluated)
    created = {i.name for i in result if i.action == "create"}
    failed = {i.source_name: i for i in result if i.action != "create"}
    if selection.include == "none":
        for name in referenced:
            why_not.setdefault(name, "`pipelines.include: none` leaves it out")
    for item, refs in referencing:
        problems = []
        for setting, name in refs:
            if name in created or name in on_target:
                continue
            if name in failed:
                why = f"it is not migrated ({failed[name].reason or failed[name].action})"
            else:
                why = why_not.get(name) or "it is neither on the source nor on the target"
            problems.append(f"{setting} names ingest pipeline '{name}', which will not be on the target: {why}")
        if problems:
            item.action = "fail"
            item.body = None
            item.reason = (
                "; ".join(problems) + " — every document written to it would be rejected"
                if item.kind == "index"
                else "; ".join(problems) + " — every index it creates would reject its documents"
            )
    return result
