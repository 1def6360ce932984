"""The apply's parts on their own: the generic scheduler, the plan's walk decisions, the plan
file, the state's Workdir names, and the config's folder reaching the providers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from engine_helpers import Project, pipeline_config
from mactl.state.document import StageRecord
from mactl.state.workdir import StageFiles, Workdir

from mactl.apply.scheduler import Done, Held, Run, Scheduler, Step
from mactl.plan.builder import walk_decisions
from mactl.plan.definition import Change, Plan

# -- the scheduler --------------------------------------------------------------------


def _chain_waits() -> dict[str, set[str]]:
    # a → b → d, a → c → d, e alone
    return {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"}, "e": set()}


def test_scheduler_runs_each_vertex_after_what_it_waits_for_at_most_n_at_a_time() -> None:
    lock = threading.Lock()
    running, peak, ended = 0, 0, []

    def work(v: str) -> str | None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
            ended.append(v)
        return None

    outcome = Scheduler[str](2, poll_s=0.01).walk(list("abcde"), _chain_waits(), lambda v: Run(lambda: work(v)))
    assert sorted(outcome.succeeded) == list("abcde") and not outcome.failed and not outcome.stopped
    assert peak == 2
    assert ended.index("a") < ended.index("b") and ended.index("a") < ended.index("c")
    assert ended.index("d") > max(ended.index("b"), ended.index("c"))


def test_scheduler_failure_blocks_dependents_and_starts_nothing_new() -> None:
    def visit(v: str) -> Step:
        return Run(lambda: "boom" if v == "b" else None)

    outcome = Scheduler[str](1, poll_s=0.01).walk(list("abcde"), _chain_waits(), visit)
    assert outcome.failed == {"b": "boom"}
    assert outcome.blocked == {"d": "b failed"}
    assert outcome.stopped and "d" in outcome.unvisited
    assert set(outcome.unvisited) | set(outcome.succeeded) | set(outcome.failed) == set("abcde")


def test_scheduler_held_and_done_vertices() -> None:
    def visit(v: str) -> Step:
        if v == "a":
            return Held("waits for a")
        return Done()

    outcome = Scheduler[str](4).walk(list("abcde"), _chain_waits(), visit)
    assert outcome.held == ["a"] and sorted(outcome.succeeded) == ["e"]
    assert outcome.blocked == {"b": "waits for a", "c": "waits for a", "d": "waits for a"}
    assert not outcome.stopped


def test_a_cancelled_scheduler_starts_nothing_more() -> None:
    scheduler = Scheduler[str](1, poll_s=0.01)

    def visit(v: str) -> Step:
        scheduler.cancel()
        return Run(lambda: None)

    outcome = scheduler.walk(list("abcde"), _chain_waits(), visit)
    assert outcome.succeeded == ["a"] and outcome.stopped
    assert scheduler.walk(["x"], {}, visit).unvisited == ["x"]  # and stays stopped


def test_a_work_that_raises_is_a_failure_not_a_hang() -> None:
    def visit(v: str) -> Step:
        def work() -> str | None:
            raise OSError("disk full")

        return Run(work)

    outcome = Scheduler[str](1, poll_s=0.01).walk(["a"], {}, visit)
    assert outcome.failed == {"a": "OSError: disk full"}


# -- the plan's decisions -------------------------------------------------------------


def _change(action: str, **kw: object) -> Change:
    return Change(address="metadata.x", type="metadata", action=action, reason="r", **kw)  # type: ignore[arg-type]


def test_walk_decisions_gate_resume_and_forget() -> None:
    waiting = StageRecord(type="metadata", status="awaiting_approval")
    approved = waiting.model_copy(update={"approved_by": "me"})
    ran = StageRecord(type="metadata", status="awaiting_approval", inputs_digest="d", checkpoint={"done": 3})

    assert walk_decisions(_change("create", approval_required=True), None).gated
    assert walk_decisions(_change("create", approval_required=True), waiting).gated
    assert not walk_decisions(_change("create", approval_required=True), approved).gated
    assert not walk_decisions(_change("rollback", approval_required=True), waiting).gated

    assert walk_decisions(_change("update"), ran).from_checkpoint
    assert walk_decisions(_change("update", resume=True), ran.model_copy(update={"status": "failed"})).from_checkpoint
    assert not walk_decisions(_change("update"), ran.model_copy(update={"status": "failed"})).from_checkpoint
    assert not walk_decisions(_change("replace"), ran).from_checkpoint  # rolled back first: nothing to resume

    assert walk_decisions(_change("rollback"), waiting).forget_only
    assert not walk_decisions(_change("rollback"), ran).forget_only


@pytest.mark.parametrize(
    "fields",
    [
        {"action": "rollback", "approval_required": True, "gated": True},
        {"action": "create", "gated": True},
        {"action": "replace", "from_checkpoint": True},
        {"action": "update", "forget_only": True},
    ],
)
def test_change_refuses_decisions_that_break_its_invariants(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Change(address="a.b", type="manual", reason="r", **fields)  # type: ignore[arg-type]


def test_a_plan_file_keeps_the_decisions_and_an_older_one_is_refused(tmp_path: Path) -> None:
    import orjson

    from mactl.errors import PlanError
    from mactl.plan.planfile import load_plan, save_plan

    changes = [
        _change("create", approval_required=True, gated=True),
        Change(address="a.b", type="manual", action="rollback", reason="r", forget_only=True),
        Change(address="c.d", type="manual", action="update", reason="r", resume=True, from_checkpoint=True),
    ]
    plan = Plan(changes=changes, lineage="l", serial=3, config_path="/x.yaml", config_digest="d")
    save_plan(plan, tmp_path / "p.plan")
    assert load_plan(tmp_path / "p.plan") == plan

    raw = orjson.loads((tmp_path / "p.plan").read_bytes())
    raw["file_version"] = 1
    (tmp_path / "old.plan").write_bytes(orjson.dumps(raw))
    with pytest.raises(PlanError, match="older mactl"):
        load_plan(tmp_path / "old.plan")


# -- the working directory ------------------------------------------------------------


def test_workdir_names_every_file_once(tmp_path: Path) -> None:
    work = Workdir(tmp_path / "work" / "default")
    files = work.stage("replay.src.t1")
    assert files.dir == work.root / "replay.src.t1" == work.stage_dir("replay.src.t1")
    assert files.progress.name == "progress.ndjson" and files.log.name == "stage.log"
    assert Workdir.of_stage(files.dir) == work
    assert work.capture_registry("src") == work.root / "capture-registry" / "src.json"


def test_switchover_reads_the_replayer_status_where_the_replay_stage_recorded_it(tmp_path: Path) -> None:
    from mactl.providers.switchover import _status

    recorded = tmp_path / "elsewhere" / "status.json"
    recorded.parent.mkdir()
    recorded.write_text('{"inSync": true}')
    folder = tmp_path / "replay.src.t1"
    folder.mkdir()
    assert _status({"pidFile": str(folder / "replayer.pid"), "statusFile": str(recorded)}) == {"inSync": True}
    # a registry written before the status file was recorded: the file in the stage's folder
    StageFiles(folder).replayer_status.write_text('{"inSync": false}')
    assert _status({"pidFile": str(folder / "replayer.pid")}) == {"inSync": False}


# -- the config's folder --------------------------------------------------------------


def test_apply_hands_providers_the_config_folder_not_the_working_directory(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine_standins

    seen: dict[str, Path] = {}
    standin = engine_standins.STANDINS["metadata"]
    original = standin.apply

    def apply(self: object, ctx: engine_standins.StageContext) -> dict[str, object]:
        seen[ctx.address] = ctx.config_dir
        return original(self, ctx)  # type: ignore[arg-type]

    monkeypatch.setattr(standin, "apply", apply)
    sub = project.root / "conf"
    sub.mkdir()
    (sub / "mactl.yaml").write_text(pipeline_config(indices=1, replayer=False))
    r = project.run("apply", "-auto-approve", "-refresh=false", "-c", "conf/mactl.yaml")
    assert r.code == 0, r.err
    assert seen == {"metadata.src.snap1.t1.i0": sub.absolute()}
