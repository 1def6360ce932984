"""The document ledger of a backfill stage, against real snapshot files (ES 7.10.2 → OpenSearch 2.x).

Each test runs the stage's `apply` in a subprocess (`tests/backfill/bf_driver.py`), with
real worker processes. Expectations come from the source cluster (its `_count` and its
documents at snapshot time) and from the snapshot files, never from the stage's outputs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import ledger_data as data  # type: ignore[import-not-found]
import pytest
from opensearchpy import OpenSearch

from mactl.backfill.prepare import lease_store
from mactl.backfill.progress import summarise
from mactl.backfill.sampling import Sampler, percent_threshold
from mactl.backfill.source import snapshot_uuid
from mactl.backfill.spec import build_spec
from mactl.schema.backfill import BackfillInputs
from mactl.snapshot_reader import open_repository

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

DRIVER = Path(__file__).resolve().parents[1] / "backfill" / "bf_driver.py"
COLUMNS = ("written", "deadLettered", "skippedBySampling", "droppedByTransform", "notMigratable")


def _address() -> str:
    return f"backfill.lg.snap.t.m{data.RUN}{uuid.uuid4().hex[:4]}.b0"


def _inputs(src: Any, indices: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "target": {"name": "target", "endpoint": src.os_url},
        "repository": {"type": "fs", "location": str(src.repo_dir)},
        "snapshotName": src.snapshot,
        "indices": [{"names": indices}],
        "leaseSeconds": 3,
        **extra,
    }


def _start(tmp: Path, inputs: dict[str, Any], address: str) -> subprocess.Popen[str]:
    path = tmp / f"inputs-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(inputs))
    return subprocess.Popen(
        [sys.executable, str(DRIVER), "apply", str(path), str(tmp / "work"), address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, MACTL_BACKFILL_CHECKPOINT_S="0.3"),
        start_new_session=True,
    )


def _apply(tmp: Path, inputs: dict[str, Any], address: str) -> tuple[int, dict[str, Any] | None, str]:
    proc = _start(tmp, inputs, address)
    out, err = proc.communicate(timeout=240)
    outputs = json.loads(out.strip().splitlines()[-1]) if proc.returncode == 0 else None
    return proc.returncode, outputs, err


def _balanced(row: dict[str, Any]) -> bool:
    return row["unaccounted"] == 0 and row["live"] == sum(row[c] for c in COLUMNS)


def test_nested_documents_are_counted_top_level_and_the_count_check_passes(
    ledger_source: Any, target: OpenSearch, tmp_path: Path
) -> None:
    repo = open_repository(ledger_source.repo_dir)
    lucene_live = sum(repo.live_doc_count(data.SNAPSHOT, data.NESTED, s) for s in range(3))
    top_level = sum(repo.top_level_doc_count(data.SNAPSHOT, data.NESTED, s) for s in range(3))
    expected = ledger_source.counts[data.NESTED]
    assert expected == data.N_NESTED - 50
    assert top_level == expected < lucene_live  # the hidden nested children are in Lucene's count
    rc, outputs, err = _apply(tmp_path, _inputs(ledger_source, [data.NESTED], workers=2), _address())
    assert rc == 0, err[-3000:]
    assert outputs is not None and outputs["differences"] == []
    row = outputs["ledger"][data.NESTED]
    assert (row["live"], row["written"], row["unaccounted"]) == (expected, expected, 0) and _balanced(row)
    assert outputs["targetIndices"][data.NESTED] == {"expected": expected, "actual": expected}
    assert "completeWithErrors" not in outputs
    source = data.scan(OpenSearch(ledger_source.es_url), data.NESTED)
    assert data.scan(target, data.NESTED) == source  # byte for byte: ids, routing, nested arrays


def test_kill_9_mid_run_then_resume_still_balances_the_nested_ledger(
    ledger_source: Any, target: OpenSearch, tmp_path: Path
) -> None:
    inputs = _inputs(ledger_source, [data.NESTED], workers=1, maxBatchDocs=10, maxThroughputMbps=0.4)
    address = _address()
    model = BackfillInputs.model_validate(inputs)
    spec = build_spec(address, model, workdir=tmp_path, snapshot_uuid=snapshot_uuid(model.repository, data.SNAPSHOT))
    proc = _start(tmp_path, inputs, address)
    deadline = time.monotonic() + 120
    progressed = None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            snap = summarise(lease_store(spec).units())
        except Exception:  # noqa: BLE001 - the working index may not exist yet
            snap = None
        if snap is not None and snap.done_docs > 0 and snap.units_done < snap.units_total:
            progressed = snap
            break
        time.sleep(0.2)
    assert progressed is not None, "the run finished before it could be killed; slow it down"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    rc, outputs, err = _apply(tmp_path, dict(inputs, maxThroughputMbps=None), address)
    assert rc == 0, err[-3000:]
    assert outputs is not None and outputs["differences"] == []
    expected = ledger_source.counts[data.NESTED]
    row = outputs["ledger"][data.NESTED]
    assert (row["live"], row["written"]) == (expected, expected) and _balanced(row)
    assert data.scan(target, data.NESTED) == data.scan(OpenSearch(ledger_source.es_url), data.NESTED)


DROP_MULTIPLES_OF_3 = (
    "{% if _source.n % 3 == 0 %}{{ DROP }}{% else %}"
    '{"_index": "' + data.PREFIX + '-sampled", "_source": {{ _source | tojson }}}{% endif %}'
)


def test_a_sampled_backfill_with_a_dropping_transform_balances_exactly(
    ledger_source: Any, target: OpenSearch, tmp_path: Path
) -> None:
    inputs = _inputs(
        ledger_source,
        [data.NESTED],
        workers=2,
        sample={"percent": 40},
        transforms=[{"kind": "jinja", "template": DROP_MULTIPLES_OF_3}],
    )
    rc, outputs, err = _apply(tmp_path, inputs, _address())
    assert rc == 0, err[-3000:]
    source = data.scan(OpenSearch(ledger_source.es_url), data.NESTED)
    sampler = Sampler(percent_threshold(40))
    kept = {i: d for i, d in source.items() if sampler.keep(i)}
    written = {i: d for i, d in kept.items() if d[1]["n"] % 3}
    assert outputs is not None and outputs["differences"] == []
    row = outputs["ledger"][data.NESTED]
    assert row == {
        **row,
        "live": len(source),
        "skippedBySampling": len(source) - len(kept),
        "droppedByTransform": len(kept) - len(written),
        "written": len(written),
        "deadLettered": 0,
        "notMigratable": 0,
        "unaccounted": 0,
    }
    assert 0 < len(written) < len(kept) < len(source)
    assert data.scan(target, f"{data.PREFIX}-sampled") == written


def test_source_disabled_index_fails_the_stage_before_any_write_unless_skipped(
    ledger_source: Any, target: OpenSearch, tmp_path: Path
) -> None:
    from mactl.providers.backfill import BackfillProvider

    address = _address()
    inputs = _inputs(ledger_source, [data.NESTED, data.NOSRC], workers=1)
    (note,) = BackfillProvider().plan_notes(BackfillInputs.model_validate(inputs))  # what `plan` shows
    assert note.startswith(f"index {data.NOSRC} cannot be backfilled: _source is disabled")
    assert "the stage will fail before writing any document" in note
    rc, _, err = _apply(tmp_path, inputs, address)
    assert rc != 0
    assert data.NOSRC in err and "_source is disabled" in err and "onUnmigratable: skip" in err
    assert not target.indices.exists(index=data.NESTED)  # nothing was written, not even the other index
    rc, outputs, err = _apply(
        tmp_path, _inputs(ledger_source, [data.NESTED, data.NOSRC], workers=1, onUnmigratable="skip"), address
    )
    assert rc == 0, err[-3000:]
    assert outputs is not None and outputs["differences"] == []
    row = outputs["ledger"][data.NOSRC]
    assert (row["live"], row["notMigratable"], row["written"]) == (ledger_source.counts[data.NOSRC], data.N_NOSRC, 0)
    assert _balanced(row) and "_source is disabled" in row["notMigratableReason"]
    assert outputs["unmigratable"] == {data.NOSRC: row["notMigratableReason"]}
    assert outputs["ledger"][data.NESTED]["written"] == ledger_source.counts[data.NESTED]
    assert not target.indices.exists(index=data.NOSRC)


def test_an_index_whose_documents_all_dead_letter_completes_with_errors(
    ledger_source: Any, target: OpenSearch, tmp_path: Path
) -> None:
    data.conflicting_target_index(target)
    rc, outputs, err = _apply(tmp_path, _inputs(ledger_source, [data.CONFLICT], workers=1), _address())
    assert rc == 0, err[-3000:]
    assert outputs is not None and outputs["differences"] == []
    row = outputs["ledger"][data.CONFLICT]
    assert (row["live"], row["deadLettered"], row["written"]) == (data.N_CONFLICT, data.N_CONFLICT, 0)
    assert row["deadLetterReasons"] == {"mapper_parsing_exception": data.N_CONFLICT} and _balanced(row)
    errors = outputs["completeWithErrors"]
    assert errors["deadLettered"] == data.N_CONFLICT
    assert errors["indices"] == {
        data.CONFLICT: {"deadLettered": data.N_CONFLICT, "topReasons": f"mapper_parsing_exception {data.N_CONFLICT}"}
    }
    # the index that received nothing is still counted on the target
    assert outputs["targetIndices"][data.CONFLICT] == {"expected": 0, "actual": 0}
