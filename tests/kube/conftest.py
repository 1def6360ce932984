"""Fixtures for the Kubernetes executor tests: a real API server, and the backfill's snapshot.

`kube` reuses a control plane from MACTL_TEST_KUBECONFIG (`eval "$(scripts/kube env)"`), or
starts one for the session (building kube-apiserver and kube-controller-manager first when
they are not cached) and stops it at the end. The source snapshot and target fixtures are
the backfill tests' own, loaded from `tests/backfill/conftest.py`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kube_helpers import Kube  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "backfill"))
sys.path.insert(0, str(HERE.parents[1]))

_spec = importlib.util.spec_from_file_location("kube_bf_conftest", HERE.parent / "backfill" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_backfill = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_backfill)
source_snapshot = _backfill.source_snapshot
target = _backfill.target


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    if path := os.environ.get("MACTL_TEST_KUBECONFIG"):
        yield Kube(Path(path), Path(os.environ.get("MACTL_KUBE_PODS", Path(path).parent / "pods")))
        return
    from devtools.kube import cluster
    from devtools.local.process import port_in_use

    if port_in_use(cluster.APISERVER_PORT):
        pytest.fail(
            f"port {cluster.APISERVER_PORT} is taken: a control plane from `scripts/kube up`? "
            'run `eval "$(scripts/kube env)"` so the tests reuse it'
        )
    layout = cluster.Layout(Path(tempfile.mkdtemp(prefix="mactl-kube-")))
    try:
        cluster.up(layout, timeout=180)
        yield Kube(layout.kubeconfig, layout.pods)
    finally:
        cluster.down(layout)
    shutil.rmtree(layout.root, ignore_errors=True)  # kept, with its logs, when the start failed
