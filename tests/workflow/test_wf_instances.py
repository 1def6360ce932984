"""Instances on the real clusters (ES 7.10 → OS 2.19): one index at a time inside a stage.

A metadata transform that touches one index of three redoes only that index's metadata
and backfill instances: the other two indices on the target keep their uuid and creation
date, and their documents. A filter that adds an index plans one new instance, `-target`
on it applies only it, and `destroy -target` of one instance removes only that index and
its documents. The validate stage, redone after each partial change, checks every index
against the snapshot.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wf_data import docs_of, index_names, request  # type: ignore[import-not-found]
from wf_helpers import mactl  # type: ignore[import-not-found]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CONFIG = """
state: {backend: local, path: .mactl-state}
targets:
  - {name: os2, endpoint: "TARGET"}
source-migration-configurations:
  - source:
      name: SRC
      endpoint: "SOURCE"
      snapshotRepository: {type: fs, name: REPO, location: "REPO_DIR"}
    snapshot-and-migration-configs:
      - name: snap
        indices: {names: ["PREFIX-*"]}
        migrations:
          - name: m0
            metadata:
              templates: false
              indices: {names: INDICES}
              transforms: TRANSFORMS
              from: FROM
            documentBackfillConfigs:
              - name: b0
                workers: 1
                indices: {names: INDICES}
    validation:
      sampleSize: 5
      thresholds: {maxCountDiff: 0, minSampleMatch: 1.0}
