"""Stale locks (issue 15 items 6–7): a holder that is gone is said to be gone and can be
taken over on request; a live holder never is; a holder whose lock was taken away stops
at its next state write, with the new holder named."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mactl.state import LocalStateConfig, LockInfo, S3StateConfig, StateDocument, open_backend
from mactl.state.locking import lock_to_json, process_start, staleness
from state_helpers import start_worker

from mactl.errors import LockError

AnyState = LocalStateConfig | S3StateConfig


def _plant(config: AnyState, tmp_path: Path, **changes: object) -> LockInfo:
    """Store a lock as another process would have left it (our own lock, then rewritten)."""
    backend = open_backend(config, base_dir=tmp_path)
    with backend.lock("apply") as info:
        planted = dataclasses.replace(info, **changes)  # type: ignore[arg-type]
        if isinstance(config, LocalStateConfig):
            backend._lock_store.path.write_bytes(lock_to_json(planted))
        else:
            backend.store.call("put_object", backend.key + ".lock", Body=lock_to_json(planted))
        backend._held.stop()  # type: ignore[union-attr]  # as if we had crashed: no release
        backend._held.lost = True  # type: ignore[union-attr]
    return planted


def _holder_killed(config: AnyState, tmp_path: Path) -> dict[str, object]:
    """A real second process takes the lock and is killed with SIGKILL while holding it."""
    go = tmp_path / "go"
    go.touch()
    proc = start_worker("hold-lock", config.model_dump_json(), str(go), "120", "0", cwd=tmp_path)
    assert json.loads(proc.stdout.readline()) == {"ready": True}  # type: ignore[union-attr]
    line: dict[str, object] = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
    assert line["acquired"] is True
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    return line


def test_a_live_holder_on_this_host_is_not_stale_and_a_killed_one_is(any_state: AnyState, tmp_path: Path) -> None:
    go = tmp_path / "go"
    go.touch()
    live = start_worker("hold-lock", any_state.model_dump_json(), str(go), "120", "0", cwd=tmp_path)
    try:
        assert json.loads(live.stdout.readline()) == {"ready": True}  # type: ignore[union-attr]
        assert json.loads(live.stdout.readline())["acquired"]  # type: ignore[union-attr]
        info = open_backend(any_state, base_dir=tmp_path).lock_info()
        assert info is not None and info.process_start == process_start(live.pid)
        verdict = staleness(info)
        assert not verdict.stale and f"pid {live.pid}) is still running" in verdict.reason
    finally:
        live.send_signal(signal.SIGKILL)
        live.communicate(timeout=30)
    info = open_backend(any_state, base_dir=tmp_path).lock_info()
    assert info is not None  # kill -9 leaves the lock behind
    verdict = staleness(info)
    assert verdict.stale and f"pid {live.pid}) no longer runs" in verdict.reason


def test_a_reused_pid_does_not_keep_a_lock_alive(local_state: LocalStateConfig, tmp_path: Path) -> None:
    """The recorded pid now belongs to another (running) process: the holder is gone all the same."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        info = _plant(local_state, tmp_path, pid=sleeper.pid, process_start="some-other-boot:12345")
        verdict = staleness(info)
        assert verdict.stale and "now belongs to another process" in verdict.reason
        same = dataclasses.replace(info, process_start=process_start(sleeper.pid) or "")
        assert not staleness(same).stale  # the very process that took it: alive
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_holder_on_another_host_is_stale_only_once_its_heartbeat_expired(tmp_path: Path) -> None:
    from mactl.state.document import utcnow

    now = utcnow()
    base = LockInfo(
        id="x", who="ci@elsewhere", pid=os.getpid(), operation="apply", created_at=now, heartbeat_at=now, heartbeat_s=30
    )
    assert not staleness(base).stale  # our own pid means nothing on another host; a fresh heartbeat does
    old = dataclasses.replace(base, heartbeat_at="2026-01-01T00:00:00.000+00:00")
    verdict = staleness(old)
    assert verdict.stale and "last heartbeat" in verdict.reason and "every 30s" in verdict.reason
    unreadable = dataclasses.replace(old, id="unreadable-abc", heartbeat_at="")
    assert not staleness(unreadable).stale


def test_a_stale_lock_is_taken_over_only_when_asked(any_state: AnyState, tmp_path: Path) -> None:
    dead = _holder_killed(any_state, tmp_path)
    backend = open_backend(any_state, base_dir=tmp_path)
    with pytest.raises(LockError) as err:  # not asked: the lock stays, and the message says it is stale
        with backend.lock("apply", timeout_s=0.3):
            pass
    assert "by a run that is gone" in str(err.value) and "-lock-takeover-stale" in str(err.value)
    taken: list[tuple[LockInfo, str]] = []
    with backend.lock("apply", takeover_stale=True, on_takeover=lambda old, why: taken.append((old, why))) as info:
        assert backend.lock_info() == info
        assert len(taken) == 1 and taken[0][0].id == dead["id"] and "no longer runs" in taken[0][1]
    assert backend.lock_info() is None


