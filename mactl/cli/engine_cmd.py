"""`mactl plan`, `apply [PLANFILE]`, `show PLANFILE`, `approve ADDR`, `destroy`.

Flags come in Terraform's single-dash spelling and the double-dash one (`-target` and
`--target`, `-refresh=false` and `--refresh=false`). These commands parse, call the
config loader, the graph expander, the planner and the walker, and render; the state is
read and written only through `mactl.state`, under its lock.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from mactl.cli.app import app
from mactl.cli.config_cmd import (
    ConfigPathOpt,
    LockTakeoverOpt,
    NoPythonTransformsOpt,
    VarFileOpt,
    VarOpt,
    lock_state,
    print_warnings,
)
from mactl.errors import ConfigError, MactlError, PlanError

if TYPE_CHECKING:
    from mactl.apply.walker import WalkResult
    from mactl.plan.builder import PlanOptions
    from mactl.plan.definition import Plan
    from mactl.plan.events import EventStream
    from mactl.state.document import StateDocument

TargetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "-target",
        "--target",
        help='Plan only ADDR (a stage, or an instance: ADDR["key"]) and what it depends on. Repeatable; `*` wildcards.',
        metavar="ADDR",
    ),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "-exclude",
        "--exclude",
        help='Leave out ADDR (or one instance, ADDR["key"]) and what depends on it. Repeatable.',
        metavar="ADDR",
    ),
]
ReplaceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "-replace",
        "--replace",
        help='Force ADDR (or one instance, ADDR["key"]) and its descendants to be replaced. Repeatable.',
        metavar="ADDR",
    ),
]
KeepOpt = Annotated[
    list[str] | None,
    typer.Option(
        "-keep-downstream",
        "--keep-downstream",
        help="Change ADDR without invalidating its descendants (you manage their state).",
        metavar="ADDR",
    ),
]
RefreshOpt = Annotated[
    str,
    typer.Option(
        "-refresh",
        "--refresh",
        help="-refresh=false: don't ask providers for the real state (no network).",
        metavar="true|false",
    ),
]
RefreshOnlyOpt = Annotated[
    bool, typer.Option("-refresh-only", "--refresh-only", help="Only record what changed outside mactl.")
]
DetailedOpt = Annotated[
    bool,
    typer.Option(
        "-detailed-exitcode", "--detailed-exitcode", help="Exit 0 with no changes, 1 on error, 2 with changes."
    ),
]
OutOpt = Annotated[
    Path | None,
    typer.Option("-out", "--out", help="Save the plan to FILE for `mactl apply FILE`.", dir_okay=False, metavar="FILE"),
]
AutoApproveOpt = Annotated[
    bool, typer.Option("-auto-approve", "--auto-approve", help="Apply without asking for `yes`.")
]
ParallelismOpt = Annotated[
    int, typer.Option("-parallelism", "--parallelism", help="How many stages run at once.", min=1)
]
LockTimeoutOpt = Annotated[
    str,
    typer.Option(
        "-lock-timeout", "--lock-timeout", help="How long to wait for the state lock (0, 30s, 5m).", metavar="DURATION"
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "-json",
        "--json",
        help="Stream machine-readable UI events, one JSON object per line (docs/json-ui.md). "
        "The plan as one JSON document: `mactl show -json PLANFILE`.",
    ),
]
ShowJsonOpt = Annotated[
    bool, typer.Option("-json", "--json", help="Print the saved plan as one JSON document (docs/plan-json.md).")
]
MarkdownOpt = Annotated[bool, typer.Option("-markdown", "--markdown", help="Print the plan as a pull-request comment.")]
MarkdownPartsOpt = Annotated[
    Path | None,
    typer.Option(
        "-markdown-parts",
        "--markdown-parts",
        help="Also write the whole plan as numbered pull-request comments DIR/plan.1.md, plan.2.md… "
        "(each under GitHub's limit; nothing truncated).",
        file_okay=False,
        metavar="DIR",
    ),
]


def _refresh_flag(value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise ConfigError(f"-refresh: expected true or false, not {value!r}", hint="write -refresh=false")


@dataclass
class Session:
    """What every engine command works with: the loaded config, its graph and its state backend."""

    loaded: Any
    graph: Any
    backend: Any

    @property
    def secrets(self) -> set[str]:
        return set(self.loaded.sensitive_values)


def _open(
    config: Path | None, var: list[str] | None, var_file: list[Path] | None, stream: EventStream | None = None
) -> Session:
    from mactl.cli.config_cmd import expand_named, load_from_options
    from mactl.state import open_backend

    loaded = load_from_options(config, var, var_file)
    graph = expand_named(loaded)
    backend = open_backend(loaded.config.state, base_dir=loaded.base_dir)
    session = Session(loaded, graph, backend)
    if stream is None:
        print_warnings(loaded)
    else:
        stream.secrets = sorted(s for s in session.secrets if s)
        for warning in loaded.warnings:
            stream.diagnostic("warning", warning, path=str(loaded.path))
    return session


def _event_stream(as_json: bool) -> EventStream | None:
    """The `-json` stream on stdout (its `version` event written), or None for text."""
    if not as_json:
        return None
    from mactl.plan.events import EventStream

    stream = EventStream(sys.stdout)
    stream.version()
    return stream


@contextmanager
def _diagnosed(stream: EventStream | None) -> Iterator[None]:
    """With `-json`, an error that ends the command is also a `diagnostic` event on the stream.

    The error still propagates: the guard prints its one line on stderr and sets the
    exit code, which is the same with `-json` as without.
    """
    try:
        yield
    except MactlError as err:
        if stream is not None:
            source = getattr(err, "source", None)  # a config error names its file
            stream.diagnostic("error", err.message, err.hint or "", path=source if isinstance(source, str) else None)
        raise
    except OSError as err:
        if stream is not None:
            where = f"{err.filename}: " if err.filename is not None else ""
            stream.diagnostic("error", where + (err.strerror or type(err).__name__))
        raise


def _variables_for_plan(session: Session) -> tuple[dict[str, Any], list[str]]:
    from mactl.masking import SENSITIVE

    decls = session.loaded.config.variables
    sensitive = sorted(name for name, decl in decls.items() if decl.sensitive)
    values = {k: (SENSITIVE if k in sensitive else v) for k, v in session.loaded.variables.items()}
    return values, sensitive


def keep_recorded_names(session: Session, doc: StateDocument | None) -> None:
    """The snapshot names this state recorded stay its names (`mactl.graph.snapshot_names`)."""
    from mactl.graph.snapshot_names import keep_recorded_snapshot_names

    if doc is None:
        return
    recorded = {
        address: name
        for address, record in doc.stages.items()
        if record.type == "snapshot" and isinstance(name := record.inputs.get("snapshotName"), str)
    }
    session.graph = keep_recorded_snapshot_names(session.graph, recorded)


def make_plan(session: Session, options: PlanOptions, doc: StateDocument | None) -> Plan:
    from mactl.plan.builder import build_plan

    keep_recorded_names(session, doc)
    plan = build_plan(
        session.graph,
        doc,
        options,
        sensitive_values=session.secrets,
        workdir=session.backend.workdir_path,
        config_dir=session.loaded.base_dir,
    )
    plan.workspace = session.backend.workspace
    plan.config_path = str(Path(session.loaded.path).resolve())
    plan.variables, plan.sensitive_variables = _variables_for_plan(session)
    plan.sensitive_from_config = sorted(set(plan.sensitive_variables) & session.loaded.defaulted)
    return plan


def _options(
    target: list[str] | None,
    exclude: list[str] | None,
    replace: list[str] | None,
    keep: list[str] | None,
    refresh: str,
    refresh_only: bool,
    destroy: bool = False,
    parallelism: int = 4,
) -> PlanOptions:
    from mactl.plan.builder import PlanOptions

    return PlanOptions(
        targets=list(target or []),
        excludes=list(exclude or []),
        replaces=list(replace or []),
        keep_downstream=list(keep or []),
        refresh=_refresh_flag(refresh),
        refresh_only=refresh_only,
        destroy=destroy,
        parallelism=parallelism,
    )


def _render(plan: Plan, as_json: bool, markdown: bool) -> Iterable[str]:
    """The plan's text in chunks, written out as they are made (a 12,000-stage plan is
    hundreds of MB)."""
    if as_json and markdown:
        raise ConfigError("--json and --markdown cannot be used together")
    if as_json:
        from mactl.plan.render_json import iter_json

        return iter_json(plan)
    if markdown:
        from mactl.plan.render_markdown import render_markdown

        return (render_markdown(plan),)
    from mactl.plan.render_text import iter_text

    return iter_text(plan)


def _write_parts(plan: Plan, folder: Path | None) -> None:
    """`--markdown-parts DIR`: the plan as `plan.1.md`…`plan.N.md`, earlier parts in DIR replaced."""
    if folder is None:
        return
    from mactl.plan.render_markdown import render_markdown_parts

    parts = render_markdown_parts(plan)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("plan.*.md"):
            if stale.name.split(".")[1].isdigit():  # a part of an earlier plan: it would be posted too
                stale.unlink()
        for number, text in enumerate(parts, start=1):
            (folder / f"plan.{number}.md").write_text(text, encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"--markdown-parts {folder}: cannot write the parts: {err.strerror or err}") from None
    typer.echo(f"Wrote the plan as {len(parts)} markdown part(s): {folder}/plan.1.md … plan.{len(parts)}.md", err=True)


def _metadata_evaluations(session: Session, plan: Plan, doc: StateDocument | None) -> str:
    """`plan --evaluate`: the bodies each planned metadata stage would create.

    Per instance: a partially changed stage shows only the items that change, an instance
    address in `-target` only the items it names; the rest is counted in one line.
    Reads the source (or its snapshot) and the target's version; writes nothing.
    """
    from dataclasses import replace

    from mactl.address import instance_key, parse_address
    from mactl.metadata.evaluate import evaluate_for_plan
    from mactl.metadata.report import render_evaluation

    recorded = doc.stages if doc is not None else {}
    targets = [parse_address(t, flag="-target") for t in plan.options.get("targets") or []]
    sections: list[str] = []
    for change in plan.changes:
        if change.type != "metadata" or change.action in ("noop", "rollback", "read"):
            continue
        stage = session.graph.stages[change.address]
        upstream = {dep: dict(recorded[dep].outputs) for dep in stage.depends_on if dep in recorded}
        evaluation, note = evaluate_for_plan(stage.inputs, upstream, base_dir=session.loaded.base_dir)
        scope = change.instance_scope
        narrowed = [a for a in targets if a.is_instance and a.matches_stage(change.address)]
        shown, unchanged, untargeted = [], 0, 0
        for item in evaluation.items:
            key = instance_key(item.kind, item.name)
            if scope is not None and key not in scope:
                unchanged += 1
            elif narrowed and not any(a.matches_key(key) for a in narrowed):
                untargeted += 1
            else:
                shown.append(item)
        text = render_evaluation(change.address, replace(evaluation, items=shown))
        if unchanged:
            text += f"\n# {unchanged} unchanged item(s) not shown"
        if untargeted:
            text += f"\n# {untargeted} item(s) outside -target not shown"
        sections.append(f"# note: {note}\n{text}" if note else text)
    if not sections:
        return "\nNo metadata stage is planned to change: nothing to evaluate.\n"
    return "\n── metadata evaluation " + "─" * 40 + "\n\n" + "\n".join(sections)


def _check_transforms(session: Session) -> None:
    """`validate`'s transform checks (compile, import from the config's folder), by config path."""
    from mactl.config.issues import ConfigErrors
    from mactl.plan.preflight import transform_issues

    issues = transform_issues(session.loaded)
    if issues:
        raise ConfigErrors(issues, source=str(session.loaded.path))


def _warn_preflight(session: Session, plan: Plan, doc: StateDocument | None, stream: EventStream | None = None) -> None:
    """What apply's preflight would refuse (an unreachable cluster, an unreadable snapshot), on stderr."""
    from mactl.plan.preflight import plan_warnings

    for line in plan_warnings(plan, session.graph, session.loaded, doc):
        if stream is not None:
            stream.diagnostic("warning", line)
        else:
            typer.secho(f"Warning: {line}", fg="yellow", err=True)


