"""examples/ab-targets.yaml applied for real: one ES 7.10.2 source into two targets at once.

Target A is the OpenSearch 2.x cluster and target B the OpenSearch 1.3 one (a valid
OpenSearch target for 7.10 data). The example names the demo's indices in its
variables *and* in its parity query, so the test runs a copy of it with those names
(and the snapshot repository's) replaced by unique ones, structure unchanged.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import wf_data  # type: ignore[import-not-found]
from wf_helpers import EXAMPLES, mactl  # type: ignore[import-not-found]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_ab_targets_apply_fills_both_targets_with_cloned_stages(
    tmp_path: Path, es710: Any, os13: Any, os2: Any
) -> None:
    uid = uuid.uuid4().hex[:6]
    prefix = f"wfab{uid}"
    products, logs = f"{prefix}-products", f"{prefix}-logs-2024.01"
    text = (EXAMPLES / "ab-targets.yaml").read_text()
    for old, new in (
        ("demo-products", products),
        ("demo-logs-2024.01", logs),
        ("name: mactl-ab,", f"name: wfab-{uid},"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    config = tmp_path / "ab-targets.yaml"
    config.write_text(text)
    repo_dir = es710.repo_folder("workflow", f"ab-{uid}")
    args = [
        "-c",
        str(config),
        "-var",
        f"source_url={es710.url}",
        "-var",
        f"target_a_url={os2.url}",
        "-var",
        f"target_b_url={os13.url}",
        "-var",
        f"repo_dir={repo_dir}",
    ]
    try:
        wf_data.load(es710.url, prefix, docs=120)
        expected = {products: wf_data.docs_of(es710.url, products), logs: wf_data.docs_of(es710.url, logs)}
        assert [len(d) for d in expected.values()] == [120, 120]

        applied = mactl(tmp_path, "apply", "-auto-approve", *args, timeout=240)
        assert applied.code == 0, applied.out[-3000:] + applied.err[-3000:]
        for target in (os2.url, os13.url):
            assert wf_data.index_names(target, f"{prefix}-*") == set(expected), target
            for name, docs in expected.items():
                assert wf_data.docs_of(target, name) == docs, (target, name)

        graph = mactl(tmp_path, "graph", "--format", "json", *args)
        assert graph.code == 0, graph.err
        clones = {n["address"]: n["clone_of"] for n in json.loads(graph.out)["nodes"] if n["clone_of"]}
        assert clones == {
            "metadata.es.snap.b.m0": "metadata.es.snap.a.m0",
            "backfill.es.snap.b.m0.b0": "backfill.es.snap.a.m0.b0",
            "validate.es.b": "validate.es.a",
        }
        status = mactl(tmp_path, "status", "--json", *args)
        assert status.code == 0, status.err
        stages = {s["address"]: s for s in json.loads(status.out)["stages"]}
        assert len(stages) == 7 and {s["status"] for s in stages.values()} == {"complete"}
        assert {a: s["clone_of"] for a, s in stages.items() if s["clone_of"]} == clones
        audit = mactl(tmp_path, "audit", "--json", *args)
        assert audit.code == 0, audit.err
        reports = json.loads(audit.out)["reports"]
        assert len(reports) == 2 and all(r["passed"] for r in reports)
        assert all([q["passed"] for q in r["queries"]] == [True] for r in reports)

        destroyed = mactl(tmp_path, "destroy", "-auto-approve", *args, timeout=240)
        assert destroyed.code == 0, destroyed.out[-3000:] + destroyed.err[-3000:]
        assert (
            wf_data.index_names(os2.url, f"{prefix}-*") == set()
            and wf_data.index_names(os13.url, f"{prefix}-*") == set()
        )
    finally:
        mactl(tmp_path, "destroy", "-auto-approve", *args, timeout=240)
        for url in (es710.url, os2.url, os13.url):
            wf_data.drop(url, prefix)
        wf_data.request(es710.url, "DELETE", f"/_snapshot/wfab-{uid}")
        shutil.rmtree(repo_dir, ignore_errors=True)
