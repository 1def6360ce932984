"""`mactl snapshot ls|show|dump` on the shared repositories, and their error cases."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mactl", *args], capture_output=True, text=True, timeout=60)


def test_ls_json(shared_repos):
    res = _run("snapshot", "ls", "--repo", str(shared_repos / "ES_7_10_Double"), "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert [(s["name"], s["state"], s["indices"], s["version"]) for s in data] == [
        ("global_state_snapshot", "SUCCESS", 2, "7.10.2"),
        ("global_state_snapshot_2", "SUCCESS", 1, "7.10.2"),
    ]
    assert data[0]["start_time"] == 1711120727418


def test_ls_table(shared_repos):
    res = _run("snapshot", "ls", "--repo", str(shared_repos / "ES_6_8_Single"))
    assert res.returncode == 0
    assert "global_state_snapshot" in res.stdout and "SUCCESS" in res.stdout and "6.8.24" in res.stdout


def test_show_json(shared_repos):
    res = _run(
        "snapshot",
        "show",
        "--repo",
        str(shared_repos / "ES_7_10_Updates_Deletes_w_Soft"),
        "--snapshot",
        "rfs_snapshot",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    (ix,) = data["indices"]
    assert ix["index"] == "test_updates_deletes" and ix["shards"] == 1 and ix["live_docs"] == 3
    assert ix["size_bytes"] > 0


def test_show_lists_templates(shared_repos):
    res = _run(
        "snapshot", "show", "--repo", str(shared_repos / "ES_7_10_Single"), "--snapshot", "global_state_snapshot"
    )
    assert res.returncode == 0
    assert "posts_index_template" in res.stdout and "posts_template" in res.stdout
    assert "posts_2024_01_01" in res.stdout


def test_dump_ndjson(shared_repos):
    res = _run(
        "snapshot",
        "dump",
        "--repo",
        str(shared_repos / "ES_6_8_Single"),
        "--snapshot",
        "global_state_snapshot",
        "--index",
        "posts_2024_01_01",
        "--limit",
        "2",
    )
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(lines) == 2
    assert lines[0] == {
        "_index": "posts_2024_01_01",
        "_id": "AU0_Zo4B7T-RS_C5JW5A",
        "_type": "_doc",
        "_routing": "user123",
        "_source": {
            "contents": "How Elasticsearch helped my patients",
            "author": "Tobias Funke",
            "tags": ["Elasticsearch", "Tutorial"],
        },
    }


def test_dump_typeless_has_no_type_and_no_empty_routing(shared_repos):
    res = _run(
        "snapshot", "dump", "--repo", str(shared_repos / "ES_7_10_Updates_Deletes_w_Soft"), "--snapshot", "rfs_snapshot"
    )
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [x["_id"] for x in lines] == ["complexdoc", "updateddoc", "unchangeddoc"]
    assert all(set(x) == {"_index", "_id", "_source"} for x in lines)


def test_unknown_snapshot_is_one_clear_line(shared_repos):
    res = _run("snapshot", "show", "--repo", str(shared_repos / "ES_7_10_Double"), "--snapshot", "nope")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert "no snapshot named 'nope'" in res.stderr and "global_state_snapshot_2" in res.stderr


def test_not_a_repository(tmp_path):
    res = _run("snapshot", "ls", "--repo", str(tmp_path))
    assert res.returncode == 1 and "no index-N file" in res.stderr and "Traceback" not in res.stderr


def test_corrupt_file_fails_naming_it(shared_repos, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(shared_repos / "ES_7_10_Updates_Deletes_w_Soft", repo)
    shard = next(repo.glob("indices/*/0"))
    biggest = max((p for p in shard.iterdir() if p.name.startswith("__")), key=lambda p: p.stat().st_size)
    data = bytearray(biggest.read_bytes())
    data[100] ^= 0x01
    biggest.write_bytes(bytes(data))
    res = _run("snapshot", "dump", "--repo", str(repo), "--snapshot", "rfs_snapshot")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"blob {biggest.name}" in res.stderr and "checksum mismatch" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_corrupt_metadata_blob(shared_repos, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(shared_repos / "ES_7_10_Single", repo)
    snap = next(repo.glob("snap-*.dat"))
    data = bytearray(snap.read_bytes())
    data[30] ^= 0x10
    snap.write_bytes(bytes(data))
    res = _run("snapshot", "show", "--repo", str(repo), "--snapshot", "global_state_snapshot")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"{snap.name} is corrupt: checksum mismatch" in res.stderr