def _preflight(session: Session, plan: Plan, doc: StateDocument | None) -> None:
    """Refuse the walk, before anything is rolled back, if a stage it runs could not be redone."""
    from mactl.plan.preflight import check_apply

    check_apply(plan, session.graph, session.loaded, doc)


def _emit(text: str | Iterable[str]) -> None:
    for chunk in (text,) if isinstance(text, str) else text:
        sys.stdout.write(chunk)
    sys.stdout.flush()


@app.command("plan")
def plan_command(
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    no_python_transforms: NoPythonTransformsOpt = False,
    target: TargetOpt = None,
    exclude: ExcludeOpt = None,
    replace: ReplaceOpt = None,
    keep_downstream: KeepOpt = None,
    refresh: RefreshOpt = "true",
    refresh_only: RefreshOnlyOpt = False,
    detailed_exitcode: DetailedOpt = False,
    out: OutOpt = None,
    lock_timeout: LockTimeoutOpt = "0s",
    lock_takeover_stale: LockTakeoverOpt = False,
    parallelism: ParallelismOpt = 4,
    as_json: JsonOpt = False,
    markdown: MarkdownOpt = False,
    markdown_parts: MarkdownPartsOpt = None,
    evaluate: Annotated[
        bool,
        typer.Option(
            "-evaluate",
            "--evaluate",
            help="Also show, per planned metadata stage, the exact JSON each item would be created with.",
        ),
    ] = False,
) -> None:
    """Show what apply would do: diff the config against the state, in order."""
    from mactl.config.bulk import paused_gc

    stream = _event_stream(as_json)
    # One pass that builds large, acyclic, long-lived values (config, stages, plan, its
    # text): no cyclic GC until it is done, not only inside each step (see mactl.config.bulk).
    with _diagnosed(stream), paused_gc():
        if as_json and (markdown or evaluate or markdown_parts is not None):
            raise ConfigError(
                "-json streams events: it cannot be combined with --markdown, --markdown-parts or --evaluate",
                hint="for the plan as one JSON document: `mactl plan -out FILE` then `mactl show -json FILE`",
            )
        if out is not None:
            from mactl.plan.planfile import check_plan_path

            check_plan_path(out)  # before any work: a plan that cannot be saved is not made
        options = _options(target, exclude, replace, keep_downstream, refresh, refresh_only, parallelism=parallelism)
        session = _open(config, var, var_file, stream)
        _check_transforms(session)
        with lock_state(session.backend, "plan", lock_timeout, lock_takeover_stale):
            doc = session.backend.read()
            plan = make_plan(session, options, doc)
        _warn_preflight(session, plan, doc, stream)
        if out is not None:
            from mactl.plan.planfile import save_plan

            save_plan(plan, out)
        if stream is not None:
            stream.plan(plan, "plan")
        else:
            _emit(_render(plan, False, markdown))
            _write_parts(plan, markdown_parts)
        if evaluate:
            _emit(_metadata_evaluations(session, plan, doc))
        if out is not None and stream is None:
            typer.echo(f"\nSaved the plan to {out}. Apply exactly this plan with: mactl apply {out}", err=True)
    if detailed_exitcode and plan.has_changes:
        raise typer.Exit(2)


