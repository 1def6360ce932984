"""Fixtures for the snapshot reader tests: cluster-made repositories, built once per session."""

from __future__ import annotations

import uuid
from pathlib import Path

import make_fixtures  # this folder is on sys.path (pytest's prepend import mode)
import pytest

DATA = Path(__file__).parents[1] / "data" / "snapshots"


@pytest.fixture(scope="session")
def shared_repos() -> Path:
    return DATA


def _built(cluster, name: str):
    run = uuid.uuid4().hex[:6]
    repo_dir = Path(cluster.repo_dir) / "snapshot_reader" / f"{name}-{run}"
    fx = make_fixtures.build_fixture(cluster.url, repo_dir, prefix=f"snaprd-{name}-{run}")
    return fx


@pytest.fixture(scope="session")
def built_repos(es710, os13, os2):
    """One repository per cluster, built in parallel (each cluster works on its own)."""
    from concurrent.futures import ThreadPoolExecutor

    clusters = {"es710": es710, "os13": os13, "os2": os2}
    with ThreadPoolExecutor(3) as pool:
        futures = {name: pool.submit(_built, c, name) for name, c in clusters.items()}
        built = {}
        errors = []
        for name, fut in futures.items():
            try:
                built[name] = fut.result()
            except Exception as err:  # build the others, clean up, then fail
                errors.append(f"{name}: {err}")
    try:
        if errors:
            pytest.fail("building snapshot fixtures failed: " + "; ".join(errors))
        yield built
    finally:
        for fx in built.values():
            make_fixtures.cleanup_fixture(fx)
