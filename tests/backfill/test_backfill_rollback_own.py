"""Backfill rollback removes exactly the documents the stage wrote (issue 15 item 3).

On a target index mactl did not create (it was there before; the metadata stage would
leave it alone as existing), rollback deletes the stage's documents by the ids it wrote,
re-read from the snapshot through the same sampling and transforms; documents anyone else
wrote stay, byte for byte. Only an index the metadata stage recorded it created may be
emptied whole.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from bf_fixtures import SourceSnapshot, name, scan_docs, stage_address
from mactl.providers.backfill import BackfillProvider
from mactl.providers.base import StageContext
from opensearchpy import OpenSearch

from mactl.backfill.spec import build_spec
from mactl.errors import ProviderError
from mactl.schema.backfill import BackfillInputs

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

DROP_FIVES = (
    "{% if _source.nested.b % 5 == 0 %}{{ DROP }}{% else %}"
    '{"_index": "INDEX", "_source": {{ _source | tojson }}}{% endif %}'
)


def _ctx(
    inputs: BackfillInputs,
    address: str,
    tmp: Path,
    *,
    prior: dict[str, Any] | None = None,
    upstream: dict[str, Any] | None = None,
    logs: list[str] | None = None,
    checkpoints: list[dict[str, Any]] | None = None,
) -> StageContext[BackfillInputs]:
    return StageContext(
        address=address,
        type="backfill",
        inputs=inputs,
        prior_outputs=prior,
        upstream=upstream or {},
        checkpoint_data=None,
        workdir=tmp / "work",
        log=(logs if logs is not None else []).append,
        checkpoint=(checkpoints if checkpoints is not None else []).append,
    )


def _someone_elses(target: OpenSearch, index: str, ids: list[str]) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """Documents written to `index` outside mactl (some routed, one id the stage never writes)."""
    body: list[dict[str, Any]] = []
    for i, doc_id in enumerate(ids):
        meta: dict[str, Any] = {"_index": index, "_id": doc_id}
        if i % 2:
            meta["routing"] = f"theirs{i}"
        body += [{"index": meta}, {"owner": "someone else", "i": i, "text": 'ünïcödé "q"'}]
    target.bulk(body=body, refresh=True)
    return {d: v for d, v in scan_docs(target, index).items() if d in ids}


def _inputs(src: SourceSnapshot, **extra: Any) -> BackfillInputs:
    return BackfillInputs.model_validate(
        {
            "target": {"name": "target", "endpoint": src.os_url},
            "repository": {"type": "fs", "location": str(src.repo_dir)},
            "snapshotName": src.snapshot,
            "indices": [{"names": [src.index]}],
            "workers": 2,
            "leaseSeconds": 3,
            # someone else's documents are in the same index: the count check would (rightly) differ
            "verifyCounts": False,
            **extra,
        }
    )


def test_rollback_on_an_index_mactl_did_not_create_deletes_only_the_written_ids(
    source_snapshot: SourceSnapshot, target: OpenSearch, tmp_path: Path
) -> None:
    src = source_snapshot
    # The target index exists before mactl (created outside it, same mapping as the source's).
    mapping = OpenSearch(src.es_url).indices.get_mapping(index=src.index)[src.index]["mappings"]
    target.indices.create(
        index=src.index, body={"settings": {"number_of_shards": 2, "number_of_replicas": 0}, "mappings": mapping}
    )
    theirs = _someone_elses(target, src.index, [f"other-{i}" for i in range(40)])
    inputs = _inputs(src)
    address = stage_address()
    provider = BackfillProvider()
    outputs = provider.apply(_ctx(inputs, address, tmp_path))
    written = scan_docs(target, src.index)
    assert set(written) == set(src.live_ids) | set(theirs)

    # Destroy with the working state (leases) present: the units it worked on are re-read.
    checkpoints: list[dict[str, Any]] = []
    provider.rollback(_ctx(inputs, address, tmp_path, prior=outputs, checkpoints=checkpoints))
    assert scan_docs(target, src.index) == theirs  # exactly the backfilled ids are gone
    assert checkpoints[-1]["rolledBack"][src.index].startswith("delete_by_written_ids")
    assert not target.indices.exists(index=build_spec(address, inputs, workdir=tmp_path).state_index)


def test_the_count_check_expects_the_documents_an_existing_index_held_before(
    source_snapshot: SourceSnapshot, target: OpenSearch, tmp_path: Path
) -> None:
    """An index that was on the target first (the metadata stage left it alone: `onExisting:
    skip`, or identical): the count check expects its own documents plus the ledger's,
    counted once before the first write and recorded for a resumed run. Before, it
    expected only the ledger's and failed every backfill into such an index."""
    src = source_snapshot
    target.indices.create(index=src.index, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    theirs = _someone_elses(target, src.index, [f"other-{i}" for i in range(7)])
    inputs = _inputs(src, verifyCounts=True)
    # what the metadata stage records when it leaves an existing index alone
    found = {"kind": "index", "name": src.index, "outcome": "skipped", "reason": "already on the target"}
    upstream = {"metadata.src.snap.t.m0": {"created": [], "report": {"items": [found]}}}
    checkpoints: list[dict[str, Any]] = []
    outputs = BackfillProvider().apply(
        _ctx(inputs, stage_address(), tmp_path, upstream=upstream, checkpoints=checkpoints)
    )
    assert outputs["differences"] == []
    live = len(src.live_ids)
    assert outputs["targetIndices"][src.index] == {"expected": live + 7, "actual": live + 7}
    assert checkpoints[0]["documentsBefore"] == outputs["documentsBefore"] == {src.index: 7}
    assert {d: v for d, v in scan_docs(target, src.index).items() if d in theirs} == theirs


def test_rollback_after_transforms_and_lost_working_state_keeps_others_documents(
    source_snapshot: SourceSnapshot, target: OpenSearch, tmp_path: Path
) -> None:
    src = source_snapshot
    renamed = name(f"own-{uuid.uuid4().hex[:4]}")
    target.indices.create(index=renamed, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    # doc-5 is dropped by the transform (nested.b % 5 == 0): the stage never wrote it, so
    # someone else's doc-5 must survive; doc-1 is overwritten by the stage, so it is its.
    theirs = _someone_elses(target, renamed, ["doc-5", "doc-10", "other-a", "other-b"])
    inputs = _inputs(
        src, transforms=[{"kind": "jinja", "template": DROP_FIVES.replace("INDEX", renamed)}], sample={"percent": 60}
    )
    address = stage_address()
    provider = BackfillProvider()
    outputs = provider.apply(_ctx(inputs, address, tmp_path))
    on_target = scan_docs(target, renamed)
    mine = set(on_target) - set(theirs)
    assert mine and len(mine) < len(src.live_ids)  # sampled and dropped: a strict subset
    # The working state is gone (deleted by hand): the stage's outputs and the snapshot
    # still say which documents it wrote.
    target.indices.delete(index=build_spec(address, inputs, workdir=tmp_path).state_index)
    provider.rollback(_ctx(inputs, address, tmp_path, prior=outputs))
    assert scan_docs(target, renamed) == theirs


def test_rollback_empties_an_index_the_metadata_stage_created(
    source_snapshot: SourceSnapshot, target: OpenSearch, tmp_path: Path
) -> None:
    src = source_snapshot
    created = name(f"meta-{uuid.uuid4().hex[:4]}")
    target.indices.create(index=created, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    inputs = _inputs(src, transforms=[{"kind": "jinja", "template": DROP_FIVES.replace("INDEX", created)}])
    upstream = {"metadata.es.snap.t.m0": {"created": [{"kind": "index", "name": created}]}}
    address = stage_address()
    provider = BackfillProvider()
    outputs = provider.apply(_ctx(inputs, address, tmp_path, upstream=upstream))
    assert target.count(index=created)["count"] > 0
    checkpoints: list[dict[str, Any]] = []
    provider.rollback(_ctx(inputs, address, tmp_path, prior=outputs, upstream=upstream, checkpoints=checkpoints))
    target.indices.refresh(index=created)
    assert target.count(index=created)["count"] == 0
    assert checkpoints[-1]["rolledBack"] == {created: outputs["rollbackMethod"]}


def test_rollback_without_the_snapshot_fails_clearly_and_deletes_nothing(
    source_snapshot: SourceSnapshot, target: OpenSearch, tmp_path: Path
) -> None:
    src = source_snapshot
    index = name(f"gone-{uuid.uuid4().hex[:4]}")
    target.indices.create(index=index, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    theirs = _someone_elses(target, index, ["doc-1", "other-a"])
    inputs = _inputs(src, snapshotName=f"{src.snapshot}-deleted", indices=[{"names": [index]}])
    prior = {"snapshotName": f"{src.snapshot}-deleted", "targetIndices": {index: {"expected": 1, "actual": 2}}}
    with pytest.raises(ProviderError, match="cannot re-read the snapshot to find the documents this stage wrote"):
        BackfillProvider().rollback(_ctx(inputs, stage_address(), tmp_path, prior=prior))
    assert scan_docs(target, index) == theirs  # never a match_all on an index mactl did not create