def test_a_live_holder_is_never_taken_over(any_state: AnyState, tmp_path: Path) -> None:
    go = tmp_path / "go"
    go.touch()
    live = start_worker("hold-lock", any_state.model_dump_json(), str(go), "120", "0", cwd=tmp_path)
    try:
        assert json.loads(live.stdout.readline()) == {"ready": True}  # type: ignore[union-attr]
        holder = json.loads(live.stdout.readline())  # type: ignore[union-attr]
        backend = open_backend(any_state, base_dir=tmp_path)
        with pytest.raises(LockError) as err:
            with backend.lock("apply", timeout_s=1.0, takeover_stale=True):
                pass
        assert "is still running" in str(err.value)
        assert backend.lock_info().id == holder["id"]  # type: ignore[union-attr]
    finally:
        live.send_signal(signal.SIGKILL)
        live.communicate(timeout=30)


def test_a_write_after_the_lock_was_taken_fails_at_once_naming_the_new_holder(
    any_state: AnyState, tmp_path: Path
) -> None:
    """No heartbeat needed (it is slow here): the write itself checks that the lock is still ours."""
    backend = open_backend(any_state, base_dir=tmp_path)
    doc = backend.write(StateDocument())
    told: list[str] = []
    with backend.lock("apply", heartbeat_s=3600) as info:
        backend.on_lock_lost(told.append)
        doc = backend.write(doc)  # ours: fine
        other = open_backend(any_state, base_dir=tmp_path)
        other.force_unlock(info.id)
        with other.lock("apply") as theirs:
            with pytest.raises(LockError) as err:
                backend.write(doc)
            message = str(err.value).splitlines()[0]
            assert message == (
                f"the state lock was taken by {theirs.who} (pid {theirs.pid}, 'apply', lock {theirs.id}) "
                f"at {theirs.created_at}: stopping"
            )
            assert told == [message]
            stored = other.read()
            assert stored is not None and stored.serial == doc.serial  # nothing of ours got through
            other.write(stored)  # the new holder writes normally
            with pytest.raises(LockError, match="taken by"):  # and we keep failing
                backend.write(doc)
    assert backend.lock_info() is None  # released by the new holder; ours did not remove theirs


def _mactl(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in its own process, with no terminal on stdin."""
    return subprocess.run(
        [sys.executable, "-m", "mactl", *argv],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_says_the_holder_is_gone_takes_it_over_on_request_and_records_it(tmp_path: Path) -> None:
    config = LocalStateConfig(path=str(tmp_path / ".mactl"))
    backend = open_backend(config, base_dir=tmp_path)
    doc = StateDocument()
    from mactl.state import StageRecord

    doc.stages["validate.source.target_1"] = StageRecord(type="validate", status="complete")
    backend.write(doc)
    dead = _holder_killed(config, tmp_path)

    status = _mactl(tmp_path, "lock", "status")
    assert status.returncode == 0, status.stderr
    assert f"GONE — its process (pid {dead['pid']}) no longer runs" in status.stdout
    assert "-lock-takeover-stale" in status.stdout
    as_json = json.loads(_mactl(tmp_path, "lock", "status", "--json").stdout)
    assert as_json["lock"]["stale"] is True and "no longer runs" in as_json["lock"]["stale_reason"]

    refused = _mactl(tmp_path, "state", "rm", "validate.source.target_1")
    assert refused.returncode == 1 and "by a run that is gone" in refused.stderr
    assert "Traceback" not in refused.stderr

    unlock = _mactl(tmp_path, "force-unlock", str(dead["id"]))  # no terminal, no --yes
    assert unlock.returncode == 1 and "Aborted" not in unlock.stderr
    assert unlock.stderr.splitlines()[0] == (
        f"Error: force-unlock {dead['id']} needs a confirmation and there is no terminal to ask on; "
        "pass --yes to remove the lock without asking"
    )
    assert backend.lock_info() is not None  # still there

    taken = _mactl(tmp_path, "state", "rm", "validate.source.target_1", "-lock-takeover-stale")
    assert taken.returncode == 0, taken.stderr
    assert f"Took over the stale state lock {dead['id']}" in taken.stderr
    assert backend.lock_info() is None
    history = json.loads(_mactl(tmp_path, "history", "--json").stdout)
    assert [e["operation"] for e in history[-2:]] == ["lock takeover", "state rm"]
    assert f"took over stale lock {dead['id']}" in history[-2]["detail"]
    assert "for state rm" in history[-2]["detail"]
