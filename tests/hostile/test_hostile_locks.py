"""A lock file written by hand or another tool is read without a traceback (issue 19).

A naive timestamp (no UTC offset) is taken as UTC, as mactl writes them; a lock whose
fields have the wrong types is shown as an unreadable lock that can be force-unlocked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mactl.cli import app
from mactl.cli.app import run_guarded

CONFIG = {
    "targets": [{"endpoint": "http://127.0.0.1:29200"}],
    "source": {"endpoint": "http://127.0.0.1:19200", "snapshotRepository": {"type": "fs", "location": "/r"}},
    "static-migration-configs": [{"indices": {"names": "a"}}],
}


@pytest.mark.parametrize(
    ("lock", "shown"),
    [
        (
            {
                "id": "abc",
                "who": "ci@runner",
                "pid": 4242,
                "operation": "apply",
                "created_at": "2020-01-01T00:00:00",
                "heartbeat_at": "2020-01-01T00:00:00",
            },
            "ci@runner",
        ),
        (
            {"id": "abc", "who": ["x"], "pid": "one", "operation": 5, "created_at": 1, "heartbeat_at": None},
            "unreadable",
        ),
    ],
    ids=["naive-timestamps", "wrong-types"],
)
def test_a_hand_written_lock_is_shown_and_blocks(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    lock: dict[str, object],
    shown: str,
) -> None:
    (tmp_path / "c.json").write_text(json.dumps(CONFIG))
    (tmp_path / ".mactl").mkdir()
    (tmp_path / ".mactl" / "state.json.lock").write_text(json.dumps(lock))
    monkeypatch.chdir(tmp_path)
    assert run_guarded(app, ["lock", "status", "-c", "c.json"]) == 0
    status = capsys.readouterr()
    assert shown in status.out and "Traceback" not in status.out + status.err
    assert run_guarded(app, ["plan", "-refresh=false", "-c", "c.json"]) != 0
    plan = capsys.readouterr()
    assert plan.err.startswith("Error: ") and "lock" in plan.err and "Traceback" not in plan.err
