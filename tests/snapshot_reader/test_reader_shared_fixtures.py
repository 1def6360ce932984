"""The four shared repositories yield exactly what their README (and bytes) say."""

from __future__ import annotations

import json

import pytest

from mactl.snapshot_reader import Cursor, SnapshotReaderError, open_repository


def _all_docs(repo, snap):
    out = []
    for index in repo.snapshot(snap).indices:
        for shard in range(repo.shard_count(snap, index)):
            out += [(d.index, d.id, d.type, d.routing) for d in repo.documents(snap, index, shard)]
    return out


def test_es68_single(shared_repos):
    repo = open_repository(shared_repos / "ES_6_8_Single")
    snap = repo.snapshot("global_state_snapshot")
    assert snap.state == "SUCCESS" and snap.version == "6.8.24"
    assert _all_docs(repo, snap) == [
        ("posts_2023_02_25", "AE0-Zo4B7T-RS_C5iG5e", "_doc", None),
        ("posts_2024_01_01", "AU0_Zo4B7T-RS_C5JW5A", "_doc", "user123"),
        ("posts_2024_01_01", "Ak0_Zo4B7T-RS_C58m7a", "_doc", "user123"),
        ("posts_2024_01_01", "A01AZo4B7T-RS_C5Am6z", "_doc", "user123"),
    ]
    glob = repo.global_metadata(snap)
    assert "posts_index_template" in glob.templates
    meta = repo.index_metadata(snap, "posts_2024_01_01")
    assert meta.number_of_shards == 1 and meta.settings["index"]["number_of_shards"] == "1"
    assert meta.mappings["properties"]["author"] == {"type": "keyword"}
    assert meta.aliases["another_alias"]["index_routing"] == "user123"


@pytest.mark.parametrize("folder", ["ES_7_10_Single", "ES_7_10_Double"])
def test_es710_first_snapshot(shared_repos, folder):
    repo = open_repository(shared_repos / folder)
    assert _all_docs(repo, "global_state_snapshot") == [
        ("posts_2023_02_25", "dkO8Zo4B5P7rRiUeuFRC", None, None),
        ("posts_2024_01_01", "d0O8Zo4B5P7rRiUe4VRD", None, "user123"),
        ("posts_2024_01_01", "eEO-Zo4B5P7rRiUeCFSo", None, "user123"),
        ("posts_2024_01_01", "eUO-Zo4B5P7rRiUeCFTz", None, "user123"),
    ]
    glob = repo.global_metadata("global_state_snapshot")
    # the bytes hold these as composable index template / component template
    assert glob.index_templates["posts_index_template"]["index_patterns"]
    assert glob.component_templates["posts_template"]["template"]["mappings"]["properties"]["tags"] == {
        "type": "keyword"
    }
    assert repo.index_metadata("global_state_snapshot", "posts_2023_02_25").aliases == {"current_posts": {}}


def test_es710_double_second_snapshot(shared_repos):
    repo = open_repository(shared_repos / "ES_7_10_Double")
    assert [s.name for s in repo.snapshots()] == ["global_state_snapshot", "global_state_snapshot_2"]
    assert repo.snapshot("global_state_snapshot_2").indices == ["posts_2024_01_01"]
    assert [d[1] for d in _all_docs(repo, "global_state_snapshot_2")] == [
        "d0O8Zo4B5P7rRiUe4VRD",
        "eEO-Zo4B5P7rRiUeCFSo",
        "eUO-Zo4B5P7rRiUeCFTz",
    ]


def test_soft_deletes_leave_exactly_three_live_docs(shared_repos):
    repo = open_repository(shared_repos / "ES_7_10_Updates_Deletes_w_Soft")
    docs = list(repo.documents("rfs_snapshot", "test_updates_deletes", 0))
    by_id = {d.id: json.loads(d.source) for d in docs}
    assert set(by_id) == {"complexdoc", "updateddoc", "unchangeddoc"}
    assert by_id["complexdoc"] == {"title": "This is a doc with complex history", "content": "Updated!"}
    assert by_id["updateddoc"] == {"title": "This is doc that will be updated", "content": "Updated!"}
    assert by_id["unchangeddoc"]["title"].startswith("This doc will not be changed")
    assert by_id["unchangeddoc"]["content"] == "bluh bluh"
    # the source bytes come back unchanged, leading newlines included
    assert next(d for d in docs if d.id == "unchangeddoc").source.startswith(b"\n\n\n{")


def test_cursor_resumes_right_after(shared_repos):
    repo = open_repository(shared_repos / "ES_7_10_Updates_Deletes_w_Soft")
    docs = list(repo.documents("rfs_snapshot", "test_updates_deletes", 0))
    for i, d in enumerate(docs):
        again = Cursor.from_json(json.loads(json.dumps(d.cursor.to_json())))
        rest = [x.id for x in repo.documents("rfs_snapshot", "test_updates_deletes", 0, after=again)]
        assert rest == [x.id for x in docs[i + 1 :]]


def test_unknown_snapshot_lists_the_real_ones(shared_repos):
    repo = open_repository(shared_repos / "ES_7_10_Double")
    with pytest.raises(SnapshotReaderError, match="global_state_snapshot, global_state_snapshot_2"):
        repo.snapshot("nope")


def test_corrupt_blob_names_the_file(shared_repos, tmp_path):
    import shutil

    repo_dir = tmp_path / "repo"
    shutil.copytree(shared_repos / "ES_7_10_Single", repo_dir)
    blob = repo_dir / "indices/TKzEIy9ASTq-FuWhogYPHw/0/__ARhsLdKvTsGFluWyea1lmQ"
    repo = open_repository(repo_dir)
    snap = repo.snapshot("global_state_snapshot")
    files = repo._shard(snap, "posts_2024_01_01", 0).dir.files
    physical = next(f.physical_name for f in files.values() if f.blob == blob.name)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    repo = open_repository(repo_dir)
    with pytest.raises(SnapshotReaderError, match=rf"posts_2024_01_01\[0\]/{physical} .*corrupt: checksum mismatch"):
        list(repo.documents("global_state_snapshot", "posts_2024_01_01", 0))
