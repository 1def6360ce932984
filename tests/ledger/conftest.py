"""Fixtures of the ledger tests: the session's three-index snapshot (see `ledger_data`)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import ledger_data as data  # type: ignore[import-not-found]
import pytest
from opensearchpy import OpenSearch


@pytest.fixture(scope="session")
def ledger_source(es710: Any, os2: Any) -> Iterator[Any]:
    es = OpenSearch(es710.url, timeout=120)
    repo_dir = es710.repo_folder("ledger", data.RUN)
    counts = data.build(es, repo_dir)
    try:
        yield data.LedgerSource(es710.url, os2.url, repo_dir, data.SNAPSHOT, counts)
    finally:
        data.drop(es)
        shutil.rmtree(repo_dir, ignore_errors=True)


@pytest.fixture
def target(os2: Any) -> Iterator[OpenSearch]:
    """The OpenSearch 2.x target; afterwards deletes this session's indices (and only those)."""
    client = OpenSearch(os2.url, timeout=120)
    yield client
    mine = client.indices.get(index=f"{data.PREFIX}*,mactl-backfill-*{data.RUN}*", expand_wildcards="all", ignore=[404])
    for index in sorted(mine or {}):
        client.indices.delete(index=index, ignore=[404])
