"""What `apply` runs for a backfill stage: set it up, start local worker processes, watch.

The coordinator does no document work itself. It registers the units, starts `workers`
processes (`python -m mactl.backfill.worker`, each told to die with it), and then only
reads the lease documents: that is where progress comes from, and it is how the stage
knows it is finished even when some units were done by `mactl worker`s on other hosts.
A worker that crashes is restarted (its unit is taken over from the checkpoint once the
lease expires); one that keeps crashing fails the stage with the tail of its log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mactl.backfill.leases import LeaseStore
from mactl.backfill.prepare import lease_store, prepare
from mactl.backfill.progress import RateTracker, Snapshot, summarise
from mactl.backfill.source import open_snapshot_repository
from mactl.backfill.spec import JobSpec
from mactl.errors import ProviderError
from mactl.state.workdir import StageFiles

POLL_S = 1.0
MAX_RESTARTS_PER_SLOT = 3


class Cancelled(ProviderError):
    """The apply was cancelled (Ctrl-C, or another stage failed); workers were stopped."""


@dataclass
class _Slot:
    number: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    given_up: bool = False
    last_rc: int | None = None


@dataclass
class StageRun:
    snapshot: Snapshot
    worker_exit_codes: dict[int, list[int]] = field(default_factory=dict)


class LeaseWatch:
    """The coordinator's look at the leases, once per poll (local workers or a Job's pods).

    A look may fail while the workers carry on (the working-state index restarts, a
    timeout): `look()` then says so and returns None, and only after failing for longer than
    the spec's retry deadline raises, naming the index."""

    def __init__(self, store: LeaseStore, spec: JobSpec, log: Callable[[str], None]) -> None:
        self._store = store
        self._spec = spec
        self._log = log
        self._failing_since: float | None = None

    def look(self) -> Snapshot | None:
        try:
            snap = summarise(self._store.units())
        except Exception as exc:  # noqa: BLE001 - a look may fail; the workers carry on
            self._failing_since = self._failing_since or time.monotonic()
            if time.monotonic() - self._failing_since > self._spec.retry_deadline_s:
                raise ProviderError(
                    f"{self._spec.address}: cannot read the working state {self._spec.state_index}: {exc}"
                ) from None
            self._log(f"could not read the leases ({type(exc).__name__}: {exc}); retrying")
            return None
        self._failing_since = None
        return snap

    def looks(
        self,
        cancelled: threading.Event,
        rates: RateTracker,
        on_progress: Callable[[Snapshot, RateTracker], None],
        cancelled_message: str,
        every_s: float = POLL_S,
    ) -> Iterator[Snapshot]:
        """Every `every_s`, a successful look, counted in `rates` and reported to
        `on_progress`, for the caller to act on (and stop at once every unit is done);
        raises `Cancelled` with `cancelled_message` when `cancelled` is set."""
        while True:
            if cancelled.wait(every_s):
                raise Cancelled(cancelled_message)
            snap = self.look()
            if snap is None:
                continue
            rates.add(snap)
            on_progress(snap, rates)
            yield snap


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["MACTL_BACKFILL_DIE_WITH_PARENT"] = "1"
    # The children must import what the parent imports (a `module:function` transform).
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p and os.path.isdir(p)])
    return env


def _start(slot: _Slot, spec_json: bytes, env: dict[str, str]) -> None:
    slot.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(slot.log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mactl.backfill.worker"],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    assert proc.stdin is not None
    proc.stdin.write(spec_json)
    proc.stdin.close()
    slot.process = proc


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_stage(
    spec: JobSpec,
    *,
    workers: int,
    workdir: Path,
    on_progress: Callable[[Snapshot, RateTracker], None] = lambda _s, _r: None,
    cancelled: threading.Event | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> StageRun:
    """Run the stage to completion with `workers` local processes; returns the final look."""
    cancelled = cancelled or threading.Event()
    store = lease_store(spec)
    prepare(spec, open_snapshot_repository(spec.repository), store)
    rates = RateTracker()
    snap = summarise(store.units())
    if snap.units_done == snap.units_total:
        on_progress(snap, rates)
        return StageRun(snap)
    count = max(1, min(workers, snap.units_total - snap.units_done))
    spec_json = spec.shared_by(count).to_json()  # the throughput cap is the stage's: each worker gets 1/count
    env = _child_env()
    slots = [_Slot(i, StageFiles(workdir).backfill_worker_log(i)) for i in range(count)]
    log(f"starting {count} worker process(es); logs in {workdir / 'workers'}")
    exit_codes: dict[int, list[int]] = {}
    for slot in slots:
        _start(slot, spec_json, env)
    watch = LeaseWatch(store, spec, log)
    stopped = f"{spec.address}: cancelled; workers stopped, a rerun resumes from the checkpoints"
    try:
        for snap in watch.looks(cancelled, rates, on_progress, stopped):
            if snap.units_done == snap.units_total:
                break
            for slot in slots:
                proc = slot.process
                if proc is None or slot.given_up or proc.poll() is None:
                    continue
                rc = proc.returncode
                exit_codes.setdefault(slot.number, []).append(rc)
                slot.process = None
                if rc == 0:
                    continue  # it saw every unit done or held; the leases tell the rest
                slot.last_rc = rc
                if slot.restarts >= MAX_RESTARTS_PER_SLOT:
                    slot.given_up = True
                    continue
                slot.restarts += 1
                log(f"worker {slot.number} exited with {rc}; restarting it ({slot.restarts}/{MAX_RESTARTS_PER_SLOT})")
                _start(slot, spec_json, env)
            if all(s.process is None for s in slots) and any(s.given_up for s in slots):
                failed = next(s for s in slots if s.given_up)
                raise ProviderError(
                    f"{spec.address}: worker processes keep failing (last exit {failed.last_rc}); "
                    f"{snap.units_total - snap.units_done} shard(s) unfinished. Last lines of {failed.log_path}:\n"
                    + _tail(failed.log_path),
                    hint="fix the cause and apply again: finished shards are kept",
                )
        for slot in slots:
            if slot.process is not None:
                try:
                    exit_codes.setdefault(slot.number, []).append(slot.process.wait(timeout=60))
                except subprocess.TimeoutExpired:
                    slot.process.kill()
                    slot.process.wait()
                slot.process = None
    finally:
        for slot in slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.terminate()
                try:
                    slot.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    slot.process.kill()
    return StageRun(snap, exit_codes)
