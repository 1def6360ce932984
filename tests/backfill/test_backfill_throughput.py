"""`maxThroughputMbps` caps the whole backfill stage in megabits per second, whatever its
number of workers (issue 15 item 8): moving N bytes takes at least N·8/cap seconds."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from bf_fixtures import SourceSnapshot, scan_docs
from opensearchpy import OpenSearch
from test_backfill_stage import _address, _inputs, _source_docs, _start, _wait_for_more_docs

from mactl.backfill.bulk import action_line

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_two_workers_share_the_stage_cap_in_megabits(
    source_snapshot: SourceSnapshot, target: OpenSearch, tmp_path: Path
) -> None:
    expected = _source_docs(source_snapshot)
    index = source_snapshot.index
    # a lower bound of the _bulk bytes the stage sends: each document's action line and its
    # source re-serialised compactly (the stored source is at least that long)
    batch_docs = 50
    sizes = [
        len(action_line(index, doc_id, routing)) + len(orjson.dumps(source)) + 1
        for doc_id, (routing, source) in expected.items()
    ]
    total = sum(sizes)
    free = 2 * batch_docs * max(sizes)  # each worker's first batch goes before its limiter has to wait
    seconds = 14.0  # what the cap should stretch the stage to (long enough to tell half of it apart)
    cap_mbps = total * 8 / seconds / 1_000_000

    proc = _start(
        tmp_path,
        _inputs(
            source_snapshot, source_snapshot.os_url, workers=2, maxBatchDocs=batch_docs, maxThroughputMbps=cap_mbps
        ),
        _address(),
    )
    _wait_for_more_docs(target, index, 0, proc)
    began = time.monotonic()
    out, err = proc.communicate(timeout=120)
    elapsed = time.monotonic() - began
    assert proc.returncode == 0, err[-3000:]
    assert scan_docs(target, index) == expected  # all of it, doc by doc
    minimum = (total - free) * 8 / (cap_mbps * 1_000_000)
    # one worker alone at the whole cap, or the cap read as megabytes, would take half or an eighth of this
    assert elapsed >= 0.8 * minimum, (elapsed, minimum, total, cap_mbps)
