"""Files that can hold documents or secrets are mode 600, their folders 700 (issue 19).

State and its backups, plan files, dead letters and capture logs are written for the
owner only, whatever the umask; the local folders mactl makes for them are too.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from mactl.state.document import StateDocument
from mactl.state.local import LocalBackend

from mactl.backfill.deadletter import FileSink, Location
from mactl.capture import log as capture_log
from mactl.cli import app
from mactl.cli.app import run_guarded


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _open_umask() -> object:
    import os

    old = os.umask(0o022)
    yield None
    os.umask(old)


def test_state_and_backups_are_private(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / ".mactl", "default", tmp_path / ".mactl" / "work")
    doc = backend.write(StateDocument())
    backend.write(doc)
    assert _mode(tmp_path / ".mactl") == 0o700
    assert _mode(tmp_path / ".mactl" / "state.json") == 0o600
    backups = list((tmp_path / ".mactl" / "backups").iterdir())
    assert backups and _mode(tmp_path / ".mactl" / "backups") == 0o700
    assert all(_mode(b) == 0o600 for b in backups)


def test_plan_file_and_state_folder_are_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "targets": [{"endpoint": "http://127.0.0.1:29200"}],
        "source": {"endpoint": "http://127.0.0.1:19200", "snapshotRepository": {"type": "fs", "location": "/r"}},
        "static-migration-configs": [{"indices": {"names": "a"}}],
    }
    (tmp_path / "c.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    assert run_guarded(app, ["plan", "-refresh=false", "-c", "c.json", "-out", "p.bin"]) == 0
    capsys.readouterr()
    assert _mode(tmp_path / "p.bin") == 0o600
    assert _mode(tmp_path / ".mactl") == 0o700
    assert not (tmp_path / ".mactl" / "work").exists()  # a plan creates no working folder


def test_dead_letters_are_private(tmp_path: Path) -> None:
    sink = FileSink(Location(str(tmp_path / "dl"), "backfill.s.snap.t.m0.b0"), "worker-1")
    sink.add(b'{"_id": "1", "_source": {"card": "4111"}}\n')
    sink.flush()
    assert _mode(sink.path) == 0o600
    assert _mode(sink.path.parent) == 0o700


def test_capture_log_is_private(tmp_path: Path) -> None:
    cfg = {"type": "file", "path": str(tmp_path / "cap")}
    log_file_root = tmp_path / "cap"

    capture_log.init_log(cfg)
    writer = capture_log.open_writer(cfg, "proxy-1")
    writer.append("k1", b"PUT /x/_doc/1 Authorization: Basic c2VjcmV0")
    writer.close()
    files = [p for p in log_file_root.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert files and all(_mode(p) == 0o600 for p in files), [(p, oct(_mode(p))) for p in files]
    assert _mode(log_file_root / "partitions") == 0o700
