"""The state commands as a user runs them: `mactl state …`, `history`, `lock status`,
`force-unlock`, `workspace …`. Run in-process in an empty folder (default local state)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mactl.state import LocalStateConfig, StageRecord, StateDocument, open_backend
from state_helpers import start_worker

from mactl.cli import app
from mactl.cli.app import run_guarded


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def mactl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run_guarded(app, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _seed(project: Path) -> StateDocument:
    backend = open_backend(None, base_dir=project)
    doc = StateDocument()
    for name in ("snapshot.source.snap1", "metadata.source.snap1.target_1.m0"):
        doc.stages[name] = StageRecord(
            type=name.split(".")[0], status="complete", inputs={"auth": {"password": "(sensitive)"}}
        )
        doc.record(who="ann@h", operation="apply", address=name, result="ok")
    return backend.write(doc)


def test_commands_work_in_an_empty_folder(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mactl(capsys, "state", "list")[0] == 0
    code, out, _ = mactl(capsys, "state", "list", "--json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = mactl(capsys, "lock", "status", "--json")
    assert json.loads(out) == {"locked": False, "lock": None, "state": ".mactl/state.json", "workspace": "default"}
    code, out, _ = mactl(capsys, "history", "--json")
    assert code == 0 and json.loads(out) == []
    code, out, err = mactl(capsys, "state", "pull")
    assert code == 0 and out == "" and "No state yet" in err


def test_list_show_rm_and_history(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(project)
    code, out, _ = mactl(capsys, "state", "list")
    assert code == 0 and "snapshot.source.snap1" in out and "complete" in out
    code, out, _ = mactl(capsys, "state", "show", "snapshot.source.snap1")
    shown = json.loads(out)
    assert shown["address"] == "snapshot.source.snap1" and shown["inputs"]["auth"]["password"] == "(sensitive)"
    code, _, err = mactl(capsys, "state", "show", "snapshot.nope")
    assert code == 1 and "no stage 'snapshot.nope'" in err and "Traceback" not in err
    code, out, _ = mactl(capsys, "state", "rm", "snapshot.source.snap1")
    assert code == 0 and "Removed snapshot.source.snap1" in out
    code, out, _ = mactl(capsys, "state", "list", "--json")
    assert [s["address"] for s in json.loads(out)] == ["metadata.source.snap1.target_1.m0"]
    code, out, _ = mactl(capsys, "history", "--json")
    entries = json.loads(out)
    assert [e["operation"] for e in entries] == ["apply", "apply", "state rm"]
    assert entries[-1]["address"] == "snapshot.source.snap1" and entries[-1]["serial"] == 2
    code, out, _ = mactl(capsys, "history")
    assert code == 0 and "state rm" in out and "snapshot.source.snap1" in out


def test_push_refuses_another_lineage_or_an_older_serial(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(project)
    code, pulled, _ = mactl(capsys, "state", "pull")
    (project / "pulled.json").write_text(pulled)
    backend = open_backend(None, base_dir=project)
    current = backend.read()
    assert current is not None
    current.record(who="bob@h", operation="apply", result="ok")
    backend.write(current)  # the stored state moves on: the pulled copy is now older

    code, _, err = mactl(capsys, "state", "push", "pulled.json")
    assert code == 1 and "older than the stored serial 2" in err
    other = StateDocument(serial=7)
    (project / "other.json").write_bytes(other.model_dump_json().encode())
    code, _, err = mactl(capsys, "state", "push", "other.json")
    assert code == 1 and "lineage" in err and "--force" in err
    assert backend.read().serial == 2  # type: ignore[union-attr]  # nothing was written

    code, out, _ = mactl(capsys, "state", "push", "other.json", "--force")
    assert code == 0 and "now serial 3" in out
    stored = backend.read()
    assert stored is not None and stored.lineage == other.lineage and stored.serial == 3  # never backwards
    assert stored.history[-1].operation == "state push" and "--force" in (stored.history[-1].detail or "")
    assert any(backend.read_version(v).lineage == current.lineage for v in backend.versions())  # old one kept


def test_push_of_a_newer_copy_and_of_garbage(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(project)
    code, pulled, _ = mactl(capsys, "state", "pull")
    doc = json.loads(pulled)
    doc["serial"] += 5
    doc["stages"]["validate.source.target_1"] = {"type": "validate", "status": "complete"}
    (project / "edited.json").write_text(json.dumps(doc))
    code, out, _ = mactl(capsys, "state", "push", "edited.json")
    assert code == 0
    assert "validate.source.target_1" in open_backend(None, base_dir=project).read().stages  # type: ignore[union-attr]
    (project / "bad.json").write_text('{"serial": 3, ')
    code, _, err = mactl(capsys, "state", "push", "bad.json")
    assert code == 1 and "bad.json" in err and "corrupt" in err
    code, _, err = mactl(capsys, "state", "push", "missing.json")
    assert code == 1 and "missing.json does not exist" in err


def test_lock_status_and_force_unlock(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(project)
    config = LocalStateConfig(path=str(project / ".mactl")).model_dump_json()
    go = project / "go"
    go.touch()  # no need to wait for anyone
    holder = start_worker("hold-lock", config, str(go), "20", "0", cwd=project)
    assert json.loads(holder.stdout.readline()) == {"ready": True}  # type: ignore[union-attr]
    holder_line = json.loads(holder.stdout.readline())  # type: ignore[union-attr]
    try:
        code, out, _ = mactl(capsys, "lock", "status", "--json")
        status = json.loads(out)
        assert status["locked"] and status["lock"]["id"] == holder_line["id"]
        assert status["lock"]["pid"] == holder_line["pid"] and status["lock"]["operation"] == "apply"
        assert status["lock"]["age_s"] >= 0 and status["lock"]["heartbeat_age_s"] >= 0
        code, out, _ = mactl(capsys, "lock", "status")
        assert f"ID:             {holder_line['id']}" in out and "last heartbeat" in out

        code, _, err = mactl(capsys, "state", "rm", "snapshot.source.snap1", "-lock-timeout", "1s")
        assert code == 1 and f"pid {holder_line['pid']}" in err and "after waiting 1s" in err
        assert "Waiting for the state lock" in err

        code, _, err = mactl(capsys, "force-unlock", "not-the-id", "--yes")
        assert code == 1 and "not not-the-id" in err
        code, out, _ = mactl(capsys, "force-unlock", holder_line["id"], "--yes")
        assert code == 0 and f"Removed lock {holder_line['id']}" in out
    finally:
        holder.kill()
        holder.communicate()
    code, out, _ = mactl(capsys, "lock", "status", "--json")
    assert json.loads(out)["locked"] is False
    code, out, _ = mactl(capsys, "history", "--json")
    assert json.loads(out)[-1]["operation"] == "force-unlock"


def test_workspace_commands(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mactl(capsys, "workspace", "show")[1] == "default\n"
    code, out, _ = mactl(capsys, "workspace", "new", "prod")
    assert code == 0 and "Created workspace 'prod'" in out
    assert mactl(capsys, "workspace", "show")[1] == "prod\n"
    code, out, _ = mactl(capsys, "workspace", "list")
    assert out == "  default\n* prod\n"
    assert json.loads(mactl(capsys, "workspace", "list", "--json")[1]) == {
        "selected": "prod",
        "workspaces": ["default", "prod"],
    }
    code, out, _ = mactl(capsys, "history", "--json")
    assert json.loads(out)[0]["operation"] == "workspace new"  # commands act on the selected workspace
    code, _, err = mactl(capsys, "workspace", "delete", "prod")
    assert code == 1 and "is selected" in err
    code, _, err = mactl(capsys, "workspace", "select", "nope")
    assert code == 1 and "does not exist" in err
    assert mactl(capsys, "workspace", "select", "default")[0] == 0
    assert mactl(capsys, "workspace", "delete", "prod")[0] == 0
    assert mactl(capsys, "workspace", "list")[1] == "* default\n"
    code, _, err = mactl(capsys, "workspace", "new", "../escape")
    assert code == 1 and "workspace name" in err


def test_state_block_from_the_config_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sub = project / "sub"
    sub.mkdir()
    (sub / "mactl.yaml").write_text(
        "state: {backend: local, path: elsewhere}\n"
        "target: {endpoint: 'http://127.0.0.1:29200'}\n"
        "source: {name: source, endpoint: 'http://127.0.0.1:19200', snapshotRepository: {location: /tmp/x}}\n"
    )
    # a relative state path starts at the config's folder, as for plan/apply
    backend = open_backend(LocalStateConfig(path="elsewhere"), base_dir=sub)
    backend.write(StateDocument(stages={"capture.source": StageRecord(type="capture")}))
    code, out, _ = mactl(capsys, "state", "list", "--json", "-c", "sub/mactl.yaml")
    assert code == 0 and [s["address"] for s in json.loads(out)] == ["capture.source"]
    assert (sub / "elsewhere" / "state.json").is_file()
    code, out, _ = mactl(capsys, "workspace", "new", "prod", "-c", "sub/mactl.yaml")
    assert code == 0 and (sub / "elsewhere" / "environment").read_text() == "prod\n"
    code, _, err = mactl(capsys, "state", "list", "-c", "nope.yaml")
    assert code == 1 and "nope.yaml" in err
