"""`--markdown` for pull requests: diff symbols in the first column, and `--markdown-parts DIR`
writing the whole plan as numbered comments under GitHub's limit (nothing truncated)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from engine_helpers import Project, pipeline_config

from mactl.config.loader import load_config
from mactl.graph.expand import expand
from mactl.plan.builder import PlanOptions, build_plan
from mactl.plan.definition import Plan
from mactl.plan.render_markdown import diff_coloured, render_markdown, render_markdown_parts
from mactl.plan.render_text import render_text


def _plan(tmp_path: Path, **shape: Any) -> Plan:
    path = tmp_path / "mactl.yaml"
    path.write_text(pipeline_config(**shape))
    loaded = load_config(path, env={})
    return build_plan(expand(loaded.config), None, PlanOptions(refresh=False))


def _diff_lines(markdown: str) -> list[str]:
    """The lines inside the ```diff blocks of a comment."""
    return [line for block in re.findall(r"```diff\n(.*?)\n```", markdown, re.S) for line in block.split("\n")]


def test_diff_symbols_move_to_the_first_column_so_github_colours_them() -> None:
    text = "\n".join(
        [
            "  # snapshot.src.snap1 will be created",
            '  + stage "snapshot.src.snap1" (snapshot) {',
            '      + indices = ["a"]',
            "      ~ maxBatchDocs = 1 -> 2  # forces replacement",
            "      - sample = 10",
            '  -/+ stage "backfill.x" (backfill) {',
            "  +   create",
            "  -/+ replace: roll back, then redo",
            "  - metadata.src.snap1.t1.i0",  # a bullet of the approval-gate list: not a change
            '  <= stage "validate.src.t1" (validate) {',
        ]
    )
    assert diff_coloured(text).split("\n") == [
        "  # snapshot.src.snap1 will be created",
        '+   stage "snapshot.src.snap1" (snapshot) {',
        '+       indices = ["a"]',
        "!       maxBatchDocs = 1 -> 2  # forces replacement",
        "-       sample = 10",
        '-/+   stage "backfill.x" (backfill) {',
        "+     create",
        "-/+   replace: roll back, then redo",
        "  - metadata.src.snap1.t1.i0",
        '  <= stage "validate.src.t1" (validate) {',
    ]


def test_one_comment_keeps_its_summary_and_colours_its_diff(tmp_path: Path, snapshot: Any) -> None:
    md = render_markdown(_plan(tmp_path, indices=1))
    assert md == snapshot
    lines = _diff_lines(md)
    assert any(line.startswith('+   stage "snapshot.src.snap1"') for line in lines)
    assert not any(re.match(r"^ +[+~-] ", line) for line in lines)


def test_parts_hold_the_whole_plan_each_under_the_limit_and_numbered(tmp_path: Path, snapshot: Any) -> None:
    plan = _plan(tmp_path, indices=3)
    parts = render_markdown_parts(plan, limit=3000)
    assert parts == snapshot
    total = len(parts)
    assert total >= 3
    for number, part in enumerate(parts, start=1):
        assert len(part) <= 3000
        assert part.startswith(f"### mactl plan: {plan.summary_line()} (part {number} of {total})")
        assert part.rstrip().endswith("</details>")
    assert f"| create | {plan.counts()['create']} |" in parts[0] and "| create |" not in parts[1]
    # nothing is hidden: the parts' diff lines are the whole plan, in order
    whole = diff_coloured(render_text(plan).rstrip("\n")).split("\n")
    assert [line for part in parts for line in _diff_lines(part) if line] == [line for line in whole if line]
    # the one-comment form at the same limit truncates and points at the parts
    assert "--markdown-parts" in render_markdown(plan, limit=3000)


def test_a_small_plan_is_one_part(tmp_path: Path) -> None:
    (part,) = render_markdown_parts(_plan(tmp_path, indices=1))
    assert "(part 1 of 1)" in part and "_Continued" not in part


def test_plan_markdown_parts_writes_numbered_files_and_removes_older_parts(project: Project) -> None:
    project.write(pipeline_config(indices=200, targets=3))
    parts = project.root / "comments"
    parts.mkdir()
    (parts / "plan.99.md").write_text("an older plan's part")
    (parts / "plan.notes.md").write_text("not a part: kept")
    r = project.run("plan", "-refresh=false", "--markdown-parts", str(parts))
    assert r.code == 0, r.err
    assert "Plan: " in r.out and 'stage "capture.src"' in r.out  # stdout keeps the text plan
    written = sorted(parts.glob("plan.*.md"), key=lambda p: p.name)
    numbered = sorted((p for p in written if p.name.split(".")[1].isdigit()), key=lambda p: int(p.name.split(".")[1]))
    assert [p.name for p in numbered] == [f"plan.{i}.md" for i in range(1, len(numbered) + 1)]
    assert len(numbered) >= 2 and (parts / "plan.notes.md").exists()
    for i, path in enumerate(numbered, start=1):
        text = path.read_text()
        assert len(text) <= 65_000 and f"(part {i} of {len(numbered)})" in text
    joined = "".join(p.read_text() for p in numbered)
    assert all(f'stage "metadata.src.snap1.t3.i{i}"' in joined for i in range(200))
    assert f"{len(numbered)} markdown part(s)" in r.err
