"""End to end on repositories Elasticsearch 8.x and OpenSearch 3.x write: the reader equals the
cluster's own scroll, `_source` byte for byte.

One index per version keeps CI lean, each chosen for what is new in that version: on ES 8 a
`best_compression` index (zstd stored fields, `ZstdStoredFields814`, since 8.14); on
OpenSearch 3 a default-codec index (Lucene 10 segments, and shard folders under hashed
prefixes, `shard_path_type: 1`). Both have 3 shards and 20+ segments, updates, deletes,
custom routing, nested docs, a > 1 MiB document, unicode and escapes.
"""

from __future__ import annotations

import datetime
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import make_fixtures
import pytest

from mactl.snapshot_reader import open_repository
from mactl.snapshot_reader.framing import read_index_header

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CODEC = {"es8": "best_compression", "os3": None}


@pytest.fixture(scope="module")
def newer_repos(es8, os3):
    run = uuid.uuid4().hex[:6]

    def build(name: str, cluster) -> make_fixtures.Fixture:
        repo_dir = Path(cluster.repo_dir) / "snapshot_reader" / f"{name}-{run}"
        return make_fixtures.build_fixture(
            cluster.url, repo_dir, prefix=f"snaprd-{name}-{run}", main_only=True, main_codec=CODEC[name]
        )

    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(build, name, c) for name, c in (("es8", es8), ("os3", os3))}
    built = {name: f.result() for name, f in futures.items() if f.exception() is None}
    try:
        failed = [f"{name}: {f.exception()}" for name, f in futures.items() if f.exception() is not None]
        if failed:
            pytest.fail("building snapshot fixtures failed: " + "; ".join(failed))
        yield built
    finally:
        for fx in built.values():
            make_fixtures.cleanup_fixture(fx)


@pytest.mark.parametrize("cluster", ["es8", "os3"])
def test_reader_equals_cluster_scroll_byte_for_byte(newer_repos, cluster, request):
    fx = newer_repos[cluster]
    (index,) = fx.indices
    repo = open_repository(fx.repo_dir)
    snap = repo.snapshot(fx.snapshot)
    assert snap.state == "SUCCESS" and snap.indices == [index]
    got, sources = {}, {}
    for shard in range(repo.shard_count(fx.snapshot, index)):
        for doc in repo.documents(fx.snapshot, index, shard):
            assert doc.id not in got, f"{doc.id} came out twice"
            got[doc.id] = (doc.routing, json.loads(doc.source))
            sources[doc.id] = doc.source
    view = make_fixtures.cluster_view(fx, index)
    assert len(got) == len(view) > 400
    assert got == view  # ids, routing and parsed _source
    sent = {doc_id: body for (ix, doc_id), body in fx.sent_sources.items() if ix == index}
    assert {doc_id: sources[doc_id] for doc_id in sent} == sent  # the bytes the client sent
    assert len(sources["big-doc"]) > 1 << 20
    # the version `snapshot ls` shows is the cluster's own release line, not ES's frozen "8.11.0"
    version = request.getfixturevalue(cluster).version
    assert snap.version == (f"{version.rsplit('.', 1)[0]}.x" if cluster == "es8" else version)


def test_the_fixtures_have_what_is_new_in_each_version(newer_repos):
    """Guard the fixtures: zstd stored fields on ES 8, hashed shard folders on OpenSearch 3,
    and on both many segments, routing and deletes."""
    es8_fx, os3_fx = newer_repos["es8"], newer_repos["os3"]
    es8_repo, os3_repo = open_repository(es8_fx.repo_dir), open_repository(os3_fx.repo_dir)
    stored_fields_formats = set()
    for shard in range(3):
        reader = es8_repo._shard(es8_fx.snapshot, es8_fx.indices[0], shard)
        assert len(reader.commit.segments) >= 20
        for ordinal, sci in enumerate(reader.commit.segments):
            fdt = reader._open(ordinal, sci).files[f"{sci.name}.fdt"]
            stored_fields_formats.add(read_index_header(bytes(fdt[:64]), "fdt")[0])
    assert stored_fields_formats == {"ZstdStoredFields814"}
    entry = os3_repo.repository_data()["indices"][os3_fx.indices[0]]
    assert entry["shard_path_type"] == 1
    assert not (os3_fx.repo_dir / "indices" / entry["id"] / "0").exists()  # not the fixed layout
    for shard in range(3):
        assert len(os3_repo._shard(os3_fx.snapshot, os3_fx.indices[0], shard).commit.segments) >= 20
    for fx in (es8_fx, os3_fx):
        assert any(fx.routing.values())


#: index suffix -> create body; each holds one document. Only `stored` keeps its `_source`.
SOURCE_MODES: dict[str, dict] = {
    "setting": {"settings": {"index.mapping.source.mode": "synthetic"}},
    "mapping": {"mappings": {"_source": {"mode": "synthetic"}}},
    "logsdb": {"settings": {"index.mode": "logsdb"}},
    "tsdb": {
        "settings": {"index.mode": "time_series", "index.routing_path": ["host"]},
        "mappings": {
            "properties": {
                "host": {"type": "keyword", "time_series_dimension": True},
                "v": {"type": "long", "time_series_metric": "gauge"},
            }
        },
    },
    "stored": {"settings": {"index.mode": "logsdb", "index.mapping.source.mode": "stored"}},
}


