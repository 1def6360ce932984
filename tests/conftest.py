"""Session fixtures for the real services: ES 7.10.2, OpenSearch 1.3, OpenSearch 2.x, S3, Kafka.

Each fixture reuses a running service when its MACTL_TEST_*_URL variable points at one
(`scripts/clusters env` prints them), and otherwise starts its own for the session.
One source/target set per session, shared by every test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class RunningCluster:
    name: str  # es710 | os13 | os2
    url: str
    version: str
    repo_dir: Path  # the `path.repo` folder every local cluster shares, for fs snapshots


def _reuse(name: str) -> RunningCluster | None:
    url = os.environ.get(f"MACTL_TEST_{name.upper()}_URL")
    if not url:
        return None
    import json
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as resp:
        version = json.load(resp)["version"]["number"]
    return RunningCluster(name, url.rstrip("/"), version, Path(os.environ["MACTL_TEST_REPO_DIR"]))


def _cluster(name: str) -> RunningCluster:
    found = _reuse(name)
    if found is None:
        pytest.fail(f"set MACTL_TEST_{name.upper()}_URL (cluster start-up is not wired in yet)")
    return found


@pytest.fixture(scope="session")
def es710() -> RunningCluster:
    """The Elasticsearch 7.10.2 source."""
    return _cluster("es710")


@pytest.fixture(scope="session")
def os13() -> RunningCluster:
    """The OpenSearch 1.3 second source."""
    return _cluster("os13")


@pytest.fixture(scope="session")
def os2() -> RunningCluster:
    """The OpenSearch 2.x target."""
    return _cluster("os2")
