"""`-json` on plan, apply and destroy: UI events, one JSON object per line (docs/json-ui.md)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from engine_helpers import Project, pipeline_config
from mactl.providers.base import Progress

from mactl.apply.json_hook import JsonEventsHook
from mactl.plan.events import EVENT_TYPES, EventStream

SECRET = "s3cr3t-Json-Stream-do-not-leak"
ENVELOPE = {"@level", "@message", "@module", "@timestamp", "type"}


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def _addr(event: dict[str, Any]) -> str:
    body = event.get("change") or event.get("hook") or {}
    return str(body["stage"]["addr"])


def test_plan_streams_version_each_change_in_plan_order_and_the_summary(project: Project) -> None:
    project.write(pipeline_config(targets=2, indices=1))
    r, events = project.events("plan", "-json")
    assert r.code == 0, r.err
    assert all(ENVELOPE <= set(e) and e["@module"] == "mactl.ui" for e in events)
    assert all(e["@timestamp"].endswith("Z") for e in events)
    assert events[0]["type"] == "version" and events[0]["ui"] == "1.0"
    assert _types(events)[1:-1] == ["planned_change"] * (len(events) - 2)
    document = json.loads(project.plan_document().out)
    assert [_addr(e) for e in events[1:-1]] == [c["address"] for c in document["resource_changes"]]
    assert {e["change"]["action"] for e in events[1:-1]} == {"create"}
    summary, count = events[-1], document["summary"]["create"]
    assert summary["type"] == "change_summary" and summary["@message"].startswith(f"Plan: {count} to create")
    assert summary["changes"]["operation"] == "plan" and count == len(events) - 2
    assert (summary["changes"]["create"], summary["changes"]["add"], summary["changes"]["remove"]) == (count, count, 0)


def test_plan_json_keeps_the_exit_codes(project: Project) -> None:
    project.write(pipeline_config(indices=1))
    r, events = project.events("plan", "-json", "-detailed-exitcode")
    assert r.code == 2 and events[-1]["type"] == "change_summary"
    project.write("targets: [\n")
    r, events = project.events("plan", "-json")
    assert r.code == 1 and "Traceback" not in r.err
    assert _types(events) == ["version", "diagnostic"]
    assert events[1]["@level"] == "error" and events[1]["diagnostic"]["severity"] == "error"
    assert "mactl.yaml" in events[1]["diagnostic"]["summary"]
    r = project.run("plan", "-json", "--markdown")
    assert r.code == 1 and "cannot be combined" in r.err


def test_apply_streams_each_stage_with_progress_rate_and_eta_then_the_summary(project: Project) -> None:
    project.write(pipeline_config(indices=1))
    backfill = "backfill.src.snap1.t1.i0.b0"
    project.control(sleep={backfill: 2.5})
    r, events = project.events("apply", "-json", "-auto-approve")
    assert r.code == 0, r.err
    types = _types(events)
    assert types[0] == "version" and types[-1] == "change_summary"
    planned = [_addr(e) for e in events if e["type"] == "planned_change"]
    started = [_addr(e) for e in events if e["type"] == "apply_start"]
    completed = [_addr(e) for e in events if e["type"] == "apply_complete"]
    assert sorted(started) == sorted(completed) == sorted(planned)
    for address in planned:  # each stage: planned, then started, then complete
        order = [i for i, e in enumerate(events) if e["type"] != "version" and _addr_or_none(e) == address]
        assert _types([events[i] for i in order]) in (
            ["planned_change", "apply_start", "apply_complete"],
            ["planned_change", "apply_start", *["apply_progress"] * (len(order) - 3), "apply_complete"],
        )
    progress = [e["hook"] for e in events if e["type"] == "apply_progress"]
    assert progress and all(p["stage"]["addr"] == backfill and p["unit"] == "docs" for p in progress)
    assert progress[-1]["done"] == progress[-1]["total"] and progress[-1]["eta_seconds"] == 0.0
    assert any(p["per_second"] and p["per_second"] > 0 and p["eta_seconds"] is not None for p in progress)
    assert len(progress) <= 5  # at most one a second (and the last), not one per report (50)
    final = events[-1]
    assert final["changes"]["operation"] == "apply" and final["changes"]["ok"] is True
    assert final["changes"]["create"] == len(planned)
    assert final["@message"].startswith("Apply complete!")


def _addr_or_none(event: dict[str, Any]) -> str | None:
    try:
        return _addr(event)
    except KeyError:
        return None


def test_a_failing_apply_emits_apply_errored_and_a_diagnostic_and_exits_non_zero(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.write(
        pipeline_config(
            indices=1,
            variables="  target_password: {type: string, sensitive: true}\n",
            target_auth="{type: basic, username: admin, password: '{{ var.target_password }}'}",
        )
    )
    monkeypatch.setenv("MACTL_VAR_target_password", SECRET)
    failing = "metadata.src.snap1.t1.i0"
    project.control(fail={failing: f"the target refused password {SECRET}"}, log_secret=f"password={SECRET}")
    r, events = project.events("apply", "-json", "-auto-approve")
    assert r.code == 1
    assert SECRET not in r.out and SECRET not in r.err
    errored = [i for i, e in enumerate(events) if e["type"] == "apply_errored"]
    assert [_addr(events[i]) for i in errored] == [failing]
    diagnostic = events[errored[0] + 1]
    assert diagnostic["type"] == "diagnostic" and diagnostic["diagnostic"]["severity"] == "error"
    assert diagnostic["diagnostic"]["address"] == failing
    assert diagnostic["diagnostic"]["summary"] == "the target refused password (sensitive)"
    assert events[errored[0]]["@level"] == "error"
    final = events[-1]
    assert final["type"] == "change_summary" and final["changes"]["ok"] is False and final["@level"] == "error"
    assert "backfill.src.snap1.t1.i0.b0" not in [_addr(e) for e in events if e["type"] == "apply_start"]


def test_apply_and_destroy_json_need_auto_approve(project: Project) -> None:
    project.write(pipeline_config(indices=1))
    for command in ("apply", "destroy"):
        r, events = project.events(command, "-json")
        assert r.code == 1 and "-auto-approve" in r.err
        assert _types(events) == ["version", "diagnostic"]
    assert not project.calls("apply")


def test_destroy_streams_the_rollbacks_and_a_destroy_summary(project: Project) -> None:
    project.write(pipeline_config(indices=1))
    assert project.run("apply", "-auto-approve").code == 0
    r, events = project.events("destroy", "-json", "-auto-approve")
    assert r.code == 0, r.err
    planned = [e["change"] for e in events if e["type"] == "planned_change"]
    assert planned and {c["action"] for c in planned} == {"rollback"}
    started = [e["hook"] for e in events if e["type"] == "apply_start"]
    assert {h["action"] for h in started} == {"rollback"}
    assert [h["stage"]["addr"] for h in started] == [c["stage"]["addr"] for c in planned]
    summary = [e for e in events if e["type"] == "change_summary"]
    assert [s["changes"]["operation"] for s in summary] == ["plan", "destroy"]
    assert summary[-1]["changes"]["rollback"] == summary[-1]["changes"]["remove"] == len(planned)
    assert project.state()["stages"] == {}
    r, events = project.events("destroy", "-json", "-auto-approve")
    assert r.code == 0 and events[-1]["@message"] == "Nothing to destroy."


def test_a_saved_plan_applies_with_json(project: Project) -> None:
    project.write(pipeline_config(indices=1))
    assert project.run("plan", "-out", "p.plan").code == 0
    r, events = project.events("apply", "-json", "p.plan")
    assert r.code == 0, r.err
    assert events[-1]["changes"]["operation"] == "apply" and events[-1]["changes"]["ok"] is True


class _Flushes(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.at_flush: list[str] = []

    def flush(self) -> None:
        self.at_flush.append(self.getvalue())


def test_every_event_is_one_line_flushed_as_written_with_secrets_masked() -> None:
    out = _Flushes()
    stream = EventStream(out, secrets=[SECRET])
    stream.version()
    stream.diagnostic("error", f"cannot reach http://admin:{SECRET}@target:9200", "multi\nline detail")
    stream.emit("log", f"token {SECRET}", extra={"nested": [SECRET]})
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and out.at_flush == ["\n".join(lines[: i + 1]) + "\n" for i in range(3)]
    events = [json.loads(line) for line in lines]
    assert SECRET not in out.getvalue()
    assert events[2]["extra"] == {"nested": ["(sensitive)"]}
    assert set(_types(events)) <= set(EVENT_TYPES)


def test_progress_is_throttled_and_the_last_report_said_once() -> None:
    out = io.StringIO()
    hook = JsonEventsHook(EventStream(out), {"backfill.a": "backfill"})
    hook.stage_started("backfill.a", "create")
    for done in (0, 10, 20, 30, 30):  # within one second: the first, then only the last (once)
        hook.stage_progress("backfill.a", Progress(done=done, total=30, unit="docs"))
    hook.stage_finished("backfill.a", "ok")
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert _types(events) == ["apply_start", "apply_progress", "apply_progress", "apply_complete"]
    assert [e["hook"]["done"] for e in events[1:3]] == [0, 30]
    assert events[2]["hook"]["eta_seconds"] == 0.0 and events[2]["hook"]["per_second"] > 0
