"""Fixtures for the backfill tests; the data and helpers live in `bf_fixtures` (a unique
module name, so no other folder's `conftest` can shadow them when the whole suite runs)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bf_fixtures import REPO_NAME, RUN, SNAPSHOT, SOURCE_INDEX, SourceSnapshot, _build_source, scan_docs
from opensearchpy import OpenSearch


@pytest.fixture(scope="session")
def source_snapshot(es710: Any, os2: Any) -> Iterator[SourceSnapshot]:
    es = OpenSearch(es710.url, timeout=120)
    repo_dir = Path(es710.repo_dir) / "backfill" / f"run-{uuid.uuid4().hex[:8]}"
    repo_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(repo_dir.parent, 0o777)
    os.chmod(repo_dir, 0o777)
    _build_source(es)
    es.snapshot.create_repository(repository=REPO_NAME, body={"type": "fs", "settings": {"location": str(repo_dir)}})
    es.snapshot.create(
        repository=REPO_NAME,
        snapshot=SNAPSHOT,
        body={"indices": SOURCE_INDEX, "include_global_state": False},
        wait_for_completion=True,
    )
    live = frozenset(scan_docs(es, SOURCE_INDEX))
    try:
        yield SourceSnapshot(es710.url, os2.url, repo_dir, REPO_NAME, SNAPSHOT, SOURCE_INDEX, live)
    finally:
        es.snapshot.delete(repository=REPO_NAME, snapshot=SNAPSHOT, ignore=[404])
        es.snapshot.delete_repository(repository=REPO_NAME, ignore=[404])
        es.indices.delete(index=SOURCE_INDEX, ignore=[404])
        shutil.rmtree(repo_dir, ignore_errors=True)


@pytest.fixture
def target(os2: Any) -> Iterator[OpenSearch]:
    """The OpenSearch 2.x target; afterwards deletes this session's indices (and only those)."""
    client = OpenSearch(os2.url, timeout=120)
    yield client
    mine = client.indices.get(index=f"bf-{RUN}-*,mactl-backfill-*{RUN}*", expand_wildcards="all", ignore=[404]) or {}
    for index in sorted(mine):
        client.indices.delete(index=index, ignore=[404])
