"""examples/multi-source.yaml applied for real: ES 7.10.2 and OpenSearch 1.3 into one OpenSearch 2.x.

The example's own variables pick the indices (`es_indices`, `os13_indices`), so the
test runs the example file unchanged on small indices with a unique prefix, checks the
target holds exactly both sources' documents (ids and `_source`), that both validate
stages passed, and that `destroy` leaves none of them on the target.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from wf_data import docs_of, index_names, request  # type: ignore[import-not-found]
from wf_helpers import EXAMPLES, mactl  # type: ignore[import-not-found]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _load(url: str, index: str, docs: list[dict[str, Any]], shards: int) -> None:
    request(url, "PUT", f"/{index}", {"settings": {"number_of_shards": shards, "number_of_replicas": 0}})
    lines = []
    for i, doc in enumerate(docs):
        lines += [json.dumps({"index": {"_index": index, "_id": f"{index[-1]}-{i:03d}"}}), json.dumps(doc)]
    assert not request(url, "POST", "/_bulk?refresh=true", ndjson="\n".join(lines) + "\n")["errors"]


def test_multi_source_apply_copies_both_sources_into_one_target(
    tmp_path: Path, es710: Any, os13: Any, os2: Any
) -> None:
    uid = uuid.uuid4().hex[:6]
    prefix = f"wfms{uid}"
    es_names = [f"{prefix}-es-a", f"{prefix}-es-b"]
    os_names = [f"{prefix}-os-c"]
    repo_dir = es710.repo_folder("workflow", f"multi-{uid}")
    for name in ("es710", "os13"):  # the example puts each source's repository in a sub-folder
        es710.repo_folder("workflow", f"multi-{uid}", name)
    config = tmp_path / "multi-source.yaml"  # its state folder is relative to the config: keep it out of the checkout
    shutil.copy(EXAMPLES / "multi-source.yaml", config)
    args = [
        "-c",
        str(config),
        "-var",
        f"es_url={es710.url}",
        "-var",
        f"os13_url={os13.url}",
        "-var",
        f"target_url={os2.url}",
        "-var",
        f"repo_dir={repo_dir}",
        "-var",
        f"es_indices={prefix}-es-*",
        "-var",
        f"os13_indices={prefix}-os-*",
    ]
    try:
        _load(es710.url, es_names[0], [{"n": i, "name": f"ärger {i}", "tags": ["x", str(i % 3)]} for i in range(30)], 2)
        _load(
            es710.url,
            es_names[1],
            [{"n": i, "obj": {"deep": {"v": i * 1.5}}, "flag": i % 2 == 0} for i in range(17)],
            1,
        )
        _load(os13.url, os_names[0], [{"n": i, "msg": f"from os13 #{i}", "nil": None} for i in range(23)], 1)
        expected = {n: docs_of(es710.url, n) for n in es_names} | {n: docs_of(os13.url, n) for n in os_names}
        assert [len(d) for d in expected.values()] == [30, 17, 23]

        applied = mactl(tmp_path, "apply", "-auto-approve", *args, timeout=240)
        assert applied.code == 0, applied.out[-3000:] + applied.err[-3000:]

        assert index_names(os2.url, f"{prefix}-*") == set(expected)
        for name, docs in expected.items():
            assert docs_of(os2.url, name) == docs, name

        status = mactl(tmp_path, "status", "--json", *args)
        assert status.code == 0, status.err
        stages = {s["address"]: s["status"] for s in json.loads(status.out)["stages"]}
        assert len(stages) == 8 and set(stages.values()) == {"complete"}
        audit = mactl(tmp_path, "audit", "--json", *args)
        assert audit.code == 0, audit.err
        reports = json.loads(audit.out)["reports"]
        assert len(reports) == 2 and all(r["passed"] and r["failures"] == [] for r in reports)
        checked = {row["index"]: row["checks"]["count"]["target"] for r in reports for row in r["indices"]}
        assert checked == {n: len(d) for n, d in expected.items()}

        destroyed = mactl(tmp_path, "destroy", "-auto-approve", *args, timeout=240)
        assert destroyed.code == 0, destroyed.out[-3000:] + destroyed.err[-3000:]
        assert index_names(os2.url, f"{prefix}-*") == set()
    finally:
        mactl(tmp_path, "destroy", "-auto-approve", *args, timeout=240)
        for name in es_names + os_names:
            request(os2.url, "DELETE", f"/{name}")
        for name in es_names:
            request(es710.url, "DELETE", f"/{name}")
        for name in os_names:
            request(os13.url, "DELETE", f"/{name}")
        request(es710.url, "DELETE", "/_snapshot/mactl-multi-es710")
        request(os13.url, "DELETE", "/_snapshot/mactl-multi-os13")
        shutil.rmtree(repo_dir, ignore_errors=True)
