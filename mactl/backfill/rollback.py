"""Undoing a backfill: remove the documents it wrote, and its working state.

Rollback deletes exactly what the stage wrote. On a target index some other stage or
person created (the metadata stage found it existing), that means the documents by the
ids the stage wrote: `written_documents` re-reads the snapshot shards the stage worked on
(through the same sampling and transforms, so the same target index, id and routing) and
`delete_documents` bulk-deletes those, never a `match_all`. Only on an index the metadata
stage created may the whole index be emptied, one of three ways chosen by the stage's
`rollbackMode` and what the target can do:
- `delete_by_query`: `_delete_by_query` match_all on each index the stage wrote to. It
  needs the target's reindex module; a target without it answers "no handler found".
- `delete_by_ids`: the fallback that needs no module: scroll the index's ids (with
  routing) and bulk-delete them. Same effect, more requests.
- `recreate`: drop the index and create it again empty from its definition (the
  metadata stage's recorded one if given, else the live one read just before dropping).
Which one ran is returned so the state can record it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, RequestError, TransportError

Method = Literal["delete_by_query", "delete_by_ids", "recreate"]

_VOLATILE_SETTINGS = ("uuid", "creation_date", "provided_name", "version", "routing", "resize", "history")


def supports_delete_by_query(client: OpenSearch) -> bool:
    """Does every node carry the reindex module (which serves `_delete_by_query`)?

    Asked through the nodes info API rather than by probing the endpoint: on a cluster
    that still has mapping types, `POST /x/_delete_by_query` without the module would be
    taken as indexing a document and create an index. When nodes info is not allowed
    (some managed services), assume yes: `remove_documents` still falls back on "no handler".
    """
    try:
        nodes = client.nodes.info(metric="plugins")["nodes"].values()
    except TransportError:
        return True
    for node in nodes:
        names = {m.get("name") for m in node.get("modules", [])} | {p.get("name") for p in node.get("plugins", [])}
        if "reindex" not in names and "opensearch-reindex" not in names:
            return False
    return True


def planned_method(client: OpenSearch, mode: str) -> Method:
    if mode == "recreate":
        return "recreate"
    return "delete_by_query" if supports_delete_by_query(client) else "delete_by_ids"


def delete_by_query(client: OpenSearch, index: str) -> None:
    client.delete_by_query(
        index=index, body={"query": {"match_all": {}}}, refresh=True, conflicts="proceed", wait_for_completion=True
    )


def delete_by_ids(client: OpenSearch, index: str, *, page: int = 5000) -> int:
    """Scroll every id (with routing) and bulk-delete; returns how many were deleted."""
    deleted = 0
    resp = client.search(
        index=index, scroll="2m", body={"size": page, "_source": False, "sort": ["_doc"], "query": {"match_all": {}}}
    )
    scroll_id = resp.get("_scroll_id")
    try:
        while True:
            hits = resp["hits"]["hits"]
            if not hits:
                break
            body: list[dict[str, Any]] = []
            for h in hits:
                meta: dict[str, Any] = {"_index": index, "_id": h["_id"]}
                if h.get("_routing") is not None:
                    meta["routing"] = h["_routing"]
                body.append({"delete": meta})
            client.bulk(body=body)
            deleted += len(hits)
            resp = client.scroll(scroll_id=scroll_id, scroll="2m")
            scroll_id = resp.get("_scroll_id")
    finally:
        if scroll_id:
            try:
                client.clear_scroll(scroll_id=scroll_id)
            except TransportError:
                pass
    client.indices.refresh(index=index)
    return deleted


def live_definition(client: OpenSearch, index: str) -> dict[str, Any]:
    """The index's settings, mappings and aliases, minus what only the cluster may set."""
    got = client.indices.get(index=index)[index]
    settings = dict(got.get("settings", {}).get("index", {}))
    for key in _VOLATILE_SETTINGS:
        settings.pop(key, None)
    return {"settings": {"index": settings}, "mappings": got.get("mappings", {}), "aliases": got.get("aliases", {})}


def recreate(client: OpenSearch, index: str, definition: Mapping[str, Any] | None) -> None:
    body = dict(definition) if definition else live_definition(client, index)
    client.indices.delete(index=index)
    client.indices.create(index=index, body=body)


def remove_documents(
    client: OpenSearch, index: str, method: Method, definition: Mapping[str, Any] | None = None
) -> Method:
    """Empty one index the stage wrote to; returns the method that actually ran."""
    try:
        if method == "recreate":
            recreate(client, index, definition)
            return "recreate"
        if method == "delete_by_query":
            try:
                delete_by_query(client, index)
                return "delete_by_query"
            except RequestError as exc:
                if "no handler found" not in str(exc.error) + str(exc.info):
                    raise
        delete_by_ids(client, index)
        return "delete_by_ids"
    except NotFoundError:
        return method


# --------------------------------------------------------------------------- by the ids written


@dataclass(frozen=True)
class ReadUnit:
    """One snapshot shard the stage worked on (or may have: a unit a killed worker held)."""

    snapshot: str
    index: str
    shard: int
    threshold: int | None  # the sampling threshold the stage used (None: everything)


def written_documents(repo: Any, units: Iterable[ReadUnit], transformer: Any) -> Iterator[tuple[str, str, str | None]]:
    """(target index, id, routing) of every document the stage wrote from `units`.

    The snapshot's live documents pass through the same sampler and transform chain the
    workers used: what comes out is what was written. A unit a worker held when it was
    killed yields all its documents, whether or not each reached the target: a delete of
    an id the stage never wrote is a no-op ("not_found"), and an id it did write was its.
    """
    from mactl.backfill.sampling import Sampler

    for unit in units:
        sampler = Sampler(unit.threshold)
        for doc in repo.documents(unit.snapshot, unit.index, unit.shard):
            if not sampler.keep(doc.id) or not doc.source:
                continue
            if transformer.is_identity:
                yield doc.index, doc.id, doc.routing
                continue
            import orjson

            out = transformer.apply(
                doc.index, doc.id, doc.routing, orjson.loads(doc.source), getattr(doc, "type", None)
            )
            if out is not None:
                yield out.index, out.id, out.routing


def delete_documents(
    client: OpenSearch, docs: Iterable[tuple[str, str, str | None]], *, skip: Iterable[str] = (), batch: int = 2000
) -> dict[str, int]:
    """Bulk-delete exactly these (index, id, routing); returns per index how many were found and deleted.

    Indices in `skip` are left out (they are emptied another way). A document already gone
    is fine; any other failure to delete stops the rollback, naming it.
    """
    from mactl.errors import ProviderError

    skipped = set(skip)
    deleted: dict[str, int] = {}
    touched: set[str] = set()
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        if not pending:
            return
        resp = client.bulk(body=pending)
        for item in resp.get("items") or []:
            result = item.get("delete") or {}
            status = int(result.get("status") or 0)
            if status == 200:
                deleted[result["_index"]] = deleted.get(result["_index"], 0) + 1
            elif status != 404:
                raise ProviderError(
                    f"rollback could not delete document {result.get('_id')} from {result.get('_index')}: "
                    f"{result.get('error')}"
                )
        pending.clear()

    for index, doc_id, routing in docs:
        if index in skipped:
            continue
        meta: dict[str, Any] = {"_index": index, "_id": doc_id}
        if routing is not None:
            meta["routing"] = routing
        pending.append({"delete": meta})
        touched.add(index)
        if len(pending) >= batch:
            flush()
    flush()
    for index in sorted(touched):
        try:
            client.indices.refresh(index=index)
        except NotFoundError:
            continue
    return {i: deleted.get(i, 0) for i in sorted(touched)}