@app.command("show")
def show_command(
    planfile: Annotated[Path, typer.Argument(help="A plan saved with `mactl plan -out FILE`.", dir_okay=False)],
    as_json: ShowJsonOpt = False,
    markdown: MarkdownOpt = False,
    markdown_parts: MarkdownPartsOpt = None,
) -> None:
    """Print a saved plan (text, -json as one document, or --markdown)."""
    from mactl.plan.planfile import load_plan

    if as_json and markdown_parts is not None:
        raise ConfigError("--json and --markdown-parts cannot be used together")
    plan = load_plan(planfile)
    _emit(_render(plan, as_json, markdown))
    _write_parts(plan, markdown_parts)


def _confirm(what: str, auto_approve: bool) -> None:
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise PlanError(
            f"{what} needs a `yes` from a person, and there is no terminal to ask on",
            hint="pass -auto-approve, or save a plan with `mactl plan -out FILE` and apply that",
        )
    typer.echo(f"\nDo you want to {what}?\n  Only 'yes' will be accepted to approve.\n")
    answer = input("  Enter a value: ").strip()
    if answer != "yes":
        typer.echo(f"\n{what.capitalize()} cancelled.")
        raise typer.Exit(1)


def _walk(
    session: Session,
    plan: Plan,
    doc: StateDocument | None,
    parallelism: int,
    operation: str,
    stream: EventStream | None = None,
) -> int:
    from mactl.apply.display import ApplyDisplay
    from mactl.apply.hooks import Hook
    from mactl.apply.recorder import StateRecorder
    from mactl.apply.walker import Walker
    from mactl.state import StateDocument, current_who

    hook: Hook
    if stream is not None:
        from mactl.apply.json_hook import JsonEventsHook

        hook = JsonEventsHook(stream, {c.address: c.type for c in plan.changes})
    else:
        hook = ApplyDisplay()
    recorder = StateRecorder(session.backend, doc or StateDocument(), current_who(), session.secrets)
    walker = Walker(
        plan,
        session.graph,
        recorder,
        parallelism=parallelism,
        hooks=[hook],
        workdir=session.backend.workdir,
        config_dir=session.loaded.base_dir,
        secrets=session.secrets,
        operation=operation,
    )
    result = walker.run()
    if not result.lock_lost:  # fold the journal in now; lock release would, too
        recorder.compact()
    if stream is not None:
        from mactl.cli.json_report import report_walk

        return report_walk(stream, plan, result, operation)
    return _report(result, operation)


