"""Show a `Plan` the way Terraform does: a legend, one block per stage, a summary line.

Roll-backs come first, under a loud banner, because they undo work already done (the
seed's "invalidated downstream stages needing rollback" are visible before anything
runs). Attribute diffs are marked `# forces replacement` where they do; approval gates
and roll-backs left to a person are called out. Values are already masked in the plan.
Nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from mactl.config.bulk import paused_gc
from mactl.plan.definition import Change, Plan

SYMBOLS = {"create": "+", "update": "~", "replace": "-/+", "rollback": "-", "read": "<=", "noop": " "}
VERBS = {
    "create": "will be created",
    "update": "will be updated in place",
    "replace": "must be REPLACED (rolled back, then redone)",
    "rollback": "will be ROLLED BACK",
    "read": "changed outside mactl; the state will be updated",
    "noop": "is unchanged",
}
LEGEND = """mactl used the selected stages to generate the following plan. Actions are shown with these symbols:
  +   create
  ~   update in place
  -/+ replace: roll back, then redo
  -   roll back
  <=  read: record what changed outside mactl"""


def _value(value: Any) -> str:
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _block(change: Change, out: list[str]) -> None:
    sym = SYMBOLS[change.action]
    out.append(f"  # {change.address} {VERBS[change.action]}")
    out.append(f"  # ({change.reason})")
    if change.approval_required and change.action in ("create", "update", "replace"):
        out.append(f"  # APPROVAL GATE: the walk stops here until `mactl approve {change.address}`")
    if change.keep_downstream:
        out.append("  # WARNING: -keep-downstream: stages built on this one are NOT invalidated")
    if change.manual_rollback and change.rolls_back:
        out.append("  # rollback is MANUAL: mactl records it as left; you must undo it by hand")
    out.append(f'  {sym} stage "{change.address}" ({change.type}) {{')
    if change.action == "create":
        for key, value in (change.after or {}).items():
            out.append(f"      + {key} = {_value(value)}")
    elif change.action == "rollback":
        for key, value in (change.before or {}).items():
            out.append(f"      - {key} = {_value(value)}")
    else:
        for attr in change.attributes:
            mark = "  # forces replacement" if attr.forces_replacement else ""
            if attr.before is None:
                out.append(f"      + {attr.path} = {_value(attr.after)}{mark}")
            elif attr.after is None:
                out.append(f"      - {attr.path} = {_value(attr.before)}{mark}")
            else:
                out.append(f"      ~ {attr.path} = {_value(attr.before)} -> {_value(attr.after)}{mark}")
        for attr in change.drift:
            out.append(f"      # changed outside mactl: {attr.path} = {_value(attr.before)} -> {_value(attr.after)}")
        if not change.attributes and not change.drift and change.action == "replace":
            out.append("      # inputs unchanged: redone because of the reason above")
        if change.resume:
            out.append("      # resumes from the checkpoint recorded when it stopped")
        hidden = len(change.after or {}) - len({a.path.split(".")[0] for a in change.attributes})
        if hidden > 0 and change.attributes:
            out.append(f"        ({hidden} unchanged attribute{'s' if hidden != 1 else ''} hidden)")
    out.append("    }")
    out.append("")


_CHUNK_LINES = 20_000


def _render_text(plan: Plan, *, show_noop: bool = False) -> Iterator[str]:
    """The text in chunks of whole lines: a 12,000-stage plan is hundreds of MB of text,
    written out as it is made rather than held whole."""
    out: list[str] = []
    for warning in plan.warnings:
        out.append(f"Warning: {warning}")
        out.append("")
    if not plan.refreshed:
        out.append("Note: -refresh=false: the real state was not read; changes made outside mactl are not shown.")
        out.append("")
    actionable = plan.actionable()
    if not actionable:
        out.append("No changes. The migration matches the configuration.")
        yield "\n".join(out) + "\n"
        return
    out.append(LEGEND)
    out.append("")
    rollbacks = [c for c in actionable if c.rolls_back]
    if rollbacks:
        out.append("!" * 78)
        out.append(f"!! {len(rollbacks)} stage(s) will be ROLLED BACK: this undoes work already done.")
        out.append("!! (replacements roll back first, dependents before what they depend on)")
        out.append("!" * 78)
        out.append("")
    out.append("mactl will perform the following actions:")
    out.append("")
    for change in actionable:
        _block(change, out)
        if len(out) >= _CHUNK_LINES:
            yield "\n".join(out) + "\n"
            out.clear()
    if show_noop:
        for change in plan.changes:
            if change.action == "noop":
                out.append(f"  # {change.address} is unchanged")
    manual = [c for c in actionable if c.manual_rollback and c.rolls_back]
    if manual:
        out.append("Left to you (lifecycle.rollback: manual): undo these by hand; the state will record them as left:")
        for c in manual:
            out.append(f"  - {c.address}: {c.description or c.type}")
        out.append("")
    gates = [c for c in actionable if c.approval_required and c.action in ("create", "update", "replace")]
    if gates:
        out.append("Approval gates: apply stops at each until approved with `mactl approve ADDR`:")
        for c in gates:
            out.append(f"  - {c.address}")
        out.append("")
    out.append(plan.summary_line())
    yield "\n".join(out) + "\n"


def render_text(plan: Plan, *, show_noop: bool = False) -> str:
    """The plan as Terraform-style text (cyclic GC paused: many small strings, no cycles)."""
    with paused_gc():
        return "".join(_render_text(plan, show_noop=show_noop))


def iter_text(plan: Plan, *, show_noop: bool = False) -> Iterator[str]:
    """`render_text` in chunks, for writing out as it is made (same text, less memory)."""
    with paused_gc():
        yield from _render_text(plan, show_noop=show_noop)
