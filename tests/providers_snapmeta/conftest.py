"""Fixtures for the snapshot and metadata provider tests: real clusters, unique names.

Every test gets a fresh `snapmeta-<hex>-` prefix and a repository folder of its own
under the shared `path.repo`; everything with that prefix is deleted afterwards, on the
source and on the target, and nothing else is touched.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opensearchpy import OpenSearch
from snapmeta_helpers import Names


def _purge(client: OpenSearch, prefix: str) -> None:
    client.indices.delete(
        index=f"{prefix}*,.{prefix}*", expand_wildcards="all", ignore_unavailable=True, params={"ignore": 404}
    )
    for name in client.indices.get_template(name=f"{prefix}*", params={"ignore": 404}) or {}:
        if name.startswith(prefix):
            client.indices.delete_template(name=name)
    for path, key in (("/_index_template", "index_templates"), ("/_component_template", "component_templates")):
        found = client.transport.perform_request("GET", path)
        for entry in found.get(key) or []:
            if entry["name"].startswith(prefix):
                client.transport.perform_request("DELETE", f"{path}/{entry['name']}")
    repos = client.snapshot.get_repository()
    for repo in repos:
        if repo.startswith(prefix):
            for snap in client.snapshot.get(repository=repo, snapshot="_all").get("snapshots", []):
                client.snapshot.delete(repository=repo, snapshot=snap["snapshot"])
            client.snapshot.delete_repository(repository=repo)


@pytest.fixture
def names(request: pytest.FixtureRequest, es710, os13, os2) -> Iterator[Names]:  # noqa: ANN001
    prefix = f"snapmeta-{uuid.uuid4().hex[:8]}-"
    repo_dir = Path(os.environ.get("MACTL_TEST_REPO_DIR", es710.repo_dir)) / "snapmeta" / prefix.rstrip("-")
    repo_dir.mkdir(parents=True, exist_ok=True)
    for p in (repo_dir.parent, repo_dir):
        p.chmod(0o777)
    try:
        yield Names(prefix, repo_dir)
    finally:
        try:
            for cluster in (es710, os13, os2):
                _purge(OpenSearch(cluster.url, timeout=60), prefix)
        finally:
            shutil.rmtree(repo_dir, ignore_errors=True)


@pytest.fixture
def es(es710) -> OpenSearch:  # noqa: ANN001
    return OpenSearch(es710.url, timeout=60)


@pytest.fixture
def opensearch13(os13) -> OpenSearch:  # noqa: ANN001
    return OpenSearch(os13.url, timeout=60)


@pytest.fixture
def target(os2) -> OpenSearch:  # noqa: ANN001
    return OpenSearch(os2.url, timeout=60)
