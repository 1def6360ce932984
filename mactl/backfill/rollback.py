"""Undoing a backfill: remove the documents it wrote, and its working state.

Three ways, chosen by the stage's `rollbackMode` and what the target can do:
- `delete_by_query`: `_delete_by_query` match_all on each index the stage wrote to. It
  needs the target's reindex module; a target without it answers "no handler found".
- `delete_by_ids`: the fallback that needs no module: scroll the index's ids (with
  routing) and bulk-delete them. Same effect, more requests.
- `recreate`: drop the index and create it again empty from its definition (the
  metadata stage's recorded one if given, else the live one read just before dropping).
Which one ran is returned so the state can record it.
"""

from __future__ import annotations

from collections.abc import Mapping
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
