"""Ingest pipelines in the metadata stage, end to end on ES 7.10.2 → OpenSearch 2.x.

The shared test clusters run without the ingest-common module, so no processor exists on
either side: the pipelines migrated here have no processors (documents pass through them
unchanged), and the "processor the target lacks" case is a source pipeline read as data
and evaluated against the real target's processor list.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from rw_e2e import Migration, docs_by_id, request  # type: ignore[import-not-found]

from mactl.metadata.evaluate import evaluate
from mactl.metadata.items import Item, SourceMetadata
from mactl.schema.metadata import MetadataInputs

pytestmark = pytest.mark.cluster


def _bulk(url: str, index: str, docs: dict[str, dict[str, Any]]) -> None:
    lines = []
    for _id, doc in docs.items():
        lines += [json.dumps({"index": {"_index": index, "_id": _id}}), json.dumps(doc)]
    answer = request(url, "POST", "/_bulk?refresh=true", ndjson="\n".join(lines) + "\n")
    assert not answer["errors"], answer


def test_referenced_pipeline_is_migrated_backfilled_through_and_rolled_back_only_if_ours(
    migration: Migration,
) -> None:
    m, p = migration, migration.prefix
    es, os2 = m.source_url, m.target_url
    p1 = {"description": "tags the logs", "processors": [], "version": 7}
    p2 = {"description": "already on the target", "processors": []}
    assert request(es, "PUT", f"/_ingest/pipeline/{p}p1", p1) == {"acknowledged": True}
    assert request(es, "PUT", f"/_ingest/pipeline/{p}p2", p2) == {"acknowledged": True}
    assert request(es, "PUT", f"/_ingest/pipeline/{p}unused", p2) == {"acknowledged": True}
    # p2 is on the target already, identical: mactl must leave it alone, also on rollback
    assert request(os2, "PUT", f"/_ingest/pipeline/{p}p2", p2) == {"acknowledged": True}
    tmpl = {
        "index_patterns": [f"{p}logs-*"],
        "template": {"settings": {"number_of_shards": 1, "number_of_replicas": 0, "default_pipeline": f"{p}p1"}},
    }
    assert request(es, "PUT", f"/_index_template/{p}logs", tmpl) == {"acknowledged": True}
    request(es, "PUT", f"/{p}other", {"settings": {"number_of_replicas": 0, "index.final_pipeline": f"{p}p2"}})
    logs = {str(i): {"n": i, "msg": f"line {i}", "nested": {"a": [i, None]}} for i in range(40)}
    _bulk(es, f"{p}logs-1", logs)  # through p1 on the source too
    _bulk(es, f"{p}other", {"x": {"v": 1}})
    settings = request(es, "GET", f"/{p}logs-1/_settings?flat_settings=true")
    assert settings[f"{p}logs-1"]["settings"]["index.default_pipeline"] == f"{p}p1"

    evaluated = m.run("plan", "--evaluate")
    assert evaluated.code == 0, evaluated.err
    assert f"# would create pipeline {p}p1" in evaluated.out and f"{p}unused" not in evaluated.out
    applied = m.run("apply", "-auto-approve")
    assert applied.code == 0, applied.out[-4000:] + applied.err[-4000:]

    assert request(os2, "GET", f"/_ingest/pipeline/{p}p1") == {f"{p}p1": p1}
    assert request(os2, "GET", f"/_ingest/pipeline/{p}unused") == {}  # not referenced: not migrated
    got = request(os2, "GET", f"/{p}logs-1/_settings?flat_settings=true")
    assert got[f"{p}logs-1"]["settings"]["index.default_pipeline"] == f"{p}p1"
    assert docs_by_id(os2, f"{p}logs-1") == docs_by_id(es, f"{p}logs-1") and len(docs_by_id(os2, f"{p}logs-1")) == 40
    assert docs_by_id(os2, f"{p}other") == docs_by_id(es, f"{p}other")
    # the stage's report and outputs say what happened to each pipeline
    meta = next(s for a, s in m.state()["stages"].items() if a.startswith("metadata."))
    rows = {(r["kind"], r["name"]): r for r in meta["outputs"]["report"]["items"]}
    assert rows[("pipeline", f"{p}p1")]["outcome"] == "created"
    assert rows[("pipeline", f"{p}p2")]["outcome"] == "existing"
    assert ("pipeline", f"{p}unused") not in rows
    assert {"kind": "pipeline", "name": f"{p}p1"} in meta["outputs"]["created"]
    assert {"kind": "pipeline", "name": f"{p}p2"} not in meta["outputs"]["created"]

    destroyed = m.run("destroy", "-auto-approve")
    assert destroyed.code == 0, destroyed.out[-3000:] + destroyed.err[-3000:]
    assert request(os2, "GET", f"/_ingest/pipeline/{p}p1") == {}  # ours: deleted
    assert request(os2, "GET", f"/_ingest/pipeline/{p}p2") == {f"{p}p2": p2}  # the target's own: kept
    assert request(es, "GET", f"/_ingest/pipeline/{p}p1") == {f"{p}p1": p1}  # the source untouched


def test_referenced_pipeline_missing_everywhere_fails_before_any_document_is_written(migration: Migration) -> None:
    m, p = migration, migration.prefix
    es, os2 = m.source_url, m.target_url
    request(es, "PUT", f"/{p}fine", {"settings": {"number_of_replicas": 0}})
    _bulk(es, f"{p}fine", {"1": {"a": 1}})
    request(es, "PUT", f"/{p}ghosted", {"settings": {"number_of_replicas": 0}})
    _bulk(es, f"{p}ghosted", {str(i): {"a": i} for i in range(5)})
    # the pipeline was deleted (or never created) after the documents were written
    ack = request(es, "PUT", f"/{p}ghosted/_settings", {"index.default_pipeline": f"{p}ghost"})
    assert ack == {"acknowledged": True}

    plan = m.run("plan", "--evaluate")
    assert f"{p}ghost" in plan.out + plan.err and "would FAIL index" in plan.out, plan.out[-3000:] + plan.err
    applied = m.run("apply", "-auto-approve")
    assert applied.code != 0
    text = applied.out + applied.err
    # the preflight runs the metadata evaluation before anything (even the snapshot) is made
    assert f"index {p}ghosted cannot be migrated: index.default_pipeline names ingest pipeline '{p}ghost'" in text, (
        text[-3000:]
    )
    assert "every document written to it would be rejected" in text and "nothing was rolled back or changed" in text
    assert "Traceback" not in text
    # nothing was created on the target: not the failing index, not the others, no documents
    assert request(os2, "GET", f"/_cat/indices/{p}*?format=json") == []


def test_processor_the_target_lacks_is_named_at_evaluate(migration: Migration, os2: Any) -> None:
    m, p = migration, migration.prefix
    inputs = MetadataInputs.model_validate(
        {
            "source": {"name": "es", "endpoint": m.source_url},
            "target": {"name": "os2", "endpoint": m.target_url},
            "repository": {"type": "fs", "name": p.rstrip("-"), "location": str(m.repo_dir)},
            "snapshotName": "unused",
            "from": "live",
            "indices": [{"names": [f"{p}*"]}],
            "pipelines": {"include": "all", "filters": [{"names": [f"{p}*"]}]},
        }
    )
    enrich = {
        "processors": [
            {"set": {"field": "x", "value": 1}},
            {"foreach": {"field": "tags", "processor": {"grok": {"field": "_ingest._value", "patterns": ["%{WORD}"]}}}},
        ],
        "on_failure": [{"set": {"field": "error", "value": "{{ _ingest.on_failure_message }}"}}],
    }
    source = SourceMetadata(
        "elasticsearch",
        "7.10.2",
        [
            Item("pipeline", f"{p}enrich", enrich),
            Item("pipeline", f"{p}plain", {"processors": []}),
            Item(
                "index",
                f"{p}logs",
                {"settings": {"index.default_pipeline": f"{p}enrich"}, "mappings": {}, "aliases": {}},
            ),
        ],
        pipelines_origin="live",
    )
    ev = evaluate(inputs, source=source)
    by = {(i.kind, i.name): i for i in ev.items}
    bad = by[("pipeline", f"{p}enrich")]
    assert bad.action == "fail"
    assert "uses processor(s) the target does not have: foreach, grok, set" in bad.reason
    assert by[("pipeline", f"{p}plain")].action == "create"
    # the index that names it fails too: its documents would all be rejected
    assert by[("index", f"{p}logs")].action == "fail" and f"'{p}enrich'" in by[("index", f"{p}logs")].reason
    from mactl.metadata.report import render_evaluation

    text = render_evaluation("metadata.es.snap.os2.m0", ev)
    assert f"# would FAIL pipeline {p}enrich: uses processor(s) the target does not have: foreach, grok, set" in text
