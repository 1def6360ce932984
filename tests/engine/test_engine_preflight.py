"""The preflight (issue 14 item 5) and transform code in the inputs (item 6), through the CLI on stand-ins.

Stand-in providers record every call, so "nothing was undone" is checked on the calls
themselves: after a refused apply no stage was rolled back or applied, and the state file
is byte for byte what it was. The real providers' checks (a cluster that answers, a
snapshot that can be read) are tested on the real clusters in `test_preflight_checks.py`.
"""

from __future__ import annotations

import importlib
import sys
import uuid

import pytest
from engine_helpers import Project, pipeline_config

BACKFILL = "backfill.src.snap1.t1.i0.b0"
METADATA = "metadata.src.snap1.t1.i0"
TRANSFORM_PATH = "source-migration-configurations[0].snapshot-and-migration-configs[0].migrations[0]"


def _module_name() -> str:
    return f"pre_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def forget_modules() -> list[str]:
    """Names of transform modules a test imports in-process; dropped from sys.modules afterwards."""
    names: list[str] = []
    yield names  # type: ignore[misc]
    for name in names:
        sys.modules.pop(name, None)


def test_a_python_transform_that_cannot_import_fails_validate_plan_and_apply_by_config_path(
    project: Project, forget_modules: list[str]
) -> None:
    module = _module_name()
    forget_modules.append(module)
    project.write(pipeline_config(replayer=False))
    assert project.run("apply", "-auto-approve").code == 0
    state = (project.root / ".mactl" / "state.json").read_bytes()
    project.reset_calls()

    project.write(pipeline_config(replayer=False, backfill_extra=f", transforms: '{module}:fix'"))
    expected = (
        # the shorthand `transforms: 'mod:fn'` is named as the user wrote it
        f"{TRANSFORM_PATH}.documentBackfillConfigs[0].transforms: transform {module}:fix: "
        f"cannot import it (No module named '{module}')"
    )
    validated = project.run("validate")
    assert validated.code == 1 and expected in validated.err
    planned = project.run("plan")
    assert planned.code == 1 and expected in planned.err
    applied = project.run("apply", "-auto-approve")
    assert applied.code == 1 and expected in applied.err
    assert "preflight failed: 1 problem(s); nothing was rolled back or changed" in applied.err
    assert [c["op"] for c in project.calls() if c["op"] in ("apply", "rollback")] == []
    assert (project.root / ".mactl" / "state.json").read_bytes() == state

    # a module beside the config (not the working folder) imports: the config's folder is on the path
    conf = project.root / "conf"
    conf.mkdir()
    (conf / f"{module}.py").write_text("def fix(ctx):\n    return ctx\n")
    (conf / "mactl.yaml").write_text(pipeline_config(replayer=False, backfill_extra=f", transforms: '{module}:fix'"))
    importlib.invalidate_caches()
    assert project.run("validate", "-c", str(conf / "mactl.yaml")).code == 0


def test_a_module_that_fails_at_import_is_reported_with_its_error(project: Project, forget_modules: list[str]) -> None:
    module = _module_name()
    forget_modules.append(module)
    (project.root / f"{module}.py").write_text("raise RuntimeError('no config for this host')\n")
    project.write(pipeline_config(replayer=False, metadata_extra=f", transforms: ['{module}:fix']"))
    r = project.run("validate")
    assert r.code == 1
    assert (
        f"{TRANSFORM_PATH}.metadata.transforms[0]: transform {module}:fix: "
        "cannot import it (RuntimeError: no config for this host)"
    ) in r.err
    assert "Traceback" not in r.err


def test_a_saved_plan_is_refused_before_any_rollback(project: Project, forget_modules: list[str]) -> None:
    """The plan was made while the transform imported; by apply time a module it needs is gone."""
    module, dependency = _module_name(), _module_name()
    forget_modules += [module, dependency]
    (project.root / f"{dependency}.py").write_text("VALUE = 1\n")
    (project.root / f"{module}.py").write_text(f"import {dependency}\n\ndef fix(ctx):\n    return ctx\n")
    project.write(pipeline_config(replayer=False))
    assert project.run("apply", "-auto-approve").code == 0
    project.write(pipeline_config(replayer=False, backfill_extra=f", transforms: '{module}:fix'"))
    planned = project.run("plan", "-out", "p.plan")
    assert planned.code == 0, planned.err
    assert f"{BACKFILL} must be REPLACED" in planned.out
    state = (project.root / ".mactl" / "state.json").read_bytes()
    project.reset_calls()

    (project.root / f"{dependency}.py").unlink()  # not the transform's own file: the plan is still fresh
    sys.modules.pop(module, None)
    sys.modules.pop(dependency, None)
    importlib.invalidate_caches()
    r = project.run("apply", "p.plan")
    assert r.code == 1
    assert f"transform {module}:fix: cannot import it (No module named '{dependency}')" in r.err
    assert "preflight failed" in r.err and "Traceback" not in r.err
    assert [c["op"] for c in project.calls() if c["op"] in ("apply", "rollback")] == []
    assert (project.root / ".mactl" / "state.json").read_bytes() == state


