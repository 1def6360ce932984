"""Smoke tests: the three clusters run the pinned versions, and an fs snapshot taken on
ES 7.10.2 into the shared repo folder can be listed from OpenSearch 2.x."""

from __future__ import annotations

import shutil
import uuid

import pytest
from opensearchpy import OpenSearch

from devtools.local.distributions import version_for

pytestmark = pytest.mark.cluster


def _client(url: str) -> OpenSearch:
    return OpenSearch(hosts=[url], timeout=60)


@pytest.mark.parametrize("name", ["es710", "os13", "os2"])
def test_cluster_runs_pinned_version_and_is_healthy(name: str, request: pytest.FixtureRequest) -> None:
    cluster = request.getfixturevalue(name)
    client = _client(cluster.url)
    assert client.info()["version"]["number"] == version_for(name) == cluster.version
    assert client.cluster.health()["status"] in ("green", "yellow")


def test_es710_fs_snapshot_is_listed_from_opensearch2(es710, os2) -> None:
    tag = f"smoke-{uuid.uuid4().hex[:10]}"
    location = es710.repo_dir / tag
    location.mkdir()
    location.chmod(0o777)  # the clusters run as the unprivileged `mactl` user
    source, target = _client(es710.url), _client(os2.url)
    docs = {str(i): {"n": i, "title": f"document {i}"} for i in range(25)}
    try:
        for doc_id, body in docs.items():
            source.index(index=tag, id=doc_id, body=body)
        source.indices.refresh(index=tag)
        assert source.count(index=tag)["count"] == len(docs)

        source.snapshot.create_repository(repository=tag, body={"type": "fs", "settings": {"location": str(location)}})
        created = source.snapshot.create(
            repository=tag, snapshot="snap1", body={"indices": tag}, params={"wait_for_completion": "true"}
        )
        assert created["snapshot"]["state"] == "SUCCESS"
        assert created["snapshot"]["shards"]["failed"] == 0
        assert (location / "index.latest").is_file()  # the snapshot really is on disk

        target.snapshot.create_repository(
            repository=tag, body={"type": "fs", "settings": {"location": str(location), "readonly": True}}
        )
        listed = target.snapshot.get(repository=tag, snapshot="_all")["snapshots"]
        assert [(s["snapshot"], s["indices"], s["state"]) for s in listed] == [("snap1", [tag], "SUCCESS")]
        assert listed[0]["version"] == "7.10.2"
    finally:
        for client in (target, source):
            try:
                client.snapshot.delete_repository(repository=tag)
            except Exception:  # noqa: BLE001 - best-effort clean-up; the assertion above matters
                pass
        source.indices.delete(index=tag, ignore_unavailable=True)
        shutil.rmtree(location, ignore_errors=True)