def test_es8_synthetic_source_is_named_at_plan_and_stored_source_still_reads(es8, os3):
    """ES 8 keeps no `_source` for synthetic-source indices (explicit, logsdb, time_series):
    `plan` names each with the reason and what happens; an explicit `stored` one is migratable."""
    from mactl.providers.backfill import BackfillProvider
    from opensearchpy import OpenSearch

    from mactl.schema.backfill import BackfillInputs

    run = uuid.uuid4().hex[:6]
    client = OpenSearch(es8.url, timeout=120)
    repo_dir = es8.repo_folder("snapshot_reader", f"es8-modes-{run}")
    names = {mode: f"snaprd-mode-{run}-{mode}" for mode in SOURCE_MODES}
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    sent = f'{{"@timestamp":"{now}","host":"h1","v":5,"tags":[3,1,2]}}'.encode()
    try:
        for mode, body in SOURCE_MODES.items():
            client.indices.create(index=names[mode], body=body)
            client.index(index=names[mode], body=sent, id=None if mode == "tsdb" else "1", refresh="true")
        client.snapshot.create_repository(
            repository=f"snaprd-mode-{run}", body={"type": "fs", "settings": {"location": str(repo_dir)}}
        )
        client.snapshot.create(
            repository=f"snaprd-mode-{run}",
            snapshot="s",
            body={"indices": ",".join(names.values()), "include_global_state": False},
            wait_for_completion=True,
        )
        inputs = {
            "target": {"name": "target", "endpoint": os3.url},
            "repository": {"type": "fs", "location": str(repo_dir)},
            "snapshotName": "s",
            "indices": [{"names": list(names.values())}],
        }
        notes = BackfillProvider().plan_notes(BackfillInputs.model_validate(inputs))
        by_index = {note.split()[1]: note for note in notes}
        assert set(by_index) == {names[m] for m in ("setting", "mapping", "logsdb", "tsdb")}
        assert "index.mapping.source.mode: synthetic" in by_index[names["setting"]]
        assert "mappings._source.mode: synthetic" in by_index[names["mapping"]]
        assert "index.mode: logsdb, whose default is synthetic source" in by_index[names["logsdb"]]
        assert "index.mode: time_series" in by_index[names["tsdb"]]
        for note in notes:
            assert "mactl does not rebuild it" in note and "the stage will fail before writing any document" in note

        repo = open_repository(repo_dir)
        from mactl.cli.snapshot_cmd import _show_data  # what `mactl snapshot show --json` prints

        shown = {ix["index"]: ix["source_missing"] for ix in _show_data(repo, "s")["indices"]}
        assert shown[names["stored"]] is None
        for mode in ("setting", "mapping", "logsdb", "tsdb"):
            assert shown[names[mode]] is not None and shown[names[mode]] in by_index[names[mode]]
        for mode, index in names.items():
            (doc,) = repo.documents("s", index, 0, with_sourceless=True)
            assert doc.source == (sent if mode == "stored" else b""), mode
    finally:
        client.indices.delete(index=",".join(names.values()), ignore_unavailable=True)
        try:
            client.snapshot.delete(repository=f"snaprd-mode-{run}", snapshot="s")
            client.snapshot.delete_repository(repository=f"snaprd-mode-{run}")
        except Exception:
            pass


@pytest.mark.s3
def test_os3_hashed_shard_folders_read_from_s3_under_a_base_path(newer_repos, s3_server, tmp_path, monkeypatch):
    """On S3 with a base path, OpenSearch's HASHED_PREFIX puts each shard folder at the bucket
    root, above the base path (`<hash>/<base>/indices/<id>/<shard>`, per its PathType code);
    the rest of the repository sits under the base path. The fs repository os3 wrote is laid
    out that way in moto, and the reader must find every shard."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    fx = newer_repos["os3"]
    s3 = boto3.client(
        "s3", endpoint_url=s3_server.url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    bucket = "snaprd-os3-" + uuid.uuid4().hex[:8]
    base = "team/os3-snapshots"
    s3.create_bucket(Bucket=bucket)
    try:
        hashed = 0
        for path in fx.repo_dir.rglob("*"):
            if not path.is_file():
                continue
            rel = path.relative_to(fx.repo_dir).as_posix()
            head, _, rest = rel.partition("/")
            if rest.startswith("indices/") and len(head) == 15:  # a hashed shard folder
                key, hashed = f"{head}/{base}/{rest}", hashed + 1
            else:
                key = f"{base}/{rel}"
            s3.upload_file(str(path), bucket, key)
        assert hashed > 0
        remote = open_repository(f"s3://{bucket}/{base}", s3_endpoint=s3_server.url, cache_dir=tmp_path)
        local = open_repository(fx.repo_dir)
        (index,) = fx.indices
        for shard in range(3):
            a = [(d.id, d.routing, d.source) for d in remote.documents(fx.snapshot, index, shard)]
            b = [(d.id, d.routing, d.source) for d in local.documents(fx.snapshot, index, shard)]
            assert a == b and a
    finally:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)