def test_provider_preflight_problems_stop_apply_with_one_line_each(project: Project) -> None:
    project.write(pipeline_config(replayer=False, indices=2))
    assert project.run("apply", "-auto-approve").code == 0
    # a first apply creates everything: the backfill's preflight knows its snapshot is taken first
    first = {c["address"]: c["redone"] for c in project.calls("preflight")}
    assert first[BACKFILL] == ["metadata.src.snap1.t1.i0", "snapshot.src.snap1"]
    assert first["snapshot.src.snap1"] == []
    state = (project.root / ".mactl" / "state.json").read_bytes()
    project.reset_calls()
    project.write(pipeline_config(replayer=False, indices=2, backfill_extra=", workers: 3"))
    unreachable = "target 't1' (http://target1:9200) is not reachable: connection refused"
    project.control(
        preflight={
            f"backfill.src.snap1.t1.i{i}.b0": [unreachable, f"snapshot of i{i} cannot be read"] for i in range(2)
        }
    )
    r = project.run("apply", "-auto-approve")
    assert r.code == 1
    problems = [line.strip() for line in r.err.splitlines() if line.startswith("  ") and "hint:" not in line]
    assert problems == [
        f"backfill.src.snap1.t1.i0.b0 (and 1 more stage(s)): {unreachable}",
        "backfill.src.snap1.t1.i0.b0: snapshot of i0 cannot be read",
        "backfill.src.snap1.t1.i1.b0: snapshot of i1 cannot be read",
    ], r.err
    assert "preflight failed: 3 problem(s)" in r.err
    assert [c["op"] for c in project.calls() if c["op"] in ("apply", "rollback")] == []
    assert (project.root / ".mactl" / "state.json").read_bytes() == state
    # the preflight sees which ancestors this run redoes first (here: none, an update in place)
    assert {c["address"]: c["redone"] for c in project.calls("preflight")}[BACKFILL] == []

    # plan warns about the same problems, and destroy (nothing to redo) is not held up by them
    planned = project.run("plan")
    assert (
        planned.code == 0
        and f"Warning: preflight: backfill.src.snap1.t1.i0.b0 (and 1 more stage(s)): {unreachable}" in planned.err
    )
    assert project.run("destroy", "-auto-approve").code == 0


def test_editing_transform_code_shows_in_plan_with_the_reason(project: Project, forget_modules: list[str]) -> None:
    module = _module_name()
    forget_modules.append(module)
    (project.root / "doc.j2").write_text('{"_source": {{ _source | tojson }}}\n')
    (project.root / f"{module}.py").write_text("def fix(ctx):\n    return ctx\n")
    transforms = f", transforms: [doc.j2, '{module}:fix']"
    project.write(pipeline_config(replayer=False, backfill_extra=transforms))
    assert project.run("apply", "-auto-approve").code == 0
    unchanged = project.run("plan", "-detailed-exitcode")
    assert unchanged.code == 0 and "No changes" in unchanged.out

    (project.root / "doc.j2").write_text('{"_source": {{ dict(_source, x=1) | tojson }}}\n')
    r = project.run("plan", "-detailed-exitcode")
    assert r.code == 2
    assert f"{BACKFILL} must be REPLACED" in r.out
    assert "inputs changed; transforms[0] code changed (doc.j2) (forces replacement)" in r.out
    assert "transforms[1]" not in r.out
    assert project.run("apply", "-auto-approve").code == 0

    (project.root / f"{module}.py").write_text("def fix(ctx):\n    return ctx  # edited\n")
    r = project.run("plan", "-detailed-exitcode")
    assert r.code == 2 and f"transforms[1] code changed ({module}.py)" in r.out
    assert project.run("plan", "-detailed-exitcode").code == 2  # still: nothing was applied
    (project.root / f"{module}.py").write_text("def fix(ctx):\n    return ctx\n")
    assert project.run("plan", "-detailed-exitcode").code == 0


def test_code_digest_in_the_config_is_refused(project: Project) -> None:
    project.write(
        pipeline_config(
            replayer=False, backfill_extra=", transforms: [{kind: jinja, file: d.j2, codeDigest: 'sha256:0'}]"
        )
    )
    (project.root / "d.j2").write_text("{}")
    r = project.run("validate")
    assert r.code == 1 and "transforms[0].codeDigest: set by mactl" in r.err


def test_an_apply_that_runs_does_change_the_state_file(project: Project) -> None:
    """The byte comparison above would notice a write: an apply that runs changes the file."""
    project.write(pipeline_config(replayer=False))
    assert project.run("apply", "-auto-approve").code == 0
    before = (project.root / ".mactl" / "state.json").read_bytes()
    project.write(pipeline_config(replayer=False, backfill_extra=", workers: 3"))
    assert project.run("apply", "-auto-approve").code == 0
    assert (project.root / ".mactl" / "state.json").read_bytes() != before
