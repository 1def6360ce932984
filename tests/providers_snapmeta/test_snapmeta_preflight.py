"""The providers' preflight checks on the real clusters (issue 14 item 5).

A cluster answers `GET /_cluster/health` or is named with its endpoint masked; a snapshot
is read from the repository's own files (not asked of the source); a stage whose snapshot
this run takes first does not check it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mactl.providers.backfill import BackfillProvider
from mactl.providers.base import PreflightContext
from mactl.providers.preflight import cluster_problem, snapshot_problem
from mactl.providers.validate import ValidateProvider
from opensearchpy import OpenSearch
from snapmeta_helpers import Names

from mactl.schema.backfill import BackfillInputs
from mactl.schema.common import ClusterRef, SnapshotRepository
from mactl.schema.validate import ValidateInputs

pytestmark = pytest.mark.cluster


def _ctx(address: str = "backfill.s.snap.t.m0.b0", redone: frozenset[str] = frozenset()) -> PreflightContext:
    return PreflightContext(address=address, upstream={}, redone=redone, config_dir=Path.cwd(), timeout_s=3.0)


def _snapshot(es: OpenSearch, names: Names) -> tuple[SnapshotRepository, str]:
    repo, snap, index = f"{names.prefix}repo", f"{names.prefix}snap", f"{names.prefix}docs"
    es.indices.create(index=index, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    es.index(index=index, id="1", body={"a": 1}, refresh=True)
    es.snapshot.create_repository(repository=repo, body={"type": "fs", "settings": {"location": str(names.repo_dir)}})
    es.snapshot.create(repository=repo, snapshot=snap, body={"indices": index}, wait_for_completion=True)
    return SnapshotRepository(type="fs", name=repo, location=str(names.repo_dir)), snap


def test_a_cluster_that_answers_passes_and_one_that_does_not_is_named_masked(es710: Any, os2: Any) -> None:
    ctx = _ctx()
    assert cluster_problem(ClusterRef(name="os2", endpoint=os2.url), "target", ctx) is None
    assert cluster_problem(ClusterRef(name="es", endpoint=es710.url), "source", ctx) is None
    down = ClusterRef(name="gone", endpoint="http://admin:hunter2@127.0.0.1:1")
    problem = cluster_problem(down, "target", ctx)
    assert problem is not None and problem.startswith(
        "target 'gone' (http://admin:(sensitive)@127.0.0.1:1) is not reachable"
    )
    assert "hunter2" not in problem and "\n" not in problem
    assert cluster_problem(down, "target", ctx) is problem  # asked once per run


def test_the_snapshot_is_read_from_the_repository_files(es: OpenSearch, names: Names) -> None:
    repo, snap = _snapshot(es, names)
    assert snapshot_problem(repo, snap) is None
    missing = snapshot_problem(repo, f"{names.prefix}nope")
    assert missing is not None
    assert missing.startswith(f"snapshot '{names.prefix}nope' cannot be read from the repository {names.repo_dir}: ")
    assert snap in missing  # the reader names the snapshots that are there
    empty = SnapshotRepository(type="fs", location=str(names.repo_dir / "empty"))
    assert snapshot_problem(empty, snap) is not None


def test_backfill_and_validate_check_what_they_need(es: OpenSearch, names: Names, es710: Any, os2: Any) -> None:
    repo, snap = _snapshot(es, names)
    target = {"name": "os2", "endpoint": os2.url}
    inputs = BackfillInputs.model_validate(
        {"target": target, "repository": repo.model_dump(), "snapshotName": snap, "indices": []}
    )
    assert BackfillProvider().preflight(inputs, _ctx()) == []
    later = inputs.model_copy(update={"snapshotName": f"{names.prefix}later"})
    (problem,) = BackfillProvider().preflight(later, _ctx())
    assert f"snapshot '{names.prefix}later' cannot be read" in problem
    # this run takes the snapshot first: nothing to read yet, so it is not checked
    assert BackfillProvider().preflight(later, _ctx(redone=frozenset({"snapshot.s.snap"}))) == []

    down = {"name": "old", "endpoint": "http://127.0.0.1:1"}
    validate = ValidateInputs.model_validate(
        {"source": down, "target": target, "repository": repo.model_dump(), "snapshotName": snap}
    )
    (problem,) = ValidateProvider().preflight(validate, _ctx("validate.s.t"))
    assert problem.startswith("source 'old' (http://127.0.0.1:1) is not reachable")
