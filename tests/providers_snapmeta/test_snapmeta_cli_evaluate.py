"""`mactl metadata evaluate ADDR`: exact bodies after all transforms, and nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from opensearchpy import OpenSearch
from snapmeta_helpers import Names

pytestmark = pytest.mark.cluster

CONFIG = """
targets:
  - name: os2
    endpoint: {os2}
source-migration-configurations:
  - source:
      name: es710
      endpoint: {es710}
      snapshotRepository: {{type: fs, name: {p}repo, location: {repo}}}
    snapshot-and-migration-configs:
      - name: snap1
        indices: [{{names: ['re:\\.?{p}.*']}}]
        migrations:
          - name: m0
            metadata:
              from: live
              templates: false
              transforms:
                - |
                  {{% set b = item.body %}}
                  {{% do b.settings.update({{"index.number_of_replicas": "0"}}) %}}
                  {{"name": "{{{{ item.name }}}}-new", "body": {{{{ b | tojson }}}}}}
"""


def _mactl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mactl", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_evaluate_prints_final_json_and_writes_nothing(
    es: OpenSearch, target: OpenSearch, names: Names, es710, os2, tmp_path: Path
) -> None:  # noqa: ANN001
    n = names
    es.indices.create(
        index=n("one"),
        body={
            "settings": {"number_of_shards": 2, "number_of_replicas": 1},
            "mappings": {"properties": {"a": {"type": "keyword"}}},
        },
    )
    es.indices.create(index=f".{n('sys')}", body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    (tmp_path / "mactl.yaml").write_text(CONFIG.format(os2=os2.url, es710=es710.url, p=n.prefix, repo=n.repo_dir))
    address = "metadata.es710.snap1.os2.m0"

    done = _mactl("metadata", "evaluate", address, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ev = json.loads(done.stdout)
    assert ev["source"]["version"] == "7.10.2" and ev["target"]["distribution"] == "opensearch"
    [item] = ev["items"]
    assert item["name"] == n("one-new") and item["source_name"] == n("one") and item["action"] == "create"
    assert item["body"] == {
        "settings": {"index.number_of_shards": "2", "index.number_of_replicas": "0"},
        "mappings": {"properties": {"a": {"type": "keyword"}}},
        "aliases": {},
    }
    assert any(t.startswith("drop-internal-settings") for t in item["transforms"])

    text = _mactl("metadata", "evaluate", address, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert f"# would create index {n('one-new')} (from {n('one')})" in text.stdout
    assert '"index.number_of_replicas": "0"' in text.stdout
    # The selected `.`-prefixed index is left out by the built-in rule, and listed as such.
    assert ev["excluded"] == [
        {"kind": "index", "name": f".{n('sys')}", "reason": "system or hidden index (name starts with '.')"}
    ]
    assert f"index .{n('sys')}: system or hidden index" in text.stdout
    assert not target.indices.exists(index=n("one-new")) and not target.indices.exists(index=n("one"))

    wrong = _mactl("metadata", "evaluate", "metadata.es710.snap1.os2.nope", cwd=tmp_path)
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert "no stage 'metadata.es710.snap1.os2.nope'" in wrong.stderr and address in wrong.stderr
    not_meta = _mactl("metadata", "evaluate", "snapshot.es710.snap1", cwd=tmp_path)
    assert not_meta.returncode == 1 and "is a snapshot stage, not a metadata stage" in not_meta.stderr


def test_plan_evaluate_shows_the_bodies_before_the_snapshot_exists(
    es: OpenSearch,
    target: OpenSearch,
    names: Names,
    es710,
    os2,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    """`plan --evaluate` on a fresh state: the snapshot is only planned, so the bodies come
    from the live source (said in a note); nothing is written anywhere."""
    n = names
    es.indices.create(
        index=n("two"),
        body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"properties": {"b": {"type": "long"}}},
        },
    )
    snapshot_config = CONFIG.replace("              from: live\n", "")
    (tmp_path / "mactl.yaml").write_text(
        snapshot_config.format(os2=os2.url, es710=es710.url, p=n.prefix, repo=n.repo_dir)
    )
    done = _mactl("plan", "-refresh=false", "--evaluate", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Plan: 3 to create" in done.stdout  # snapshot, metadata and the default validate stage
    assert "# note: its snapshot is not taken yet: evaluated from the live source" in done.stdout
    assert f"# would create index {n('two-new')} (from {n('two')})" in done.stdout
    assert '"type": "long"' in done.stdout
    assert not target.indices.exists(index=n("two-new"))
    assert not (tmp_path / ".mactl" / "state.json").exists(), "plan must not write state"
