"""The ledger as a user meets it: `mactl apply`, `status`, `audit` and validation, end to end.

One migration of the session's three indices (nested, `_source` disabled and skipped, and
one whose documents the target refuses) with validation on: the backfill finishes
`complete_with_errors`, validation fails on the dead letters, and passes once
`thresholds.maxFailedDocs` allows them, without the backfill running again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import ledger_data as data  # type: ignore[import-not-found]
import pytest
import yaml
from opensearchpy import OpenSearch

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _mactl(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mactl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "COLUMNS": "250"},
    )


def _config(tmp: Path, src: Any, max_failed: int) -> None:
    indices = {"names": [data.NESTED, data.NOSRC, data.CONFLICT]}
    config = {
        "targets": [{"name": "t1", "endpoint": src.os_url}],
        "source-migration-configurations": [
            {
                "source": {
                    "name": f"lg{data.RUN}",
                    "endpoint": src.es_url,
                    "snapshotRepository": {"type": "fs", "location": str(src.repo_dir), "name": data.REPO},
                },
                "snapshot-and-migration-configs": [
                    {
                        "name": "s1",
                        "existingSnapshot": {"name": src.snapshot},
                        "migrations": [
                            {
                                "name": "m0",
                                "metadata": {"indices": [indices], "onExisting": "skip", "templates": False},
                                "documentBackfillConfigs": [
                                    {"name": "b0", "indices": [indices], "workers": 2, "onUnmigratable": "skip"}
                                ],
                            }
                        ],
                    }
                ],
                # the conflict index was made on the target with other mappings on purpose (so that
                # its documents are refused): the mappings check would only report that again
                "validation": {
                    "sampleSize": 20,
                    "seed": 1,
                    "checkMappings": False,
                    "thresholds": {"maxFailedDocs": max_failed},
                },
            }
        ],
    }
    (tmp / "mactl.yaml").write_text(yaml.safe_dump(config))


def test_dead_letters_complete_with_errors_and_fail_validation_until_the_threshold_allows_them(
    ledger_source: Any, target: OpenSearch, tmp_path: Path
) -> None:
    data.conflicting_target_index(target)
    _config(tmp_path, ledger_source, max_failed=0)
    plan = _mactl(tmp_path, "plan")
    assert plan.returncode == 0, plan.stderr
    assert f"index {data.NOSRC} cannot be backfilled: _source is disabled" in plan.stdout
    assert "skipped (onUnmigratable: skip)" in plan.stdout
    run = _mactl(tmp_path, "apply", "-auto-approve")
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    backfill = f"backfill.lg{data.RUN}.s1.t1.m0.b0"
    validate = f"validate.lg{data.RUN}.t1"
    # apply's summary names the stage, the index, the count and the reason
    assert "Finished with errors (recorded as complete_with_errors)" in run.stdout
    assert (
        f"{data.CONFLICT}: {data.N_CONFLICT} dead-lettered (mapper_parsing_exception {data.N_CONFLICT})" in run.stdout
    )
    assert (
        f"{validate} FAILED" in run.stderr and f"{data.CONFLICT}: ledger: {data.N_CONFLICT} dead-lettered" in run.stderr
    )

    status = json.loads(_mactl(tmp_path, "status", "--json").stdout)
    stages = {s["address"]: s for s in status["stages"]}
    assert stages[backfill]["status"] == "complete_with_errors"
    assert stages[backfill]["errors"].startswith(f"{data.N_CONFLICT} document(s) dead-lettered")
    ledger = stages[backfill]["ledger"]
    assert set(ledger) == {data.NESTED, data.NOSRC, data.CONFLICT}
    assert ledger[data.NESTED]["written"] == ledger_source.counts[data.NESTED]
    assert ledger[data.NOSRC]["notMigratable"] == ledger_source.counts[data.NOSRC]
    assert ledger[data.CONFLICT]["deadLettered"] == ledger_source.counts[data.CONFLICT]
    text = _mactl(tmp_path, "status").stdout
    assert "complete_with_errors" in text and "document ledger of" in text and "mapper_parsing_exception" in text

    audit = _mactl(tmp_path, "audit", "--json")
    assert audit.returncode == 1
    report = json.loads(audit.stdout)["reports"][0]
    rows = {r["index"]: r for r in report["ledger"]}
    assert set(rows) == {data.NESTED, data.NOSRC, data.CONFLICT}  # every selected index, also those that got nothing
    assert rows[data.CONFLICT]["passed"] is False and rows[data.NESTED]["passed"] and rows[data.NOSRC]["passed"]
    assert "not migratable" in rows[data.NOSRC]["detail"]
    counts = {r["index"]: r["checks"]["count"] for r in report["indices"]}
    assert counts[data.NESTED]["target"] == counts[data.NESTED]["expected"] == ledger_source.counts[data.NESTED]
    assert counts[data.CONFLICT]["passed"] and counts[data.CONFLICT]["target"] == 0
    for fmt in ((), ("--markdown",)):
        out = _mactl(tmp_path, "audit", *fmt).stdout
        assert "ocument ledger" in out and data.CONFLICT in out and "mapper_parsing_exception" in out
    html = tmp_path / "audit.html"
    _mactl(tmp_path, "audit", "--html", str(html))
    assert "Document ledger" in html.read_text() and data.NOSRC in html.read_text()

    # the threshold allows the dead letters: only validation runs again, and passes
    _config(tmp_path, ledger_source, max_failed=data.N_CONFLICT)
    plan = _mactl(tmp_path, "plan", "-detailed-exitcode")
    assert plan.returncode == 2 and f'stage "{validate}"' in plan.stdout, plan.stdout
    assert f'stage "{backfill}"' not in plan.stdout  # complete_with_errors is not re-run by itself
    run = _mactl(tmp_path, "apply", "-auto-approve")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert _mactl(tmp_path, "audit").returncode == 0
    status = json.loads(_mactl(tmp_path, "status", "--json").stdout)
    stages = {s["address"]: s for s in status["stages"]}
    assert stages[backfill]["status"] == "complete_with_errors"  # still visible, not re-run
    assert stages[validate]["status"] == "complete"
    again = _mactl(tmp_path, "plan", "-detailed-exitcode")
    assert again.returncode == 0, again.stdout[-3000:]
