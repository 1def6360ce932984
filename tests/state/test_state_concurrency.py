"""Many writers at once, and writers killed mid-write: nothing is lost, nothing goes backwards."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
from mactl.state import LocalStateConfig, S3StateConfig, StageRecord, StateDocument, open_backend
from state_helpers import start_together, start_worker

AnyState = LocalStateConfig | S3StateConfig


def test_ten_concurrent_writers_lose_no_update(any_state: AnyState, tmp_path: Path) -> None:
    backend = open_backend(any_state, base_dir=tmp_path)
    backend.write(StateDocument())  # serial 1, empty
    seen_serials: list[int] = []
    stop = threading.Event()

    def watch() -> None:  # a reader polling all along: the serial it sees never goes backwards
        reader = open_backend(any_state, base_dir=tmp_path)
        while not stop.is_set():
            doc = reader.read()
            assert doc is not None
            seen_serials.append(doc.serial)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    names = [f"w{i}" for i in range(10)]
    go = tmp_path / "go"
    procs = [start_worker("writer", any_state.model_dump_json(), name, str(go), cwd=tmp_path) for name in names]
    results = []
    try:
        start_together(procs, go)
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            results.append(json.loads(out))
    finally:
        stop.set()
        watcher.join()

    final = backend.read()
    assert final is not None
    assert sorted(final.stages) == sorted(f"validate.{n}" for n in names)  # every update is there
    assert final.serial == 11
    assert sorted(r["serial"] for r in results) == list(range(2, 12))  # each write got its own serial
    history_serials = [e.serial for e in final.history]
    assert history_serials == list(range(2, 12))  # strictly increasing, none lost, none twice
    assert sorted(e.who for e in final.history) == sorted(names)
    assert sum(r["conflicts"] for r in results) > 0  # they really did collide
    assert seen_serials == sorted(seen_serials) and seen_serials[-1] == 11


def _seed_big_state(config: LocalStateConfig, tmp_path: Path, stages: int) -> StateDocument:
    doc = StateDocument()
    for i in range(stages):
        doc.stages[f"backfill.source.snap1.target_1.m{i % 40}.b{i}"] = StageRecord(
            type="backfill",
            status="complete",
            inputs={"index": f"logs-{i}", "batch": 1000, "pad": "p" * 200},
            outputs={"docs": i},
            inputs_digest=f"sha256:{i:064x}",
        )
    doc.record(who="seed", operation="apply", result="ok")
    return open_backend(config, base_dir=tmp_path).write(doc)


@pytest.mark.slow
def test_a_write_killed_at_any_moment_leaves_the_previous_state(local_state: LocalStateConfig, tmp_path: Path) -> None:
    seeded = _seed_big_state(local_state, tmp_path, 4000)  # ~2 MB: a write takes long enough to be caught
    rng = random.Random(4)
    last_serial = seeded.serial
    kills = 0
    caught_mid_write = 0
    state_dir = Path(local_state.path)
    while kills < 6 or (caught_mid_write < 3 and kills < 15):  # kills at random moments, >= 3 inside a write
        proc = start_worker("big-writer", local_state.model_dump_json(), cwd=tmp_path)
        first = proc.stdout.readline()  # type: ignore[union-attr]  # it has written once
        time.sleep(rng.uniform(0.0, 0.8))  # then a random moment of its write loop
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        kills += 1
        caught_mid_write += any(p.name.endswith(".tmp") for p in state_dir.iterdir())
        printed = [int(line) for line in (first + out).split()]
        assert printed, "the writer was killed before its first write; give it longer"
        doc = open_backend(local_state, base_dir=tmp_path).read()  # readable, never half-written
        assert doc is not None
        # the last write the child reported is stored; at most one more finished before the kill landed
        assert printed[-1] <= doc.serial <= printed[-1] + 1
        assert doc.serial >= last_serial
        assert len(doc.stages) == 4000
        # history intact: one entry per stored serial, in order, nothing missing
        assert [e.serial for e in doc.history] == list(range(1, doc.serial + 1))
        last_serial = doc.serial
    assert caught_mid_write >= 3, "kills did not land inside writes (no temp file left): the test proved nothing"
    # temp files of killed writers are cleaned up by the next write
    backend = open_backend(local_state, base_dir=tmp_path)
    doc = backend.read()
    assert doc is not None
    backend.write(doc)
    assert [p.name for p in state_dir.iterdir() if p.name.endswith(".tmp")] == []
    assert all(b.read_version(v).serial for b in [backend] for v in b.versions())  # every backup parses
    print(f"{caught_mid_write} of {kills} kills landed mid-write")
