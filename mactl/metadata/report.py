"""The metadata stage's report: every item created, skipped, failed or excluded, and why.

The report is plain JSON (it is stored in the stage's outputs, so `mactl show` and scripts
read it back); `render_text` turns it into the lines a person reads. Nothing here talks
to a cluster.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mactl.metadata.evaluate import Evaluation

OUTCOMES = ("created", "existing", "skipped", "failed", "excluded")


def entry(
    kind: str,
    name: str,
    outcome: str,
    *,
    reason: str = "",
    transforms: list[str] | None = None,
    source_name: str | None = None,
) -> dict[str, Any]:
    """One report line as JSON. `outcome` is one of `OUTCOMES` (or "would create" in an evaluation)."""
    row: dict[str, Any] = {"kind": kind, "name": name, "outcome": outcome}
    if source_name and source_name != name:
        row["sourceName"] = source_name
    if reason:
        row["reason"] = reason
    row["transforms"] = list(transforms or [])
    return row


def build(source: dict[str, str], target: dict[str, str], origin: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    counts = Counter(r["outcome"] for r in rows)
    return {"source": source, "target": target, "origin": origin, "counts": dict(sorted(counts.items())), "items": rows}


def render_text(report: dict[str, Any], *, show_transforms: bool = True) -> str:
    src, tgt = report["source"], report["target"]
    lines = [
        f"metadata: {src.get('name')} {src.get('distribution')} {src.get('version')} ({report.get('origin')})"
        f" → {tgt.get('name')} {tgt.get('distribution')} {tgt.get('version')}",
        "  " + ", ".join(f"{n} {k}" for k, n in report["counts"].items()) if report["counts"] else "  nothing to do",
    ]
    for row in report["items"]:
        label = f"{row['kind'].replace('_', ' ')} {row['name']}"
        if row.get("sourceName"):
            label += f" (from {row['sourceName']})"
        line = f"  {row['outcome']:<9} {label}"
        if row.get("reason"):
            line += f": {row['reason']}"
        lines.append(line)
        if show_transforms:
            lines.extend(f"              · {t}" for t in row.get("transforms") or [])
    return "\n".join(lines)


def render_evaluation(address: str, ev: Evaluation) -> str:
    """Per item: what would happen, the transforms that fired, and the exact body as JSON.

    Used by `mactl metadata evaluate` and by `plan --evaluate`.
    """
    lines = [
        f"{address}: {ev.source['name']} {ev.source['distribution']} {ev.source['version']} ({ev.origin})"
        f" → {ev.target['name']} {ev.target['distribution']} {ev.target['version']}",
        "",
    ]
    verbs = {"create": "would create", "skip": "would skip", "fail": "would FAIL"}
    for item in ev.items:
        head = f"# {verbs[item.action]} {item.kind.replace('_', ' ')} {item.name}"
        if item.source_name != item.name:
            head += f" (from {item.source_name})"
        if item.reason:
            head += f": {item.reason}"
        lines.append(head)
        lines.extend(f"#   · {t}" for t in item.transforms)
        if item.body is not None:
            lines.append(json.dumps(item.body, indent=2, ensure_ascii=False, sort_keys=True))
        lines.append("")
    if ev.excluded:
        lines.append(
            "# excluded by built-in rules (name one exactly in `indices`, or `templateFilters` for a template, to include it):"
        )
        lines.extend(f"#   {e.kind.replace('_', ' ')} {e.name}: {e.reason}" for e in ev.excluded)
    return "\n".join(lines).rstrip()
