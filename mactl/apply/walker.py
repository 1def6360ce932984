"""Walk a plan through the providers, saving the state at every step.

Two phases, as the plan orders them: first every roll-back (a stage only after every
stage built on it), then every create/update/replace (a stage only after its
dependencies are complete), `parallelism` at a time, on daemon threads. Every stage
transition (running, complete, failed, awaiting approval, rolled back) and every
provider checkpoint is written to the state before anything else happens, so a crash
loses at most the work since the last checkpoint.

On a failure nothing new starts; running stages finish; the state is saved. Ctrl-C
once does the same (and tells running stages through `ctx.cancelled`); twice stops at
once, marking the running stages `tainted`. Approval gates (`approval: required`,
and every `manual` stage) stop the walk there until `mactl approve ADDR`.

The walker never decides WHAT to do (that is the plan) and never takes the lock (the
caller holds it for the whole walk).
"""

from __future__ import annotations

import json
import queue
import signal
import threading
import time
import traceback
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from mactl.apply.display import ApplyDisplay
from mactl.errors import MactlError, PlanError
from mactl.graph.expand import StageGraph
from mactl.masking import inputs_digest, mask_inputs, mask_text, mask_values
from mactl.plan.definition import Change, Plan
from mactl.providers import registry
from mactl.providers.base import Progress, StageContext
from mactl.state.backend import Backend
from mactl.state.document import StageRecord, StateDocument, utcnow

GATED_ACTIONS = frozenset({"create", "update", "replace"})


def check_available(plan: Plan) -> None:
    """Refuse, before anything starts, a plan that needs a provider not written yet."""
    missing: dict[str, list[str]] = {}
    for change in plan.actionable():
        if change.action == "read" or (change.action == "rollback" and change.manual_rollback):
            continue
        provider = registry.get_provider(change.type)
        if not getattr(provider, "available", True):
            missing.setdefault(change.type, []).append(change.address)
    if missing:
        parts = []
        for stage_type, addresses in sorted(missing.items()):
            shown = ", ".join(addresses[:5]) + (f", … ({len(addresses)} in all)" if len(addresses) > 5 else "")
            parts.append(f"stage type '{stage_type}' is not available yet (stages: {shown})")
        raise PlanError(
            "nothing was started: " + "; ".join(parts),
            hint="leave those stages out with -exclude ADDR, or plan only others with -target ADDR",
        )


class StateRecorder:
    """The one place the walk changes the state: every change is written before it returns.

    Writes are group-committed: a change made while another thread is writing waits for
    the next write, which then carries every change made meanwhile. Each caller still
    returns only once a write containing its change is stored, so "saved at every
    transition" holds, with fewer full-document writes when stages run in parallel.
    """

    def __init__(self, backend: Backend, doc: StateDocument, who: str, secrets: Collection[str]) -> None:
        self.backend = backend
        self.doc = doc
        self.who = who
        self.secrets = [s for s in secrets if s]
        self._mutex = threading.Lock()  # guards `doc` and the generation counters
        self._write_lock = threading.Lock()  # one backend write at a time
        self._changed_gen = 0
        self._written_gen = 0

    def record(self, address: str) -> StageRecord | None:
        with self._mutex:
            return self.doc.stages.get(address)

    def update(
        self, address: str, stage_type: str, history: tuple[str, str, str | None] | None = None, **fields: Any
    ) -> None:
        with self._mutex:
            current = self.doc.stages.get(address) or StageRecord(type=stage_type, created_at=utcnow())
            fields.setdefault("updated_at", utcnow())
            self.doc.stages[address] = current.model_copy(update=fields)
            if history is not None:
                operation, result, detail = history
                self.doc.record(
                    who=self.who,
                    operation=operation,
                    address=address,
                    result=result,
                    detail=mask_text(detail, self.secrets) if detail else None,
                )
            gen = self._changed()
        self._commit(gen)

    def remove(self, address: str, operation: str, detail: str | None = None) -> None:
        with self._mutex:
            self.doc.stages.pop(address, None)
            self.doc.record(who=self.who, operation=operation, address=address, result="ok", detail=detail)
            gen = self._changed()
        self._commit(gen)

    def note(self, operation: str, result: str, detail: str | None = None) -> None:
        with self._mutex:
            self.doc.record(who=self.who, operation=operation, result=result, detail=detail)
            gen = self._changed()
        self._commit(gen)

    def _changed(self) -> int:
        self._changed_gen += 1
        return self._changed_gen

    def _commit(self, gen: int) -> None:
        with self._write_lock:
            if self._written_gen >= gen:
                return  # another thread's write already stored this change
            with self._mutex:
                upto = self._changed_gen
                snapshot = self.doc.model_copy(
                    update={"stages": dict(self.doc.stages), "history": list(self.doc.history)}
                )
            stored = self.backend.write(snapshot)
            with self._mutex:
                self.doc.serial = stored.serial
                self._written_gen = upto


