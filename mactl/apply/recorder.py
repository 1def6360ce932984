"""The one place an apply changes the state: stage transitions, checkpoints, history notes.

Every change is written to the backend before the call returns, so a crash loses at most
the work since the last checkpoint. A change is stored as a `Transition` appended to the
state's journal (`Backend.append`): only what changed, so a transition costs the same at
12 or 12,000 stages; the backend folds the journal into the document. Appends are
group-committed: a change made while another thread is appending waits for the next
append, which then carries every change made meanwhile. Each caller still returns only
once an append containing its change is stored, so "saved at every transition" holds.
Secrets are masked on the way in: the state never holds one.

The recorder does not decide anything (which stage runs, or whether it must wait: that is
the plan and the walker) and does not take the state lock (the command holds it).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from typing import Any

from mactl.credentials import without_credentials
from mactl.graph.stage import Stage
from mactl.masking import inputs_digest, mask_inputs, mask_text, mask_values
from mactl.state.backend import Backend
from mactl.state.document import ERRORS_OUTPUT_KEY, HistoryEntry, StageRecord, StateDocument, utcnow
from mactl.state.journal import Transition


class StateRecorder:
    def __init__(self, backend: Backend, doc: StateDocument, who: str, secrets: Collection[str]) -> None:
        self.backend = backend
        self.doc = doc
        self.who = who
        self.secrets = [s for s in secrets if s]
        self._mutex = threading.Lock()  # guards `doc` and the generation counters
        self._write_lock = threading.Lock()  # one backend write at a time
        self._changed_gen = 0
        self._written_gen = 0
        self._pending: list[Transition] = []  # changed in `doc`, not yet appended

    # -- reading ----------------------------------------------------------------------

    def record(self, address: str) -> StageRecord | None:
        with self._mutex:
            return self.doc.stages.get(address)

    # -- the transitions of one stage -------------------------------------------------

    def awaiting_approval(self, address: str, stage_type: str, depends_on: Collection[str], operation: str) -> None:
        self.update(
            address,
            stage_type,
            history=(operation, "awaiting approval", None),
            status="awaiting_approval",
            approved_by=None,
            depends_on=list(depends_on),
        )

    def running(self, stage: Stage, action: str, operation: str) -> None:
        """The stage starts: its (masked) inputs and dependencies are what it runs with; its
        clusters are recorded by name and endpoint, without credentials (`mactl.credentials`)."""
        record = self.record(stage.address)
        recorded = without_credentials(stage.inputs)
        self.update(
            stage.address,
            stage.type,
            history=(operation, "started", action),
            status="running",
            started_at=utcnow(),
            finished_at=None,
            attempts=(record.attempts if record else 0) + 1,
            inputs=mask_inputs(recorded, stage.sensitive_paths, self.secrets),
            inputs_digest=inputs_digest(recorded),
            depends_on=list(stage.depends_on),
            last_error=None,
        )

    def rolling_back(self, address: str, stage_type: str, operation: str) -> None:
        """The stage's rollback starts. Saved before the provider undoes anything: a kill
        from here on leaves `rolling_back`, so neither a plan nor a rerun takes the
        half-undone stage for a complete one. Inputs, outputs and checkpoint stay as they
        are: the rollback's rerun needs them to find what the stage made."""
        self.update(
            address,
            stage_type,
            history=(f"{operation} rollback", "started", None),
            status="rolling_back",
            started_at=utcnow(),
            finished_at=None,
        )

    def checkpoint(self, address: str, stage_type: str, data: Mapping[str, Any]) -> None:
        self.update(address, stage_type, checkpoint=mask_values(dict(data), self.secrets))

    def complete(self, address: str, stage_type: str, action: str, outputs: Mapping[str, Any], operation: str) -> None:
        errors = outputs.get(ERRORS_OUTPUT_KEY)
        summary = errors.get("summary") if isinstance(errors, Mapping) else None
        self.update(
            address,
            stage_type,
            history=(operation, "ok with errors", f"{action}: {summary}") if errors else (operation, "ok", action),
            status="complete_with_errors" if errors else "complete",
            outputs=mask_values(dict(outputs), self.secrets),
            checkpoint=None,
            finished_at=utcnow(),
            last_error=None,
        )

    def failed(self, address: str, stage_type: str, message: str, operation: str, *, rollback: bool) -> None:
        if rollback:
            self.update(
                address,
                stage_type,
                history=(f"{operation} rollback", "failed", message),
                status="failed",
                last_error=f"rollback failed: {message}",
                finished_at=utcnow(),
            )
        else:
            self.update(
                address,
                stage_type,
                history=(operation, "failed", message),
                status="failed",
                last_error=message,
                finished_at=utcnow(),
            )

    def tainted(self, address: str, stage_type: str, operation: str) -> None:
        """Stopped at once (a second Ctrl-C) while running."""
        self.update(
            address,
            stage_type,
            history=(operation, "interrupted", "stopped at once by a second Ctrl-C"),
            status="tainted",
            last_error="interrupted: stopped at once (second Ctrl-C)",
            finished_at=utcnow(),
        )

    def left_manual(self, address: str, stage_type: str, operation: str) -> None:
        self.update(
            address,
            stage_type,
            history=(operation, "left_manual", "lifecycle.rollback is manual: undo it by hand"),
            status="left_manual",
            finished_at=utcnow(),
        )

    def refreshed(self, address: str, stage_type: str, outputs: Mapping[str, Any] | None) -> None:
        """What refresh found changed outside mactl becomes the recorded outputs."""
        self.update(address, stage_type, history=("refresh", "ok", "changed outside mactl"), outputs=outputs or {})

    # -- the document -----------------------------------------------------------------

    def update(
        self, address: str, stage_type: str, history: tuple[str, str, str | None] | None = None, **fields: Any
    ) -> None:
        with self._mutex:
            current = self.doc.stages.get(address)
            fields.setdefault("updated_at", utcnow())
            if current is None:
                current = StageRecord(type=stage_type, created_at=utcnow())
                fields = {"type": current.type, "created_at": current.created_at, **fields}
            self.doc.stages[address] = current.model_copy(update=fields)
            entry = self._history(address, history)
            self._pending.append(Transition(address=address, fields=fields, history=entry))
            gen = self._changed()
        self._commit(gen)

    def _history(self, address: str | None, history: tuple[str, str, str | None] | None) -> HistoryEntry | None:
        if history is None:
            return None
        operation, result, detail = history
        return self.doc.record(
            who=self.who,
            operation=operation,
            address=address,
            result=result,
            detail=mask_text(detail, self.secrets) if detail else None,
        )

    def remove(self, address: str, operation: str, detail: str | None = None) -> None:
        with self._mutex:
            self.doc.stages.pop(address, None)
            entry = self.doc.record(who=self.who, operation=operation, address=address, result="ok", detail=detail)
            self._pending.append(Transition(address=address, removed=True, history=entry))
            gen = self._changed()
        self._commit(gen)

    def replace_stages(self, stages: Mapping[str, StageRecord], operation: str, detail: str) -> None:
        """Every stage record at once (a `moved` block renames addresses): one write, so the
        state is either all at the old addresses or all at the new ones."""
        with self._write_lock:
            with self._mutex:
                self.doc.stages = dict(stages)
                self.doc.record(who=self.who, operation=operation, result="ok", detail=detail)
                upto = self._changed()
                self._pending = []  # in `doc` already: the whole document is written below
            # Not a journal entry: a transition names one address, and a move changes many
            # at once. A full write (which folds the journal in) keeps it all-or-nothing.
            stored = self.backend.write(self.doc)
            with self._mutex:
                self.doc.serial = stored.serial
                self._written_gen = upto

    def note(self, operation: str, result: str, detail: str | None = None) -> None:
        with self._mutex:
            entry = self.doc.record(who=self.who, operation=operation, result=result, detail=detail)
            self._pending.append(Transition(history=entry))
            gen = self._changed()
        self._commit(gen)

    def compact(self) -> None:
        """Fold the journal into the state document: the apply is over."""
        self.backend.compact()

    def _changed(self) -> int:
        self._changed_gen += 1
        return self._changed_gen

    def _commit(self, gen: int) -> None:
        with self._write_lock:
            if self._written_gen >= gen:
                return  # another thread's append already stored this change
            with self._mutex:
                upto = self._changed_gen
                batch, self._pending = self._pending, []
                lineage, serial = self.doc.lineage, self.doc.serial
            try:
                stored = self.backend.append(lineage, serial, batch)
            except BaseException:
                with self._mutex:  # not stored: the next commit carries them, or the error stops the walk
                    self._pending[:0] = batch
                raise
            with self._mutex:
                self.doc.serial = stored
                self._written_gen = upto
