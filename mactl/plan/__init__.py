"""Plans: what `mactl plan` computes, shows and saves, as plain data.

`definition` says what a plan IS (ordered `Change`s, and the state lineage/serial and
config digest it was made from); `builder` computes one from a `StageGraph` and a
`StateDocument`; `render_text`, `render_json` and `render_markdown` show it;
`planfile` saves and loads it and checks a saved one is not stale. This package must
not write state, take locks or run providers' `apply`/`rollback` (only `read`, for
refresh, when asked to); every value in a plan is already masked.

    plan = build_plan(graph, backend.read(), PlanOptions(refresh=False))
    print(render_text(plan))
"""

from mactl.plan.definition import Action, AttributeChange, Change, Plan

__all__ = ["Action", "AttributeChange", "Change", "Plan"]
