"""Where validation reports live: a validate stage's outputs (passed) or checkpoint (failed).

A report is the JSON `mactl.audit.checks.run_validation` returns (`kind:
mactl-validation-report`); this module only finds them in a state document.
"""

from __future__ import annotations

from typing import Any

from mactl.errors import MactlError


class AuditError(MactlError):
    """No report to show: no validate stage has run, or ADDR is not one."""


def report_of(record: Any) -> dict[str, Any] | None:
    """The report a validate stage record holds, if any."""
    for holder in (record.outputs or {}, record.checkpoint or {}):
        report = holder.get("report")
        if isinstance(report, dict) and report.get("kind") == "mactl-validation-report":
            return report
    return None


def reports_from_state(doc: Any, address: str | None = None) -> list[dict[str, Any]]:
    """Every validate stage's report (or only `address`'s), in address order."""
    stages = dict(doc.stages) if doc is not None else {}
    validates = sorted(a for a, r in stages.items() if r.type == "validate")
    if address is not None:
        if address not in stages:
            known = ", ".join(validates) or "none has run yet"
            raise AuditError(f"ADDR: no stage '{address}' in the state (validate stages: {known})")
        if stages[address].type != "validate":
            raise AuditError(
                f"ADDR: '{address}' is a {stages[address].type} stage; give a validate stage "
                f"({', '.join(validates) or 'none has run yet'})"
            )
        validates = [address]
    found = [r for r in (report_of(stages[a]) for a in validates) if r is not None]
    if not found:
        raise AuditError(
            "no validation report in the state yet",
            hint="run `mactl apply` until the validate stage has run (it records its report)",
        )
    return found
