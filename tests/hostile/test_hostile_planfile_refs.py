"""A saved plan holds no secret: it references sensitive variables and re-resolves them at apply.

A sensitive variable whose value is the config's own default is re-read from the config;
one given by -var, a var file or the environment must be given again. Neither value is
in the plan file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mactl.cli import app
from mactl.cli.app import run_guarded
from mactl.errors import PlanError
from mactl.plan.planfile import check_sensitive_supplied, load_plan

DEFAULT_PW = "Default-Pw-2718"
ENV_TOKEN = "Env-Token-1414"


def _plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    config = {
        "variables": {
            "pw": {"type": "string", "default": DEFAULT_PW},  # not marked: used in auth, so sensitive
            "token": {"type": "string", "sensitive": True},
        },
        "targets": [
            {
                "endpoint": "http://127.0.0.1:29200",
                "auth": {"type": "basic", "username": "{{ var.token }}", "password": "{{ var.pw }}"},
            }
        ],
        "source": {"endpoint": "http://127.0.0.1:19200", "snapshotRepository": {"type": "fs", "location": "/r"}},
        "static-migration-configs": [{"indices": {"names": "a"}}],
    }
    (tmp_path / "c.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MACTL_VAR_token", ENV_TOKEN)
    assert run_guarded(app, ["plan", "-refresh=false", "-c", "c.json", "-out", "p.bin"]) == 0
    capsys.readouterr()
    return tmp_path / "p.bin"


def test_the_plan_file_references_sensitive_variables_and_holds_neither(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _plan(tmp_path, monkeypatch, capsys)
    blob = path.read_bytes()
    assert DEFAULT_PW.encode() not in blob and ENV_TOKEN.encode() not in blob
    plan = load_plan(path)
    assert plan.sensitive_variables == ["pw", "token"]
    assert plan.sensitive_from_config == ["pw"]  # re-read from the config at apply
    check_sensitive_supplied(plan, [], [], {"MACTL_VAR_token": "again"})
    with pytest.raises(PlanError, match="token"):
        check_sensitive_supplied(plan, [], [], {})
