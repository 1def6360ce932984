"""The `_bulk` write path on the real target: routing kept, rejections, retries through a cut."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import orjson
import pytest
from bf_fixtures import name
from bf_proxy import TcpProxy
from opensearchpy import OpenSearch

from mactl.backfill.bulk import Batch, BulkSender, Item, RateLimiter, action_line, source_line

pytestmark = pytest.mark.cluster


def _batch(index: str, docs: list[tuple[str, str | None, dict[str, Any]]]) -> Batch:
    batch = Batch()
    for doc_id, routing, source in docs:
        batch.add(Item(action_line(index, doc_id, routing) + source_line(orjson.dumps(source)), index, doc_id, routing))
    return batch


def test_rejected_items_come_back_with_reasons_and_the_rest_is_written_with_routing(target: OpenSearch) -> None:
    index = name(f"bulk-{uuid.uuid4().hex[:4]}")
    target.indices.create(
        index=index, body={"settings": {"number_of_shards": 3}, "mappings": {"properties": {"n": {"type": "long"}}}}
    )
    docs = [(f"d{i}", f"r{i % 4}" if i % 2 else None, {"n": "not a number" if i % 10 == 0 else i}) for i in range(100)]
    result = BulkSender(target).send(_batch(index, docs))
    assert result.written == 90 and result.written_by_index == {index: 90}
    assert sorted(r.item.id for r in result.rejected) == sorted(f"d{i}" for i in range(0, 100, 10))
    assert {r.status for r in result.rejected} == {400}
    assert {r.reason["type"] for r in result.rejected} == {"mapper_parsing_exception"}
    got = target.get(index=index, id="d3", routing="r3")
    assert got["_routing"] == "r3" and got["_source"] == {"n": 3}
    # idempotent: sending again changes nothing but versions
    BulkSender(target).send(_batch(index, docs))
    target.indices.refresh(index=index)
    assert target.count(index=index)["count"] == 90


def test_documents_skip_the_target_default_pipeline(target: OpenSearch) -> None:
    """A snapshot's documents already went through the source's pipeline: the target's
    `default_pipeline` must not run on them again (here it does not even exist, so running
    it would reject every document, as it did before)."""
    index = name(f"bulk-pipe-{uuid.uuid4().hex[:4]}")
    target.indices.create(
        index=index, body={"settings": {"number_of_replicas": 0, "index.default_pipeline": f"{index}-absent"}}
    )
    docs = [(f"d{i}", None, {"n": i}) for i in range(20)]
    result = BulkSender(target).send(_batch(index, docs))
    assert result.written == 20 and not result.rejected
    assert target.get(index=index, id="d7")["_source"] == {"n": 7}


def test_multiline_source_is_made_one_line() -> None:
    assert source_line(b'{\n  "a": 1\n}') == b'{"a":1}\n'
    assert source_line(b'{"a":"x\\ny"}') == b'{"a":"x\\ny"}\n'


def test_a_cut_connection_is_retried_until_the_target_is_back(os2: Any, target: OpenSearch) -> None:
    index = name(f"bulk-{uuid.uuid4().hex[:4]}")
    host, port = os2.url.rsplit("//", 1)[1].split(":")
    proxy = TcpProxy(host, int(port))
    try:
        client = OpenSearch(proxy.url, timeout=10, max_retries=0)
        proxy.cut()
        threading.Timer(2.0, proxy.restore).start()
        started = time.monotonic()
        result = BulkSender(client, retry_deadline_s=60).send(
            _batch(index, [(f"d{i}", None, {"i": i}) for i in range(50)])
        )
        assert time.monotonic() - started >= 1.5 and result.retries >= 1 and result.written == 50
        assert proxy.refused >= 1
    finally:
        proxy.close()


def test_rate_limiter_spaces_requests() -> None:
    limiter = RateLimiter(1024 * 1024)  # 1 MiB/s
    started = time.monotonic()
    for _ in range(3):
        limiter.acquire(256 * 1024)
    assert time.monotonic() - started >= 0.45


def test_delete_by_ids_removes_routed_documents_without_the_reindex_module(target: OpenSearch) -> None:
    from mactl.backfill.rollback import delete_by_ids

    index = name(f"ids-{uuid.uuid4().hex[:4]}")
    target.indices.create(index=index, body={"settings": {"number_of_shards": 3}})
    docs = [(f"d{i}", f"r{i % 4}" if i % 2 else None, {"i": i}) for i in range(120)]
    assert BulkSender(target).send(_batch(index, docs)).written == 120
    target.indices.refresh(index=index)
    assert delete_by_ids(target, index, page=50) == 120
    assert target.count(index=index)["count"] == 0
