"""The plan as a pull-request comment: the summary in the open, the details collapsed.

GitHub refuses comments over 65,536 characters, so the body is kept under 65,000: the
details are cut at a stage boundary and a note says how many stages were left out.
"""

from __future__ import annotations

from mactl.plan.definition import Plan
from mactl.plan.render_text import render_text

LIMIT = 65_000


def render_markdown(plan: Plan, *, limit: int = LIMIT) -> str:
    counts = plan.counts()
    head = [f"### mactl plan: {plan.summary_line()}", ""]
    if plan.has_changes:
        head += ["| action | stages |", "|---|---|"]
        for action, label in (
            ("rollback", "roll back"),
            ("replace", "replace"),
            ("create", "create"),
            ("update", "update"),
            ("read", "read"),
            ("forget", "forget (removed block: left as it is)"),
            ("import", "import (adopted; rollback deletes it)"),
        ):
            if counts[action]:
                head.append(f"| {label} | {counts[action]} |")
        if plan.moves:
            head.append(f"| move (moved block: state only) | {len(plan.moves)} |")
        head.append("")
        rollbacks = [c.address for c in plan.actionable() if c.rolls_back]
        if rollbacks:
            head.append(
                f"> [!WARNING]\n> {len(rollbacks)} stage(s) will be **rolled back**: work already done is undone."
            )
            head.append("")
        gates = [c.address for c in plan.actionable() if c.approval_required and c.action != "rollback"]
        if gates:
            head.append("Approval gates: " + ", ".join(f"`{g}`" for g in gates))
            head.append("")
    for warning in plan.warnings:
        head.append(f"> **Warning:** {warning}")
        head.append("")
    body = render_text(plan).rstrip("\n")
    open_tag = f"<details><summary>Show the plan ({len(plan.actionable())} change(s))</summary>\n\n```diff\n"
    close_tag = "\n```\n\n</details>\n"
    head_text = "\n".join(head) + "\n"
    room = limit - len(head_text) - len(open_tag) - len(close_tag) - 200
    if len(body) > room:
        cut = body.rfind("\n  # ", 0, max(0, room))
        kept = body[: cut if cut > 0 else max(0, room)]
        left_out = len(plan.actionable()) - kept.count(" {\n")  # each stage block opens with `… {`
        note = (
            f"\n\n... truncated to stay under {limit:,} characters: {left_out} more stage change(s) not shown. "
            "Run `mactl plan` or `mactl show PLANFILE` for the full plan."
        )
        body = kept + note
    return head_text + open_tag + body.replace("```", "``\u200b`") + close_tag