"""

# Touches one index only: its refresh interval.
TOUCH_B = (
    '[{kind: jinja, template: \'{% if item.kind == "index" and item.name == "PREFIX-b" %}'
    '{% do item.body.settings.update({"index.refresh_interval": "7s"}) %}{% endif %}'
    '{"name": "{{ item.name }}", "body": {{ item.body | tojson }}}\'}]'
)


class Setup:
    def __init__(self, tmp_path: Path, es710: Any, os2: Any) -> None:
        self.uid = uuid.uuid4().hex[:6]
        self.prefix = f"wn{self.uid}"
        self.source = f"wn{self.uid}"
        self.es, self.os = es710, os2
        self.dir = tmp_path
        self.repo_dir = es710.repo_folder("workflow", f"inst-{self.uid}")
        self.config = tmp_path / "mactl.yaml"
        self.meta = f"metadata.{self.source}.snap.os2.m0"
        self.backfill = f"backfill.{self.source}.snap.os2.m0.b0"

    def name(self, letter: str) -> str:
        return f"{self.prefix}-{letter}"

    def write(self, indices: list[str], transforms: str = "[]", origin: str = "snapshot") -> None:
        text = (
            CONFIG.replace("TARGET", self.os.url)
            .replace("SOURCE", self.es.url)
            .replace("REPO_DIR", str(self.repo_dir))
            .replace("REPO", f"wn-{self.uid}")
            .replace("SRC", self.source)
            .replace("INDICES", json.dumps([self.name(i) for i in indices]))
            .replace("FROM", origin)
            .replace("TRANSFORMS", transforms)
            .replace("PREFIX", self.prefix)
        )
        self.config.write_text(text)

    def run(self, *args: str) -> Any:
        return mactl(self.dir, *args, "-c", str(self.config), timeout=600)

    def identity(self, letter: str) -> tuple[str, str]:
        """(uuid, creation date) of an index on the target: both change only if it is recreated."""
        settings = request(self.os.url, "GET", f"/{self.name(letter)}/_settings")[self.name(letter)]["settings"]
        return settings["index"]["uuid"], settings["index"]["creation_date"]


@pytest.fixture
def setup(tmp_path: Path, es710: Any, os2: Any) -> Iterator[Setup]:
    s = Setup(tmp_path, es710, os2)
    for letter in "abcd":
        request(es710.url, "PUT", f"/{s.name(letter)}", {"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
        rows = "".join(
            json.dumps({"index": {"_id": f"{letter}{i}"}}) + "\n" + json.dumps({"n": i, "letter": letter}) + "\n"
            for i in range(6)
        )
        request(es710.url, "POST", f"/{s.name(letter)}/_bulk?refresh=true", ndjson=rows)
    try:
        yield s
    finally:
        s.run("destroy", "-auto-approve")
        for url in (es710.url, os2.url):
            request(url, "DELETE", f"/{s.prefix}-*")
        request(es710.url, "DELETE", f"/_snapshot/wn-{s.uid}")
        shutil.rmtree(s.repo_dir, ignore_errors=True)


def test_one_index_at_a_time_inside_the_stages(setup: Setup) -> None:
    s = setup
    s.write(["a", "b", "c"])
    # before the snapshot exists: instances are known after apply; --evaluate -target shows one item
    plan = s.run("plan", "--evaluate", "-target", f'{s.meta}["{s.name("a")}"]')
    assert plan.code == 0, plan.err
    assert "# instances: (known after apply)" in plan.out
    assert f"# would create index {s.name('a')}" in plan.out
    assert f"# would create index {s.name('b')}" not in plan.out
    assert "its instances are known only after apply" in plan.out  # the whole stage is created
    assert "# 2 item(s) outside -target not shown" in plan.out
    first = s.run("apply", "-auto-approve")
    assert first.code == 0, first.out[-3000:] + first.err[-3000:]
    before = {letter: s.identity(letter) for letter in "abc"}
    docs = {letter: docs_of(s.os.url, s.name(letter)) for letter in "abc"}
    assert all(len(d) == 6 for d in docs.values())
    listed = s.run("state", "list", "--json")
    assert f'{s.meta}["{s.name("a")}"]' in {r["address"] for r in json.loads(listed.out)}

    # A transform that touches only b: b's metadata and backfill instances, nothing else.
    s.write(["a", "b", "c"], TOUCH_B.replace("PREFIX", s.prefix))
    plan = s.run("plan")
    assert plan.code == 0, plan.err
    assert f"# {s.meta} will be updated in place" in plan.out
    assert f'-/+ ["{s.name("b")}"]  # its definition changed' in plan.out
    assert f'-/+ ["{s.name("b")}"]  # upstream {s.meta}["{s.name("b")}"] replaced' in plan.out
    assert "# instances: 1 to replace, 2 unchanged" in plan.out
    assert f"{s.meta} must be REPLACED" not in plan.out and f"{s.backfill} must be REPLACED" not in plan.out
    evaluated = s.run("plan", "--evaluate")
    assert evaluated.code == 0, evaluated.err
    assert '"index.refresh_interval": "7s"' in evaluated.out and "2 unchanged item(s) not shown" in evaluated.out
    second = s.run("apply", "-auto-approve")
    assert second.code == 0, second.out[-3000:] + second.err[-3000:]
    assert s.identity("a") == before["a"] and s.identity("c") == before["c"]
    assert s.identity("b") != before["b"]
    settings = request(s.os.url, "GET", f"/{s.name('b')}/_settings")[s.name("b")]["settings"]["index"]
    assert settings["refresh_interval"] == "7s"
    for letter in "abc":
        assert docs_of(s.os.url, s.name(letter)) == docs[letter]
    assert "No changes." in s.run("plan").out

    # A filter that adds d: one new instance in each stage; -target applies only it.
    s.write(["a", "b", "c", "d"], TOUCH_B.replace("PREFIX", s.prefix))
    plan = s.run("plan")
    assert f'+   ["{s.name("d")}"]  # new' in plan.out and "# instances: 1 to create, 3 unchanged" in plan.out
    targeted = s.run("apply", "-auto-approve", "-target", f'{s.backfill}["{s.name("d")}"]')
    assert targeted.code == 0, targeted.out[-3000:] + targeted.err[-3000:]
    assert len(docs_of(s.os.url, s.name("d"))) == 6
    assert {letter: s.identity(letter) for letter in "ac"} == {letter: before[letter] for letter in "ac"}
    shown = json.loads(s.run("state", "show", f'{s.backfill}["{s.name("d")}"]').out)
    assert shown["key"] == s.name("d") and shown["instance_of"] == s.backfill and "ledger" in shown["outputs"]
    assert s.run("apply", "-auto-approve").code == 0  # validate, redone over all four

    # destroy -target one instance: that index and its documents only.
    gone = s.run("destroy", "-auto-approve", "-target", f'{s.meta}["{s.name("c")}"]')
    assert gone.code == 0, gone.out[-3000:] + gone.err[-3000:]
    assert s.name("c") not in index_names(s.os.url, f"{s.prefix}-*")
    for letter in "abd":
        assert len(docs_of(s.os.url, s.name(letter))) == 6
    assert s.identity("a") == before["a"]


def test_a_new_index_matching_a_wildcard_plans_one_new_instance(setup: Setup) -> None:
    """Metadata read live: an index created on the source after the apply, matched by `*`."""
    s = setup
    s.write(["*"], origin="live")
    first = s.run("apply", "-auto-approve")
    assert first.code == 0, first.out[-3000:] + first.err[-3000:]
    assert "No changes." in s.run("plan").out
    request(s.es.url, "PUT", f"/{s.name('e')}", {"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    plan = s.run("plan")
    assert plan.code == 0, plan.err
    assert f"# {s.meta} will be updated in place" in plan.out
    assert f'+   ["{s.name("e")}"]  # new' in plan.out and "# instances: 1 to create, 4 unchanged" in plan.out
    assert "must be REPLACED" not in plan.out.split("validate.")[0]
    assert s.run("plan", "-out", "wildcard.plan").code == 0
    doc = json.loads(mactl(s.dir, "show", "-json", "wildcard.plan").out)
    (meta,) = [c for c in doc["resource_changes"] if c["address"] == s.meta]
    assert [i["key"] for i in meta["instance_changes"] if i["actions"] == ["create"]] == [s.name("e")]
