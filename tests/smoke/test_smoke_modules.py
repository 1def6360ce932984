"""Smoke tests for the modules devtools.local adds to the integ-test zips (see modules.py):
reindex from remote, _delete_by_query, painless and the common analyzers on the 2.x target,
and reindex/_delete_by_query on the ES 7.10.2 source."""

from __future__ import annotations

import uuid

import pytest
from opensearchpy import OpenSearch

pytestmark = pytest.mark.cluster


def _client(url: str) -> OpenSearch:
    return OpenSearch(hosts=[url], timeout=120)


def test_target_reindexes_from_remote_source_then_deletes_and_scripts(es710, os2) -> None:
    index = f"smoke-mod-{uuid.uuid4().hex[:10]}"
    source, target = _client(es710.url), _client(os2.url)
    docs = {str(i): {"n": i, "title": f"Café number {i}"} for i in range(30)}
    try:
        for doc_id, body in docs.items():
            source.index(index=index, id=doc_id, body=body)
        source.indices.refresh(index=index)
        removed = source.delete_by_query(
            index=index, body={"query": {"range": {"n": {"gte": 20}}}}, params={"refresh": "true"}
        )
        assert removed["deleted"] == 10

        # The source is reached by its loopback address, which the target allow-lists.
        result = target.reindex(
            body={"source": {"remote": {"host": es710.url}, "index": index}, "dest": {"index": index}},
            params={"refresh": "true", "wait_for_completion": "true"},
        )
        assert (result["created"], result["failures"]) == (20, [])
        for doc_id in ("0", "19"):
            assert target.get(index=index, id=doc_id)["_source"] == docs[doc_id]

        assert (
            target.delete_by_query(
                index=index, body={"query": {"range": {"n": {"lt": 5}}}}, params={"refresh": "true"}
            )["deleted"]
            == 5
        )
        updated = target.update_by_query(
            index=index,
            body={"script": {"lang": "painless", "source": "ctx._source.double = ctx._source.n * 2"}},
            params={"refresh": "true"},
        )
        assert updated["updated"] == 15
        assert target.get(index=index, id="7")["_source"] == {**docs["7"], "double": 14}
    finally:
        source.indices.delete(index=index, ignore_unavailable=True)
        target.indices.delete(index=index, ignore_unavailable=True)


def test_target_has_the_common_analyzers(os2) -> None:
    target = _client(os2.url)
    tokens = target.indices.analyze(
        body={
            "tokenizer": "standard",
            "filter": ["lowercase", "asciifolding", "stop"],
            "text": "The Café au Lait",
        }
    )["tokens"]
    assert [t["token"] for t in tokens] == ["cafe", "au", "lait"]
    pattern = target.indices.analyze(body={"analyzer": "pattern", "text": "one-Two_three"})["tokens"]
    assert [t["token"] for t in pattern] == ["one", "two_three"]
