"""`backfill resend-failed` on the books, on the real clusters (the quickstart, ES 7.10.2 →
OpenSearch 2.19): every document of one index dead-letters against a strict mapping
the target already had; once the mapping is fixed, a resend writes them, and the
backfill stage's outputs, its status, the history and the validation all say so.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from wf_data import docs_of, request  # type: ignore[import-not-found]
from wf_helpers import Quickstart  # type: ignore[import-not-found]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _state(qs: Quickstart) -> dict[str, Any]:
    pulled = qs.run("state", "pull")
    assert pulled.code == 0, pulled.err
    state: dict[str, Any] = json.loads(pulled.out)
    return state


def test_resend_failed_updates_the_books_and_validation_passes_after_it(
    quickstart: Quickstart, es710: Any, os2: Any
) -> None:
    qs = quickstart
    text = qs.config.read_text()
    assert "            metadata:\n" in text
    qs.config.write_text(
        text.replace("            metadata:\n", "            metadata:\n              onExisting: skip\n")
    )
    src = qs.source_name
    logs = f"{qs.prefix}-logs-2024.01"
    backfill, validate = f"backfill.{src}.snap.os2.m0.b0", f"validate.{src}.os2"
    # the target already has the index, with a strict mapping that lacks `message`: every document is refused
    strict = {
        "dynamic": "strict",
        "properties": {
            "@timestamp": {"type": "date"},
            "level": {"type": "keyword"},
            "service": {"type": "keyword"},
            "latency_ms": {"type": "integer"},
        },
    }
    request(
        os2.url, "PUT", f"/{logs}", {"settings": {"number_of_shards": 1, "number_of_replicas": 0}, "mappings": strict}
    )
    source_docs = docs_of(es710.url, logs)
    assert len(source_docs) == 400

    first = qs.run("apply", "-auto-approve")
    books = _state(qs)["stages"][backfill]["outputs"]
    assert books["indices"][logs]["failed"] == 400 and books["indices"][logs]["written"] == 0, first.out[-3000:]
    assert books["deadLetter"]["documents"] == 400
    assert books["ledger"][logs]["live"] == 400 and books["ledger"][logs]["deadLettered"] == 400
    assert books["ledger"][logs]["written"] == 0 and books["ledger"][logs]["unaccounted"] == 0
    assert "completeWithErrors" in books
    assert docs_of(os2.url, logs) == {}

    # fix the mapping on the target, then resend what failed
    request(os2.url, "PUT", f"/{logs}/_mapping", {"dynamic": "true", "properties": {"message": {"type": "text"}}})
    resent = qs.run("backfill", "resend-failed", backfill)
    assert resent.code == 0, resent.out + resent.err
    assert "400 written, 0 still failing" in resent.out
    assert docs_of(os2.url, logs) == source_docs  # every document, byte for byte `_source`

    state = _state(qs)
    record = state["stages"][backfill]
    assert record["status"] == "complete"
    after = record["outputs"]
    assert after["indices"][logs]["written"] == 400 and after["indices"][logs]["failed"] == 0
    assert after["deadLetter"]["documents"] == 0
    assert after["targetIndices"][logs] == {"expected": 400, "actual": 400}
    assert after["differences"] == []
    ledger = after["ledger"][logs]
    assert (ledger["live"], ledger["written"], ledger["deadLettered"], ledger["unaccounted"]) == (400, 400, 0, 0)
    assert "deadLetterReasons" not in ledger and "completeWithErrors" not in after
    entry = state["history"][-1]
    assert (entry["operation"], entry["address"], entry["result"]) == ("backfill resend-failed", backfill, "ok")
    # The validation before the resend failed on the dead letters (no threshold allows them).
    assert first.code != 0 and state["stages"][validate]["status"] == "failed", first.out[-3000:] + first.err[-3000:]

    # the next apply validates again, against the target as it is now, and passes
    second = qs.run("apply", "-auto-approve")
    assert second.code == 0, second.out[-3000:] + second.err[-3000:]
    audit = qs.run("audit", "--json")
    assert audit.code == 0, audit.err
    (report,) = json.loads(audit.out)["reports"]
    assert report["passed"], report["failures"]
    rows = {r["index"]: r["checks"] for r in report["indices"]}
    assert rows[logs]["count"]["target"] == 400
    plan = qs.run("plan", "-detailed-exitcode")
    assert plan.code == 0, plan.out[-3000:] + plan.err[-3000:]
