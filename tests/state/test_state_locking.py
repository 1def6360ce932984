"""The state lock: two real processes contend, heartbeats, stale locks stay, force-unlock."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from mactl.state import LocalStateConfig, S3StateConfig, StateDocument, open_backend
from mactl.state.locking import lock_to_json
from state_helpers import start_together, start_worker

from mactl.errors import LockError

AnyState = LocalStateConfig | S3StateConfig


def _config_json(config: AnyState) -> str:
    return config.model_dump_json()


def test_two_processes_contend_exactly_one_proceeds(any_state: AnyState, tmp_path: Path) -> None:
    hold_s, timeout_s = 4.0, 1.5
    go = tmp_path / "go"
    procs = [
        start_worker("hold-lock", _config_json(any_state), str(go), str(hold_s), str(timeout_s), cwd=tmp_path)
        for _ in range(2)
    ]
    start_together(procs, go)  # both try at the same moment
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    winners = [r for r in results if r["acquired"]]
    losers = [r for r in results if not r["acquired"]]
    assert len(winners) == 1 and len(losers) == 1
    winner, loser = winners[0], losers[0]
    assert timeout_s <= loser["waited"] < hold_s  # it waited the whole -lock-timeout, and no longer
    message = loser["error"]
    assert f"ID {winner['id']}" in message and f"pid {winner['pid']}" in message and "'apply'" in message
    assert f"mactl force-unlock {winner['id']}" in message
    assert open_backend(any_state, base_dir=tmp_path).lock_info() is None  # released on exit


def test_waiter_gets_the_lock_once_released(any_state: AnyState, tmp_path: Path) -> None:
    go = tmp_path / "go"
    holder = start_worker("hold-lock", _config_json(any_state), str(go), "1.0", "0", cwd=tmp_path)
    start_together([holder], go)
    assert json.loads(holder.stdout.readline())["acquired"] is True  # type: ignore[union-attr]
    waited_for: list[str] = []
    backend = open_backend(any_state, base_dir=tmp_path)
    began = time.monotonic()
    with backend.lock("plan", timeout_s=20, on_wait=lambda h: waited_for.append(h.who)) as info:
        assert backend.lock_info() == info
    assert time.monotonic() - began > 0.2
    assert len(waited_for) == 1
    holder.communicate(timeout=30)


def test_heartbeat_refreshes_the_lock(any_state: AnyState, tmp_path: Path) -> None:
    backend = open_backend(any_state, base_dir=tmp_path)
    with backend.lock("apply", heartbeat_s=0.2) as info:
        time.sleep(0.9)
        seen = backend.lock_info()
    assert seen is not None and seen.id == info.id and seen.created_at == info.created_at
    assert seen.heartbeat_at > info.heartbeat_at


def _plant_stale_lock(config: AnyState, tmp_path: Path) -> str:
    """A lock left by a holder that crashed two days ago (no heartbeat since)."""
    backend = open_backend(config, base_dir=tmp_path)
    with backend.lock("apply") as info:
        stale = dataclasses.replace(
            info,
            pid=999999,
            who="gone@elsewhere",
            created_at="2026-01-01T00:00:00.000+00:00",
            heartbeat_at="2026-01-01T00:00:30.000+00:00",
        )
        if isinstance(config, LocalStateConfig):
            backend._lock_store.path.write_bytes(lock_to_json(stale))
        else:
            backend.store.call("put_object", backend.key + ".lock", Body=lock_to_json(stale))
        backend._held.stop()  # type: ignore[union-attr]  # the "crash": no heartbeat, no release
        backend._held.lost = True  # type: ignore[union-attr]
    return info.id


def test_a_stale_lock_is_never_broken_automatically(any_state: AnyState, tmp_path: Path) -> None:
    lock_id = _plant_stale_lock(any_state, tmp_path)
    other = open_backend(any_state, base_dir=tmp_path)
    with pytest.raises(LockError) as err:
        with other.lock("apply", timeout_s=0.6):
            pass
    assert "gone@elsewhere" in str(err.value) and "pid 999999" in str(err.value)
    assert "last heartbeat" in str(err.value) and "d ago" in str(err.value)  # days: plainly crashed
    assert other.lock_info() is not None and other.lock_info().id == lock_id  # type: ignore[union-attr]


def test_force_unlock_needs_the_exact_id(any_state: AnyState, tmp_path: Path) -> None:
    lock_id = _plant_stale_lock(any_state, tmp_path)
    backend = open_backend(any_state, base_dir=tmp_path)
    for wrong in ("", lock_id[:8], lock_id.upper() if lock_id.upper() != lock_id else lock_id + "x"):
        with pytest.raises(LockError, match="not"):
            backend.force_unlock(wrong)
    assert backend.force_unlock(lock_id).who == "gone@elsewhere"
    assert backend.lock_info() is None
    with pytest.raises(LockError, match="no state lock"):
        backend.force_unlock(lock_id)
    with backend.lock("apply"):
        pass


def test_a_holder_whose_lock_was_force_unlocked_stops_writing(any_state: AnyState, tmp_path: Path) -> None:
    backend = open_backend(any_state, base_dir=tmp_path)
    doc = backend.write(StateDocument())
    told: list[str] = []
    with backend.lock("apply", heartbeat_s=0.1) as info:
        backend.on_lock_lost(told.append)
        open_backend(any_state, base_dir=tmp_path).force_unlock(info.id)
        with open_backend(any_state, base_dir=tmp_path).lock("destroy") as theirs:  # someone else takes it
            deadline = time.monotonic() + 10
            while not told and time.monotonic() < deadline:
                time.sleep(0.05)  # our heartbeat notices the lock is not ours any more, before any write
            # the heartbeat may have seen the lock gone before it was taken: either way it is lost
            assert len(told) == 1 and (f"taken by {theirs.who}" in told[0] or "was removed while" in told[0])
            with pytest.raises(LockError, match="the state lock was taken by .* at .*: stopping"):
                backend.write(doc)


def test_taking_the_lock_twice_in_one_process_is_refused(local_state: LocalStateConfig, tmp_path: Path) -> None:
    backend = open_backend(local_state, base_dir=tmp_path)
    with backend.lock("apply"):
        with pytest.raises(LockError, match="already holds"):
            with backend.lock("apply"):
                pass


def test_a_second_backend_in_the_same_process_does_not_wait_for_itself(any_state: AnyState, tmp_path: Path) -> None:
    with open_backend(any_state, base_dir=tmp_path).lock("apply"):
        began = time.monotonic()
        with pytest.raises(LockError, match="already held by this process"):
            with open_backend(any_state, base_dir=tmp_path).lock("plan", timeout_s=30):
                pass
        assert time.monotonic() - began < 10
