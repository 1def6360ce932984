"""End to end on repositories the real clusters write: the reader equals the cluster's view.

ES 7.10.2, OpenSearch 1.3 and OpenSearch 2.x; 3 shards and 20+ segments; hard deletes
(`.liv`) where soft deletes can be switched off, soft deletes otherwise; updates, routing,
nested docs, a > 1 MiB document, unicode and escapes; best_compression; a `compress: true`
repository with a 64kb chunk_size (multi-part blobs).
"""

from __future__ import annotations

import json

import boto3
import make_fixtures
import pytest

from mactl.snapshot_reader import open_repository

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CLUSTERS = ["es710", "os13", "os2"]


def _read_all(repo, fx, index):
    got = {}
    sources = {}
    for shard in range(repo.shard_count(fx.snapshot, index)):
        for d in repo.documents(fx.snapshot, index, shard):
            assert d.id not in got, f"{d.id} came out twice"
            got[d.id] = (d.routing, json.loads(d.source))
            sources[d.id] = d.source
    return got, sources


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_reader_equals_cluster_view(built_repos, cluster):
    fx = built_repos[cluster]
    repo = open_repository(fx.repo_dir)
    snap = repo.snapshot(fx.snapshot)
    assert snap.state == "SUCCESS" and sorted(snap.indices) == sorted(fx.indices)
    for index in fx.indices:
        got, sources = _read_all(repo, fx, index)
        view = make_fixtures.cluster_view(fx, index)
        assert len(got) == len(view) > 400
        assert got == view  # ids, routing and parsed _source: exactly equal
        # _source bytes are what the client sent (pretty, escaped, CRs and all)
        for (ix, doc_id), sent in fx.sent_sources.items():
            if ix == index:
                assert sources[doc_id] == sent, doc_id
        assert len(sources["big-doc"]) > 1 << 20


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_fixture_really_has_the_hard_parts(built_repos, cluster):
    """Guard the fixture itself: many segments, parts, deletes of the expected kind, nested docs."""
    fx = built_repos[cluster]
    repo = open_repository(fx.repo_dir)
    main, best = fx.indices
    assert repo.shard_count(fx.snapshot, main) == 3
    assert repo.index_metadata(fx.snapshot, best).settings["index"]["codec"] == "best_compression"
    total_segments = parts = livs = 0
    for shard in range(3):
        reader = repo._shard(fx.snapshot, main, shard)
        total_segments += len(reader.commit.segments)
        parts += sum(f.num_parts > 1 for f in reader.dir.files.values())
        livs += sum(n.endswith(".liv") for n in reader.dir.names())
        assert len(reader.commit.segments) >= 20
    assert parts >= 1  # the 1.5 MB doc's .fdt / .cfs is split by chunk_size 64kb
    assert (livs > 0) == fx.soft_deletes_off
    # the mapping has the nested field and nested docs exist, yet no child came out as a doc
    assert repo.index_metadata(fx.snapshot, main).mappings["properties"]["comments"]["type"] == "nested"
    raw = (fx.repo_dir / f"snap-{repo.snapshot(fx.snapshot).uuid}.dat").read_bytes()
    assert b"DFL\x00" in raw[:40]  # compress: true


def test_soft_deletes_off_where_the_version_allows(built_repos):
    assert built_repos["es710"].soft_deletes_off and built_repos["os13"].soft_deletes_off


