"""Auto-id writes captured in front of the real ES 7.10.2 replay onto OpenSearch 2.x with
the source's ids, and replaying the whole log a second time creates no duplicate."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from cap_helpers import start_proxy  # type: ignore[import-not-found]
from opensearchpy import OpenSearch

from mactl.capture.replayer import Replayer, ReplayOptions


def _call(url: str, method: str, body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    req = urllib.request.Request(url, data=body, method=method, headers={"content-type": content_type})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _docs(client: OpenSearch, index: str) -> dict[str, Any]:
    client.indices.refresh(index=index)
    hits = client.search(index=index, body={"query": {"match_all": {}}, "size": 10000})["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def _replay(file_log: dict[str, Any], group: str, tmp_path: Path, os2: Any) -> Any:
    work = tmp_path / group
    work.mkdir()
    options = ReplayOptions(
        target_url=os2.url,
        tuples_path=work / "tuples.ndjson",
        deadletter_path=work / "dead.ndjson",
        status_path=work / "status.json",
        max_speedup=1000,
        max_lag_s=30,
        lag_window_s=0.3,
    )
    return Replayer(file_log, group, options).run({}, until_in_sync=True, timeout_s=120)


def test_auto_id_writes_replay_with_the_source_ids_and_twice_is_harmless(
    tmp_path: Path, es710: Any, os2: Any, es: OpenSearch, target: OpenSearch, file_log: dict[str, Any], index_name: str
) -> None:
    proxy = start_proxy(es710.url, file_log, capturing=True)
    try:
        base = proxy.url
        _call(f"{base}/{index_name}", "PUT", b'{"settings":{"number_of_shards":2,"number_of_replicas":0}}')
        single_ids = [
            _call(f"{base}/{index_name}/_doc", "POST", b'{"kind":"single","n":%d}' % i)["_id"] for i in range(10)
        ]
        lines = []
        for i in range(30):
            action = "create" if i % 3 == 0 else "index"
            meta = {"_id": f"explicit-{i}"} if i % 10 == 9 else {}
            lines += [json.dumps({action: meta}), json.dumps({"kind": "bulk", "n": i, "text": "é\u2603"})]
        lines += [json.dumps({"delete": {"_id": single_ids[0]}})]
        bulk = _call(
            f"{base}/{index_name}/_bulk?refresh=true",
            "POST",
            ("\n".join(lines) + "\n").encode(),
            "application/x-ndjson",
        )
        assert bulk["errors"] is False and len(bulk["items"]) == 31
        # an answer that hides the id cannot be pinned: that one write is replayed as captured
        _call(f"{base}/{index_name}/_doc?filter_path=result", "POST", b'{"kind":"hidden"}')
    finally:
        proxy.stop()

    source_docs = _docs(es, index_name)
    assert len(source_docs) == 10 - 1 + 30 + 1

    first = _replay(file_log, "cap-autoid-1", tmp_path, os2)
    assert first.in_sync and first.dead_lettered == 0
    assert first.ids_pinned == 10 + 27  # 10 singles, 27 bulk actions without an id; not the hidden one
    target_docs = _docs(target, index_name)
    hidden = [k for k, v in source_docs.items() if v["kind"] == "hidden"]
    assert len(hidden) == 1
    expected = {k: v for k, v in source_docs.items() if k != hidden[0]}
    assert {k: v for k, v in target_docs.items() if v["kind"] != "hidden"} == expected  # same ids, same bodies
    assert single_ids[0] not in target_docs  # the bulk's delete found the pinned document

    second = _replay(file_log, "cap-autoid-2", tmp_path, os2)  # the whole log again, as after a lost offset
    assert second.in_sync and second.ids_pinned == first.ids_pinned
    again = _docs(target, index_name)
    assert {k: v for k, v in again.items() if v["kind"] != "hidden"} == expected  # no duplicates
    assert sum(1 for v in again.values() if v["kind"] == "hidden") == 2  # the unpinnable one did duplicate
    status = json.loads((tmp_path / "cap-autoid-2" / "status.json").read_text())
    assert status["idsPinned"] == 37