@dataclass
class WalkResult:
    completed: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    left_manual: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    awaiting_approval: list[str] = field(default_factory=list)
    not_started: dict[str, str] = field(default_factory=dict)
    tainted: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted


@dataclass
class _Job:
    change: Change
    phase: str  # "rollback" | "apply"
    ctx: StageContext[BaseModel] | None = None


class Walker:
    def __init__(
        self,
        plan: Plan,
        graph: StageGraph,
        recorder: StateRecorder,
        *,
        parallelism: int = 4,
        display: ApplyDisplay | None = None,
        workdir: Path,
        secrets: Collection[str] = (),
        operation: str = "apply",
    ) -> None:
        if parallelism < 1:
            raise PlanError("-parallelism must be at least 1")
        self.plan = plan
        self.graph = graph
        self.recorder = recorder
        self.parallelism = parallelism
        self.display = display or ApplyDisplay(live=False)
        self.workdir = workdir
        self.secrets = [s for s in secrets if s]
        self.operation = operation
        self.result = WalkResult()
        self._events: queue.Queue[tuple[str, str, str | None]] = queue.Queue()
        self._running: dict[str, _Job] = {}
        self._stopping = False
        self._interrupts = 0
        self._approved: set[str] = set()
        self._secret_fields: dict[tuple[str, bytes], Any] | None = None

    # -- the walk ---------------------------------------------------------------------

    def run(self) -> WalkResult:
        for change in self.plan.changes:
            record = self.recorder.record(change.address)
            if (
                change.approval_required
                and record is not None
                and record.status == "awaiting_approval"
                and record.approved_by
            ):
                self._approved.add(change.address)  # approved once: it holds through this walk's rollback and redo
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            with self.display:
                self._phase_rollback()
                if not self._stopping:
                    self._phase_apply()
        except KeyboardInterrupt:
            self._abort_now()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return self.result

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self._interrupts += 1
        if self._interrupts == 1:
            self._stopping = True
            self.result.interrupted = True
            for job in list(self._running.values()):
                if job.ctx is not None:
                    job.ctx.cancelled.set()
            self.display.say(
                f"Interrupt received: stopping gracefully; {len(self._running)} running stage(s) will finish. "
                "Press Ctrl-C again to stop at once (running stages are then marked tainted)."
            )
            return
        raise KeyboardInterrupt

    def _abort_now(self) -> None:
        self.result.interrupted = True
        for address, job in list(self._running.items()):
            self.recorder.update(
                address,
                job.change.type,
                history=(self.operation, "interrupted", "stopped at once by a second Ctrl-C"),
                status="tainted",
                last_error="interrupted: stopped at once (second Ctrl-C)",
                finished_at=utcnow(),
            )
            self.result.tainted.append(address)
        self._running.clear()

    def _run_jobs(self, jobs: dict[str, _Job], waits: dict[str, set[str]]) -> None:
        """Run `jobs`, each once every address in its `waits` set has succeeded."""
        remaining = {a: set(w) for a, w in waits.items()}
        dependents: dict[str, list[str]] = {}
        for a, w in remaining.items():
            for d in w:
                dependents.setdefault(d, []).append(a)
        ready = [a for a in jobs if not remaining[a]]
        order = {a: i for i, a in enumerate(jobs)}
        blocked: set[str] = set()

        def release(address: str) -> None:
            for dep in dependents.get(address, ()):
                remaining[dep].discard(address)
                if not remaining[dep] and dep not in blocked:
                    ready.append(dep)

        def block(address: str, why: str) -> None:
            stack = [address]
            while stack:
                a = stack.pop()
                for dep in dependents.get(a, ()):
                    if dep not in blocked:
                        blocked.add(dep)
                        self.result.not_started.setdefault(dep, why)
                        stack.append(dep)

        while True:
            ready.sort(key=order.__getitem__, reverse=True)
            while ready and not self._stopping and len(self._running) < self.parallelism:
                address = ready.pop()
                job = jobs[address]
                if job.phase == "apply" and self._gate(job):
                    if address not in self.result.awaiting_approval:
                        self.result.awaiting_approval.append(address)
                    block(address, f"waits for the approval of {address}")
                    continue
                if job.phase == "apply" and job.change.action == "read":
                    self._record_read(job.change)
                    release(address)
                    continue
                if job.phase == "rollback" and self._never_applied(address):
                    self.recorder.remove(address, f"{self.operation} rollback", detail="never applied: record removed")
                    self.result.rolled_back.append(address)
                    release(address)
                    continue
                if job.phase == "rollback" and job.change.manual_rollback:
                    self._leave_manual(job.change)
                    release(address)
                    continue
                self._start(job)
            if not self._running:
                break
            try:
                address, outcome, error = self._events.get(timeout=0.5)
            except queue.Empty:
                continue
            self._running.pop(address, None)
            if outcome == "ok":
                release(address)
            else:
                self._stopping = True
                self.result.failed[address] = error or "failed"
                block(address, f"{address} failed")
        if self._stopping:
            finished = set(self.result.completed) | set(self.result.rolled_back) | set(self.result.failed)
            finished |= set(self.result.left_manual) | set(self.result.awaiting_approval) | set(self.result.tainted)
            for address in jobs:
                if address not in finished:
                    self.result.not_started.setdefault(address, "the walk stopped before it")

    # -- phases -----------------------------------------------------------------------

    def _phase_rollback(self) -> None:
        jobs = {c.address: _Job(c, "rollback") for c in self.plan.changes if c.rolls_back}
        if not jobs:
            return
        deps = self._all_deps()
        # A gated stage to be replaced is not rolled back before its approval, and
        # neither is anything built on it (it would only wait, undone, for the gate).
        gated = [a for a, j in jobs.items() if j.change.action == "replace" and self._needs_approval(j.change)]
        if gated:
            dependents: dict[str, set[str]] = {}
            for address, needs in deps.items():
                for dep in needs:
                    dependents.setdefault(dep, set()).add(address)
            for address in gated:
                self._gate(jobs[address])
                self.result.awaiting_approval.append(address)
                stack = [address]
                while stack:
                    for below in dependents.get(stack.pop(), ()):
                        if below in jobs and below not in gated and below not in self.result.not_started:
                            self.result.not_started[below] = f"waits for the approval of {address}"
                            stack.append(below)
            for address in [*gated, *self.result.not_started]:
                jobs.pop(address, None)
        waits = {a: {b for b in jobs if a in deps.get(b, ())} for a in jobs}
        self._run_jobs(jobs, waits)

    def _phase_apply(self) -> None:
        jobs = {
            c.address: _Job(c, "apply")
            for c in self.plan.changes
            if c.action in ("create", "update", "replace", "read")
        }
        if not jobs:
            return
        waits: dict[str, set[str]] = {}
        for address in jobs:
            stage = self.graph.stages.get(address)
            if stage is None:
                raise PlanError(f"{address} is planned but is not in the config any more")
            need: set[str] = set()
            for dep in stage.depends_on:
                if dep in jobs:
                    need.add(dep)
                    continue
                record = self.recorder.record(dep)
                if record is None or record.status != "complete":
                    status = record.status if record else "not applied"
                    self.result.not_started[address] = f"its dependency {dep} is {status}"
                    need.add("\0blocked")
            waits[address] = need
        blocked = [a for a, w in waits.items() if "\0blocked" in w]
        for address in blocked:
            del jobs[address]
        waits = {a: {d for d in w if d in jobs} for a, w in waits.items() if a in jobs}
        self._run_jobs(jobs, waits)

    def _all_deps(self) -> dict[str, set[str]]:
        deps: dict[str, set[str]] = {a: set(s.depends_on) for a, s in self.graph.stages.items()}
        for address, record in self.recorder.doc.stages.items():
            deps.setdefault(address, set()).update(record.depends_on)
        return deps

    # -- one stage --------------------------------------------------------------------

    def _never_applied(self, address: str) -> bool:
        """A record made only by an approval gate: there is nothing to undo."""
        record = self.recorder.record(address)
        return record is not None and record.status == "awaiting_approval" and not record.inputs_digest

    def _needs_approval(self, change: Change) -> bool:
        return change.approval_required and change.action in GATED_ACTIONS and change.address not in self._approved

    def _gate(self, job: _Job) -> bool:
        """True (and the state says so) if this stage must wait for `mactl approve`."""
        change = job.change
        if not self._needs_approval(change):
            return False
        record = self.recorder.record(change.address)
        if record is not None and record.status == "awaiting_approval":
            return True
        self.recorder.update(
            change.address,
            change.type,
            history=(self.operation, "awaiting approval", None),
            status="awaiting_approval",
            approved_by=None,
            depends_on=list(change.depends_on),
        )
        self.display.say(f"{change.address}: waiting for approval (`mactl approve {change.address}`)")
        return True

    def _record_read(self, change: Change) -> None:
        self.recorder.update(
            change.address,
            change.type,
            history=("refresh", "ok", "changed outside mactl"),
            outputs=change.refreshed_outputs or {},
        )
        self.result.completed.append(change.address)

    def _leave_manual(self, change: Change) -> None:
        self.recorder.update(
            change.address,
            change.type,
            history=(self.operation, "left_manual", "lifecycle.rollback is manual: undo it by hand"),
            status="left_manual",
            finished_at=utcnow(),
        )
        self.result.left_manual.append(change.address)
        self.display.say(f"{change.address}: rollback left to you (lifecycle.rollback: manual)")

    def _unmasked(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """A removed stage's recorded (masked) inputs, with secrets restored where possible.

        The state never holds secrets, but a removed stage usually shares its clusters
        with stages still in the config: a top-level field whose masked value equals a
        current stage's masked field gets that stage's real value (its password).
        """
        if self._secret_fields is None:
            index: dict[tuple[str, bytes], Any] = {}
            for stage in self.graph.stages.values():
                if not stage.sensitive_paths and not self.secrets:
                    continue
                masked = mask_inputs(stage.inputs, stage.sensitive_paths, self.secrets)
                for key, value in stage.inputs.items():
                    if masked.get(key) is not value:
                        index.setdefault((key, orjson.dumps(masked.get(key), option=orjson.OPT_SORT_KEYS)), value)
            self._secret_fields = index
        out = dict(inputs)
        for key, value in inputs.items():
            real = self._secret_fields.get((key, orjson.dumps(value, option=orjson.OPT_SORT_KEYS)))
            if real is not None:
                out[key] = real
        return out

    def _inputs_model(self, stage_type: str, address: str, raw: dict[str, Any]) -> BaseModel:
        model = registry.get_provider(stage_type).Inputs
        try:
            return model.model_validate(raw)
        except ValidationError:
            return model.model_construct(**raw)  # a removed stage's masked inputs: best effort

    def _context(self, job: _Job) -> StageContext[BaseModel]:
        change = job.change
        record = self.recorder.record(change.address)
        stage = self.graph.stages.get(change.address)
        raw = stage.inputs if stage is not None else self._unmasked(record.inputs if record else {})
        deps = stage.depends_on if stage is not None else tuple(record.depends_on if record else ())
        upstream = {}
        for dep in deps:
            dep_record = self.recorder.record(dep)
            if dep_record is not None:
                upstream[dep] = dep_record.outputs
        workdir = self.workdir / change.address
        workdir.mkdir(parents=True, exist_ok=True)
        resume = job.phase == "apply" and record is not None and (change.resume or record.status == "awaiting_approval")
        ctx = StageContext(
            address=change.address,
            type=change.type,
            inputs=self._inputs_model(change.type, change.address, raw),
            # rollback needs what apply recorded (what was created) to undo exactly that
            prior_outputs=(
                record.outputs
                if record is not None and record.outputs and (change.action == "update" or job.phase == "rollback")
                else None
            ),
            upstream=upstream,
            checkpoint_data=(record.checkpoint if resume and record is not None else None),
            workdir=workdir,
        )
        address, stage_type = change.address, change.type
        log_path = workdir / "stage.log"

        progress_path = workdir / "progress.ndjson"
        last_written = [0.0]
        try:  # a run starts the timeline at 0, so the first report already gives a rate
            with progress_path.open("a") as file:
                file.write(
                    json.dumps({"at": time.time(), "done": 0, "total": None, "unit": "", "message": job.phase}) + "\n"
                )
        except OSError:
            pass

        def progress(report: Progress) -> None:
            self.display.progress(address, report)
            # A timeline for `mactl status` (another process) and the audit's plots; at most
            # one line a second, plus the final report.
            now = time.time()
            if now - last_written[0] >= 1.0 or (report.total is not None and report.done >= report.total):
                last_written[0] = now
                line = {
                    "at": now,
                    "done": report.done,
                    "total": report.total,
                    "unit": report.unit,
                    "message": mask_text(report.message, self.secrets),
                }
                try:
                    with progress_path.open("a") as file:
                        file.write(json.dumps(line) + "\n")
                except OSError:
                    pass  # the timeline is a nicety; never fail a stage over it

        def checkpoint(data: dict[str, Any]) -> None:
            self.recorder.update(address, stage_type, checkpoint=mask_values(dict(data), self.secrets))

        def log(message: str) -> None:
            with log_path.open("a") as file:
                file.write(mask_text(message, self.secrets).rstrip("\n") + "\n")

        ctx.progress, ctx.checkpoint, ctx.log = progress, checkpoint, log
        return ctx

    def _start(self, job: _Job) -> None:
        change = job.change
        job.ctx = self._context(job)
        self._running[change.address] = job
        stage = self.graph.stages.get(change.address)
        if job.phase == "apply":
            assert stage is not None
            record = self.recorder.record(change.address)
            self.recorder.update(
                change.address,
                change.type,
                history=(self.operation, "started", change.action),
                status="running",
                started_at=utcnow(),
                finished_at=None,
                attempts=(record.attempts if record else 0) + 1,
                inputs=mask_inputs(stage.inputs, stage.sensitive_paths, self.secrets),
                inputs_digest=inputs_digest(stage.inputs),
                depends_on=list(stage.depends_on),
                last_error=None,
            )
            self.display.started(change.address, change.action)
        else:
            self.display.started(change.address, "rollback")
        thread = threading.Thread(target=self._work, args=(job,), name=f"mactl-{change.address}", daemon=True)
        thread.start()

    def _work(self, job: _Job) -> None:
        change, ctx = job.change, job.ctx
        assert ctx is not None
        provider = registry.get_provider(change.type)
        try:
            if job.phase == "rollback":
                provider.rollback(ctx)
                self.recorder.remove(change.address, f"{self.operation} rollback", detail=change.reason)
                self.result.rolled_back.append(change.address)
            else:
                outputs = provider.apply(ctx) or {}
                self.recorder.update(
                    change.address,
                    change.type,
                    history=(self.operation, "ok", change.action),
                    status="complete",
                    outputs=mask_values(dict(outputs), self.secrets),
                    checkpoint=None,
                    finished_at=utcnow(),
                    last_error=None,
                )
                self.result.completed.append(change.address)
            self.display.finished(change.address, "ok")
            self._events.put((change.address, "ok", None))
        except BaseException as exc:  # noqa: BLE001 - any failure of a provider is reported, never lost
            message = exc.message if isinstance(exc, MactlError) else f"{type(exc).__name__}: {exc}"
            message = mask_text(message, self.secrets)
            if not isinstance(exc, MactlError):
                log_path = ctx.workdir / "stage.log"
                with log_path.open("a") as file:
                    file.write(mask_text(traceback.format_exc(), self.secrets))
            try:
                if job.phase == "rollback":
                    self.recorder.update(
                        change.address,
                        change.type,
                        history=(f"{self.operation} rollback", "failed", message),
                        status="failed",
                        last_error=f"rollback failed: {message}",
                        finished_at=utcnow(),
                    )
                else:
                    self.recorder.update(
                        change.address,
                        change.type,
                        history=(self.operation, "failed", message),
                        status="failed",
                        last_error=message,
                        finished_at=utcnow(),
                    )
            except Exception as save_err:  # noqa: BLE001
                message += f" (and the state could not be saved: {save_err})"
            self.display.finished(change.address, f"FAILED: {message}")
            self._events.put((change.address, "failed", message))
