"""Preflight: check everything a run will need before anything is undone.

`apply` rolls stages back and replaces them; if what it needs to redo them (a transform
that imports, a reachable target, a readable snapshot) is missing, it must find out
first, not after the target was emptied. So before the walker starts (for a fresh plan
and a saved one alike), `check_apply` runs:

- the offline checks: every transform of every stage the plan runs compiles (Jinja2,
  in the sandbox) or imports (Python, from the config's folder:
  `mactl.transforms.use_config_folder`), each problem named by its config path;
- each provider's `preflight(inputs, ctx)` hook for those stages (clusters answer,
  the snapshot can be read unless this run takes it first).

Any problem stops the apply with one line per problem, exit 1, and nothing touched: no
lock-holding work, no state change, no rollback. `validate` reports the offline
problems (`transform_issues`) and `plan` both kinds (the provider checks as warnings,
and only when it refreshes: `-refresh=false` means no network).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mactl.config.issues import ConfigIssue, Loc
from mactl.config.loader import LoadedConfig
from mactl.errors import ConfigError, PlanError
from mactl.graph.expand import StageGraph
from mactl.plan.definition import Plan
from mactl.schema.common import TransformSpec
from mactl.state.document import StateDocument

RUN_ACTIONS = frozenset({"create", "update", "replace"})
PROBE_TIMEOUT_S = 5.0

SpecKey = tuple[str, str | None, str | None, str | None]


class PreflightFailed(PlanError):
    """The preflight found problems; nothing was changed."""

    def __init__(self, problems: list[str]) -> None:
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"preflight failed: {len(problems)} problem(s); nothing was rolled back or changed:\n{lines}",
            hint="fix them and run apply again",
        )
        self.problems = problems


@dataclass(frozen=True)
class StageProblem:
    """A provider's preflight problem for one stage (or several that share it)."""

    addresses: tuple[str, ...]
    message: str

    def line(self) -> str:
        first = self.addresses[0]
        more = f" (and {len(self.addresses) - 1} more stage(s))" if len(self.addresses) > 1 else ""
        return f"{first}{more}: {self.message}"


def _key(spec: TransformSpec | Mapping[str, Any]) -> SpecKey:
    data = spec.model_dump() if isinstance(spec, TransformSpec) else spec
    return (str(data.get("kind")), data.get("template"), data.get("file"), data.get("callable"))


def config_transforms(loaded: LoadedConfig) -> Iterator[tuple[Loc, TransformSpec]]:
    """Every transform in the config, with its canonical location."""
    for i, sm in enumerate(loaded.config.sources):
        for j, snap in enumerate(sm.snapshots):
            for k, migration in enumerate(snap.migrations):
                mloc: Loc = ("sources", i, "snapshots", j, "migrations", k)
                if migration.metadata is not None:
                    for t, spec in enumerate(migration.metadata.transforms):
                        yield (*mloc, "metadata", "transforms", t), spec
                for n, backfill in enumerate(migration.backfills):
                    for t, spec in enumerate(backfill.transforms):
                        yield (*mloc, "backfills", n, "transforms", t), spec
        if sm.replayer is not None:
            for t, spec in enumerate(sm.replayer.transforms):
                yield ("sources", i, "replayer", "transforms", t), spec


def _transform_problem(spec: TransformSpec, base_dir: Path) -> str | None:
    """Compile (or import) one transform exactly as a stage will; the problem, or None."""
    from mactl.transforms import compile_transform, python_refusal, python_transforms_refused

    if spec.kind == "python" and python_transforms_refused():
        return python_refusal(spec.callable)  # never import it
    try:
        compile_transform(spec, base_dir=base_dir)
    except ConfigError as exc:
        return exc.message
    return None


