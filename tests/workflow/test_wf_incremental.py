"""examples/incremental.yaml for real: 1% → 10% sample, then a changed transform.

Growing the sample is an update in place (only documents are added, every earlier one
stays); changing the transform replaces the backfill. After each apply the validate
stage re-derives its sampled documents from the snapshot with the backfill's current
transforms and sampling, so the audit proves the target matches each step.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from wf_data import docs_of  # type: ignore[import-not-found]
from wf_helpers import EXAMPLES, mactl  # type: ignore[import-not-found]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_incremental_sampling_grows_in_place_and_a_new_transform_replaces(tmp_path: Path, es710: Any, os2: Any) -> None:
    import wf_data  # type: ignore[import-not-found]

    uid = uuid.uuid4().hex[:6]
    prefix, index = f"wi{uid}", f"wi{uid}-products"
    config = tmp_path / "incremental.yaml"
    config.write_text(
        (EXAMPLES / "incremental.yaml")
        .read_text()
        .replace("      name: es\n", f"      name: {prefix}\n")
        .replace("name: mactl-incremental,", f"name: wi-{uid},")
    )
    repo_dir = es710.repo_folder("workflow", f"inc-{uid}")
    env = {
        "MACTL_VAR_source_url": es710.url,
        "MACTL_VAR_target_url": os2.url,
        "MACTL_VAR_repo_dir": str(repo_dir),
        "MACTL_VAR_index": index,
    }

    def run(*args: str) -> Any:
        return mactl(tmp_path, *args, "-c", str(config), env=env)

    wf_data.load(es710.url, prefix)
    try:
        first = run("apply", "-auto-approve", "-var", "sample_percent=1")
        assert first.code == 0, first.out[-2000:] + first.err[-2000:]
        at_1 = docs_of(os2.url, index)
        assert 0 < len(at_1) < 40

        plan = run("plan", "-var", "sample_percent=10")
        assert plan.code == 0, plan.err
        assert f"# backfill.{prefix}.snap.os2.m0.b0 will be updated in place" in plan.out
        assert "REPLACED" not in plan.out
        second = run("apply", "-auto-approve", "-var", "sample_percent=10")
        assert second.code == 0, second.out[-2000:] + second.err[-2000:]
        at_10 = docs_of(os2.url, index)
        assert len(at_10) > len(at_1) and set(at_1) <= set(at_10)  # a superset: nothing written before is undone

        config.write_text(
            config.read_text().replace("{{ _source | tojson }}", "{{ dict(_source, migrated=true) | tojson }}")
        )
        plan = run("plan", "-var", "sample_percent=10")
        assert plan.code == 0, plan.err
        assert f"# backfill.{prefix}.snap.os2.m0.b0 must be REPLACED" in plan.out
        third = run("apply", "-auto-approve", "-var", "sample_percent=10")
        assert third.code == 0, third.out[-2000:] + third.err[-2000:]
        at_new = docs_of(os2.url, index)
        assert set(at_new) == set(at_10) and all(doc.get("migrated") is True for doc in at_new.values())

        audit = json.loads(run("audit", "--json").out)
        (report,) = audit["reports"]
        (row,) = report["indices"]
        assert report["passed"], report["failures"]
        assert row["checks"]["count"]["target"] == row["checks"]["count"]["expected"] == len(at_new)
        assert row["checks"]["sample"]["checked"] == min(20, len(at_new)) == row["checks"]["sample"]["matched"]
        assert row["checks"]["mappings"]["dynamicFields"] == ["migrated"]
    finally:
        run("destroy", "-auto-approve")
        wf_data.drop(es710.url, prefix)
        wf_data.drop(os2.url, prefix)
        wf_data.request(es710.url, "DELETE", f"/_snapshot/wi-{uid}")
        shutil.rmtree(repo_dir, ignore_errors=True)
