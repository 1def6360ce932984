"""The console in headless Chromium on a real migration: ES 7.10 → OpenSearch 2.x on the session's clusters.

One migration shared by the tests of this module, which run in order as a user would go:
the map before anything ran, an apply in another process (the map recolours while it
runs and stops at the validate stage's approval gate), the backfill's page with its
ledger, the approval from the validate stage's page, and the next apply running on.
Screenshots go to `ui_helpers.shots_dir()`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from opensearchpy import OpenSearch, helpers
from ui_helpers import FILL, RunningConsole, chromium, console, map_nodes, shots_dir, wait_for  # type: ignore[import-not-found]

pytestmark = [pytest.mark.cluster]

DOCS = 6000


@dataclass
class Migration:
    folder: Path
    source: str
    index: str
    ui: RunningConsole
    driver: Any

    def mactl(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mactl", *args], cwd=self.folder, capture_output=True, text=True, timeout=timeout
        )

    def status(self) -> dict[str, dict[str, Any]]:
        run = self.mactl("status", "--json")
        assert run.returncode == 0, run.stderr
        return {s["address"]: s for s in json.loads(run.stdout)["stages"]}

    def stage(self, kind: str) -> str:
        return next(a for a in self.status() if a.startswith(kind + "."))

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(shots_dir() / f"{name}.png"))


@pytest.fixture(scope="module")
def migration(es710: Any, os2: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Migration]:
    uid = uuid.uuid4().hex[:6]
    source_name, index = f"ui{uid}", f"ui{uid}-orders"
    es = OpenSearch(es710.url, timeout=120)
    es.indices.create(index=index, body={"settings": {"number_of_shards": 2, "number_of_replicas": 0}})
    helpers.bulk(
        es,
        ({"_index": index, "_id": str(i), "_source": {"n": i, "item": f"item-{i % 97}"}} for i in range(DOCS)),
        refresh=True,
    )
    repo_dir = es710.repo_folder("ui", uid)
    folder = tmp_path_factory.mktemp("ui-migration")
    config = {
        "targets": [{"name": "os2", "endpoint": os2.url}],
        "source-migration-configurations": [
            {
                "source": {
                    "name": source_name,
                    "endpoint": es710.url,
                    "snapshotRepository": {"type": "fs", "location": str(repo_dir), "name": f"ui-{uid}"},
                },
                "snapshot-and-migration-configs": [
                    {
                        "name": "snap",
                        "indices": {"names": [index]},
                        "migrations": [
                            {
                                "name": "m0",
                                "metadata": {"templates": False},
                                "documentBackfillConfigs": [{"name": "b0", "workers": 1}],
                            }
                        ],
                    }
                ],
                "validation": {"approval": "required", "sampleSize": 20, "seed": 1, "settleSeconds": 0},
            }
        ],
    }
    (folder / "mactl.yaml").write_text(yaml.safe_dump(config))
    driver = chromium()
    try:
        with console(folder) as ui:
            yield Migration(folder, source_name, index, ui, driver)
    finally:
        driver.quit()
        subprocess.run(
            [sys.executable, "-m", "mactl", "destroy", "-auto-approve"], cwd=folder, capture_output=True, timeout=300
        )
        target = OpenSearch(os2.url, timeout=120)
        for client in (es, target):
            client.indices.delete(index=f"{index}*", ignore=[404])
        es.snapshot.delete_repository(repository=f"ui-{uid}", ignore=[404])
        shutil.rmtree(repo_dir, ignore_errors=True)


def test_map_shows_every_stage_planned(migration: Migration) -> None:
    migration.driver.get(migration.ui.base + "/")
    nodes = map_nodes(migration.driver)
    status = migration.status()
    assert set(nodes) == set(status) and len(nodes) == 4  # snapshot, metadata, backfill, validate
    assert all(s == "pending" and fill == FILL["pending"] for s, fill in nodes.values()), nodes
    approvals = migration.driver.find_element("id", "approvals").text
    assert "validate." in approvals  # the gate is named before anything ran
    migration.shot("map-planned")


def test_map_changes_colour_while_an_apply_runs_in_another_process(migration: Migration) -> None:
    driver = migration.driver
    driver.get(migration.ui.base + "/")
    apply = subprocess.Popen(
        [sys.executable, "-m", "mactl", "apply", "-auto-approve"],
        cwd=migration.folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: dict[str, set[tuple[str, str]]] = {}
    shot_running = False
    while apply.poll() is None:
        for address, (status, fill) in map_nodes(driver).items():
            seen.setdefault(address, set()).add((status, fill))
            if status == "running" and not shot_running:
                migration.shot("map-running")
                shot_running = True
        time.sleep(0.1)
    out = apply.stdout.read() if apply.stdout else ""
    assert apply.returncode == 0, out[-3000:]
    running = {a for a, s in seen.items() if ("running", FILL["running"]) in s}
    assert running, f"no stage was seen running (in the running colour) while apply ran: {seen}"
    # the page was not reloaded: the live refresh brings the end of the apply too
    status = migration.status()
    wanted = {a: s["status"] for a, s in status.items()}
    deadline = time.monotonic() + 20
    while {a: s for a, (s, _) in map_nodes(driver).items()} != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
    nodes = map_nodes(driver)
    assert {a: s for a, (s, _) in nodes.items()} == wanted
    validate = migration.stage("validate")
    for address, (state, fill) in nodes.items():
        if address == validate:
            assert state == "awaiting_approval" and fill == FILL["awaiting_approval"]
        else:
            assert state == "complete" and fill == FILL["complete"], (address, state, fill)
    migration.shot("map-at-gate")


def test_stage_page_shows_the_backfills_ledger(migration: Migration) -> None:
    backfill = migration.stage("backfill")
    driver = migration.driver
    driver.get(migration.ui.base + "/stage/" + backfill)
    assert driver.find_element("id", "stage-status").get_attribute("data-status") == "complete"
    rows = driver.find_elements("css selector", "#ledger tr[data-index]")
    assert [r.get_attribute("data-index") for r in rows] == [migration.index]
    cells = [c.text for c in rows[0].find_elements("tag name", "td")]
    # index, live (snapshot), written, dead-lettered, skipped, dropped, not migratable, unaccounted
    assert cells[1:] == [str(DOCS), str(DOCS), "0", "0", "0", "0", "0"]
    assert "docs" in driver.find_element("id", "progress").text
    migration.shot("stage-backfill")
    # a click on the map's node shows the same per-index counts
    driver.get(migration.ui.base + "/")
    node = next(
        g for g in driver.find_elements("css selector", "#map g.stage") if g.get_attribute("data-address") == backfill
    )
    node.click()
    detail = wait_for(driver, "#detail table", migration.index).text
    assert migration.index in detail and str(DOCS) in detail
    # and the metadata stage's node, its items: the index, created on the target
    metadata = migration.stage("metadata")
    node = next(
        g for g in driver.find_elements("css selector", "#map g.stage") if g.get_attribute("data-address") == metadata
    )
    node.click()
    row = wait_for(driver, "#detail table.items tr", migration.index)
    assert row.text.split() == ["index", migration.index, "created"]
    migration.shot("map-detail-metadata")


def test_approval_from_the_page_lets_the_next_apply_continue(migration: Migration) -> None:
    validate = migration.stage("validate")
    driver = migration.driver
    driver.get(migration.ui.base + "/stage/" + validate)
    driver.find_element("id", "approve").click()
    wait_for(driver, "#approved", "Approved.")
    migration.shot("stage-approved")
    status = migration.status()[validate]
    assert status["approval"].startswith("approved by ")
    state = json.loads((migration.folder / ".mactl" / "state.json").read_text())
    entry = state["history"][-1]
    assert entry["operation"] == "approve" and entry["address"] == validate
    assert entry["detail"] == "approved from the web console (mactl ui)"
    run = migration.mactl("apply", "-auto-approve")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert migration.status()[validate]["status"] == "complete"
    driver.get(migration.ui.base + "/")
    assert {s for s, _ in map_nodes(driver).values()} == {"complete"}
    migration.shot("map-complete")
    driver.get(migration.ui.base + "/history")
    wait_for(driver, "#history", "approved from the web console")
    driver.get(migration.ui.base + "/audit")
    driver.switch_to.frame(driver.find_element("id", "audit"))
    wait_for(driver, "h1", "PASSED")
    driver.switch_to.default_content()
    migration.shot("audit")


def test_plan_page_shows_the_cascade_of_a_change_on_disk_as_mactl_plan_does(migration: Migration) -> None:
    config_file = migration.folder / "mactl.yaml"
    original = config_file.read_text()
    config = yaml.safe_load(original)
    backfill_cfg = config["source-migration-configurations"][0]["snapshot-and-migration-configs"][0]["migrations"][0]
    backfill_cfg["documentBackfillConfigs"][0]["indices"] = {"names": [migration.index]}  # forces a replacement
    config_file.write_text(yaml.safe_dump(config))
    try:
        planned = migration.mactl("plan", "-refresh=false", "-out", "ui-check.plan")
        assert planned.returncode == 0, planned.stderr
        cli = migration.mactl("show", "-json", "ui-check.plan")
        assert cli.returncode == 0, cli.stderr
        expected = {c["address"]: c for c in json.loads(cli.stdout)["resource_changes"]}
        driver = migration.driver
        driver.get(migration.ui.base + "/plan")
        shown = {
            g.get_attribute("data-address"): g.get_attribute("data-action")
            for g in driver.find_elements("css selector", "#map g.stage")
        }
        json_action = {"replace": ["delete", "create"], "update": ["update"], "noop": ["no-op"], "create": ["create"]}
        assert {a: json_action[act] for a, act in shown.items()} == {
            a: c["change"]["actions"] for a, c in expected.items()
        }
        backfill, validate = migration.stage("backfill"), migration.stage("validate")
        assert shown[backfill] == "replace" and shown[migration.stage("snapshot")] == "noop"
        assert shown[validate] != "noop" and "upstream" in expected[validate]["action_reason"]  # the cascade
        table = driver.find_element("id", "changes").text
        assert backfill in table and expected[validate]["action_reason"] in table
        summary = driver.find_element("id", "plan-summary").text
        assert summary in migration.mactl("plan", "-refresh=false").stdout
        migration.shot("plan-cascade")
    finally:
        config_file.write_text(original)


def test_a_stage_rolled_back_shows_as_rolled_back(migration: Migration) -> None:
    validate = migration.stage("validate")
    run = migration.mactl("destroy", "-auto-approve", "-target", validate)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    driver = migration.driver
    driver.get(migration.ui.base + "/")
    nodes = map_nodes(driver)
    assert nodes[validate] == ("rolled_back", FILL["rolled_back"])
    assert {s for a, (s, _) in nodes.items() if a != validate} == {"complete"}
    migration.shot("map-rolled-back")
