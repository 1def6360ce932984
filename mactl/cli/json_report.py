"""How a walk ended, as `-json` events: what `engine_cmd._report` prints, for a script.

Each stage that failed already has its `apply_errored` and error `diagnostic` (from the
walk's hook); this adds the walk-wide facts (a lost lock, an interrupt, stages stopped at
an approval gate or left to a person, stages finished with errors) and the closing
`change_summary` whose `operation` is `apply` or `destroy`. The exit code is the text
report's: 0, 1 when anything failed, 130 when interrupted.
"""

from __future__ import annotations

from mactl.apply.walker import WalkResult
from mactl.plan.definition import Plan
from mactl.plan.events import EventStream, stage_ref


def report_walk(stream: EventStream, plan: Plan, result: WalkResult, operation: str) -> int:
    types = {c.address: c.type for c in plan.changes}
    actions = {c.address: c.action for c in plan.changes}
    for address in result.awaiting_approval:
        stream.emit(
            "apply_stopped",
            f"{address}: waiting for approval (`mactl approve {address}`)",
            hook={
                "stage": stage_ref(address, types.get(address)),
                "action": actions.get(address),
                "reason": "approval",
            },
        )
    for address in result.left_manual:
        stream.diagnostic("warning", f"{address}: rollback left to you (lifecycle.rollback: manual)", address=address)
    for address, errors in sorted(result.with_errors.items()):
        stream.diagnostic(
            "warning",
            f"{address} finished with errors: {errors.get('deadLettered')} document(s) dead-lettered",
            "see `mactl status` and `mactl audit`; resend them with `mactl backfill resend-failed ADDR`",
            address=address,
        )
    for address, why in sorted(result.not_started.items()):
        stream.diagnostic("warning", f"{address} was not started: {why}", address=address)
    if result.lock_lost:
        stream.diagnostic("error", result.lock_lost)
    if result.interrupted:
        stream.diagnostic("error", f"{operation} interrupted", "running stages finished or were marked tainted")
    counts = {a: 0 for a in ("create", "update", "replace", "read")}
    for address in result.completed:
        action = actions.get(address, "create")
        if action in counts:
            counts[action] += 1
    counts["rollback"] = sum(1 for a in result.rolled_back if actions.get(a) == "rollback")
    verb = "Destroy" if operation == "destroy" else "Apply"
    done, rolled = len(result.completed), len(result.rolled_back)
    if result.ok:
        stream.change_summary(counts, operation, f"{verb} complete! Stages: {done} applied, {rolled} rolled back.")
        return 0
    stream.change_summary(
        counts,
        operation,
        f"{verb} stopped: {done} stage(s) finished and {rolled} rolled back; run it again to resume.",
        ok=False,
    )
    return 130 if result.interrupted and not result.failed and not result.lock_lost else 1
