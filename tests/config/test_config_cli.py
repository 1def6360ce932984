"""`mactl validate [--json]`: success output, every error at once, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mactl.cli import app
from mactl.cli.app import run_guarded

SEED = Path(__file__).parents[1] / "data" / "seed"

THREE_PROBLEMS = """\
variables:
  speed: {type: number}
targets:
  - endpoint: http://t1:9200
    auth: {type: basic, usernme: admin}
source-migration-configurations:
  - source: {endpoint: http://s1:9200}
    snapshot-and-migration-configs:
      - indices: {names: a, mode: include}
        metadata: {}
      - indices: {names: b, mode: inclde}
        metadata: {}
    replayer-config: {maxSpeedupFactor: "{{ var.speed }}"}
"""


def test_validate_success_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_guarded(app, ["validate", "-c", str(SEED / "sample-single.json")]) == 0
    out = capsys.readouterr()
    assert "is valid: 6 stages (1 backfill, 1 capture, 1 metadata, 1 replay, 1 snapshot, 1 validate)" in out.out
    assert "Warning: static-migration-configs[0].indices_toIgnore is a legacy spelling" in out.err


def test_validate_success_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_guarded(app, ["validate", "--json", "--config", str(SEED / "sample-single-target.json")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True and report["errors"] == [] and report["stage_count"] == 6
    assert report["stages_by_type"] == {
        t: 1 for t in ("backfill", "capture", "metadata", "replay", "snapshot", "validate")
    }
    assert any("indices_toIgnore" in w for w in report["warnings"])


def test_validate_reports_every_error_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mactl.yaml"
    path.write_text(THREE_PROBLEMS)
    assert run_guarded(app, ["validate", "--json", "-c", str(path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert [(e["path"], e["message"]) for e in report["errors"]] == [
        (
            "variables.speed",
            "variable 'speed' is required but has no value: give it a default, or set it with "
            "-var speed=…, a -var-file, or MACTL_VAR_speed",
        ),
        ("targets[0].auth.usernme", "unknown key 'usernme' (did you mean 'username'?)"),
        (
            "source-migration-configurations[0].snapshot-and-migration-configs[1].indices.mode",
            "input should be 'include' or 'exclude' (got 'inclde')",
        ),
    ]
    assert run_guarded(app, ["validate", "-c", str(path), "-var", "speed=2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {path}: 2 errors:\n")
    assert "Traceback" not in err


def test_terraform_and_double_dash_spellings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mactl.yaml"
    path.write_text(THREE_PROBLEMS.replace("usernme", "username").replace("inclde", "exclude"))
    var_file = tmp_path / "v.yaml"
    var_file.write_text("speed: 3\n")
    assert run_guarded(app, ["validate", "-c", str(path), "-var", "speed=2"]) == 0
    assert run_guarded(app, ["validate", "-c", str(path), "--var", "speed=2"]) == 0
    assert run_guarded(app, ["validate", "-c", str(path), "-var-file", str(var_file)]) == 0
    assert run_guarded(app, ["validate", "-c", str(path), "--var-file", str(var_file)]) == 0
    capsys.readouterr()


def test_no_config_file_in_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_guarded(app, ["validate"]) == 1
    err = capsys.readouterr().err
    assert "neither mactl.yaml nor mactl.json" in err and "hint: pass one with -c/--config FILE" in err