def _report_with_errors(with_errors: dict[str, dict[str, Any]]) -> None:
    """Stages that finished with errors (a backfill's dead letters): per index, counts and top reasons."""
    if not with_errors:
        return
    typer.secho("\nFinished with errors (recorded as complete_with_errors):", fg="yellow")
    for address, errors in sorted(with_errors.items()):
        typer.secho(f"  {address}: {errors.get('deadLettered')} document(s) dead-lettered", fg="yellow")
        for index, row in sorted((errors.get("indices") or {}).items()):
            typer.echo(f"    {index}: {row.get('deadLettered')} dead-lettered ({row.get('topReasons')})")
    typer.echo("See `mactl status` and `mactl audit`; resend them with `mactl backfill resend-failed ADDR`.")


def _report(result: WalkResult, operation: str) -> int:
    out = typer.echo
    done = len(result.completed)
    rolled = len(result.rolled_back)
    if result.left_manual:
        out("\nLeft to you (lifecycle.rollback: manual), recorded as left_manual in the state:")
        for address in result.left_manual:
            out(f"  - {address}")
    if result.awaiting_approval:
        out("\nStopped at approval gate(s):")
        for address in result.awaiting_approval:
            out(f"  - {address}: approve with `mactl approve {address}`")
        out("Then run `mactl apply` again to continue from there.")
    _report_with_errors(result.with_errors)
    if result.failed or result.interrupted or result.lock_lost:
        typer.secho(f"\n{operation.capitalize()} stopped.", fg="red", err=True)
        if result.lock_lost:
            typer.secho(f"  {result.lock_lost[:1].upper()}{result.lock_lost[1:]}", fg="red", err=True)
        for address, message in result.failed.items():
            if result.lock_lost and message == result.lock_lost:
                message = "stopped by the lost lock; its end is not recorded in the state"
            typer.secho(f"  {address} FAILED: {message}", fg="red", err=True)
        stopped_at_once = "its rollback is left interrupted" if operation == "destroy" else "marked tainted"
        for address in result.tainted:
            typer.secho(f"  {address}: stopped at once, {stopped_at_once}", fg="red", err=True)
        if operation == "destroy":
            # What a destroy rolled back left the state; what it did not is still there to finish.
            summary = f"{rolled} stage(s) rolled back and removed from the state; the others are kept in it."
            advice = (
                "To finish: fix the cause and run `mactl destroy` again; a stage whose rollback failed or was\n"
                "interrupted is rolled back again from where it stopped. `mactl apply` instead redoes what was undone."
            )
        else:
            summary = f"{done} stage(s) finished and {rolled} rolled back; they are kept in the state."
            advice = (
                "To resume: fix the cause and run `mactl apply` again. Failed or interrupted stages are tainted:\n"
                "the next plan replaces them (or resumes them from their checkpoint), and finished stages are kept."
            )
        out(f"\n{summary}")
        if result.not_started:
            out(f"{len(result.not_started)} stage(s) were not started.")
        out(advice)
        return 130 if result.interrupted and not result.failed and not result.lock_lost else 1
    verb = "Destroy" if operation == "destroy" else "Apply"
    if result.with_errors:
        typer.secho(
            f"\n{verb} complete with errors! Stages: {done} applied ({len(result.with_errors)} with errors), "
            f"{rolled} rolled back.",
            fg="yellow",
        )
    else:
        extra = "".join(
            f", {n} {word}" for n, word in ((len(result.moved), "moved"), (len(result.forgotten), "forgotten")) if n
        )
        typer.secho(f"\n{verb} complete! Stages: {done} applied, {rolled} rolled back{extra}.", fg="green")
    if result.not_started and not result.awaiting_approval:
        out(f"{len(result.not_started)} stage(s) could not start:")
        for address, why in sorted(result.not_started.items())[:20]:
            out(f"  - {address}: {why}")
    return 0


