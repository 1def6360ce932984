"""Walk a plan through the providers: what an apply does at each stage (the graph walk context).

Two phases, as the plan orders them: first every roll-back (a stage only after every
stage built on it), then every create/update/replace (a stage only after its
dependencies are complete), `parallelism` at a time (`mactl.apply.scheduler`). Every
stage transition and every provider checkpoint is written to the state before anything
else happens (`mactl.apply.recorder`), so a crash loses at most the work since the last
checkpoint.

On a failure nothing new starts; running stages finish; the state is saved. Ctrl-C
once does the same (and tells running stages through `ctx.cancelled`); twice stops at
once, marking the running stages `tainted` (`mactl.apply.signals`). A stage the plan
marks `gated` stops the walk there until `mactl approve ADDR`; a gated stage to be
replaced is not rolled back before its approval, nor is anything built on it.

The walker never decides WHAT to do: the plan does, down to the gates, resumes from a
checkpoint and records to forget (`Change.gated`, `from_checkpoint`, `forget_only`).
It never takes the lock (the caller holds it for the whole walk), and it shows and
writes progress only through its hooks (`mactl.apply.hooks`).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from mactl.apply.context import ContextBuilder, Phase
from mactl.apply.hooks import Hook, Hooks, StageFilesHook
from mactl.apply.recorder import StateRecorder
from mactl.apply.scheduler import Done, Held, Run, Scheduler, Step, WalkOutcome
from mactl.apply.signals import Interrupts
from mactl.errors import MactlError, PlanError
from mactl.graph.expand import StageGraph
from mactl.masking import mask_text
from mactl.plan.builder import moved_records
from mactl.plan.definition import Change, Plan
from mactl.providers import registry
from mactl.providers.base import StageContext
from mactl.retrying import reporting_to
from mactl.state.document import COMPLETE_STATUSES, ERRORS_OUTPUT_KEY
from mactl.state.workdir import Workdir

STOPPED = "the walk stopped before it"
T = TypeVar("T")


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


@dataclass
class WalkResult:
    completed: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    left_manual: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    awaiting_approval: list[str] = field(default_factory=list)
    moved: dict[str, str] = field(default_factory=dict)  # old address -> new (`moved` blocks)
    forgotten: list[str] = field(default_factory=list)  # dropped from the state only (`removed` blocks)
    not_started: dict[str, str] = field(default_factory=dict)
    tainted: list[str] = field(default_factory=list)
    interrupted: bool = False
    # stages that finished as `complete_with_errors`: address -> their outputs' error summary
    with_errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock_lost: str = ""  # why the walk stopped when the state lock was taken away from it

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted and not self.lock_lost


class Walker:
    def __init__(
        self,
        plan: Plan,
        graph: StageGraph,
        recorder: StateRecorder,
        *,
        parallelism: int = 4,
        hooks: Sequence[Hook] = (),
        workdir: Path,
        config_dir: Path,
        secrets: Collection[str] = (),
        operation: str = "apply",
    ) -> None:
        if parallelism < 1:
            raise PlanError("-parallelism must be at least 1")
        self.plan = plan
        self.graph = graph
        self.recorder = recorder
        self.secrets = [s for s in secrets if s]
        self.operation = operation
        files = Workdir(workdir)
        self.files = files
        self.hooks = Hooks([*hooks, StageFilesHook(files, self.secrets)])
        self.contexts = ContextBuilder(
            graph, recorder, self.hooks, workdir=files, config_dir=config_dir, secrets=self.secrets
        )
        self.scheduler: Scheduler[str] = Scheduler(parallelism)
        self.result = WalkResult()
        self._live: dict[str, tuple[Change, StageContext[BaseModel]]] = {}  # started, not yet recorded as ended

    # -- the walk ---------------------------------------------------------------------

    def run(self) -> WalkResult:
        self.recorder.backend.on_lock_lost(self._stop_lock_lost)
        with Interrupts(self._stop_gracefully):
            try:
                self.hooks.walk_started()
                try:
                    self._moves()
                    self._destroy_note("started")
                    self._phase_rollback()
                    if not self.scheduler.stopping:
                        self._forgets()
                    if not self.scheduler.stopping:
                        self._phase_apply()
                finally:
                    self.hooks.walk_finished()
                    self._destroy_note("ended")
            except KeyboardInterrupt:
                self._stop_at_once()
        return self.result

    def _destroy_note(self, when: str) -> None:
        """A destroy's start and end in the history, beside its stages' entries: a destroy
        killed midway leaves a start without an end, which the next plan reports
        (`unfinished_destroy`). Nothing for an apply, or a destroy with nothing to undo."""
        if self.operation != "destroy" or not any(c.rolls_back for c in self.plan.changes):
            return
        if when == "started":
            targets = self.plan.options.get("targets") or []
            scope = f" of -target {', '.join(map(str, targets))}" if targets else ""
            rolled = sum(c.rolls_back for c in self.plan.changes)
            self.recorder.note("destroy", "started", f"rolls back {rolled} stage(s){scope}")
            return
        r = self.result
        stopped = bool(r.failed or r.interrupted or r.lock_lost or r.tainted)
        try:
            self.recorder.note("destroy", "stopped" if stopped else "ok", f"{len(r.rolled_back)} rolled back")
        except Exception:  # noqa: BLE001 - the end of a destroy that cannot write the state is not recorded
            pass

    def _stop_gracefully(self) -> None:
        """The first Ctrl-C (in a signal handler): start nothing more, ask running stages to stop."""
        self.scheduler.cancel()
        self.result.interrupted = True
        live = list(self._live.values())
        for _, ctx in live:
            ctx.cancelled.set()
        self.hooks.say(
            f"Interrupt received: stopping gracefully; {len(live)} running stage(s) will finish. "
            "Press Ctrl-C again to stop at once (running stages are then marked tainted)."
        )

    def _stop_lock_lost(self, message: str) -> None:
        """The state lock was taken away (a force-unlock, maybe another run took it): another
        run may now be doing the same work, so start nothing more and tell running stages
        to stop (their providers end their workers on `ctx.cancelled`). Their next state
        write fails with the same message."""
        self.result.lock_lost = message
        self.scheduler.cancel()
        for _, ctx in list(self._live.values()):
            ctx.cancelled.set()
        self.hooks.say(message[:1].upper() + message[1:])

    def _stop_at_once(self) -> None:
        """The second Ctrl-C: every stage still running is recorded as tainted."""
        self.result.interrupted = True
        for address, (change, _) in list(self._live.items()):
            record = self.recorder.record(address)
            if record is None or record.status != "rolling_back":  # a rollback stays recorded as one
                self.recorder.tainted(address, change.type, self.operation)
            self.result.tainted.append(address)
        self._live.clear()

    def _walk(self, changes: dict[str, Change], waits: dict[str, set[str]], phase: Phase) -> None:
        visit = self._visit_rollback if phase == "rollback" else self._visit_apply
        outcome: WalkOutcome[str] = self.scheduler.walk(list(changes), waits, lambda a: visit(changes[a]))
        self.result.failed.update(outcome.failed)
        for address, why in outcome.blocked.items():
            self.result.not_started.setdefault(address, why)
        if outcome.stopped:
            r = self.result
            ended = set(r.completed) | set(r.rolled_back) | set(r.failed) | set(r.left_manual)
            ended |= set(r.awaiting_approval) | set(r.tainted)
            for address in outcome.unvisited:
                if address not in ended:
                    self.result.not_started.setdefault(address, STOPPED)

    # -- phases -----------------------------------------------------------------------

    def _moves(self) -> None:
        """`moved` blocks: every moved record (and every address that names it) moves in one
        state write, before any stage runs; each moved stage's folder follows it."""
        moves = self.plan.moves
        if not moves:
            return
        doc = self.recorder.doc
        stages = moved_records(doc.stages, moves, self.graph.blocks)
        detail = "; ".join(f"{old} -> {new}" for old, new in sorted(moves.items()))
        self.recorder.replace_stages(stages, "move", detail)
        for old, new in moves.items():
            before, after = self.files.stage_dir(old), self.files.stage_dir(new)
            if before.is_dir() and not after.exists():
                before.rename(after)
        self.result.moved.update(moves)
        for old, new in sorted(moves.items()):
            self.hooks.say(f"{new}: moved from {old} (state only)")

    def _forgets(self) -> None:
        """`removed` blocks: each forgotten stage leaves the state; no provider is called."""
        for change in self.plan.changes:
            if change.action != "forget":
                continue
            self.recorder.remove(change.address, "forget", detail="removed block: not rolled back")
            self.result.forgotten.append(change.address)
            self.hooks.say(f"{change.address}: forgotten (removed from the state; nothing was rolled back)")

    def _phase_rollback(self) -> None:
        changes = {c.address: c for c in self.plan.changes if c.rolls_back}
        if not changes:
            return
        deps = self._all_deps()
        # A gated stage to be replaced is not rolled back before its approval, and
        # neither is anything built on it (it would only wait, undone, for the gate).
        gated = [a for a, c in changes.items() if c.action == "replace" and c.gated]
        if gated:
            dependents: dict[str, set[str]] = {}
            for address, needs in deps.items():
                for dep in needs:
                    dependents.setdefault(dep, set()).add(address)
            for address in gated:
                self._gate(changes[address])
                self.result.awaiting_approval.append(address)
                stack = [address]
                while stack:
                    for below in dependents.get(stack.pop(), ()):
                        if below in changes and below not in gated and below not in self.result.not_started:
                            self.result.not_started[below] = f"waits for the approval of {address}"
                            stack.append(below)
            for address in [*gated, *self.result.not_started]:
                changes.pop(address, None)
        waits = {a: {b for b in changes if a in deps.get(b, ())} for a in changes}
        self._walk(changes, waits, "rollback")

    def _phase_apply(self) -> None:
        changes = {
            c.address: c for c in self.plan.changes if c.action in ("create", "update", "replace", "read", "import")
        }
        if not changes:
            return
        waits: dict[str, set[str]] = {}
        blocked: list[str] = []
        for address in changes:
            stage = self.graph.stages.get(address)
            if stage is None:
                raise PlanError(f"{address} is planned but is not in the config any more")
            need: set[str] = set()
            for dep in stage.depends_on:
                if dep in changes:
                    need.add(dep)
                    continue
                record = self.recorder.record(dep)
                if record is None or record.status not in COMPLETE_STATUSES:
                    status = record.status if record else "not applied"
                    self.result.not_started[address] = f"its dependency {dep} is {status}"
                    blocked.append(address)
            waits[address] = need
        for address in blocked:
            changes.pop(address, None)
        waits = {a: {d for d in w if d in changes} for a, w in waits.items() if a in changes}
        self._walk(changes, waits, "apply")

    def _all_deps(self) -> dict[str, set[str]]:
        deps: dict[str, set[str]] = {a: set(s.depends_on) for a, s in self.graph.stages.items()}
        for address, record in self.recorder.doc.stages.items():
            deps.setdefault(address, set()).update(record.depends_on)
        return deps

    # -- one stage --------------------------------------------------------------------

    def _visit_rollback(self, change: Change) -> Step:
        if change.forget_only:
            self.recorder.remove(change.address, f"{self.operation} rollback", detail="never applied: record removed")
            self.result.rolled_back.append(change.address)
            return Done()
        if change.manual_rollback:
            self.recorder.left_manual(change.address, change.type, self.operation)
            self.result.left_manual.append(change.address)
            self.hooks.say(f"{change.address}: rollback left to you (lifecycle.rollback: manual)")
            return Done()
        return self._start(change, "rollback")

    def _visit_apply(self, change: Change) -> Step:
        if change.gated:
            self._gate(change)
            if change.address not in self.result.awaiting_approval:
                self.result.awaiting_approval.append(change.address)
            return Held(f"waits for the approval of {change.address}")
        if change.action == "read":
            self.recorder.refreshed(change.address, change.type, change.refreshed_outputs)
            self.result.completed.append(change.address)
            return Done()
        return self._start(change, "apply")

    def _gate(self, change: Change) -> None:
        """Record that this stage waits for `mactl approve` (once: a second walk finds it waiting)."""
        record = self.recorder.record(change.address)
        if record is not None and record.status == "awaiting_approval":
            return
        self.recorder.awaiting_approval(change.address, change.type, change.depends_on, self.operation)
        self.hooks.say(f"{change.address}: waiting for approval (`mactl approve {change.address}`)")

    def _start(self, change: Change, phase: Phase) -> Step:
        ctx = self.contexts.build(change, phase)
        self._live[change.address] = (change, ctx)
        if phase == "apply":
            stage = self.graph.stages[change.address]
            self.recorder.running(stage, change.action, self.operation)
            self.hooks.stage_started(change.address, change.action)
        else:
            self.recorder.rolling_back(change.address, change.type, self.operation)
            self.hooks.stage_started(change.address, "rollback")
        return Run(lambda: self._work(change, phase, ctx))

    def _reporting(self, ctx: StageContext[BaseModel], call: Callable[[StageContext[BaseModel]], T]) -> T:
        """`call(ctx)`, with a cluster call waiting out a transient error saying so in the
        stage's log and on the display (`mactl.retrying`)."""

        def waiting(line: str) -> None:
            ctx.log(line)
            self.hooks.say(f"{ctx.address}: {line}")

        with reporting_to(waiting):
            return call(ctx)

    @staticmethod
    def _adopting(change: Change, provider: object) -> Callable[[StageContext[BaseModel]], dict[str, Any]] | None:
        """For an import: the provider's `adopt` (checked again now: what exists may have
        changed since the plan), as a stage call. None for every other action."""
        if change.action != "import":
            return None
        adopt = getattr(provider, "adopt", None)
        if adopt is None:
            raise PlanError(f"{change.address}: a {change.type} stage cannot be imported")

        def call(ctx: StageContext[BaseModel]) -> dict[str, Any]:
            outputs: dict[str, Any] = adopt(ctx, change.import_id)
            return outputs

        return call

    def _work(self, change: Change, phase: Phase, ctx: StageContext[BaseModel]) -> str | None:
        """Run the provider (on the stage's own thread) and record how it ended."""
        provider = registry.get_provider(change.type)
        try:
            if phase == "rollback":
                self._reporting(ctx, provider.rollback)
                self.recorder.remove(change.address, f"{self.operation} rollback", detail=change.reason)
                self.result.rolled_back.append(change.address)
            else:
                outputs = self._reporting(ctx, self._adopting(change, provider) or provider.apply) or {}
                self.recorder.complete(change.address, change.type, change.action, outputs, self.operation)
                self.result.completed.append(change.address)
                errors = outputs.get(ERRORS_OUTPUT_KEY)
                if isinstance(errors, dict):
                    self.result.with_errors[change.address] = errors
            self._live.pop(change.address, None)
            self.hooks.stage_finished(change.address, "ok")
            return None
        except BaseException as exc:  # noqa: BLE001 - any failure of a provider is reported, never lost
            message = exc.message if isinstance(exc, MactlError) else f"{type(exc).__name__}: {exc}"
            message = mask_text(message, self.secrets)
            if not isinstance(exc, MactlError):
                try:
                    self.hooks.stage_log(change.address, traceback.format_exc())
                except OSError:
                    pass  # the state still records the failure
            try:
                self.recorder.failed(change.address, change.type, message, self.operation, rollback=phase == "rollback")
            except Exception as save_err:  # noqa: BLE001
                if not self.result.lock_lost:  # a lost lock is said once, not per stage
                    message += f" (and the state could not be saved: {save_err})"
            self._live.pop(change.address, None)
            self.hooks.stage_finished(change.address, f"FAILED: {message}")
            return message
