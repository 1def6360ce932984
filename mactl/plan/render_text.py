"""Show a `Plan` the way Terraform does: a legend, one block per stage, a summary line.

Roll-backs come first, under a loud banner, because they undo work already done (the
seed's "invalidated downstream stages needing rollback" are visible before anything
runs). Attribute diffs are marked `# forces replacement` where they do; approval gates
and roll-backs left to a person are called out. Values are already masked in the plan.
A stage with instances lists each instance that changes (`-/+ ["rw-pmc"]`) and
counts the unchanged ones in one line. A big value many stages hold (a snapshot entry's
2,000-name filter) is printed in full once, under "Shared values", and referenced where
each stage holds it (`mactl.plan.shared_values`). Nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from mactl.address import instance_address
from mactl.config.bulk import paused_gc
from mactl.plan.definition import Change, Plan
from mactl.plan.instances import summary
from mactl.plan.shared_values import SharedValues

SYMBOLS = {
    "create": "+",
    "update": "~",
    "replace": "-/+",
    "rollback": "-",
    "read": "<=",
    "noop": " ",
    "forget": ".",
    "import": "<=",
}
VERBS = {
    "create": "will be created",
    "update": "will be updated in place",
    "replace": "must be REPLACED (rolled back, then redone)",
    "rollback": "will be ROLLED BACK",
    "read": "changed outside mactl; the state will be updated",
    "noop": "is unchanged",
    "forget": "will be FORGOTTEN: removed from the state only, NOT rolled back (what it made is left as it is)",
    "import": "will be IMPORTED: what exists is adopted, not created; mactl owns it from now on "
    "(rolling it back DELETES it)",
}
LEGEND = """mactl used the selected stages to generate the following plan. Actions are shown with these symbols:
  +   create
  ~   update in place
  -/+ replace: roll back, then redo
  -   roll back
  <=  read: record what changed outside mactl"""
# Legend lines shown only when the plan has such a change (older plans read as before).
LEGEND_FORGET = "  .   forget: drop from the state, leave what it made (a `removed` block)"
LEGEND_IMPORT = "  <=  import: adopt what already exists (an `import` block); the stage then owns it"
LEGEND_MOVE = "  #   moved from ADDR: the state moves to the new address (a `moved` block), no replacement"


def _value(value: Any) -> str:
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _block(change: Change, out: list[str], shared: SharedValues) -> None:
    sym = SYMBOLS[change.action]
    if change.moved_from and change.action == "noop":
        out.append(f"  # {change.moved_from} has moved to {change.address}")
    else:
        out.append(f"  # {change.address} {VERBS[change.action]}")
    if change.moved_from:
        out.append(f"  # (moved from {change.moved_from})")
    if change.action != "noop":
        out.append(f"  # ({change.reason})")
    if change.approval_required and change.action in ("create", "update", "replace"):
        out.append(f"  # APPROVAL GATE: the walk stops here until `mactl approve {change.address}`")
    if change.keep_downstream:
        out.append("  # WARNING: -keep-downstream: stages built on this one are NOT invalidated")
    if change.manual_rollback and change.rolls_back:
        out.append("  # rollback is MANUAL: mactl records it as left; you must undo it by hand")
    out.append(f'  {sym} stage "{change.address}" ({change.type}) {{')
    if change.action == "import":
        out.append(f"      <= import id = {_value(change.import_id or '(what the inputs name)')}")
    if change.action in ("create", "import"):
        for key, value in (change.after or {}).items():
            out.append(f"      + {key} = {shared.text(value)}")
    elif change.action in ("rollback", "forget"):
        for key, value in (change.before or {}).items():
            out.append(f"      {sym} {key} = {shared.text(value)}")
    else:
        for attr in change.attributes:
            mark = "  # forces replacement" if attr.forces_replacement else ""
            if attr.before is None:
                out.append(f"      + {attr.path} = {shared.text(attr.after)}{mark}")
            elif attr.after is None:
                out.append(f"      - {attr.path} = {shared.text(attr.before)}{mark}")
            else:
                out.append(f"      ~ {attr.path} = {shared.text(attr.before)} -> {shared.text(attr.after)}{mark}")
        for attr in change.drift:
            before, after = shared.text(attr.before), shared.text(attr.after)
            out.append(f"      # changed outside mactl: {attr.path} = {before} -> {after}")
        if not change.attributes and not change.drift and change.action == "replace":
            out.append("      # inputs unchanged: redone because of the reason above")
        if change.resume:
            out.append("      # resumes from the checkpoint recorded when it stopped")
        hidden = len(change.after or {}) - len({a.path.split(".")[0] for a in change.attributes})
        if hidden > 0 and change.attributes:
            out.append(f"        ({hidden} unchanged attribute{'s' if hidden != 1 else ''} hidden)")
    _instances(change, out)
    out.append("    }")
    out.append("")


INSTANCE_WORDS = {"create": "new", "replace": "replace", "rollback": "roll back"}


def _instances(change: Change, out: list[str]) -> None:
    """The stage's instances: each one that changes on its own line, the unchanged in one."""
    if change.instances_unknown:
        out.append("      # instances: (known after apply)")
        return
    if not change.instances:
        return
    out.append(f"      # instances: {summary(change.instances)}")
    for i in change.instances:
        if i.action == "noop":
            if i.reason.startswith(("not targeted", "left out")):
                out.append(f"        {instance_address('', i.key)}  # {i.reason}")
            continue
        out.append(f"      {SYMBOLS[i.action]:<3} {instance_address('', i.key)}  # {i.reason}")


def _shared_section(shared: SharedValues, out: list[str]) -> None:
    """Each big value many stages hold, in full, once (see `mactl.plan.shared_values`)."""
    if not shared.values:
        return
    out.append(
        "Shared values: big values that many stages hold, each shown in full once here. A stage below"
        ' that holds one shows "(shared value #N: K items)" in its place.'
    )
    for value in shared.values:
        out.append(
            f"  # shared value #{value.number}: {value.items} items, in {value.places} places (first: {value.first})"
        )
        out.append(f"  #{value.number} = {value.text}")
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
    if any(c.action == "forget" for c in actionable):
        out.append(LEGEND_FORGET)
    if any(c.action == "import" for c in actionable):
        out.append(LEGEND_IMPORT)
    if any(c.moved_from for c in actionable):
        out.append(LEGEND_MOVE)
    out.append("")
    rollbacks = [c for c in actionable if c.rolls_back]
    instances = plan.instance_counts()
    undone = instances["replace"] + instances["rollback"]
    if rollbacks or undone:
        out.append("!" * 78)
        if rollbacks:
            out.append(f"!! {len(rollbacks)} stage(s) will be ROLLED BACK: this undoes work already done.")
            out.append("!! (replacements roll back first, dependents before what they depend on)")
        if undone:
            out.append(
                f"!! {undone} instance(s) will be ROLLED BACK or redone: what mactl made for them is removed first."
            )
        out.append("!" * 78)
        out.append("")
    shared = SharedValues(actionable)
    _shared_section(shared, out)
    out.append("mactl will perform the following actions:")
    out.append("")
    for change in actionable:
        _block(change, out, shared)
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
