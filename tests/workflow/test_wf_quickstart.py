"""examples/quickstart.yaml end to end on the real clusters, then the validation catching damage.

A client writes through the capture proxy while `mactl plan` and `mactl apply
-auto-approve` run capture → snapshot → metadata → backfill → replay → validate (the
same steps `scripts/demo` runs, here in-process on the session clusters). Then the
target is damaged on purpose and a re-run of the validate stage must fail, naming every
index and check that failed; `mactl audit` renders both reports from the state alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from opensearchpy import OpenSearch
from wf_data import docs_of  # type: ignore[import-not-found]
from wf_helpers import EXAMPLES, Quickstart  # type: ignore[import-not-found]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_quickstart_runs_end_to_end_and_validation_names_what_breaks(
    quickstart: Quickstart, es710: Any, os2: Any, tmp_path: Any
) -> None:
    qs = quickstart
    products, logs = f"{qs.prefix}-products", f"{qs.prefix}-logs-2024.01"
    client = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "quickstart_client.py"),
            "--proxy",
            f"http://127.0.0.1:{qs.proxy_port}",
            "--index",
            products,
            "--seconds",
            "4",
            "--wait",
            "240",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        plan = qs.run("plan")
        assert plan.code == 0, plan.err
        assert "Plan: 6 to create, 0 to update, 0 to replace, 0 to roll back." in plan.out
        applied = qs.run("apply", "-auto-approve")
        assert applied.code == 0, applied.out[-3000:] + applied.err[-3000:]
        written = json.loads(client.communicate(timeout=120)[0].strip().splitlines()[-1])
    finally:
        client.kill()
    assert written["created"] > 0 and written["updated"] > 0 and written["deleted"] > 0

    # the target holds exactly what the source holds, document by document
    assert docs_of(os2.url, products) == docs_of(es710.url, products)
    assert docs_of(os2.url, logs) == docs_of(es710.url, logs)

    audit = qs.run("audit", "--json")
    assert audit.code == 0, audit.err
    (report,) = json.loads(audit.out)["reports"]
    assert report["passed"] and report["failures"] == []
    rows = {r["index"]: r["checks"] for r in report["indices"]}
    assert set(rows) == {products, logs}
    assert rows[logs]["count"]["target"] == rows[logs]["count"]["expected"] == 400
    assert rows[products]["count"]["target"] == len(docs_of(es710.url, products))
    assert rows[products]["sample"]["checked"] == 50 and rows[products]["sample"]["matched"] == 50
    assert rows[logs]["mappings"]["passed"] and "skipped" not in rows[logs]["mappings"]
    assert [q["passed"] for q in report["queries"]] == [True, True]
    (replay,) = report["replay"]
    assert replay["requests"] > 0 and replay["statusMatchRate"] >= 0.99 and replay["latencyRatio"] is not None

    html = tmp_path / "audit.html"
    text = qs.run("audit", "--html", str(html))
    assert text.code == 0 and f"validate.{qs.source_name}.os2: PASSED" in text.out and str(html) in text.out
    page = html.read_text()
    assert page.count("<svg") == 3 and "<script" not in page and "src=" not in page and "<link" not in page
    assert "polyline" in page  # the backfill docs/s and replay lag timelines have points

    status = qs.run("status", "--json")
    assert status.code == 0, status.err
    stages = {s["address"]: s for s in json.loads(status.out)["stages"]}
    assert len(stages) == 6 and {s["status"] for s in stages.values()} == {"complete"}
    backfill = stages[f"backfill.{qs.source_name}.snap.os2.m0.b0"]
    assert backfill["duration_s"] is not None and backfill["progress"]["unit"] == "docs"
    assert backfill["progress"]["done"] == backfill["progress"]["total"]
    graph = qs.run("graph", "--state")
    assert graph.code == 0 and "complete" in graph.out

    # damage the target: one product gone, every log line changed, a setting changed
    target = OpenSearch(hosts=[os2.url], timeout=60)
    target.delete(index=products, id="SKU-00007", refresh=True)
    target.update_by_query(index=logs, body={"script": {"source": "ctx._source.tampered = true"}}, refresh=True)
    target.indices.put_settings(index=logs, body={"index": {"number_of_replicas": 1}})
    rerun = qs.run("apply", "-auto-approve", "-replace", f"validate.{qs.source_name}.os2")
    assert rerun.code != 0
    failed = rerun.out + rerun.err
    assert "Traceback" not in failed
    assert f"{products}: count: target has" in failed
    assert f"{logs}: sample: 0/50 sampled documents match" in failed
    assert f"{logs}: mappings:" in failed and "number_of_replicas" in failed
    assert f"{products}: query 'cheap products'" not in failed or "hits" in failed
    audit = qs.run("audit", "--markdown")
    assert audit.code == 1  # the recorded report failed
    assert "FAILED" in audit.out and f"- {products}: count:" in audit.out and f"- {logs}: sample:" in audit.out
