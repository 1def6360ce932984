"""The plan as JSON for scripts: `format_version` and `resource_changes[]`, like Terraform.

The schema is documented in `docs/plan-json.md`. Values are already masked in the plan.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from mactl import __version__
from mactl.address import instance_address
from mactl.config.bulk import paused_gc
from mactl.plan.definition import JSON_ACTIONS, Change, Plan

FORMAT_VERSION = "1.0"


def _change(c: Change) -> dict[str, Any]:
    out = _change_fields(c)
    if c.moved_from:
        out["previous_address"] = c.moved_from  # Terraform's key for a `moved` block
    if c.action == "import":
        out["change"]["importing"] = {"id": c.import_id}  # Terraform's key for an `import` block
    return out


def _change_fields(c: Change) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "address": c.address,
        "type": c.type,
        "action_reason": c.reason,
        "change": {
            "actions": JSON_ACTIONS[c.action],
            "before": c.before,
            "after": c.after if c.action not in ("rollback", "forget") else None,
            "attributes": [
                {
                    "path": a.path,
                    "before": a.before,
                    "after": a.after,
                    "forces_replacement": a.forces_replacement,
                    "sensitive": a.sensitive,
                }
                for a in c.attributes
            ],
            "drift": [{"path": a.path, "before": a.before, "after": a.after} for a in c.drift],
        },
        "depends_on": list(c.depends_on),
        "approval_required": c.approval_required,
        "manual_rollback": c.manual_rollback,
        "keep_downstream": c.keep_downstream,
        "resume": c.resume,
    }
    if c.instances or c.instances_unknown:
        # Per-instance changes (docs/plan-json.md): every instance, with its full address.
        doc["instance_changes"] = [
            {
                "address": instance_address(c.address, i.key),
                "key": i.key,
                "actions": JSON_ACTIONS[i.action],
                "action_reason": i.reason,
            }
            for i in c.instances
        ]
        doc["instances_known_after_apply"] = c.instances_unknown
        doc["partial"] = c.partial
    return doc


def plan_document(plan: Plan) -> dict[str, Any]:
    return {**plan_document_head(plan), "resource_changes": [_change(c) for c in plan.changes]}


def plan_document_head(plan: Plan) -> dict[str, Any]:
    """Every key of the plan document but `resource_changes` (which comes last)."""
    counts = plan.counts()
    instances = plan.instance_counts()
    return {
        "format_version": FORMAT_VERSION,
        "mactl_version": __version__,
        "mode": plan.mode,
        "refreshed": plan.refreshed,
        "state": {"lineage": plan.lineage, "serial": plan.serial, "workspace": plan.workspace},
        "config": {"path": plan.config_path, "digest": plan.config_digest},
        "variables": plan.variables,
        "summary": {
            "create": counts["create"],
            "update": counts["update"],
            "replace": counts["replace"],
            "rollback": counts["rollback"],
            "read": counts["read"],
            "noop": counts["noop"],
            "has_changes": plan.has_changes,
            # only when the plan has some, so older readers see the summary they know
            **({"forget": counts["forget"]} if counts["forget"] else {}),
            **({"import": counts["import"]} if counts["import"] else {}),
            **({"move": len(plan.moves)} if plan.moves else {}),
        },
        **(
            {"instance_summary": {k: v for k, v in instances.items() if k in ("create", "replace", "rollback")}}
            if any(c.partial for c in plan.changes)
            else {}
        ),
        "warnings": plan.warnings,
    }


def _render_json(plan: Plan) -> str:
    return orjson.dumps(plan_document(plan), option=orjson.OPT_INDENT_2).decode() + "\n"


def render_json(plan: Plan) -> str:
    """The plan as JSON text (cyclic GC paused: the document is large and acyclic)."""
    with paused_gc():
        return _render_json(plan)


_CHANGES_TAIL = b"[]\n}"


def iter_json(plan: Plan) -> Iterator[str]:
    """`render_json`'s text, byte for byte, in chunks: the document without its changes,
    then each change rendered on its own and indented to its depth. A 12,000-stage plan
    is hundreds of MB of JSON; this writes it out as it is made rather than held whole.
    (JSON strings hold no raw newline, so indenting every line of a change is safe.)"""
    with paused_gc():
        head = orjson.dumps({**plan_document_head(plan), "resource_changes": []}, option=orjson.OPT_INDENT_2)
        if not plan.changes:
            yield head.decode() + "\n"
            return
        assert head.endswith(_CHANGES_TAIL)
        yield head[: -len(_CHANGES_TAIL)].decode() + "[\n"
        for i, change in enumerate(plan.changes):
            text = orjson.dumps(_change(change), option=orjson.OPT_INDENT_2).replace(b"\n", b"\n    ")
            yield ("    " if i == 0 else ",\n    ") + text.decode()
        yield "\n  ]\n}\n"