def _transform_findings(loaded: LoadedConfig, used: set[SpecKey] | None = None) -> list[tuple[SpecKey, ConfigIssue]]:
    found: list[tuple[SpecKey, ConfigIssue]] = []
    results: dict[SpecKey, str | None] = {}
    for loc, spec in config_transforms(loaded):
        key = _key(spec)
        if used is not None and key not in used:
            continue
        if key not in results:
            results[key] = _transform_problem(spec, loaded.base_dir)
        problem = results[key]
        if problem is not None:
            found.append((key, ConfigIssue(loaded.origins.user_path(loc), problem)))
    return found


def transform_issues(loaded: LoadedConfig) -> list[ConfigIssue]:
    """Every transform that does not compile or import, by config path (`validate`, `plan`)."""
    return [issue for _, issue in _transform_findings(loaded)]


def _used_specs(graph: StageGraph, addresses: Iterable[str]) -> set[SpecKey]:
    used: set[SpecKey] = set()
    for address in addresses:
        stage = graph.stages.get(address)
        for spec in (stage.inputs.get("transforms") or []) if stage is not None else []:
            if isinstance(spec, Mapping):
                used.add(_key(spec))
    return used


def runs(plan: Plan) -> list[str]:
    """The stages the walk will run (create, update, replace), in plan order."""
    return [c.address for c in plan.changes if c.action in RUN_ACTIONS and not c.forget_only]


def stage_problems(
    graph: StageGraph,
    addresses: list[str],
    doc: StateDocument | None,
    *,
    config_dir: Path,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> list[StageProblem]:
    """Each provider's `preflight` over `addresses`; one entry per distinct problem."""
    from mactl.providers.base import PreflightContext
    from mactl.providers.registry import get_provider

    records = doc.stages if doc is not None else {}
    redone = _redone_ancestors(graph, set(addresses))
    probes: dict[str, str | None] = {}
    by_message: dict[str, list[str]] = {}
    for address in addresses:
        stage = graph.stages[address]
        provider = get_provider(stage.type)
        hook = getattr(provider, "preflight", None)
        if hook is None:
            continue
        ctx = PreflightContext(
            address=address,
            upstream={dep: records[dep].outputs for dep in stage.depends_on if dep in records},
            redone=redone[address],
            config_dir=config_dir,
            timeout_s=timeout_s,
            probes=probes,
        )
        for message in hook(provider.Inputs.model_validate(stage.inputs), ctx):
            by_message.setdefault(message, []).append(address)
    return [StageProblem(tuple(found), message) for message, found in by_message.items()]


def _redone_ancestors(graph: StageGraph, running: set[str]) -> dict[str, frozenset[str]]:
    """Each stage's ancestors among `running`, in one pass in dependency order (no per-stage graph search)."""
    empty: frozenset[str] = frozenset()
    found: dict[str, frozenset[str]] = {}
    for address in graph.topological():
        parts = [found[d] | ({d} if d in running else empty) for d in graph.stages[address].depends_on if d in found]
        nonempty = [p for p in parts if p]
        found[address] = empty if not nonempty else nonempty[0] if len(nonempty) == 1 else frozenset().union(*nonempty)
    return found


def check_apply(
    plan: Plan,
    graph: StageGraph,
    loaded: LoadedConfig,
    doc: StateDocument | None,
    *,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> None:
    """Raise `PreflightFailed` listing every problem the stages the plan runs would hit."""
    addresses = runs(plan)
    if not addresses:
        return
    problems = [
        f"{issue.path}: {issue.message}" for _, issue in _transform_findings(loaded, _used_specs(graph, addresses))
    ]
    problems += [
        p.line() for p in stage_problems(graph, addresses, doc, config_dir=loaded.base_dir, timeout_s=timeout_s)
    ]
    if problems:
        raise PreflightFailed(problems)


def plan_warnings(plan: Plan, graph: StageGraph, loaded: LoadedConfig, doc: StateDocument | None) -> list[str]:
    """What `check_apply` would find beyond the transforms, as lines for `plan` to warn with."""
    if not plan.refreshed:
        return []
    found = stage_problems(graph, runs(plan), doc, config_dir=loaded.base_dir)
    return [f"preflight: {p.line()} (apply will refuse to start until this is fixed)" for p in found]
