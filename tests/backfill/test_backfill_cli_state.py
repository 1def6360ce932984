"""`mactl worker` and `backfill resend-failed` find the stage's state next to the config,
as `plan` and `apply` do, whatever folder they are started from."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mactl.state import StageRecord, StateDocument, open_backend

from mactl.cli.backfill_cmd import _load_backfill_stage
from mactl.cli.config_cmd import load_from_options
from mactl.graph.expand import expand

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_backfill_stage_state_is_read_next_to_the_config_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    config = project / "quickstart.yaml"
    shutil.copy(EXAMPLES / "quickstart.yaml", config)
    monkeypatch.setenv("MACTL_VAR_repo_dir", str(tmp_path / "repo"))
    loaded = load_from_options(config, None, None)
    address = next(a for a, s in expand(loaded.config).stages.items() if s.type == "backfill")
    backend = open_backend(loaded.config.state, base_dir=project)  # where `apply` keeps it
    doc = StateDocument()
    doc.stages[address] = StageRecord(type="backfill", checkpoint={"workdir": str(tmp_path / "w"), "deadLetter": "dl"})
    backend.write(doc)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    found = _load_backfill_stage(address, config, None, None, None)
    assert found.record is not None and found.checkpoint == {"workdir": str(tmp_path / "w"), "deadLetter": "dl"}
    assert not (elsewhere / ".mactl").exists()