def _plan_confirm_walk(
    session: Session,
    options: PlanOptions,
    operation: str,
    lock_timeout: str,
    auto_approve: bool,
    *,
    stream: EventStream | None = None,
    no_changes: str,
    question: str,
    takeover_stale: bool = False,
) -> int | None:
    """Plan, show the plan, ask for `yes`, and walk it, all under one hold of the state lock.

    `apply` (without a saved plan) and `destroy` differ only in their words, so they share
    this. Returns the walk's exit code, or None when the plan has nothing to do (after
    printing `no_changes`); the caller raises the exit only once the lock is released.
    """
    from mactl.apply.walker import check_available

    with lock_state(session.backend, operation, lock_timeout, takeover_stale):
        doc = session.backend.read()
        plan = make_plan(session, options, doc)
        if stream is not None:
            stream.plan(plan, "plan")
        else:
            _emit(_render(plan, False, False))
        if not plan.has_changes:
            if stream is not None:
                stream.change_summary({}, operation, no_changes.strip())
            else:
                typer.echo(no_changes)
            return None
        check_available(plan)
        if operation == "apply":
            _preflight(session, plan, doc)
        _confirm(question, auto_approve)
        return _walk(session, plan, doc, options.parallelism, operation, stream)


def _apply_saved(
    planfile: Path,
    config: Path | None,
    var: list[str] | None,
    var_file: list[Path] | None,
    parallelism: int,
    lock_timeout: str,
    takeover_stale: bool = False,
    stream: EventStream | None = None,
) -> int:
    from mactl.apply.walker import check_available
    from mactl.plan.builder import config_digest, prepare
    from mactl.plan.planfile import check_fresh, check_sensitive_supplied, load_plan, non_sensitive_variables
    from mactl.plan.render_text import render_text

    plan = load_plan(planfile)
    check_sensitive_supplied(plan, var or [], var_file or [], os.environ)
    with tempfile.TemporaryDirectory(prefix="mactl-plan-vars-") as tmp:
        recorded = Path(tmp) / "plan-variables.json"
        recorded.write_bytes(orjson.dumps(non_sensitive_variables(plan)))
        session = _open(config or Path(plan.config_path), var, [recorded, *(var_file or [])], stream)
    if session.backend.workspace != plan.workspace:
        raise PlanError(
            f"the plan was made for workspace {plan.workspace!r}, but {session.backend.workspace!r} is selected"
        )
    check_available(plan)
    with lock_state(session.backend, "apply", lock_timeout, takeover_stale):
        doc = session.backend.read()
        keep_recorded_names(session, doc)
        digest = config_digest(prepare(session.graph, session.secrets))
        check_fresh(plan, doc, digest, session.backend.describe())
        if stream is not None:
            stream.plan(plan, "plan")
        else:
            _emit(render_text(plan))
        if not plan.has_changes:
            if stream is not None:
                stream.change_summary({}, "apply", "Apply complete! No changes.")
            else:
                typer.echo("\nApply complete! No changes.")
            return 0
        _preflight(session, plan, doc)
        return _walk(session, plan, doc, parallelism, "apply", stream)


