"""The plan as a pull-request comment: the summary in the open, the details collapsed.

GitHub refuses comments over 65,536 characters. `render_markdown` keeps one comment under
65,000: the details are cut at a stage boundary and a note says how many stages were left
out. `render_markdown_parts` hides nothing instead: it splits the plan into numbered
comments (as Atlantis does), each under the limit and each saying "part i of n"; the
summary, the roll-back warning and the approval gates are in part 1.

Inside the ```diff block the action symbol of every line is moved to the first column
(the indentation kept after it), because GitHub colours a diff line only by its first
character: `+` green, `-` red. `~` (update in place) is not coloured, so it is shown as
`!`, which GitHub colours as a change.
"""

from __future__ import annotations

import re

from mactl.errors import PlanError
from mactl.plan.definition import Plan
from mactl.plan.render_text import render_text

LIMIT = 65_000
_SLACK = 200  # room for the part note and rounding; the limit is never reached exactly

# The lines that carry an action: a stage block's first line (`  -/+ stage "…"`), its
# attributes (`      ~ path = …`) and the legend (`  +   create`); not `  # comments`, not
# the `  - ADDR` bullet lists, not `<=` (GitHub would colour it as a removal).
_SYMBOL = re.compile(r'^(  )(-/\+|[-+~])(?= stage "|   \S| replace)|^(      )(-/\+|[-+~])(?= )', re.MULTILINE)
_FIRST_COLUMN = {"~": "!"}


def diff_coloured(text: str) -> str:
    """`text` with each line's action symbol moved to the first column (`~` shown as `!`)."""

    def move(match: re.Match[str]) -> str:
        indent, symbol = (match.group(1), match.group(2)) if match.group(2) else (match.group(3), match.group(4))
        return _FIRST_COLUMN.get(symbol, symbol) + indent

    return _SYMBOL.sub(move, text)


def _head(plan: Plan) -> list[str]:
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
        instances = plan.instance_counts()
        for action, label in (("rollback", "roll back"), ("replace", "replace"), ("create", "create")):
            if instances[action]:
                head.append(f"| {label} (instances) | {instances[action]} |")
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
    return head


def _body(plan: Plan) -> str:
    return diff_coloured(render_text(plan).rstrip("\n")).replace("```", "``\u200b`")


def _open_tag(what: str) -> str:
    return f"<details><summary>{what}</summary>\n\n```diff\n"


CLOSE_TAG = "\n```\n\n</details>\n"


def render_markdown(plan: Plan, *, limit: int = LIMIT) -> str:
    head_text = "\n".join(_head(plan)) + "\n"
    body = _body(plan)
    open_tag = _open_tag(f"Show the plan ({len(plan.actionable())} change(s))")
    room = limit - len(head_text) - len(open_tag) - len(CLOSE_TAG) - _SLACK
    if len(body) > room:
        cut = body.rfind("\n  # ", 0, max(0, room))
        kept = body[: cut if cut > 0 else max(0, room)]
        left_out = len(plan.actionable()) - kept.count(" {\n")  # each stage block opens with `… {`
        note = (
            f"\n\n... truncated to stay under {limit:,} characters: {left_out} more stage change(s) not shown. "
            "Run `mactl plan --markdown-parts DIR` for the whole plan as numbered comments, "
            "or `mactl show PLANFILE`."
        )
        body = kept + note
    return head_text + open_tag + body + CLOSE_TAG


def _chunks(body: str, room: int) -> list[str]:
    """`body` cut into pieces of at most `room` characters, at blank lines (stage blocks) when
    one fits, else at line ends, else (a single line longer than a comment) anywhere."""
    pieces: list[str] = []
    current = ""
    for paragraph in body.split("\n\n"):
        candidate = f"{current}\n\n{paragraph}" if current else paragraph
        if len(candidate) <= room:
            current = candidate
            continue
        if current:
            pieces.append(current)
            current = ""
        if len(paragraph) <= room:
            current = paragraph
            continue
        for line in paragraph.split("\n"):
            candidate = f"{current}\n{line}" if current else line
            if len(candidate) <= room:
                current = candidate
                continue
            if current:
                pieces.append(current)
            while len(line) > room:
                pieces.append(line[:room])
                line = line[room:]
            current = line
    if current or not pieces:
        pieces.append(current)
    return pieces


def render_markdown_parts(plan: Plan, *, limit: int = LIMIT) -> list[str]:
    """The whole plan as numbered comments, each at most `limit` characters, nothing left out."""
    head = _head(plan)
    head_text = "\n".join(head[2:]) + "\n"  # the title line (and the blank after it) is per part
    title = f"### mactl plan: {plan.summary_line()}"
    body = _body(plan)
    changes = len(plan.actionable())
    # Every part pays for its title, note and tags; part 1 also for the head.
    fixed = len(title) + len(_open_tag(f"Show the plan ({changes} change(s)), part 999 of 999")) + len(CLOSE_TAG)
    room = limit - fixed - len(head_text) - _SLACK
    if room < 1000:
        raise PlanError(f"a markdown part limit of {limit:,} characters leaves no room for the plan")
    pieces = _chunks(body, room)
    total = len(pieces)
    parts: list[str] = []
    for number, piece in enumerate(pieces, start=1):
        of = f"part {number} of {total}"
        intro = head_text if number == 1 else f"_Continued from part {number - 1}._\n\n"
        summary = f"Show the plan ({changes} change(s)), {of}"
        parts.append(f"{title} ({of})\n\n{intro}{_open_tag(summary)}{piece}{CLOSE_TAG}")
    return parts