def test_resume_in_the_middle_of_a_shard(built_repos):
    fx = built_repos["os2"]
    repo = open_repository(fx.repo_dir)
    index = fx.indices[0]
    docs = list(repo.documents(fx.snapshot, index, 1))
    for cut in (0, 1, len(docs) // 2, len(docs) - 2):
        rest = [d.id for d in repo.documents(fx.snapshot, index, 1, after=docs[cut].cursor)]
        assert rest == [d.id for d in docs[cut + 1 :]]


@pytest.mark.s3
def test_same_repository_read_from_s3(built_repos, s3_server, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")  # moto takes any credentials
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    fx = built_repos["es710"]
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    bucket = "snaprd-" + fx.repo_name.split("-")[-1]
    s3.create_bucket(Bucket=bucket)
    try:
        for path in fx.repo_dir.rglob("*"):
            if path.is_file():
                s3.upload_file(str(path), bucket, f"some/prefix/{path.relative_to(fx.repo_dir)}")
        repo = open_repository(f"s3://{bucket}/some/prefix", s3_endpoint=s3_server.url, cache_dir=tmp_path)
        local = open_repository(fx.repo_dir)
        index = fx.indices[0]
        for shard in range(3):
            a = [(d.id, d.routing, d.source) for d in repo.documents(fx.snapshot, index, shard)]
            b = [(d.id, d.routing, d.source) for d in local.documents(fx.snapshot, index, shard)]
            assert a == b and a
        assert any(tmp_path.rglob("__*"))  # shard files were cached locally
        # big files take the download-to-cache + mmap path: same documents
        from mactl.snapshot_reader import directory

        monkeypatch.setattr(directory, "MAP_THRESHOLD", 1)
        mapped = open_repository(f"s3://{bucket}/some/prefix", s3_endpoint=s3_server.url, cache_dir=tmp_path / "m")
        for shard in range(3):
            a = [(d.id, d.routing, d.source) for d in mapped.documents(fx.snapshot, index, shard)]
            b = [(d.id, d.routing, d.source) for d in local.documents(fx.snapshot, index, shard)]
            assert a == b
    finally:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)


def test_partial_snapshot_names_the_missing_shards(es710):
    import uuid
    from pathlib import Path

    from mactl.snapshot_reader import SnapshotReaderError

    run = uuid.uuid4().hex[:6]
    fx = make_fixtures.build_partial(
        es710.url, Path(es710.repo_dir) / "snapshot_reader" / f"partial-{run}", f"snaprd-partial-{run}"
    )
    try:
        repo = open_repository(fx.repo_dir)
        snap = repo.snapshot(fx.snapshot)
        assert snap.state == "PARTIAL"
        ok, red = fx.indices
        assert [d.id for d in repo.documents(snap, ok, 0)] == ["1"]
        with pytest.raises(
            SnapshotReaderError,
            match=rf"PARTIAL: shard {red}\[1\] was not snapshotted \(missing shards: .*{red}\[0\].*{red}\[1\]",
        ):
            list(repo.documents(snap, red, 1))
        import subprocess
        import sys

        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "mactl",
                "snapshot",
                "show",
                "--repo",
                str(fx.repo_dir),
                "--snapshot",
                fx.snapshot,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stderr
        shown = json.loads(res.stdout)
        assert shown["state"] == "PARTIAL" and len(shown["missing_shards"]) == 2
        red_shown = next(i for i in shown["indices"] if i["index"] == red)
        assert all("missing" in s for s in red_shown["shard_details"])
    finally:
        make_fixtures.cleanup_fixture(fx)


@pytest.mark.parametrize("cluster", ["es710", "os2"])
def test_dense_soft_deletes_block(cluster, request):
    """4500 of 5000 docs of the first segment are soft-deleted: a DENSE doc-id set on disk."""
    import uuid
    from pathlib import Path

    server = request.getfixturevalue(cluster)
    run = uuid.uuid4().hex[:6]
    fx = make_fixtures.build_dense_soft_deletes(
        server.url, Path(server.repo_dir) / "snapshot_reader" / f"dense-{run}", f"snaprd-dense-{cluster}-{run}"
    )
    try:
        repo = open_repository(fx.repo_dir)
        (index,) = fx.indices
        reader = repo._shard(fx.snapshot, index, 0)
        first = reader.commit.segments[0]
        assert first.soft_del_count == 4500
        seg = reader._open(0, first)
        assert len(reader._soft_deleted(seg)) == 4500
        got = {d.id: d.source for d in repo.documents(fx.snapshot, index, 0)}
        assert got == {doc_id: src for (_, doc_id), src in fx.sent_sources.items()}
        assert sum(json.loads(v)["round"] == "v2" for v in got.values()) == 4500
    finally:
        make_fixtures.cleanup_fixture(fx)


def test_memory_mapped_path_reads_the_same(built_repos, monkeypatch):
    """Big Lucene files (and joined multi-part files) are mmapped; the output must not change."""
    from mactl.snapshot_reader import directory

    fx = built_repos["os13"]
    index = fx.indices[0]
    plain = open_repository(fx.repo_dir)
    expected = [[(d.id, d.routing, d.source) for d in plain.documents(fx.snapshot, index, s)] for s in range(3)]
    monkeypatch.setattr(directory, "MAP_THRESHOLD", 1)
    mapped = open_repository(fx.repo_dir)
    got = [[(d.id, d.routing, d.source) for d in mapped.documents(fx.snapshot, index, s)] for s in range(3)]
    assert got == expected
    for shard in range(3):  # the shard holding the 1.5 MB doc has a multi-part file: joined, then mapped
        reader = mapped._shard(fx.snapshot, index, shard)
        for f in reader.dir.files.values():
            if f.num_parts > 1:
                assert isinstance(reader.dir.read(f.physical_name, keep=False), memoryview)
                break
        else:
            continue
        break
    else:
        raise AssertionError("no multi-part file in the fixture")