@app.command("apply")
def apply_command(
    planfile: Annotated[
        Path | None, typer.Argument(help="A plan saved with `mactl plan -out FILE`.", dir_okay=False)
    ] = None,
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    no_python_transforms: NoPythonTransformsOpt = False,
    target: TargetOpt = None,
    exclude: ExcludeOpt = None,
    replace: ReplaceOpt = None,
    keep_downstream: KeepOpt = None,
    refresh: RefreshOpt = "true",
    refresh_only: RefreshOnlyOpt = False,
    auto_approve: AutoApproveOpt = False,
    parallelism: ParallelismOpt = 4,
    lock_timeout: LockTimeoutOpt = "0s",
    lock_takeover_stale: LockTakeoverOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Apply the plan: run stages through their providers, saving the state as it goes."""
    stream = _event_stream(as_json)
    with _diagnosed(stream):
        if as_json and planfile is None and not auto_approve:
            raise ConfigError(
                "-json on apply needs -auto-approve or a saved plan: there is no one to answer `yes` in a JSON stream",
                hint="mactl apply -json -auto-approve, or mactl plan -out FILE then mactl apply -json FILE",
            )
        if planfile is not None:
            if any([target, exclude, replace, keep_downstream, refresh_only]) or _refresh_flag(refresh) is False:
                raise ConfigError(
                    "planning flags (-target, -exclude, -replace, -refresh…) cannot be used with a saved plan",
                    hint="they were fixed when the plan was made",
                )
            saved = _apply_saved(
                planfile, config, var, var_file, parallelism, lock_timeout, lock_takeover_stale, stream
            )
            raise typer.Exit(saved)
        options = _options(target, exclude, replace, keep_downstream, refresh, refresh_only, parallelism=parallelism)
        session = _open(config, var, var_file, stream)
        code = _plan_confirm_walk(
            session,
            options,
            "apply",
            lock_timeout,
            auto_approve,
            stream=stream,
            no_changes="\nApply complete! No changes.",
            question="perform these actions",
            takeover_stale=lock_takeover_stale,
        )
    if code is not None:
        raise typer.Exit(code)


@app.command("destroy")
def destroy_command(
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    no_python_transforms: NoPythonTransformsOpt = False,
    target: TargetOpt = None,
    auto_approve: AutoApproveOpt = False,
    parallelism: ParallelismOpt = 4,
    lock_timeout: LockTimeoutOpt = "0s",
    lock_takeover_stale: LockTakeoverOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Roll back every stage in the state (or -target ADDR and what depends on it), in reverse order."""
    stream = _event_stream(as_json)
    with _diagnosed(stream):
        if as_json and not auto_approve:
            raise ConfigError(
                "-json on destroy needs -auto-approve: there is no one to answer `yes` in a JSON stream",
                hint="mactl destroy -json -auto-approve",
            )
        options = _options(target, None, None, None, "false", False, destroy=True, parallelism=parallelism)
        session = _open(config, var, var_file, stream)
        code = _plan_confirm_walk(
            session,
            options,
            "destroy",
            lock_timeout,
            auto_approve,
            stream=stream,
            no_changes="\nNothing to destroy.",
            question="destroy these stages",
            takeover_stale=lock_takeover_stale,
        )
    if code is not None:
        raise typer.Exit(code)


def approve_stage(
    session: Session,
    address: str,
    who: str,
    lock_timeout: str = "0s",
    takeover_stale: bool = False,
    *,
    detail: str | None = None,
) -> None:
    """Record `who`'s approval of `address` (waiting at its gate) and its history entry, under the lock.

    `mactl approve` and the web console's approve button both call this, so an approval
    is recorded one way whichever door it came through (`detail` says which, if not the CLI).
    """
    with lock_state(session.backend, "approve", lock_timeout, takeover_stale):
        doc = session.backend.read()
        record = doc.stages.get(address) if doc is not None else None
        if record is None:
            from mactl.config.issues import did_you_mean

            waiting = [a for a, r in (doc.stages.items() if doc else []) if r.status == "awaiting_approval"]
            raise PlanError(
                f"{address} is not waiting for approval: the state has no such stage{did_you_mean(address, waiting)}",
                hint="`mactl apply` stops at a gate and records it; approve it then"
                + (f". Waiting now: {', '.join(waiting)}" if waiting else ""),
            )
        if record.status != "awaiting_approval":
            raise PlanError(f"{address} is not waiting for approval (its status is {record.status})")
        doc.stages[address] = record.model_copy(update={"approved_by": who})
        doc.record(who=who, operation="approve", address=address, result="ok", detail=detail)
        session.backend.write(doc)


@app.command("approve")
def approve_command(
    address: Annotated[str, typer.Argument(help="The stage waiting at an approval gate.", metavar="ADDR")],
    config: ConfigPathOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    no_python_transforms: NoPythonTransformsOpt = False,
    lock_timeout: LockTimeoutOpt = "0s",
    lock_takeover_stale: LockTakeoverOpt = False,
) -> None:
    """Approve a stage waiting at an approval gate (or a manual step); the next apply continues."""
    from mactl.state import current_who

    session = _open(config, var, var_file)
    who = current_who()
    approve_stage(session, address, who, lock_timeout, lock_takeover_stale)
    stage = session.graph.stages.get(address)
    if stage is not None and stage.type == "manual":
        typer.echo(f"Instructions that were to be done:\n  {stage.inputs.get('instructions', '').strip()}")
    typer.secho(f"Approved {address} as {who}. Run `mactl apply` to continue from there.", fg="green")


__all__ = ["make_plan", "approve_stage", "Session", "MactlError"]
