"""The ledger's arithmetic and its renderings, without a cluster (the cluster tests prove the counts)."""

from __future__ import annotations

from typing import Any

from mactl.audit.checks import check_ledger
from mactl.audit.render import render_html, render_markdown, render_text
from mactl.backfill.leases import Counters, UnitRecord
from mactl.backfill.progress import summarise
from mactl.backfill.verify import build_ledger, errors_summary, ledger_differences
from mactl.snapshot_reader.repository import has_nested_fields, source_disabled


def _unit(index: str, shard: int, total: int, **counts: Any) -> UnitRecord:
    c = Counters(**counts)
    return UnitRecord(
        f"{index}/{shard}",
        {"index": index, "shard": shard, "total": total, "status": "done", "counters": c.to_json()},
        1,
        1,
    )


def test_the_ledger_adds_up_per_index_and_names_what_is_unaccounted() -> None:
    a = Counters(read=10, written=6, failed=2, skipped=1, dropped=1)
    a.add_failure(400, {"type": "mapper_parsing_exception", "reason": "failed to parse field [code]"})
    a.add_failure(400, {"type": "mapper_parsing_exception", "reason": "failed to parse field [code]"})
    snap = summarise(
        [
            UnitRecord("a/0", {"index": "a", "shard": 0, "total": 10, "status": "done", "counters": a.to_json()}, 1, 1),
            _unit("a", 1, 5, read=5, written=5),
            _unit("b", 0, 7, read=7, unmigratable=7),
            _unit("c", 0, 9, read=8, written=8),  # one document in no column
        ]
    )
    ledger = build_ledger(snap, {"b": "_source is disabled"})
    assert ledger["a"] == {
        "live": 15,
        "written": 11,
        "deadLettered": 2,
        "skippedBySampling": 1,
        "droppedByTransform": 1,
        "notMigratable": 0,
        "unaccounted": 0,
        "shardsDone": 2,
        "shards": 2,
        "deadLetterReasons": {"mapper_parsing_exception": 2},
        "deadLetterExamples": {"mapper_parsing_exception": "failed to parse field [code]"},
    }
    assert ledger["b"]["notMigratable"] == 7 and ledger["b"]["notMigratableReason"] == "_source is disabled"
    assert ledger_differences(ledger) == ["c: 1 of the snapshot's 9 live documents are in no column of the ledger"]
    errors = errors_summary(ledger)
    assert errors is not None and errors["deadLettered"] == 2
    assert errors["summary"] == "2 document(s) dead-lettered: a 2 (mapper_parsing_exception 2)"
    assert errors_summary({"b": ledger["b"]}) is None  # skipped unmigratable documents are not errors


def test_the_ledger_check_fails_on_dead_letters_unless_the_threshold_allows_them() -> None:
    row = {"live": 30, "written": 0, "deadLettered": 30, "unaccounted": 0, "deadLetterReasons": {"x_exception": 30}}
    failed = check_ledger("idx", row, 0)
    assert not failed["passed"]
    assert failed["detail"] == "30 dead-lettered (x_exception 30); at most 0 allowed (thresholds.maxFailedDocs)"
    assert check_ledger("idx", row, 30)["passed"]
    assert not check_ledger("idx", {"live": 5, "written": 4, "deadLettered": 0, "unaccounted": 1}, 0)["passed"]
    nm = check_ledger("n", {"live": 4, "notMigratable": 4, "unaccounted": 0, "notMigratableReason": "no _source"}, 0)
    assert nm["passed"] and nm["detail"] == "4 not migratable: no _source"


def test_every_rendering_shows_the_ledger() -> None:
    report = {
        "address": "validate.es.t",
        "passed": False,
        "source": "es",
        "target": "t",
        "finishedAt": 0,
        "thresholds": {},
        "failures": ["idx: ledger: 30 dead-lettered"],
        "indices": [],
        "queries": [],
        "replay": [],
        "ledger": [
            {
                **check_ledger(
                    "idx",
                    {"live": 30, "deadLettered": 30, "unaccounted": 0, "deadLetterReasons": {"x_exception": 30}},
                    0,
                )
            },
            {**check_ledger("empty", {"live": 0, "unaccounted": 0}, 0)},
        ],
    }
    text = render_text([report])
    assert "document ledger" in text and "x_exception 30" in text and "empty" in text
    md = render_markdown([report])
    assert "| `idx` | 30 | 0 | 30 | 0 | 0 | 0 | 0 | FAIL | x_exception 30 |" in md
    assert "<h3>Document ledger</h3>" in render_html([report])


def test_nested_fields_and_disabled_source_are_found_in_mappings() -> None:
    assert has_nested_fields({"properties": {"a": {"properties": {"b": {"type": "nested"}}}}})
    assert not has_nested_fields({"properties": {"type": {"type": "keyword"}}})
    assert source_disabled({"_source": {"enabled": False}, "properties": {}})
    assert source_disabled({"t1": {"_source": {"enabled": "false"}}, "t2": {}}, ["t1", "t2"])
    assert not source_disabled({"_source": {"excludes": ["x"]}})
